//! Secrets the server is booted with: the settings encryption key (`--encryptionEnv`) and the
//! metrics bearer secret (`--metricsSecret`), neither shown by `Debug` (configs get logged),
//! and the constant-time comparison used to check presented secrets.
//!
//! Several nodes: these are boot options, so every node must be started with the same values
//! (a node with another encryption key cannot read the settings the others wrote).

/// The key length PocketBase's `--encryptionEnv` asks for (AES-256).
pub const KEY_LEN: usize = 32;

/// An AES-256 key; its `Debug` never shows the bytes.
#[derive(Clone)]
pub struct EncryptionKey([u8; KEY_LEN]);

impl std::fmt::Debug for EncryptionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EncryptionKey(…)")
    }
}

/// Why a key could not be made or a value not be encrypted or decrypted.
#[derive(Debug, thiserror::Error)]
pub enum EncryptionError {
    #[error(
        "the environment variable {0} named by --encryptionEnv is not set (or empty); set it to \
         a 32-character key, or drop --encryptionEnv"
    )]
    MissingVariable(String),
    #[error(
        "the encryption key must be exactly {KEY_LEN} bytes (32 ASCII characters); the one \
         given has {0}"
    )]
    KeyLength(usize),
    #[error("the encrypted value is not valid base64")]
    Base64,
    #[error("the encrypted value is too short to hold a nonce and a tag")]
    TooShort,
    #[error("the encrypted value cannot be decrypted with this key (wrong key or corrupt data)")]
    Decrypt,
    #[error("encryption failed")]
    Encrypt,
}

impl EncryptionKey {
    /// The key from its text: exactly [`KEY_LEN`] bytes, used as they are (as PocketBase does).
    pub fn from_text(text: &str) -> Result<EncryptionKey, EncryptionError> {
        let bytes: [u8; KEY_LEN] = text
            .as_bytes()
            .try_into()
            .map_err(|_| EncryptionError::KeyLength(text.len()))?;
        Ok(EncryptionKey(bytes))
    }

    /// The key held by the environment variable `name`.
    pub fn from_env(name: &str) -> Result<EncryptionKey, EncryptionError> {
        match std::env::var(name) {
            Ok(text) if !text.is_empty() => EncryptionKey::from_text(&text),
            _ => Err(EncryptionError::MissingVariable(name.to_owned())),
        }
    }

    /// The key's bytes, for the cipher (`settings::encryption`).
    pub fn bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }
}

/// The bearer secret of `--metricsSecret`; its `Debug` does not show it.
#[derive(Clone, PartialEq, Eq)]
pub struct MetricsSecret(pub String);

impl std::fmt::Debug for MetricsSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MetricsSecret(<redacted>)")
    }
}

/// Compares secrets without an early exit on the first differing byte.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
