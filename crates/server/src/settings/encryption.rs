//! Settings encrypted at rest (`--encryptionEnv NAME`), in PocketBase's exact format, so a
//! data dir moves between the two either way: the `settings` row of `_params` holds the
//! standard base64 of a 12-byte random nonce followed by the AES-256-GCM sealing (ciphertext and
//! 16-byte tag) of the settings JSON, the key being the 32 bytes of the variable's value. A
//! row still in plain JSON is read and written back encrypted at the next load; an encrypted
//! row without a key, or one the key does not open, refuses to load rather than fall back to
//! the defaults (which would silently drop the SMTP, S3 and OAuth2 secrets).

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value;

use crate::error::{ApiError, ApiResult};
use crate::state::SharedState;
use crate::state::secrets::{EncryptionError, EncryptionKey};

/// The AES-256-GCM key of `key`.
fn aead(key: &EncryptionKey) -> Result<LessSafeKey, EncryptionError> {
    UnboundKey::new(&AES_256_GCM, key.bytes())
        .map(LessSafeKey::new)
        .map_err(|_| EncryptionError::Encrypt)
}

/// `plaintext` sealed as PocketBase seals it: base64(nonce ‖ ciphertext ‖ tag).
pub fn encrypt(key: &EncryptionKey, plaintext: &[u8]) -> Result<String, EncryptionError> {
    let mut nonce = [0u8; NONCE_LEN];
    aws_lc_rs::rand::fill(&mut nonce).map_err(|_| EncryptionError::Encrypt)?;
    let mut sealed = plaintext.to_vec();
    aead(key)?
        .seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::empty(),
            &mut sealed,
        )
        .map_err(|_| EncryptionError::Encrypt)?;
    let mut out = Vec::with_capacity(NONCE_LEN + sealed.len());
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&sealed);
    Ok(STANDARD.encode(out))
}

/// The plaintext of a value [`encrypt`] (or PocketBase) produced with `key`.
pub fn decrypt(key: &EncryptionKey, text: &str) -> Result<Vec<u8>, EncryptionError> {
    let raw = STANDARD
        .decode(text.trim())
        .map_err(|_| EncryptionError::Base64)?;
    decrypt_raw(key, &raw)
}

/// [`decrypt`] of the bytes behind the base64: nonce ‖ ciphertext ‖ tag.
pub fn decrypt_raw(key: &EncryptionKey, raw: &[u8]) -> Result<Vec<u8>, EncryptionError> {
    if raw.len() < NONCE_LEN + AES_256_GCM.tag_len() {
        return Err(EncryptionError::TooShort);
    }
    let (nonce, sealed) = raw.split_at(NONCE_LEN);
    let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| EncryptionError::TooShort)?;
    let mut sealed = sealed.to_vec();
    let plain = aead(key)?
        .open_in_place(nonce, Aad::empty(), &mut sealed)
        .map_err(|_| EncryptionError::Decrypt)?;
    Ok(plain.to_vec())
}

/// The stored settings JSON (`None`: never saved), decrypted when encrypted; a plain row is
/// re-saved encrypted when a key is configured.
pub(crate) async fn load(state: &SharedState, param: &str) -> ApiResult<Option<Value>> {
    let stored = state.store.get_param(param).await?;
    let key = state.config.settings_key.as_ref();
    match (stored, key) {
        (None, _) => Ok(None),
        // An encrypted row is bare base64, which the store reads back as a JSON string.
        (Some(Value::String(text)), Some(key)) => {
            let plain = decrypt(key, &text)
                .map_err(|error| unreadable(&format!("the stored settings: {error}")))?;
            serde_json::from_slice(&plain).map(Some).map_err(|error| {
                unreadable(&format!("the decrypted settings are not JSON: {error}"))
            })
        }
        (Some(Value::String(_)), None) => Err(unreadable(
            "the stored settings are encrypted; start with --encryptionEnv naming the variable \
             that holds their key",
        )),
        (Some(plain), Some(_)) => {
            save(state, param, &plain).await?;
            Ok(Some(plain))
        }
        (Some(plain), None) => Ok(Some(plain)),
    }
}

/// A 500 whose message says why (the start of `serve` prints it); the server does not start
/// in this state, so clients never see it.
fn unreadable(message: &str) -> ApiError {
    tracing::error!("{message}");
    ApiError::new(axum::http::StatusCode::INTERNAL_SERVER_ERROR, message)
}

/// Stores the settings JSON, encrypted when a key is configured.
pub(crate) async fn save(state: &SharedState, param: &str, value: &Value) -> ApiResult<()> {
    match state.config.settings_key.as_ref() {
        Some(key) => {
            let json = serde_json::to_vec(value).map_err(ApiError::internal)?;
            let sealed = encrypt(key, &json).map_err(ApiError::internal)?;
            state.store.set_param_text(param, &sealed).await?;
        }
        None => state.store.set_param(param, value.clone()).await?,
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn round_trips_and_every_sealing_differs() {
        let key = EncryptionKey::from_text(KEY).expect("32 bytes");
        let a = encrypt(&key, b"{\"meta\":{}}").expect("encrypts");
        let b = encrypt(&key, b"{\"meta\":{}}").expect("encrypts");
        assert_ne!(a, b, "a fresh nonce each time");
        assert_eq!(decrypt(&key, &a).expect("opens"), b"{\"meta\":{}}");
        // nonce (12) + plaintext (11) + tag (16), base64.
        assert_eq!(STANDARD.decode(&a).expect("base64").len(), 12 + 11 + 16);
    }

    #[test]
    fn opens_values_sealed_elsewhere() {
        let key = EncryptionKey::from_text(KEY).expect("32 bytes");
        // Sealed with Python's `cryptography` AESGCM, nonce 00..0b, plaintext `{"a":1}`.
        let sealed = "AAECAwQFBgcICQoLVsfaXuMpr4SIRLIEJ3MpglCX8LUkaec=";
        assert_eq!(decrypt(&key, sealed).expect("opens"), b"{\"a\":1}");
        // The `settings` row PocketBase 0.40.6 wrote with `--encryptionEnv` and the key above.
        let plain = decrypt(&key, POCKETBASE_SEALED).expect("opens");
        let settings: Value = serde_json::from_slice(&plain).expect("JSON");
        assert_eq!(settings["smtp"]["host"], "smtp.example.com");
    }

    const POCKETBASE_SEALED: &str = "PrnqfmWeIp4FPFnLspxd7e5pTIafxBU3WHxxFUHtPUo+ayhZxpdOO6JZRrj6Y2Ck4ErqE+ldlGX+VgP+fJSwdIrWN+e8JBWUFBLOxl0SpBGscMTlhbYnO5f+HpO10wu0nuWbx1x+3S4FwjiDeaDPoXeUP4L9jBpoxWtl6el5d6bKEnzvzHNQBKCe42dv6z1C4qQPPGyWVqpXhNUqxf9OtiI3hsnNj2pTq+eJPpE2yy9McYd6hul491mzaJWFdXPRoNtPJbhDqr10j/y+hzHyRWznSEMPbFdql1Rewm55PY2n662fKkaEO3ZwbmBDFgMl97SuAUS2TKYQ0souAJkyOINyZ7F1QUftBalZCzazUsPnoN4vy67WyHlGkqacAkBHIgYjfm5iTrzFMwfJH22v77/i6YMsZTVCAKpdFlHy0tx+whm5pBCFTjIoeHr6JRtAcCnGXb0gKINFP1wGAApxohwFxJoDGFzZCylQmzz6rizkVrRn+ga40S6PDbjxTIkystVpn2VrgxAz9ihbCc9YkNer0qXj8Aauka9Z53JWDMLuPCXvYEmFAOGEys4jL/1RCB4atmfwcul+PkK0K6Ftc1hcFErUyBF29yL0Fa8/YVXcyPtkg10AeH96jDnlzczfQ5g/LGBEn79tq1PbeV0Xmbw+AIlAq+mALeTiYVkIYmgmAtou8nbAHeXqa55HR0RlHG9+m/X5xuW3k56yBF/Q2FvkM5dciYdpyWQWvpGHRfrFsAelTo2NOkMWflzAlCcXZJUquFKZnJGbvF/VTAi2vsWo343+gqm8jB3bej8vFMVUW2jQppLKE2wgiEtsN9BupahsEf5JxSyHRkqgAiMDD6giMYdcy/i1U5kGbjDtqlJRymDYSQUuk+0SaFnEGh/eUCPuAWvKh4nM5ihn90x96gxlTVpsN4bsXfwq9lLLRT4z2YRjzYRv5tIsrm+t1SzlEY5RcypN0gq+qISCwBHZrQHaUdvXGRNvY08B9/b/U/2dqjoAMDxnSUGsKmFaEuSpSMF7nmv1O2cw3uRYELPggLN5C6nClAkpcd0wBbgiyxoMJW9GPM86JkkB72GlK95RgysmIBJpCrqO00LFKCCC38wsRxcomYdKbTBCIxvfttOTAonk7502NmlpIDqmihKUoFtVYHdeZJojjIOPtx+W/CcblbiLPwI4EKpNlovoHR+qf+6VLRD5FdruSBRtV1oP3i7UmwBSghTBu9dvZmr4jdpy+RtG7O5zs6L6XhodYECaQX30NIu5vjCBi9BRfyrHUbdKbiEQkia0Lkr74KpS/TR+UHf3Sin7i4K9z/0tUWahowl3mTn1tV8zE4dqMCwaUCAfJg7r9U19ZORLvHxgoQqTxWX+KQTFTCecTbb2YPb4KgWjOxXr9GkgTNzbrufC0jYl1D/htgRdfsMyzvGtDbjnGWlU8kHRfiY4uE/+3EqRJzYPeWUeX84clkA=";

    #[test]
    fn refuses_bad_keys_and_tampered_values() {
        assert!(matches!(
            EncryptionKey::from_text("short"),
            Err(EncryptionError::KeyLength(5))
        ));
        assert!(EncryptionKey::from_text(&"k".repeat(33)).is_err());
        let key = EncryptionKey::from_text(KEY).expect("32 bytes");
        let other = EncryptionKey::from_text(&"x".repeat(32)).expect("32 bytes");
        let sealed = encrypt(&key, b"secret").expect("encrypts");
        assert!(matches!(
            decrypt(&other, &sealed),
            Err(EncryptionError::Decrypt)
        ));
        assert!(matches!(
            decrypt(&key, "not base64!"),
            Err(EncryptionError::Base64)
        ));
        assert!(matches!(
            decrypt(&key, "AAAA"),
            Err(EncryptionError::TooShort)
        ));
        let mut raw = STANDARD.decode(&sealed).expect("base64");
        raw[14] ^= 1;
        assert!(matches!(
            decrypt(&key, &STANDARD.encode(raw)),
            Err(EncryptionError::Decrypt)
        ));
        assert!(format!("{key:?}").contains('…') && !format!("{key:?}").contains("0123"));
    }
}
