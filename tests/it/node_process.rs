//! `quasar node` as a process: SIGKILL in the middle of a range sync loses nothing that was
//! committed, and the restarted node syncs on from what it stored. (The netns test in
//! `netns.rs` runs the same binary in network namespaces.)

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::net::{generate, start, Node};
use crate::service::runtime;

/// A `quasar node` child process, its stderr lines collected by a thread.
pub struct NodeProcess {
    pub child: Child,
    lines: mpsc::Receiver<String>,
    pub log: Vec<String>,
}

impl NodeProcess {
    /// `quasar node ARGS`, run under `prefix` (e.g. `ip netns exec NS`) when given.
    pub fn spawn(prefix: &[&str], args: &[String]) -> NodeProcess {
        let bin = env!("CARGO_BIN_EXE_quasar");
        let mut cmd = match prefix.split_first() {
            Some((first, rest)) => {
                let mut c = Command::new(first);
                c.args(rest).arg(bin);
                c
            }
            None => Command::new(bin),
        };
        cmd.arg("node")
            .args(args)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("quasar node starts");
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        NodeProcess {
            child,
            lines,
            log: Vec::new(),
        }
    }

    /// Wait for a stderr line starting with `prefix`; returns the rest of it.
    pub fn wait_line(&mut self, prefix: &str, limit: Duration) -> String {
        let t = Instant::now();
        loop {
            if let Some(l) = self.log.iter().find(|l| l.starts_with(prefix)) {
                return l[prefix.len()..].to_string();
            }
            let left = limit.saturating_sub(t.elapsed());
            match self
                .lines
                .recv_timeout(left.min(Duration::from_millis(200)))
            {
                Ok(l) => self.log.push(l),
                Err(mpsc::RecvTimeoutError::Timeout) if !left.is_zero() => {
                    if let Ok(Some(status)) = self.child.try_wait() {
                        while let Ok(l) = self.lines.try_recv() {
                            self.log.push(l);
                        }
                        panic!(
                            "quasar node exited ({status}) before printing {prefix:?}:\n{}",
                            self.log.join("\n")
                        );
                    }
                }
                Err(_) => panic!(
                    "quasar node did not print {prefix:?} in {limit:?}:\n{}",
                    self.log.join("\n")
                ),
            }
        }
    }

    /// The Beacon API's base URL, from the start-up line.
    pub fn api_url(&mut self) -> String {
        self.wait_line("Beacon API on ", Duration::from_secs(30))
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then wait for a clean exit.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let t = Instant::now();
        loop {
            if let Ok(Some(s)) = self.child.try_wait() {
                return s;
            }
            if t.elapsed() > Duration::from_secs(30) {
                self.kill();
                panic!("quasar node did not stop on SIGTERM in 30 s");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Head slot and root from the Beacon API (`/eth/v1/beacon/headers/head`); `None` while
/// the server does not answer.
pub fn api_head(base: &str) -> Option<(u64, String)> {
    let agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(5)))
        .build()
        .new_agent();
    let resp = agent
        .get(&format!("{base}/eth/v1/beacon/headers/head"))
        .call()
        .ok()?;
    let body = resp.into_body().read_to_vec().ok()?;
    let v: serde_json::Value = serde_json::from_slice(&body).ok()?;
    let d = &v["data"];
    let slot = d["header"]["message"]["slot"].as_str()?.parse().ok()?;
    Some((slot, d["root"].as_str()?.to_string()))
}

/// The multiaddr to dial `node` at, with its peer id.
pub fn dial_addr(node: &Node) -> String {
    let h = node.net.handle();
    let a = h.listen_addresses()[0].to_string();
    if a.contains("/p2p/") {
        a
    } else {
        format!("{a}/p2p/{}", h.local_peer_id())
    }
}

pub fn node_args(datadir: &Path, genesis: &Path, listen: &str, boot: &str) -> Vec<String> {
    [
        "--datadir",
        &datadir.display().to_string(),
        "--genesis",
        &genesis.display().to_string(),
        "--listen-address",
        listen,
        "--port",
        "0",
        "--disable-quic",
        "--disable-discovery",
        "--boot-nodes",
        boot,
        "--http",
        "--http-address",
        listen,
        "--http-port",
        "0",
        "--sync-batch-slots",
        "16",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

#[test]
fn sigkill_during_range_sync_then_restart_resumes_from_the_store() {
    const SLOTS: u64 = 768;
    let dir = tempfile::tempdir().unwrap();
    let chain_dir = dir.path().join("chain");
    generate(&chain_dir, 64, SLOTS);
    let rt = runtime();
    let server = start(&rt, &dir.path().join("server"), &chain_dir);
    crate::sync::import_all(&rt, &server, &chain_dir, SLOTS);
    let want = server.chain.handle().head();
    assert_eq!(want.head.slot, SLOTS);
    let want_root: String = std::iter::once("0x".to_string())
        .chain(want.head.root.iter().map(|b| format!("{b:02x}")))
        .collect();

    let data = dir.path().join("b");
    let genesis = quasar::devnet::genesis_path(&chain_dir);
    let args = node_args(&data, &genesis, "127.0.0.1", &dial_addr(&server));

    // First run: kill -9 once it has imported some batches but is far from done.
    let mut b = NodeProcess::spawn(&[], &args);
    let api = b.api_url();
    let t = Instant::now();
    let seen = loop {
        match api_head(&api) {
            Some((slot, _)) if slot >= 48 => break slot,
            _ => {}
        }
        assert!(
            t.elapsed() < Duration::from_secs(120),
            "no sync progress in 120 s:\n{}",
            b.log.join("\n")
        );
        std::thread::sleep(Duration::from_millis(5));
    };
    b.kill();
    assert!(
        seen < SLOTS,
        "the node synced all {SLOTS} slots before the kill; the test needs a longer chain"
    );

    // Second run: it starts from what the first one committed (at least the head the API
    // showed), and syncs the rest.
    let mut b = NodeProcess::spawn(&[], &args);
    let start_line = b.wait_line("quasar node: ", Duration::from_secs(60));
    let restart_slot: u64 = start_line
        .split("head slot ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no head slot in {start_line:?}"));
    assert!(
        restart_slot >= seen,
        "after SIGKILL the node restarted at slot {restart_slot}, below the head {seen} it had shown"
    );
    let api = b.api_url();
    let t = Instant::now();
    loop {
        if let Some((slot, root)) = api_head(&api) {
            if slot == SLOTS {
                assert_eq!(root, want_root, "synced to another head");
                break;
            }
        }
        assert!(
            t.elapsed() < Duration::from_secs(180),
            "the restarted node did not finish the sync:\n{}",
            b.log.join("\n")
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(b.stop().success(), "unclean exit:\n{}", b.log.join("\n"));
    eprintln!("killed at head {seen}, restarted at {restart_slot}, synced to {SLOTS}");

    // The store the two runs left is consistent (`quasar db verify`).
    let out = Command::new(env!("CARGO_BIN_EXE_quasar"))
        .args(["db", "verify", "--datadir"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "db verify: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `--network DIR` (config.yaml + genesis.ssz_snappy) starts a new datadir without
/// `--genesis`; a `--network` of another preset than the genesis state is refused with a
/// clear message before anything is written.
#[test]
fn network_flag_takes_a_folder_and_refuses_another_preset() {
    let dir = tempfile::tempdir().unwrap();
    let net_dir = dir.path().join("net");
    generate(&net_dir, 64, 2);
    std::fs::copy(
        concat!(env!("CARGO_MANIFEST_DIR"), "/configs/minimal.yaml"),
        net_dir.join("config.yaml"),
    )
    .unwrap();
    let base = |data: &Path| -> Vec<String> {
        [
            "--datadir",
            &data.display().to_string(),
            "--listen-address",
            "127.0.0.1",
            "--port",
            "0",
            "--disable-quic",
            "--disable-discovery",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    let mut args = base(&dir.path().join("a"));
    args.extend(["--network".to_string(), net_dir.display().to_string()]);
    let mut a = NodeProcess::spawn(&[], &args);
    let line = a.wait_line("quasar node: ", Duration::from_secs(60));
    assert!(line.starts_with("minimal chain, head slot 0"), "{line}");
    assert!(a.stop().success(), "{}", a.log.join("\n"));

    let data = dir.path().join("b");
    let out = Command::new(env!("CARGO_BIN_EXE_quasar"))
        .arg("node")
        .args(base(&data))
        .args(["--network", "mainnet", "--genesis"])
        .arg(quasar::devnet::genesis_path(&net_dir))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("--network mainnet: the genesis state is a minimal chain"),
        "{err}"
    );
    assert!(!data.join("db").exists(), "a refused start wrote a datadir");
}
