//! The node's identity: its Ed25519 key pair, made on first start and kept in the data dir,
//! readable by the owner only.

use std::{fs, os::unix::fs::PermissionsExt, path::Path};

use anyhow::{Context, bail};
use ed25519_dalek::{
    SigningKey,
    pkcs8::{DecodePrivateKey, EncodePrivateKey, spki::der::pem::LineEnding},
};

use civitas_gateway::files::{read_private_file, write_new_private_file};

pub const NODE_KEY_FILE: &str = "node.key";

/// Loads the node key from `data_dir/node.key` (PKCS#8 PEM), or makes one if there is none.
/// Refuses a key file that others can read: whoever holds the key can sign checkpoints.
pub fn load_or_create_key(data_dir: &Path) -> anyhow::Result<SigningKey> {
    let path = data_dir.join(NODE_KEY_FILE);
    match fs::metadata(&path) {
        Ok(metadata) => {
            let mode = metadata.permissions().mode();
            if mode & 0o077 != 0 {
                bail!(
                    "{} is readable by others (mode {:o}); run `chmod 600` on it",
                    path.display(),
                    mode & 0o777
                );
            }
            let pem =
                fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
            SigningKey::from_pkcs8_pem(&pem).map_err(|e| {
                anyhow::anyhow!("{} is not an Ed25519 PKCS#8 key: {e}", path.display())
            })
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            let mut seed = [0u8; 32];
            getrandom::fill(&mut seed)
                .map_err(|e| anyhow::anyhow!("reading randomness for the node key: {e}"))?;
            let key = SigningKey::from_bytes(&seed);
            let pem = key
                .to_pkcs8_pem(LineEnding::LF)
                .map_err(|e| anyhow::anyhow!("encoding the node key: {e}"))?;
            write_new_private_file(&path, pem.as_bytes())?;
            tracing::info!(path = %path.display(), "created the node key");
            Ok(key)
        }
        Err(error) => Err(error).with_context(|| format!("reading {}", path.display())),
    }
}

/// Loads a 32-byte node secret from `data_dir/name`, or makes one readable by the owner only.
/// Refuses a secret file that others can read, as the node key's. Used for the keyed hashes of
/// the personal-data access index and for signing playback URLs.
pub fn load_or_create_secret(data_dir: &Path, name: &str) -> anyhow::Result<[u8; 32]> {
    let path = data_dir.join(name);
    match fs::metadata(&path) {
        // Whoever reads the subject key can reverse the access index's keyed hashes of citizen
        // ID numbers (there are few enough numbers to try them all); the video key signs
        // playback URLs.
        Ok(_) => read_private_file(&path)?
            .try_into()
            .map_err(|_| anyhow::anyhow!("{} must hold exactly 32 bytes", path.display())),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            let mut secret = [0u8; 32];
            getrandom::fill(&mut secret).map_err(|e| anyhow::anyhow!("reading randomness: {e}"))?;
            write_new_private_file(&path, &secret)?;
            Ok(secret)
        }
        Err(error) => Err(error).with_context(|| format!("reading {}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_is_created_once_and_kept_private() {
        let dir = tempfile::tempdir().unwrap();
        let first = load_or_create_key(dir.path()).unwrap();
        let mode = fs::metadata(dir.path().join(NODE_KEY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let second = load_or_create_key(dir.path()).unwrap();
        assert_eq!(first.verifying_key(), second.verifying_key());

        fs::set_permissions(
            dir.path().join(NODE_KEY_FILE),
            fs::Permissions::from_mode(0o644),
        )
        .unwrap();
        let error = load_or_create_key(dir.path()).unwrap_err();
        assert!(error.to_string().contains("chmod 600"), "{error}");
    }

    #[test]
    fn secrets_are_kept_private() {
        let dir = tempfile::tempdir().unwrap();
        let first = load_or_create_secret(dir.path(), "subject.key").unwrap();
        assert_eq!(
            load_or_create_secret(dir.path(), "subject.key").unwrap(),
            first
        );
        fs::set_permissions(
            dir.path().join("subject.key"),
            fs::Permissions::from_mode(0o644),
        )
        .unwrap();
        let error = load_or_create_secret(dir.path(), "subject.key").unwrap_err();
        assert!(error.to_string().contains("chmod 600"), "{error}");
    }
}
