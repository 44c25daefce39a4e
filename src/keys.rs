//! Node key files: an ed25519 key that belongs to one party (`ieschain keygen`), instead
//! of one derived from the federation's public seed.
//!
//! The file is a small TOML document, written with mode 0600 and never over an existing
//! file:
//!
//! ```toml
//! # An ieschain node key. Keep it secret: whoever reads it can sign as this node.
//! secret_key = "…64 hex digits…"
//! public_key = "…64 hex digits…"
//! address = "…40 hex digits…"
//! ```
//!
//! Reading checks that the public key and address are the secret key's (a file edited or
//! cut short is refused, not signed with), and refuses a file that others than its owner
//! may read or write, as `ssh` does with a private key.

use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use ieschain_core::{Address, Keypair};
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// The mode of a key file: read and write for its owner only.
pub const KEY_FILE_MODE: u32 = 0o600;

/// A node's key with the secret it was made from.
#[derive(Clone)]
pub struct NodeKey {
    secret: [u8; 32],
    /// The key pair.
    pub key: Keypair,
}

impl std::fmt::Debug for NodeKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secret.
        write!(f, "NodeKey({})", self.key.address())
    }
}

/// The file's fields (no `Debug`: it holds the secret).
#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct KeyFile {
    secret_key: String,
    public_key: String,
    address: String,
}

/// Why a key file could not be written or read.
#[derive(Debug, Error)]
pub enum KeyError {
    /// The operating system's random source failed.
    #[error("drawing a key from the operating system's random source: {0}")]
    Random(String),
    /// The file exists: a key is never overwritten.
    #[error("{0} exists: a key is never overwritten (remove it first, or choose another path)")]
    Exists(PathBuf),
    /// Reading or writing failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
    /// Others than its owner may read or write the file.
    #[error(
        "{path}: mode {mode:o} lets others than its owner read or write the key; chmod 600 it"
    )]
    Permissions {
        /// The file.
        path: PathBuf,
        /// Its mode bits.
        mode: u32,
    },
    /// The file is not a key file.
    #[error("{path}: not an ieschain key file: {reason}")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

impl NodeKey {
    /// A new key from the operating system's random source.
    pub fn generate() -> Result<NodeKey, KeyError> {
        let mut secret = [0u8; 32];
        getrandom::getrandom(&mut secret).map_err(|e| KeyError::Random(e.to_string()))?;
        Ok(NodeKey::from_secret(secret))
    }

    fn from_secret(secret: [u8; 32]) -> NodeKey {
        NodeKey {
            key: Keypair::from_seed(secret),
            secret,
        }
    }

    /// The secret the key is made from: what the node's TLS identity is built from
    /// (`ieschain node`), and nothing else.
    pub(crate) fn secret(&self) -> [u8; 32] {
        self.secret
    }

    /// The node's address.
    pub fn address(&self) -> Address {
        self.key.address()
    }

    /// Writes the key to a new file at `path` with mode 0600; an existing file is left as
    /// it is and refused.
    pub fn write(&self, path: &Path) -> Result<(), KeyError> {
        let io = |source| KeyError::Io {
            path: path.to_path_buf(),
            source,
        };
        let file = KeyFile {
            secret_key: hex::encode(self.secret),
            public_key: hex::encode(self.key.public().0),
            address: self.address().to_string(),
        };
        let text = toml::to_string(&file).map_err(|e| KeyError::Malformed {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        let mut out = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(KEY_FILE_MODE)
            .open(path)
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::AlreadyExists => KeyError::Exists(path.to_path_buf()),
                _ => io(e),
            })?;
        out.write_all(
            b"# An ieschain node key. Keep it secret: whoever reads it can sign as this node.\n",
        )
        .and_then(|()| out.write_all(text.as_bytes()))
        .and_then(|()| out.sync_all())
        .map_err(|e| {
            // A cut-short key file would block the next keygen as "exists".
            let _ = std::fs::remove_file(path);
            io(e)
        })
    }

    /// Reads the key file at `path` (see the module's documentation for what is refused).
    pub fn read(path: &Path) -> Result<NodeKey, KeyError> {
        let io = |source| KeyError::Io {
            path: path.to_path_buf(),
            source,
        };
        let malformed = |reason: String| KeyError::Malformed {
            path: path.to_path_buf(),
            reason,
        };
        // One open: the mode checked is the mode of the file read.
        let mut file = std::fs::File::open(path).map_err(io)?;
        let mode = file.metadata().map_err(io)?.permissions().mode();
        if mode & 0o077 != 0 {
            return Err(KeyError::Permissions {
                path: path.to_path_buf(),
                mode: mode & 0o777,
            });
        }
        let mut text = String::new();
        std::io::Read::read_to_string(&mut file, &mut text).map_err(io)?;
        let file: KeyFile =
            toml::from_str(&text).map_err(|e| malformed(e.message().to_string()))?;
        let secret: [u8; 32] = hex::decode(&file.secret_key)
            .ok()
            .and_then(|bytes| bytes.try_into().ok())
            .ok_or_else(|| malformed("secret_key: expected 64 hexadecimal digits".into()))?;
        let key = NodeKey::from_secret(secret);
        if file.public_key != hex::encode(key.key.public().0) {
            return Err(malformed(
                "public_key is not the secret key's (edited or corrupted)".into(),
            ));
        }
        if file.address != key.address().to_string() {
            return Err(malformed(
                "address is not the secret key's (edited or corrupted)".into(),
            ));
        }
        Ok(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_written_key_reads_back_and_is_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.key");
        let key = NodeKey::generate().unwrap();
        key.write(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, KEY_FILE_MODE);
        assert_eq!(NodeKey::read(&path).unwrap().address(), key.address());
        let other = NodeKey::generate().unwrap();
        assert_ne!(other.address(), key.address(), "two draws, one key");
        assert!(matches!(other.write(&path), Err(KeyError::Exists(_))));
        assert_eq!(NodeKey::read(&path).unwrap().address(), key.address());
        assert!(!format!("{key:?}").contains(&hex::encode(key.secret)));
    }

    #[test]
    fn bad_key_files_are_refused_with_their_reason() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("good.key");
        NodeKey::generate().unwrap().write(&good).unwrap();
        let text = std::fs::read_to_string(&good).unwrap();
        let write = |name: &str, text: &str, mode: u32| {
            let path = dir.path().join(name);
            std::fs::write(&path, text).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            path
        };
        let open = write("open.key", &text, 0o644);
        assert!(matches!(
            NodeKey::read(&open),
            Err(KeyError::Permissions { mode: 0o644, .. })
        ));
        let secret_line = text.lines().find(|l| l.starts_with("secret_key")).unwrap();
        // Another secret: its public key and address no longer match.
        let secret_hex = secret_line.split('"').nth(1).unwrap();
        let first = if secret_hex.starts_with('0') {
            '1'
        } else {
            '0'
        };
        let edited = format!("secret_key = \"{first}{}\"", &secret_hex[1..]);
        let cases = [
            (
                "garbage",
                "\u{0}\u{1} not toml".to_string(),
                "not an ieschain key file",
            ),
            (
                "short",
                text.replace(secret_line, "secret_key = \"abcd\""),
                "64 hexadecimal",
            ),
            (
                "edited",
                text.replace(secret_line, &edited),
                "not the secret key's",
            ),
            ("extra", format!("{text}owner = \"me\"\n"), "unknown field"),
        ];
        for (name, body, reason) in cases {
            let path = write(&format!("{name}.key"), &body, 0o600);
            let err = NodeKey::read(&path).unwrap_err().to_string();
            assert!(err.contains(reason), "{name}: {err}");
        }
        assert!(matches!(
            NodeKey::read(&dir.path().join("missing.key")),
            Err(KeyError::Io { .. })
        ));
    }
}
