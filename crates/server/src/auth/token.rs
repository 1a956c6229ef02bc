//! Tokens in PocketBase's JWT format: HS256, signed with the record's `tokenKey` followed by
//! the collection's secret for that token type, so rotating either revokes the token.

use std::sync::Arc;

use domain::collection::TokenConfig;
use domain::{AuthContext, Collection, Record};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};

use crate::state::SharedState;

/// The token types PocketBase issues.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenType {
    Auth,
    File,
    Verification,
    PasswordReset,
    EmailChange,
}

impl TokenType {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenType::Auth => "auth",
            TokenType::File => "file",
            TokenType::Verification => "verification",
            TokenType::PasswordReset => "passwordReset",
            TokenType::EmailChange => "emailChange",
        }
    }

    /// The collection's lifetime and secret for this type.
    pub fn config(self, collection: &Collection) -> Option<&TokenConfig> {
        let auth = collection.auth.as_ref()?;
        Some(match self {
            TokenType::Auth => &auth.auth_token,
            TokenType::File => &auth.file_token,
            TokenType::Verification => &auth.verification_token,
            TokenType::PasswordReset => &auth.password_reset_token,
            TokenType::EmailChange => &auth.email_change_token,
        })
    }
}

pub use crate::state::tokens::Claims;

/// Why a token could not be made.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("{0} is not an auth collection")]
    NotAuthCollection(String),
    #[error("signing failed: {0}")]
    Signing(#[from] jsonwebtoken::errors::Error),
}

/// Signs a token of `token_type` for `record`. `duration` overrides the collection's
/// configured lifetime (impersonation).
pub fn sign(
    collection: &Collection,
    record: &Record,
    token_type: TokenType,
    mut claims: Claims,
    duration: Option<u64>,
) -> Result<String, TokenError> {
    let config = token_type
        .config(collection)
        .ok_or_else(|| TokenError::NotAuthCollection(collection.name.clone()))?;
    let lifetime = duration.unwrap_or(config.duration);
    claims.id = record.id().to_owned();
    claims.collection_id = collection.id.clone();
    claims.token_type = token_type.as_str().to_owned();
    claims.exp = chrono::Utc::now().timestamp() + lifetime as i64;
    let key = signing_key(record, config);
    Ok(jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(&key),
    )?)
}

/// A refreshable auth token with the collection's default lifetime.
pub fn auth_token(collection: &Collection, record: &Record) -> Result<String, TokenError> {
    let claims = Claims {
        refreshable: Some(true),
        ..Claims::default()
    };
    sign(collection, record, TokenType::Auth, claims, None)
}

fn signing_key(record: &Record, config: &TokenConfig) -> Vec<u8> {
    let mut key = record.text("tokenKey").as_bytes().to_vec();
    key.extend_from_slice(config.secret.as_bytes());
    key
}

/// Reads the claims without checking the signature (to find the record and its key).
pub fn unverified_claims(token: &str) -> Option<Claims> {
    unverified_payload(token)
}

/// Reads the claims as JSON without checking the signature or their types (`None` when the
/// payload is not a JSON object).
pub fn raw_claims(token: &str) -> Option<serde_json::Map<String, serde_json::Value>> {
    unverified_payload(token)
}

/// The token's payload decoded as `T`, signature unchecked.
fn unverified_payload<T: serde::de::DeserializeOwned>(token: &str) -> Option<T> {
    let payload = token.split('.').nth(1)?;
    let bytes = base64_url_decode(payload)?;
    serde_json::from_slice(&bytes).ok()
}

/// Verifies `token` as a `token_type` token and returns its collection, record and claims.
/// A token that verified before with the same key skips the signature check
/// ([`crate::state::tokens`]); the record and collection are read fresh either way.
pub async fn verify(
    state: &SharedState,
    token: &str,
    token_type: TokenType,
) -> Option<(Arc<Collection>, Arc<Record>, Claims)> {
    verify_with(state, token, token_type, Claims::clone).await
}

/// [`verify`], answering with what `pick` takes from the claims instead of a copy of them all.
pub async fn verify_with<T>(
    state: &SharedState,
    token: &str,
    token_type: TokenType,
    pick: impl FnOnce(&Claims) -> T,
) -> Option<(Arc<Collection>, Arc<Record>, T)> {
    let kept = state.verified_tokens.get(token);
    let unverified;
    let claims = match &kept {
        Some(verified) => &verified.claims,
        None => {
            unverified = unverified_claims(token)?;
            &unverified
        }
    };
    if claims.token_type != token_type.as_str() || claims.id.is_empty() {
        return None;
    }
    let collection = state.schema().get_by_id(&claims.collection_id)?.clone();
    if !collection.is_auth() {
        return None;
    }
    let record = state
        .store
        .get_auth_record(collection.clone(), &claims.id)
        .await
        .ok()
        .flatten()?;
    let config = token_type.config(&collection)?;
    if let Some(verified) = &kept {
        let now = chrono::Utc::now().timestamp();
        if verified.holds(record.text("tokenKey"), &config.secret, now) {
            return Some((collection, record, pick(&verified.claims)));
        }
    }
    let key = signing_key(&record, config);
    let mut validation = Validation::new(Algorithm::HS256);
    validation.leeway = 0;
    validation.validate_exp = true;
    validation.set_required_spec_claims(&["exp"]);
    let verified =
        jsonwebtoken::decode::<Claims>(token, &DecodingKey::from_secret(&key), &validation).ok()?;
    let picked = pick(&verified.claims);
    state.verified_tokens.put(
        token,
        verified.claims,
        record.text("tokenKey"),
        &config.secret,
    );
    Some((collection, record, picked))
}

/// The caller behind an `Authorization` token, or a guest when it does not verify.
pub async fn resolve_auth_token(state: &SharedState, token: &str) -> AuthContext {
    match verify_with(state, token, TokenType::Auth, |claims| claims.refreshable).await {
        Some((collection, record, refreshable)) => AuthContext::Record {
            collection,
            record,
            refreshable: refreshable.unwrap_or(true),
        },
        None => AuthContext::Guest,
    }
}

pub(crate) fn base64_url_decode(text: &str) -> Option<Vec<u8>> {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut lookup = [255u8; 256];
    for (i, c) in ALPHABET.iter().enumerate() {
        lookup[*c as usize] = i as u8;
    }
    let text = text.trim_end_matches('=');
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let mut buffer = 0u32;
    let mut bits = 0;
    for byte in text.bytes() {
        let value = lookup[byte as usize];
        if value == 255 {
            return None;
        }
        buffer = (buffer << 6) | value as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
            buffer &= (1 << bits) - 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_unpadded_base64url() {
        assert_eq!(
            base64_url_decode("eyJhIjoxfQ").as_deref(),
            Some(&b"{\"a\":1}"[..])
        );
        assert_eq!(base64_url_decode("!!"), None);
    }
}
