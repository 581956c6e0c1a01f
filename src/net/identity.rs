//! The node's network identity: a secp256k1 key (the eth2 spec's choice, shared by the
//! libp2p peer id and, later, the ENR), persisted in the datadir so the peer id survives a
//! restart.

use std::path::Path;

use libp2p::identity::{secp256k1, Keypair};

use super::NetError;

/// File under the datadir holding the 32-byte secret key.
pub const KEY_FILE: &str = "network/key";

/// Load the key from `datadir/network/key`, or create one there (written atomically, mode
/// 0600). A file of the wrong length or an invalid scalar is an error, never replaced.
pub fn load_or_create(datadir: &Path) -> Result<Keypair, NetError> {
    let path = datadir.join(KEY_FILE);
    match std::fs::read(&path) {
        Ok(mut bytes) => {
            if bytes.len() != 32 {
                return Err(NetError::Identity(format!(
                    "{}: {} bytes, expected a 32-byte secp256k1 secret key",
                    path.display(),
                    bytes.len()
                )));
            }
            let sk = secp256k1::SecretKey::try_from_bytes(&mut bytes)
                .map_err(|e| NetError::Identity(format!("{}: {e}", path.display())))?;
            Ok(Keypair::from(secp256k1::Keypair::from(sk)))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let kp = secp256k1::Keypair::generate();
            let secret = kp.secret().to_bytes();
            write_secret(&path, &secret)?;
            Ok(Keypair::from(kp))
        }
        Err(e) => Err(NetError::Identity(format!("{}: {e}", path.display()))),
    }
}

fn write_secret(path: &Path, secret: &[u8; 32]) -> Result<(), NetError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let err = |e: std::io::Error| NetError::Identity(format!("{}: {e}", path.display()));
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(err)?;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(err)?;
    f.write_all(secret)
        .and_then(|()| f.sync_all())
        .map_err(err)?;
    std::fs::rename(&tmp, path).map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_survives_a_restart_and_bad_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let a = load_or_create(dir.path()).unwrap();
        let b = load_or_create(dir.path()).unwrap();
        assert_eq!(a.public().to_peer_id(), b.public().to_peer_id());
        std::fs::write(dir.path().join(KEY_FILE), [1u8; 7]).unwrap();
        assert!(load_or_create(dir.path()).is_err());
        std::fs::write(dir.path().join(KEY_FILE), [0u8; 32]).unwrap();
        assert!(
            load_or_create(dir.path()).is_err(),
            "zero is not a valid scalar"
        );
    }
}
