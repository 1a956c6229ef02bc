//! Sign in with Apple: Apple has no user-info endpoint, so the user is read from the
//! `id_token` of the token answer, trusted only once its RS256 signature checks out against
//! one of Apple's published keys and its issuer, audience (our client id) and expiry are
//! right. The key set URL is the provider's `userInfoURL` (Apple's by default), so it can be
//! pointed at another key server, as the tests do.

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;

use super::oauth2::{APPLE_ISSUER, Provider};

/// Why an `id_token` was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum AppleError {
    #[error("the token answer has no id_token")]
    MissingToken,
    #[error("the provider has no client id to check the audience against")]
    MissingClientId,
    #[error("the id_token is not an RS256 token with a key id")]
    UnsupportedHeader,
    #[error("the key set could not be fetched: {0}")]
    Keys(String),
    #[error("no RSA key with the id_token's key id")]
    UnknownKey,
    #[error("the id_token is invalid: {0}")]
    Invalid(#[from] jsonwebtoken::errors::Error),
}

/// The claims of `id_token` once it is verified for `provider`.
pub async fn verified_claims(
    client: &reqwest::Client,
    provider: &Provider,
    id_token: &str,
) -> Result<Value, AppleError> {
    if id_token.is_empty() {
        return Err(AppleError::MissingToken);
    }
    if provider.client_id.is_empty() {
        return Err(AppleError::MissingClientId);
    }
    let header = jsonwebtoken::decode_header(id_token)?;
    // Checked before any key is fetched: `none`, HMAC and other algorithms never get further.
    let Some(kid) = header.kid.filter(|_| header.alg == Algorithm::RS256) else {
        return Err(AppleError::UnsupportedHeader);
    };
    let keys = fetch_keys(client, &provider.user_info_url).await?;
    let key = rsa_key(&keys, &kid).ok_or(AppleError::UnknownKey)?;
    let mut validation = Validation::new(Algorithm::RS256);
    validation.set_issuer(&[APPLE_ISSUER]);
    validation.set_audience(&[provider.client_id.as_str()]);
    validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    let data = jsonwebtoken::decode::<Value>(id_token, &key, &validation)?;
    Ok(data.claims)
}

async fn fetch_keys(client: &reqwest::Client, url: &str) -> Result<Value, AppleError> {
    let response = client
        .get(url)
        .header(reqwest::header::ACCEPT, "application/json")
        .send()
        .await
        .map_err(|error| AppleError::Keys(error.to_string()))?;
    if !response.status().is_success() {
        return Err(AppleError::Keys(format!("status {}", response.status())));
    }
    response
        .json()
        .await
        .map_err(|error| AppleError::Keys(error.to_string()))
}

/// The RSA key `kid` of a JSON Web Key Set, ready to verify with.
fn rsa_key(keys: &Value, kid: &str) -> Option<DecodingKey> {
    let key = keys.get("keys")?.as_array()?.iter().find(|key| {
        key.get("kid").and_then(Value::as_str) == Some(kid)
            && key.get("kty").and_then(Value::as_str) == Some("RSA")
    })?;
    let n = key.get("n")?.as_str()?;
    let e = key.get("e")?.as_str()?;
    DecodingKey::from_rsa_components(n, e).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keys_are_found_by_id_and_type() {
        // A real 2048-bit modulus is not needed to test the lookup: any base64url text
        // parses as components.
        let set = json!({"keys": [
            {"kid": "a", "kty": "EC", "x": "AA", "y": "AA"},
            {"kid": "b", "kty": "RSA", "n": "AQAB", "e": "AQAB"},
        ]});
        assert!(rsa_key(&set, "a").is_none(), "not an RSA key");
        assert!(rsa_key(&set, "b").is_some());
        assert!(rsa_key(&set, "c").is_none());
        assert!(rsa_key(&json!({}), "b").is_none());
    }
}
