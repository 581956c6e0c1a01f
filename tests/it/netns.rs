//! Range sync over an impaired network: three `quasar node` processes, each in its own
//! Linux network namespace, joined by veth pairs to the root namespace, which routes
//! between them. Every packet between the namespaces is delayed and some are lost; the
//! fresh node still syncs the whole chain from the two others and ends on their head.
//!
//! The impairment is `tc netem` (delay 40 ms ± 5 ms, loss 1 % on each root-side veth)
//! where the kernel has it. Kernels built without `CONFIG_NET_SCH_NETEM` (this project's
//! Firecracker VMs among them) get the same impairment from user space: an iptables
//! `NFQUEUE` rule on the root namespace's FORWARD chain hands each forwarded packet to
//! this test, which drops 1 % of them and releases the rest 40 ms later, in order. Either
//! way the kernel's TCP stacks see real delay and loss. Needs root (CI runs as root),
//! `ip` (iproute2) and `iptables` (`.ci/setup` installs them).

use std::collections::VecDeque;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::node_process::{api_head, NodeProcess};
use crate::service::runtime;

const SUBNET: &str = "10.233.0.0/16";
const QUEUE: u16 = 4233;
const DELAY: Duration = Duration::from_millis(40);
/// Of every 100 forwarded packets, this many are dropped.
const LOSS_PERCENT: u64 = 1;

fn run(cmd: &str, args: &[&str]) -> Result<String, String> {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .map_err(|e| format!("{cmd}: {e} (install iproute2 and iptables: .ci/setup does)"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "{cmd} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

fn must(cmd: &str, args: &[&str]) {
    if let Err(e) = run(cmd, args) {
        panic!("{e}");
    }
}

/// What the test set up, torn down on drop (also when it panics).
struct Topology {
    namespaces: Vec<String>,
    links: Vec<String>,
    nfqueue_rule: bool,
    ip_forward: String,
}

const IPTABLES_RULE: [&str; 8] = [
    "-s",
    SUBNET,
    "-d",
    SUBNET,
    "-j",
    "NFQUEUE",
    "--queue-num",
    "4233",
];

impl Topology {
    fn clean(names: &[&str], links: &[&str]) {
        for l in links {
            let _ = run("ip", &["link", "del", l]);
        }
        for n in names {
            let _ = run("ip", &["netns", "del", n]);
        }
        let mut args = vec!["-D", "FORWARD"];
        args.extend(IPTABLES_RULE);
        while run("iptables", &args).is_ok() {}
    }

    /// Namespace `qns{i}` at 10.233.{i}.2, its veth's root end `qv{i}` at 10.233.{i}.1.
    fn new(count: usize) -> Topology {
        let uid = run("id", &["-u"]).unwrap_or_default();
        assert_eq!(
            uid.trim(),
            "0",
            "the netns test needs root (ip netns, iptables); CI runs as root — run it as root"
        );
        let names: Vec<String> = (1..=count).map(|i| format!("qns{i}")).collect();
        let links: Vec<String> = (1..=count).map(|i| format!("qv{i}")).collect();
        let n: Vec<&str> = names.iter().map(String::as_str).collect();
        let l: Vec<&str> = links.iter().map(String::as_str).collect();
        Self::clean(&n, &l);
        let ip_forward =
            std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap_or_else(|_| "0".into());
        let topo = Topology {
            namespaces: names.clone(),
            links: links.clone(),
            nfqueue_rule: false,
            ip_forward,
        };
        for i in 1..=count {
            let ns = &names[i - 1];
            let root_end = &links[i - 1];
            let ns_end = format!("qp{i}");
            let root_ip = format!("10.233.{i}.1");
            must("ip", &["netns", "add", ns]);
            must(
                "ip",
                &[
                    "link", "add", root_end, "type", "veth", "peer", "name", &ns_end, "netns", ns,
                ],
            );
            must(
                "ip",
                &["addr", "add", &format!("{root_ip}/24"), "dev", root_end],
            );
            must("ip", &["link", "set", root_end, "up"]);
            must(
                "ip",
                &[
                    "-n",
                    ns,
                    "addr",
                    "add",
                    &format!("10.233.{i}.2/24"),
                    "dev",
                    &ns_end,
                ],
            );
            must("ip", &["-n", ns, "link", "set", &ns_end, "up"]);
            must("ip", &["-n", ns, "link", "set", "lo", "up"]);
            must(
                "ip",
                &["-n", ns, "route", "add", "default", "via", &root_ip],
            );
        }
        std::fs::write("/proc/sys/net/ipv4/ip_forward", "1").expect("enable ip_forward");
        topo
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        let n: Vec<&str> = self.namespaces.iter().map(String::as_str).collect();
        let l: Vec<&str> = self.links.iter().map(String::as_str).collect();
        Self::clean(&n, &l);
        let _ = self.nfqueue_rule;
        let _ = std::fs::write("/proc/sys/net/ipv4/ip_forward", self.ip_forward.trim());
    }
}

/// The user-space stand-in for netem: every forwarded packet of the subnet, 1 % dropped,
/// the rest accepted `DELAY` after they were queued (first in, first out).
struct Delayer {
    stop: Arc<AtomicBool>,
    passed: Arc<AtomicU64>,
    dropped: Arc<AtomicU64>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Delayer {
    fn start() -> Delayer {
        let mut q = nfq::Queue::open().expect("netlink netfilter socket (needs root)");
        q.bind(QUEUE).expect("bind the NFQUEUE");
        q.set_copy_range(QUEUE, 0).expect("metadata only");
        q.set_queue_max_len(QUEUE, 8192).expect("queue length");
        q.set_nonblocking(true);
        let stop = Arc::new(AtomicBool::new(false));
        let passed = Arc::new(AtomicU64::new(0));
        let dropped = Arc::new(AtomicU64::new(0));
        let thread = {
            let (stop, passed, dropped) = (stop.clone(), passed.clone(), dropped.clone());
            std::thread::spawn(move || {
                let mut held: VecDeque<(Instant, nfq::Message)> = VecDeque::new();
                // A fixed-seed xorshift: the same loss pattern every run.
                let mut rng: u64 = 0x9e37_79b9_7f4a_7c15;
                while !stop.load(Ordering::Relaxed) {
                    let mut got = false;
                    while let Ok(mut msg) = q.recv() {
                        got = true;
                        rng ^= rng << 13;
                        rng ^= rng >> 7;
                        rng ^= rng << 17;
                        if rng % 100 < LOSS_PERCENT {
                            msg.set_verdict(nfq::Verdict::Drop);
                            let _ = q.verdict(msg);
                            dropped.fetch_add(1, Ordering::Relaxed);
                        } else {
                            msg.set_verdict(nfq::Verdict::Accept);
                            held.push_back((Instant::now() + DELAY, msg));
                        }
                    }
                    let now = Instant::now();
                    while held.front().is_some_and(|(due, _)| *due <= now) {
                        let (_, msg) = held.pop_front().unwrap();
                        let _ = q.verdict(msg);
                        passed.fetch_add(1, Ordering::Relaxed);
                    }
                    if !got {
                        std::thread::sleep(Duration::from_micros(500));
                    }
                }
                for (_, msg) in held {
                    let _ = q.verdict(msg);
                }
                let _ = q.unbind(QUEUE);
            })
        };
        Delayer {
            stop,
            passed,
            dropped,
            thread: Some(thread),
        }
    }
}

impl Drop for Delayer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// How the links are impaired: netem on the veths, or the NFQUEUE delayer.
enum Impairment {
    Netem,
    Queue(Delayer),
}

fn impair(topo: &mut Topology) -> Impairment {
    let delay = format!("{}ms", DELAY.as_millis());
    let loss = format!("{LOSS_PERCENT}%");
    let mut netem = Ok(String::new());
    for l in &topo.links {
        netem = run(
            "tc",
            &[
                "qdisc", "add", "dev", l, "root", "netem", "delay", &delay, "5ms", "loss", &loss,
            ],
        );
        if netem.is_err() {
            break;
        }
    }
    match netem {
        Ok(_) => Impairment::Netem,
        Err(e) => {
            assert!(
                e.contains("unknown"),
                "tc netem failed for another reason than a kernel without netem: {e}"
            );
            eprintln!("no netem in this kernel ({e}); delaying and dropping through NFQUEUE");
            for l in &topo.links {
                let _ = run("tc", &["qdisc", "del", "dev", l, "root"]);
            }
            let delayer = Delayer::start();
            let mut args = vec!["-I", "FORWARD"];
            args.extend(IPTABLES_RULE);
            must("iptables", &args);
            topo.nfqueue_rule = true;
            Impairment::Queue(delayer)
        }
    }
}

fn import_chain(data: &Path, chain_dir: &Path, slots: u64) {
    use quasar::accel::aggregate::CpuAggregator;
    use quasar::chain::pipeline::ImportOptions;
    use quasar::chain::service::{BlockSource, ChainService};
    let rt = runtime();
    let genesis = crate::service::read(&quasar::devnet::genesis_path(chain_dir));
    let chain = ChainService::open(
        data,
        Some(&genesis),
        ImportOptions::default(),
        Box::new(CpuAggregator),
    )
    .expect("chain opens");
    let blocks: Vec<Vec<u8>> = (1..=slots)
        .map(|s| crate::service::read(&quasar::devnet::block_path(chain_dir, s)))
        .collect();
    for part in blocks.chunks(256) {
        let out = rt
            .block_on(
                chain
                    .handle()
                    .import_segment(part.to_vec(), BlockSource::Local),
            )
            .unwrap();
        assert!(out.failed.is_none(), "{:?}", out.failed);
    }
    assert_eq!(chain.handle().head().head.slot, slots);
    chain.shutdown();
}

fn args(datadir: &Path, genesis: &Path, ns: usize, boot: &[String]) -> Vec<String> {
    let ip = format!("10.233.{ns}.2");
    let mut a: Vec<String> = [
        "--datadir",
        &datadir.display().to_string(),
        "--genesis",
        &genesis.display().to_string(),
        "--listen-address",
        &ip,
        "--port",
        "9000",
        "--disable-quic",
        "--disable-discovery",
        "--http",
        "--http-address",
        &ip,
        "--http-port",
        "5052",
        "--sync-batch-slots",
        "32",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    if !boot.is_empty() {
        a.push("--boot-nodes".into());
        a.push(boot.join(","));
    }
    a
}

#[test]
fn range_sync_across_namespaces_with_delay_and_loss() {
    const SLOTS: u64 = 320;
    let mut topo = Topology::new(3);
    let impairment = impair(&mut topo);

    let dir = tempfile::tempdir().unwrap();
    let chain_dir = dir.path().join("chain");
    crate::net::generate(&chain_dir, 64, SLOTS);
    let genesis = quasar::devnet::genesis_path(&chain_dir);
    // Two serving nodes (namespaces 1 and 2) with the chain imported, one fresh (3).
    let mut servers = Vec::new();
    let mut boot = Vec::new();
    for ns in 1..=2 {
        let data = dir.path().join(format!("n{ns}"));
        import_chain(&data, &chain_dir, SLOTS);
        let netns = format!("qns{ns}");
        let mut p = NodeProcess::spawn(
            &["ip", "netns", "exec", &netns],
            &args(&data, &genesis, ns, &[]),
        );
        let line = p.wait_line("quasar node: ", Duration::from_secs(60));
        let peer = line
            .split("peer id ")
            .nth(1)
            .unwrap_or_else(|| panic!("no peer id in {line:?}"))
            .trim()
            .to_string();
        boot.push(format!("/ip4/10.233.{ns}.2/tcp/9000/p2p/{peer}"));
        servers.push(p);
    }
    let want = api_head("http://10.233.1.2:5052").expect("server 1 answers");
    assert_eq!(want.0, SLOTS);

    let t = Instant::now();
    let mut fresh = NodeProcess::spawn(
        &["ip", "netns", "exec", "qns3"],
        &args(&dir.path().join("n3"), &genesis, 3, &boot),
    );
    let api = fresh.api_url();
    loop {
        if let Some(head) = api_head(&api) {
            if head.0 == SLOTS {
                assert_eq!(head, want, "synced to another head");
                break;
            }
        }
        assert!(
            t.elapsed() < Duration::from_secs(180),
            "no full sync in 180 s over the impaired links:\n{}",
            fresh.log.join("\n")
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let took = t.elapsed();
    match &impairment {
        Impairment::Netem => eprintln!("synced {SLOTS} blocks through netem in {took:.1?}"),
        Impairment::Queue(d) => {
            let (passed, dropped) = (
                d.passed.load(Ordering::Relaxed),
                d.dropped.load(Ordering::Relaxed),
            );
            eprintln!(
                "synced {SLOTS} blocks in {took:.1?}; {passed} packets delayed {DELAY:?}, {dropped} dropped"
            );
            assert!(
                passed > 100 && dropped > 0,
                "the traffic did not go through the impairment ({passed} delayed, {dropped} dropped)"
            );
        }
    }
    for mut p in servers.into_iter().chain([fresh]) {
        assert!(p.stop().success(), "unclean exit:\n{}", p.log.join("\n"));
    }
    drop(impairment);
    drop(topo);
}
