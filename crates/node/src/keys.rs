//! The node key: a hex secp256k1 private key in a file, as Besu's `key`. Created with
//! permissions 0600 on first start when absent.

use secp256k1::{PublicKey, SecretKey, SECP256K1};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Why the node key could not be loaded or created.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// Reading or writing the file failed.
    #[error("node key file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The failure.
        source: std::io::Error,
    },
    /// The file does not hold a valid key.
    #[error("node key file {path} does not hold a secp256k1 private key in hex: {reason}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

/// Parses a hex private key (with or without `0x`, surrounding whitespace ignored).
pub fn parse_key(text: &str) -> Result<SecretKey, String> {
    let hex_text = text.trim().trim_start_matches("0x");
    let bytes = hex::decode(hex_text).map_err(|e| e.to_string())?;
    SecretKey::from_slice(&bytes).map_err(|e| e.to_string())
}

/// Loads the key at `path`, or creates a new random one there if the file does not exist.
pub fn load_or_create(path: &Path, default: Option<&str>) -> Result<SecretKey, KeyError> {
    let io = |source| KeyError::Io {
        path: path.to_path_buf(),
        source,
    };
    match std::fs::read_to_string(path) {
        Ok(text) => parse_key(&text).map_err(|reason| KeyError::Invalid {
            path: path.to_path_buf(),
            reason,
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = match default {
                Some(text) => parse_key(text).map_err(|reason| KeyError::Invalid {
                    path: path.to_path_buf(),
                    reason,
                })?,
                None => random_key().map_err(io)?,
            };
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).map_err(io)?;
            }
            let tmp = path.with_extension("tmp");
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create(true).truncate(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let mut file = options.open(&tmp).map_err(io)?;
            file.write_all(format!("0x{}", hex::encode(key.secret_bytes())).as_bytes())
                .map_err(io)?;
            file.sync_all().map_err(io)?;
            std::fs::rename(&tmp, path).map_err(io)?;
            Ok(key)
        }
        Err(e) => Err(io(e)),
    }
}

/// A new random key, from the operating system's random source.
pub fn random_key() -> std::io::Result<SecretKey> {
    loop {
        let mut bytes = [0u8; 32];
        std::io::Read::read_exact(&mut std::fs::File::open("/dev/urandom")?, &mut bytes)?;
        if let Ok(key) = SecretKey::from_slice(&bytes) {
            return Ok(key);
        }
    }
}

/// The enode id of a key: its 64-byte uncompressed public key in hex.
pub fn enode_id(key: &SecretKey) -> String {
    let public = PublicKey::from_secret_key(SECP256K1, key).serialize_uncompressed();
    hex::encode(public.get(1..).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_created_once_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/key");
        let created = load_or_create(&path, None).unwrap();
        assert_eq!(load_or_create(&path, None).unwrap(), created);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
        std::fs::write(&path, "not a key").unwrap();
        assert!(matches!(
            load_or_create(&path, None),
            Err(KeyError::Invalid { .. })
        ));
        assert_eq!(enode_id(&created).len(), 128);
    }
}
