//! `POST /api/settings/apple/generate-client-secret`: Apple's OAuth2 client secret is not a
//! fixed string but a short-lived ES256 JWT signed with a private key from the Apple developer
//! account. PocketBase offers this endpoint so the admin can make one without other tools; it
//! answers the token and stores nothing.

use axum::Json;
use axum::extract::State;
use domain::{FieldError, ValidationErrors};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::Serialize;
use serde_json::{Value, json};

use crate::error::{ApiError, ApiResult};
use crate::extract::FormBody;
use crate::state::SharedState;

/// Apple accepts client secrets valid for at most six months (in seconds).
const MAX_DURATION: i64 = 15_777_000;

const INVALID: &str = "Invalid client secret data.";

#[derive(Serialize)]
struct Claims<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: [&'a str; 1],
    exp: i64,
    iat: i64,
}

pub(super) async fn generate_client_secret(
    State(_state): State<SharedState>,
    _: crate::extract::Superuser,
    FormBody(body): FormBody,
) -> ApiResult<Json<Value>> {
    let text = |key: &str| crate::extract::form_text(&body, key);
    let client_id = text("clientId")?;
    let team_id = text("teamId")?;
    let key_id = text("keyId")?;
    let private_key = text("privateKey")?;
    let duration = match body.get("duration") {
        None | Some(Value::Null) => 0,
        Some(Value::Number(n)) => n.as_f64().map_or(0, |d| d as i64),
        Some(_) => {
            return Err(ApiError::bad_request_msg(
                "An error occurred while loading the submitted data.",
            ));
        }
    };

    // Added alphabetically, the order PocketBase lists field errors in.
    let mut errors = ValidationErrors::new();
    if client_id.trim().is_empty() {
        errors.add("clientId", FieldError::required());
    }
    match duration {
        0 => errors.add("duration", FieldError::required()),
        d if d < 1 => errors.add(
            "duration",
            FieldError::new(
                "validation_min_greater_equal_than_required",
                "Must be no less than 1.",
            )
            .with_param("threshold", 1),
        ),
        d if d > MAX_DURATION => errors.add(
            "duration",
            FieldError::new(
                "validation_max_less_equal_than_required",
                format!("Must be no greater than {MAX_DURATION}."),
            )
            .with_param("threshold", MAX_DURATION),
        ),
        _ => {}
    }
    for (key, value) in [("keyId", &key_id), ("teamId", &team_id)] {
        if value.is_empty() {
            errors.add(key, FieldError::required());
        } else if value.chars().count() != 10 {
            errors.add(
                key,
                FieldError::new(
                    "validation_length_invalid",
                    "The length must be exactly 10.",
                )
                .with_param("max", 10)
                .with_param("min", 10),
            );
        }
    }
    let pem = private_key.trim();
    if pem.is_empty() {
        errors.add("privateKey", FieldError::required());
    } else if !(pem.starts_with("-----BEGIN PRIVATE KEY-----")
        && pem.ends_with("-----END PRIVATE KEY-----"))
    {
        errors.add(
            "privateKey",
            FieldError::new("validation_match_invalid", "Must be in a valid format."),
        );
    }
    if !errors.is_empty() {
        return Err(ApiError::validation(INVALID, errors));
    }

    let failed = |detail: &dyn std::fmt::Display| {
        ApiError::bad_request_msg(&format!(
            "Failed to generate client secret. Raw error: \n{detail}"
        ))
    };
    let der = pem_body(pem).ok_or_else(|| failed(&"the key is not valid base64"))?;
    let key = EncodingKey::from_ec_der(&der);
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some(key_id);
    let now = chrono::Utc::now().timestamp();
    let claims = Claims {
        iss: &team_id,
        sub: &client_id,
        aud: ["https://appleid.apple.com"],
        exp: now + duration,
        iat: now,
    };
    let secret = jsonwebtoken::encode(&header, &claims, &key).map_err(|e| failed(&e))?;
    Ok(Json(json!({ "secret": secret })))
}

/// The DER bytes between a PEM block's header and footer (standard base64, line breaks
/// allowed, padding optional).
fn pem_body(pem: &str) -> Option<Vec<u8>> {
    use base64::Engine as _;
    use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
    const PEM: GeneralPurpose = GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
    );
    let inner = pem
        .strip_prefix("-----BEGIN PRIVATE KEY-----")?
        .strip_suffix("-----END PRIVATE KEY-----")?;
    let text: String = inner.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    PEM.decode(text).ok().filter(|der| !der.is_empty())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::Arc;

    use aws_lc_rs::signature::{
        ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair,
        UnparsedPublicKey,
    };
    use axum::body::Body;
    use axum::http::{Request, StatusCode, header};
    use domain::Store;
    use serde_json::{Value, json};
    use store_sqlite::SqliteStore;
    use tower::ServiceExt;

    use super::pem_body;
    use crate::state::{AppState, ServerConfig};

    /// Standard base64 with padding, as PEM writes it.
    fn base64(bytes: &[u8]) -> String {
        let mut out = String::new();
        for chunk in bytes.chunks(3) {
            let n = chunk.iter().fold(0u32, |acc, b| (acc << 8) | u32::from(*b))
                << (8 * (3 - chunk.len()));
            for i in 0..=chunk.len() {
                out.push(STANDARD[((n >> (18 - 6 * i)) & 63) as usize] as char);
            }
            out.push_str(&"=".repeat(3 - chunk.len()));
        }
        out
    }
    const STANDARD: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

    fn decode_url(text: &str) -> Vec<u8> {
        use base64::Engine as _;
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(text.trim_end_matches('='))
            .unwrap()
    }

    #[tokio::test]
    async fn client_secrets_are_es256_jwts_apple_accepts() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = SqliteStore::open(dir.path(), Default::default()).unwrap();
        let admin = crate::superusers::create(store.as_ref(), "a@example.com", "Passw0rd!123", 4)
            .await
            .unwrap();
        let superusers = store.schema().get("_superusers").cloned().unwrap();
        let token = crate::auth::token::auth_token(&superusers, &admin).unwrap();
        let router = crate::router(AppState::new(store, ServerConfig::default()));
        let call = |body: Value, token: Option<String>| {
            let router = router.clone();
            async move {
                let mut builder = Request::builder()
                    .method("POST")
                    .uri("/api/settings/apple/generate-client-secret")
                    .header(header::CONTENT_TYPE, "application/json");
                if let Some(token) = token {
                    builder = builder.header(header::AUTHORIZATION, token);
                }
                let response = router
                    .oneshot(builder.body(Body::from(body.to_string())).unwrap())
                    .await
                    .unwrap();
                let status = response.status();
                let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
                    .await
                    .unwrap();
                (status, serde_json::from_slice::<Value>(&bytes).unwrap())
            }
        };

        let rng = aws_lc_rs::rand::SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let pair =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref()).unwrap();
        let pem = format!(
            "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
            base64(pkcs8.as_ref())
        );

        let (status, _) = call(json!({}), None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        let (status, body) = call(
            json!({"clientId": "com.x", "teamId": "short", "keyId": "KID1234567",
                   "privateKey": "-----BEGIN EC PRIVATE KEY-----x-----END EC PRIVATE KEY-----",
                   "duration": 99_999_999}),
            Some(token.clone()),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body["message"], "Invalid client secret data.");
        assert_eq!(body["data"]["teamId"]["code"], "validation_length_invalid");
        assert_eq!(
            body["data"]["privateKey"]["code"],
            "validation_match_invalid"
        );
        assert_eq!(
            body["data"]["duration"]["code"],
            "validation_max_less_equal_than_required"
        );
        assert!(body["data"].get("keyId").is_none());

        let (status, body) = call(
            json!({"clientId": "com.x", "teamId": "TEAM123456", "keyId": "KID1234567",
                   "privateKey": pem, "duration": 3600}),
            Some(token),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let secret = body["secret"].as_str().unwrap();
        let parts: Vec<&str> = secret.split('.').collect();
        assert_eq!(parts.len(), 3);
        let header: Value = serde_json::from_slice(&decode_url(parts[0])).unwrap();
        assert_eq!(
            header,
            json!({"alg": "ES256", "kid": "KID1234567", "typ": "JWT"})
        );
        let claims: Value = serde_json::from_slice(&decode_url(parts[1])).unwrap();
        assert_eq!(claims["iss"], "TEAM123456");
        assert_eq!(claims["sub"], "com.x");
        assert_eq!(claims["aud"], json!(["https://appleid.apple.com"]));
        assert_eq!(
            claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
            3600
        );
        // Signed with the given key: the public half verifies it.
        let public = UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, pair.public_key().as_ref());
        let input = format!("{}.{}", parts[0], parts[1]);
        public
            .verify(input.as_bytes(), &decode_url(parts[2]))
            .expect("the signature verifies");
    }

    #[test]
    fn pem_bodies_decode_across_lines() {
        let pem = "-----BEGIN PRIVATE KEY-----\nTWFu\nTWE=\n-----END PRIVATE KEY-----";
        assert_eq!(pem_body(pem), Some(b"ManMa".to_vec()));
        assert_eq!(
            pem_body("-----BEGIN PRIVATE KEY-----\n!!\n-----END PRIVATE KEY-----"),
            None
        );
        assert_eq!(pem_body("TWFu"), None);
    }
}
