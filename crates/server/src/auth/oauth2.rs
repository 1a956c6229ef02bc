//! OAuth2 sign-in (PocketBase's code flow): `auth-methods` lists each configured provider
//! with a fresh `state`, PKCE verifier and ready `authURL`; `auth-with-oauth2` exchanges the
//! code, fetches the provider's user, then signs in the linked record, links the caller or an
//! account with the same provider-verified email, or creates a record (under the
//! collection's create rule). Links are rows of the `_externalAuths` system collection.
//!
//! Providers: generic OpenID Connect (`oidc`, `oidc2`, `oidc3`, URLs from the config), Apple
//! (the user comes from the verified `id_token`, see [`super::apple`]) and the presets
//! Google, Microsoft, GitHub, GitLab, Discord, Gitea, Spotify, Twitch and Facebook. New users
//! are created the way the records API creates them, in the `oauth2` rule context. The
//! all-in-one flow's redirect target is [`super::oauth2_redirect`].
//!
//! FIXME(#5): provider logos are empty, and the other providers PocketBase knows (accepted
//! in the collection config) are left out of `auth-methods`.

use std::sync::Arc;
use std::time::Duration;

use crate::routing::{Routes, post};
use axum::extract::State;
use axum::http::{HeaderMap, Method};
use axum::response::Response;
use domain::{AuthContext, Collection, FieldError, Record, ValidationErrors};
use serde_json::{Map, Value, json};

use super::bookkeeping;
use super::{
    AuthMethod, ClientInfo, ResponseParams, auth_collection, find_by_field, finish_auth, form_text,
    options,
};
use crate::error::{ApiError, ApiResult};
use crate::extract::{Auth, Path, TextForm};
use crate::files::upload::UploadedFile;
use crate::records::pipeline::{self, SystemChange};
use crate::state::SharedState;
use domain::collection::EXTERNAL_AUTHS_ID;

pub fn router() -> Routes {
    Routes::new().route(
        "/api/collections/{collection}/auth-with-oauth2",
        post(auth_with_oauth2),
    )
}

/// Where a plain provider's user-info answer keeps each value, as JSON pointers (`""`:
/// not provided). An email is trusted as verified only through the `verified` pointer.
#[derive(Debug, PartialEq, Eq)]
struct JsonMap {
    id: &'static str,
    name: &'static str,
    username: &'static str,
    email: &'static str,
    avatar: &'static str,
    verified: &'static str,
}

/// How a provider's user is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum UserShape {
    /// OpenID Connect user-info claims.
    Oidc,
    /// `/user`, then `/user/emails` for the verified primary address.
    GitHub,
    Discord,
    /// The claims of the `id_token` from the token answer, checked against Apple's keys.
    Apple,
    Json(&'static JsonMap),
}

/// A provider's settings after merging the collection's config over the preset.
#[derive(Debug, Clone)]
pub struct Provider {
    pub name: String,
    pub display_name: String,
    pub(super) client_id: String,
    client_secret: String,
    auth_url: String,
    token_url: String,
    /// The user-info endpoint; for Apple, the URL of the JSON Web Key Set.
    pub(super) user_info_url: String,
    scopes: &'static str,
    /// Extra parameters of the authorization URL.
    auth_params: &'static [(&'static str, &'static str)],
    /// Whether the user-info request also carries `Client-Id` (Twitch).
    client_id_header: bool,
    pub pkce: bool,
    shape: UserShape,
}

/// A known provider's defaults.
struct Preset {
    auth_url: &'static str,
    token_url: &'static str,
    user_info_url: &'static str,
    scopes: &'static str,
    display: &'static str,
    shape: UserShape,
    auth_params: &'static [(&'static str, &'static str)],
    client_id_header: bool,
}

const fn preset(
    endpoints: [&'static str; 3],
    scopes: &'static str,
    display: &'static str,
    shape: UserShape,
) -> Preset {
    Preset {
        auth_url: endpoints[0],
        token_url: endpoints[1],
        user_info_url: endpoints[2],
        scopes,
        display,
        shape,
        auth_params: &[],
        client_id_header: false,
    }
}

/// Apple's issuer and default key set (the key set URL is the provider's `userInfoURL`, so
/// a deployment or a test can point it elsewhere).
pub const APPLE_ISSUER: &str = "https://appleid.apple.com";
const APPLE_KEYS_URL: &str = "https://appleid.apple.com/auth/keys";

static MICROSOFT: JsonMap = JsonMap {
    id: "/id",
    name: "/displayName",
    username: "",
    // Graph does not say whether `mail` was verified, so it never links by email.
    email: "/mail",
    avatar: "",
    verified: "",
};
static GITLAB: JsonMap = JsonMap {
    id: "/id",
    name: "/name",
    username: "/username",
    email: "/email",
    avatar: "/avatar_url",
    verified: "",
};
static GITEA: JsonMap = JsonMap {
    id: "/id",
    name: "/full_name",
    username: "/login",
    email: "/email",
    avatar: "/avatar_url",
    verified: "",
};
static SPOTIFY: JsonMap = JsonMap {
    id: "/id",
    name: "/display_name",
    username: "",
    email: "/email",
    avatar: "/images/0/url",
    verified: "",
};
static TWITCH: JsonMap = JsonMap {
    id: "/data/0/id",
    name: "/data/0/display_name",
    username: "/data/0/login",
    email: "/data/0/email",
    avatar: "/data/0/profile_image_url",
    verified: "",
};
static FACEBOOK: JsonMap = JsonMap {
    id: "/id",
    name: "/name",
    username: "",
    email: "/email",
    avatar: "/picture/data/url",
    verified: "",
};

/// The defaults of a provider Plinth supports, by PocketBase's provider name. The display
/// names, scopes and authorization URLs are those PocketBase lists in `auth-methods`.
fn preset_of(name: &str) -> Option<Preset> {
    Some(match name {
        "oidc" | "oidc2" | "oidc3" => preset(
            ["", "", ""],
            "openid email profile",
            "OIDC",
            UserShape::Oidc,
        ),
        "google" => preset(
            [
                "https://accounts.google.com/o/oauth2/v2/auth",
                "https://oauth2.googleapis.com/token",
                "https://www.googleapis.com/oauth2/v3/userinfo",
            ],
            "https://www.googleapis.com/auth/userinfo.profile \
             https://www.googleapis.com/auth/userinfo.email",
            "Google",
            UserShape::Oidc,
        ),
        "apple" => Preset {
            auth_params: &[("response_mode", "form_post")],
            ..preset(
                [
                    "https://appleid.apple.com/auth/authorize",
                    "https://appleid.apple.com/auth/token",
                    APPLE_KEYS_URL,
                ],
                "name email",
                "Apple",
                UserShape::Apple,
            )
        },
        "gitlab" => preset(
            [
                "https://gitlab.com/oauth/authorize",
                "https://gitlab.com/oauth/token",
                "https://gitlab.com/api/v4/user",
            ],
            "read_user",
            "GitLab",
            UserShape::Json(&GITLAB),
        ),
        "microsoft" => preset(
            [
                "https://login.microsoftonline.com/common/oauth2/v2.0/authorize",
                "https://login.microsoftonline.com/common/oauth2/v2.0/token",
                "https://graph.microsoft.com/v1.0/me",
            ],
            "User.Read",
            "Microsoft",
            UserShape::Json(&MICROSOFT),
        ),
        "github" => preset(
            [
                "https://github.com/login/oauth/authorize",
                "https://github.com/login/oauth/access_token",
                "https://api.github.com/user",
            ],
            "read:user user:email",
            "GitHub",
            UserShape::GitHub,
        ),
        "discord" => preset(
            [
                "https://discord.com/api/oauth2/authorize",
                "https://discord.com/api/oauth2/token",
                "https://discord.com/api/users/@me",
            ],
            "identify email",
            "Discord",
            UserShape::Discord,
        ),
        "gitea" => preset(
            [
                "https://gitea.com/login/oauth/authorize",
                "https://gitea.com/login/oauth/access_token",
                "https://gitea.com/api/v1/user",
            ],
            "read:user user:email",
            "Gitea/Forgejo",
            UserShape::Json(&GITEA),
        ),
        "spotify" => preset(
            [
                "https://accounts.spotify.com/authorize",
                "https://accounts.spotify.com/api/token",
                "https://api.spotify.com/v1/me",
            ],
            "user-read-private",
            "Spotify",
            UserShape::Json(&SPOTIFY),
        ),
        "twitch" => Preset {
            client_id_header: true,
            ..preset(
                [
                    "https://id.twitch.tv/oauth2/authorize",
                    "https://id.twitch.tv/oauth2/token",
                    "https://api.twitch.tv/helix/users",
                ],
                "user:read:email",
                "Twitch",
                UserShape::Json(&TWITCH),
            )
        },
        "facebook" => preset(
            [
                "https://www.facebook.com/v3.2/dialog/oauth",
                "https://graph.facebook.com/v3.2/oauth/access_token",
                "https://graph.facebook.com/me?fields=name,email,picture.type(large)",
            ],
            "email",
            "Facebook",
            UserShape::Json(&FACEBOOK),
        ),
        // The other providers PocketBase knows (their names pass the collection's validation)
        // are not offered: `providers` leaves them out of `auth-methods`.
        _ => return None,
    })
}

/// The collection's providers that Plinth supports, in config order.
pub fn providers(collection: &Collection) -> Vec<Provider> {
    let Some(auth) = collection.auth.as_ref() else {
        return Vec::new();
    };
    auth.oauth2
        .providers
        .iter()
        .filter_map(|config| {
            let text = |key: &str| {
                config
                    .get(key)
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned()
            };
            let name = text("name");
            let preset = preset_of(&name)?;
            let pick = |key: &str, default: &str| {
                let value = text(key);
                if value.is_empty() {
                    default.to_owned()
                } else {
                    value
                }
            };
            Some(Provider {
                display_name: pick("displayName", preset.display),
                client_id: text("clientId"),
                client_secret: text("clientSecret"),
                auth_url: pick("authURL", preset.auth_url),
                token_url: pick("tokenURL", preset.token_url),
                user_info_url: pick("userInfoURL", preset.user_info_url),
                scopes: preset.scopes,
                auth_params: preset.auth_params,
                client_id_header: preset.client_id_header,
                pkce: config.get("pkce").and_then(Value::as_bool).unwrap_or(true),
                shape: preset.shape,
                name,
            })
        })
        .collect()
}

/// base64url without padding.
fn base64_url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n =
            chunk.iter().fold(0u32, |acc, b| (acc << 8) | u32::from(*b)) << (8 * (3 - chunk.len()));
        for i in 0..=chunk.len() {
            out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
        }
    }
    out
}

/// The S256 PKCE challenge of `verifier`.
pub fn code_challenge(verifier: &str) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, verifier.as_bytes());
    base64_url(digest.as_ref())
}

/// One `auth-methods` provider entry, with a fresh state and PKCE pair.
pub fn method_entry(provider: &Provider) -> Value {
    let state = domain::ids::random_alnum(30);
    let verifier = domain::ids::random_alnum(43);
    let (challenge, method) = if provider.pkce {
        (code_challenge(&verifier), "S256")
    } else {
        (String::new(), "")
    };
    // Sorted by name, as PocketBase writes them.
    let mut query: Vec<(&str, &str)> = vec![("client_id", &provider.client_id)];
    if provider.pkce {
        query.push(("code_challenge", &challenge));
        query.push(("code_challenge_method", method));
    }
    query.push(("response_type", "code"));
    if !provider.scopes.is_empty() {
        query.push(("scope", provider.scopes));
    }
    query.push(("state", &state));
    query.extend(provider.auth_params.iter().copied());
    query.sort_by_key(|(key, _)| *key);
    let encoded = serde_urlencoded::to_string(&query).unwrap_or_default();
    let separator = if provider.auth_url.contains('?') {
        '&'
    } else {
        '?'
    };
    // The client appends its redirect URL.
    let auth_url = format!("{}{separator}{encoded}&redirect_uri=", provider.auth_url);
    json!({
        "name": provider.name,
        "displayName": provider.display_name,
        "logo": "",
        "state": state,
        "authURL": auth_url,
        "authUrl": auth_url,
        "codeVerifier": verifier,
        "codeChallenge": challenge,
        "codeChallengeMethod": method,
    })
}

/// The provider's user, normalized.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProviderUser {
    pub id: String,
    pub name: String,
    pub username: String,
    pub email: String,
    pub email_verified: bool,
    pub avatar_url: String,
}

fn text_of(value: &Value, key: &str) -> String {
    text_at(value, &format!("/{key}"))
}

/// The string or number at a JSON pointer, as text (`""` when absent or another type).
fn text_at(value: &Value, pointer: &str) -> String {
    if pointer.is_empty() {
        return String::new();
    }
    match value.pointer(pointer) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => String::new(),
    }
}

/// A verification flag sent as a boolean or, by some providers (Apple), as `"true"`.
fn flag_at(value: &Value, pointer: &str) -> bool {
    if pointer.is_empty() {
        return false;
    }
    match value.pointer(pointer) {
        Some(Value::Bool(flag)) => *flag,
        Some(Value::String(text)) => text.eq_ignore_ascii_case("true"),
        _ => false,
    }
}

fn map_user(shape: UserShape, raw: &Value) -> ProviderUser {
    match shape {
        UserShape::Oidc => ProviderUser {
            id: text_of(raw, "sub"),
            name: text_of(raw, "name"),
            username: text_of(raw, "preferred_username"),
            email: text_of(raw, "email"),
            email_verified: flag_at(raw, "/email_verified"),
            avatar_url: text_of(raw, "picture"),
        },
        UserShape::Apple => {
            // Apple puts no name in the id_token; a `user` object (as Apple posts it to the
            // redirect URL on the first sign-in) or a plain `name` claim is read if present.
            let mut name = text_of(raw, "name");
            if name.is_empty() {
                let parts = [
                    text_at(raw, "/user/name/firstName"),
                    text_at(raw, "/user/name/lastName"),
                ];
                name = parts
                    .iter()
                    .filter(|p| !p.is_empty())
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(" ");
            }
            ProviderUser {
                id: text_of(raw, "sub"),
                name,
                username: String::new(),
                email: text_of(raw, "email"),
                email_verified: flag_at(raw, "/email_verified"),
                avatar_url: String::new(),
            }
        }
        UserShape::GitHub => ProviderUser {
            id: text_of(raw, "id"),
            name: text_of(raw, "name"),
            username: text_of(raw, "login"),
            // Filled from /user/emails, which says whether the address is verified.
            email: String::new(),
            email_verified: false,
            avatar_url: text_of(raw, "avatar_url"),
        },
        UserShape::Discord => {
            let id = text_of(raw, "id");
            let avatar = text_of(raw, "avatar");
            ProviderUser {
                name: text_of(raw, "global_name"),
                username: text_of(raw, "username"),
                email: text_of(raw, "email"),
                email_verified: flag_at(raw, "/verified"),
                avatar_url: if avatar.is_empty() {
                    String::new()
                } else {
                    format!("https://cdn.discordapp.com/avatars/{id}/{avatar}.png")
                },
                id,
            }
        }
        UserShape::Json(map) => ProviderUser {
            id: text_at(raw, map.id),
            name: text_at(raw, map.name),
            username: text_at(raw, map.username),
            email: text_at(raw, map.email),
            email_verified: flag_at(raw, map.verified),
            avatar_url: text_at(raw, map.avatar),
        },
    }
}

fn http_client() -> ApiResult<reqwest::Client> {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(ApiError::internal)
}

struct Tokens {
    access: String,
    refresh: String,
    expiry: String,
    /// The OpenID Connect `id_token`, when the provider sent one.
    id_token: String,
}

async fn exchange(
    client: &reqwest::Client,
    provider: &Provider,
    code: &str,
    verifier: &str,
    redirect_url: &str,
) -> Option<Tokens> {
    let mut form = vec![
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", redirect_url),
        ("client_id", provider.client_id.as_str()),
        ("client_secret", provider.client_secret.as_str()),
    ];
    if provider.pkce {
        form.push(("code_verifier", verifier));
    }
    let response = client
        .post(&provider.token_url)
        .header(reqwest::header::ACCEPT, "application/json")
        .form(&form)
        .send()
        .await
        .map_err(|error| tracing::warn!(%error, provider = %provider.name, "token request failed"))
        .ok()?;
    if !response.status().is_success() {
        tracing::warn!(status = %response.status(), provider = %provider.name, "token exchange refused");
        return None;
    }
    let body: Value = response.json().await.ok()?;
    let access = text_of(&body, "access_token");
    if access.is_empty() {
        return None;
    }
    let expiry = body
        .get("expires_in")
        .and_then(Value::as_i64)
        .map(|seconds| {
            (chrono::Utc::now() + chrono::Duration::seconds(seconds))
                .format("%Y-%m-%d %H:%M:%S%.3fZ")
                .to_string()
        })
        .unwrap_or_default();
    Some(Tokens {
        access,
        refresh: text_of(&body, "refresh_token"),
        expiry,
        id_token: text_of(&body, "id_token"),
    })
}

async fn get_json(
    client: &reqwest::Client,
    url: &str,
    access: &str,
    client_id: Option<&str>,
) -> Option<Value> {
    let mut request = client
        .get(url)
        .bearer_auth(access)
        .header(reqwest::header::ACCEPT, "application/json")
        .header(reqwest::header::USER_AGENT, "plinth");
    if let Some(client_id) = client_id {
        request = request.header("Client-Id", client_id);
    }
    let response = request.send().await.ok()?;
    if !response.status().is_success() {
        return None;
    }
    response.json().await.ok()
}

async fn fetch_user(
    client: &reqwest::Client,
    provider: &Provider,
    tokens: &Tokens,
) -> Option<(ProviderUser, Value)> {
    let raw = if provider.shape == UserShape::Apple {
        super::apple::verified_claims(client, provider, &tokens.id_token)
            .await
            .map_err(|error| tracing::warn!(%error, "Apple id_token refused"))
            .ok()?
    } else {
        let client_id = provider
            .client_id_header
            .then_some(provider.client_id.as_str());
        get_json(client, &provider.user_info_url, &tokens.access, client_id).await?
    };
    let mut user = map_user(provider.shape, &raw);
    if provider.shape == UserShape::GitHub {
        let emails_url = format!("{}/emails", provider.user_info_url.trim_end_matches('/'));
        if let Some(Value::Array(emails)) =
            get_json(client, &emails_url, &tokens.access, None).await
            && let Some(primary) = emails
                .iter()
                .find(|e| e.get("primary") == Some(&Value::Bool(true)))
        {
            user.email = text_of(primary, "email");
            user.email_verified = flag_at(primary, "/verified");
        }
    }
    (!user.id.is_empty()).then_some((user, raw))
}

/// The record linked to this provider account, if the link and the record still exist.
async fn linked_record(
    state: &SharedState,
    collection: &Arc<Collection>,
    provider: &str,
    provider_id: &str,
) -> ApiResult<Option<Record>> {
    let rows = bookkeeping::find(
        state,
        EXTERNAL_AUTHS_ID,
        &[
            ("collectionRef", &collection.id),
            ("provider", provider),
            ("providerId", provider_id),
        ],
        1,
    )
    .await?;
    let Some(row) = rows.first() else {
        return Ok(None);
    };
    Ok(state
        .store
        .get_record(collection.clone(), row.text("recordRef"), Vec::new())
        .await?)
}

fn bad(message: &str) -> ApiError {
    ApiError::bad_request_msg(message)
}

#[allow(clippy::too_many_arguments)]
async fn auth_with_oauth2(
    State(state): State<SharedState>,
    Path(collection): Path<String>,
    Auth(auth): Auth,
    uri: axum::http::Uri,
    headers: HeaderMap,
    parts: axum::http::request::Parts,
    client_info: ClientInfo,
    TextForm(body): TextForm,
) -> ApiResult<Response> {
    let collection = auth_collection(&state, &collection).await?;
    let options = options(&collection)?;
    if !options.oauth2.enabled {
        return Err(ApiError::forbidden(
            "The collection is not configured to allow OAuth2 authentication.",
        ));
    }
    let provider_name = form_text(&body, "provider")?;
    let code = form_text(&body, "code")?;
    let verifier = form_text(&body, "codeVerifier")?;
    let mut redirect_url = form_text(&body, "redirectURL")?;
    if redirect_url.is_empty() {
        redirect_url = form_text(&body, "redirectUrl")?;
    }
    let mut errors = ValidationErrors::new();
    if code.is_empty() {
        errors.add("code", FieldError::required());
    }
    let provider = providers(&collection)
        .into_iter()
        .find(|p| p.name == provider_name);
    if provider_name.is_empty() {
        errors.add("provider", FieldError::required());
    } else if provider.is_none() {
        errors.add(
            "provider",
            FieldError::new(
                "validation_invalid_provider",
                format!("Provider with name {provider_name} is missing or is not enabled."),
            ),
        );
    }
    errors.into_result().map_err(|errors| {
        ApiError::validation(
            "An error occurred while loading the submitted data.",
            errors,
        )
    })?;
    let Some(provider) = provider else {
        return Err(ApiError::bad_request());
    };
    let http = http_client()?;
    let tokens = exchange(&http, &provider, &code, &verifier, &redirect_url)
        .await
        .ok_or_else(|| bad("Failed to fetch OAuth2 token."))?;
    let (user, raw_user) = fetch_user(&http, &provider, &tokens)
        .await
        .ok_or_else(|| bad("Failed to fetch OAuth2 user."))?;
    if let Some(scripts) = super::hooks::hooked(&state, super::hooks::WITH_OAUTH2, &collection) {
        let login = HookedOAuth2 {
            collection,
            auth,
            headers,
            parts,
            client: client_info,
            body,
            provider,
            user,
            raw_user,
            tokens,
        };
        return oauth2_with_hook(&state, &scripts, login).await;
    }
    let mut is_new = false;
    let record = match linked_record(&state, &collection, &provider.name, &user.id).await? {
        Some(record) => record,
        None => {
            let record = match &auth {
                AuthContext::Record {
                    collection: own,
                    record,
                    ..
                } if own.id == collection.id => (**record).clone(),
                _ => match by_verified_email(&state, &collection, &user).await? {
                    Some(record) if !record.bool("verified") => {
                        claim_unverified(&state, &collection, &record).await?
                    }
                    Some(record) => record,
                    None => {
                        is_new = true;
                        let create_data = match body.get("createData") {
                            Some(Value::Object(map)) => map.clone(),
                            _ => Map::new(),
                        };
                        let request = SignUp {
                            auth: &auth,
                            headers: &headers,
                            query: uri.query(),
                        };
                        create_record(&state, &collection, &user, create_data, request).await?
                    }
                },
            };
            bookkeeping::insert(
                &state,
                EXTERNAL_AUTHS_ID,
                None,
                vec![
                    ("collectionRef", Value::String(collection.id.clone())),
                    ("recordRef", Value::String(record.id().to_owned())),
                    ("provider", Value::String(provider.name.clone())),
                    ("providerId", Value::String(user.id.clone())),
                ],
            )
            .await?;
            record
        }
    };
    let meta = json!({
        "id": user.id,
        "name": user.name,
        "username": user.username,
        "email": user.email,
        "avatarURL": user.avatar_url,
        "avatarUrl": user.avatar_url,
        "accessToken": tokens.access,
        "refreshToken": tokens.refresh,
        "expiry": tokens.expiry,
        "rawUser": raw_user,
        "isNew": is_new,
    });
    let sign_in = super::SignIn {
        method: AuthMethod::OAuth2,
        mfa_id: super::mfa_id(&body, &super::query_pairs(&uri)),
        params: ResponseParams::from_uri(&uri),
        client: &client_info,
        meta: Some(meta),
        request: Some(&parts),
    };
    finish_auth(&state, &collection, record, sign_in).await
}

/// An OAuth2 sign-in whose collection has `onRecordAuthWithOAuth2Request` handlers.
struct HookedOAuth2 {
    collection: Arc<Collection>,
    auth: AuthContext,
    headers: HeaderMap,
    parts: axum::http::request::Parts,
    client: ClientInfo,
    body: Map<String, Value>,
    provider: Provider,
    user: ProviderUser,
    raw_user: Value,
    tokens: Tokens,
}

/// The OAuth2 sign-in behind `onRecordAuthWithOAuth2Request`: the handlers see
/// `e.providerName`, `e.oAuth2User`, `e.createData`, the record the provider's account
/// leads to (`e.record`, null for a new one) and `e.isNewRecord`. What they leave decides
/// which record signs in, or with which data a new one is made.
async fn oauth2_with_hook(
    state: &SharedState,
    scripts: &Arc<crate::state::scripts::Scripts>,
    login: HookedOAuth2,
) -> ApiResult<Response> {
    let HookedOAuth2 {
        collection,
        auth,
        headers,
        parts,
        client,
        body,
        provider,
        user,
        raw_user,
        tokens,
    } = login;
    let linked = linked_record(state, &collection, &provider.name, &user.id).await?;
    let existing = match (&linked, &auth) {
        (Some(_), _) => None,
        (
            None,
            AuthContext::Record {
                collection: own,
                record,
                ..
            },
        ) if own.id == collection.id => Some((**record).clone()),
        (None, _) => by_verified_email(state, &collection, &user).await?,
    };
    // A record matched by the provider's email is taken from whoever made it, unless it proved
    // its email (as without hooks); the caller's own record is linked as it is.
    let by_email = linked.is_none()
        && !matches!(&auth, AuthContext::Record { collection: own, .. } if own.id == collection.id);
    let found = linked.clone().or_else(|| existing.clone());
    let oauth2_user = json!({
        "id": user.id,
        "name": user.name,
        "username": user.username,
        "email": user.email,
        "avatarURL": user.avatar_url,
        "accessToken": tokens.access,
        "refreshToken": tokens.refresh,
        "expiry": tokens.expiry,
        "rawUser": raw_user,
    });
    let create_data = match body.get("createData") {
        Some(Value::Object(map)) => Value::Object(map.clone()),
        _ => json!({}),
    };
    let mut extra = Map::new();
    extra.insert("providerName".into(), Value::String(provider.name.clone()));
    extra.insert("oAuth2User".into(), oauth2_user);
    extra.insert("createData".into(), create_data);
    extra.insert("isNewRecord".into(), Value::Bool(found.is_none()));
    let chain = super::hooks::Chain {
        hook: super::hooks::WITH_OAUTH2,
        collection: &collection,
        parts: &parts,
        body: Some(Value::Object(body.clone())),
        record: found.as_ref().map(|r| super::hooks::wire(&collection, r)),
        extra,
    };
    let core = {
        let state = state.clone();
        let collection = collection.clone();
        let parts = parts.clone();
        move |left: super::hooks::Left| {
            super::hooks::boxed(async move {
                let chosen = left.record_id();
                let mut is_new = false;
                let record = match chosen {
                    Some(id) if linked.as_ref().is_some_and(|r| r.id() == id) => {
                        linked.as_ref().map(|r| left.record_over(r))
                    }
                    Some(id) => {
                        let record = match existing.as_ref().filter(|r| r.id() == id) {
                            Some(existing) => left.record_over(existing),
                            None => state
                                .store
                                .get_record(collection.clone(), &id, Vec::new())
                                .await?
                                .map(|r| left.record_over(&r))
                                .ok_or_else(ApiError::not_found)?,
                        };
                        let from_email = existing.as_ref().is_some_and(|r| r.id() == id);
                        let record = if by_email && from_email && !record.bool("verified") {
                            claim_unverified(&state, &collection, &record).await?
                        } else {
                            record
                        };
                        link(&state, &collection, &provider, &user, &record).await?;
                        Some(record)
                    }
                    None => None,
                };
                let record = match record {
                    Some(record) => record,
                    None => {
                        is_new = true;
                        let create_data = match left.value("createData") {
                            Some(Value::Object(map)) => map,
                            _ => Map::new(),
                        };
                        let request = SignUp {
                            auth: &auth,
                            headers: &headers,
                            query: parts.uri.query(),
                        };
                        let record =
                            create_record(&state, &collection, &user, create_data, request).await?;
                        link(&state, &collection, &provider, &user, &record).await?;
                        record
                    }
                };
                let meta = json!({
                    "id": user.id,
                    "name": user.name,
                    "username": user.username,
                    "email": user.email,
                    "avatarURL": user.avatar_url,
                    "avatarUrl": user.avatar_url,
                    "accessToken": tokens.access,
                    "refreshToken": tokens.refresh,
                    "expiry": tokens.expiry,
                    "rawUser": raw_user,
                    "isNew": is_new,
                });
                let sign_in = super::SignIn {
                    method: AuthMethod::OAuth2,
                    mfa_id: super::mfa_id(&body, &super::query_pairs(&parts.uri)),
                    params: ResponseParams::from_uri(&parts.uri),
                    client: &client,
                    meta: Some(meta),
                    request: Some(&parts),
                };
                finish_auth(&state, &collection, record, sign_in).await
            })
        }
    };
    super::hooks::run(state, scripts, chain, core).await
}

/// Links the provider's account to `record`.
async fn link(
    state: &SharedState,
    collection: &Collection,
    provider: &Provider,
    user: &ProviderUser,
    record: &Record,
) -> ApiResult<()> {
    bookkeeping::insert(
        state,
        EXTERNAL_AUTHS_ID,
        None,
        vec![
            ("collectionRef", Value::String(collection.id.clone())),
            ("recordRef", Value::String(record.id().to_owned())),
            ("provider", Value::String(provider.name.clone())),
            ("providerId", Value::String(user.id.clone())),
        ],
    )
    .await?;
    Ok(())
}

/// An existing record with the provider's email, linked only when the provider says the
/// email is verified: otherwise the provider account's owner could take the record. A match
/// the provider does not vouch for is refused rather than duplicated. A record that never
/// proved its email is returned too; [`claim_unverified`] takes it from whoever made it.
async fn by_verified_email(
    state: &SharedState,
    collection: &Arc<Collection>,
    user: &ProviderUser,
) -> ApiResult<Option<Record>> {
    if user.email.is_empty() {
        return Ok(None);
    }
    let Some(existing) = find_by_field(state, collection, "email", &user.email).await? else {
        return Ok(None);
    };
    if user.email_verified {
        return Ok(Some(existing));
    }
    Err(bad(
        "An account with this email already exists; sign in to it first to link this provider.",
    ))
}

/// The provider has just proved the email of a record that never proved it: whoever
/// registered the record may not be its owner (account pre-hijacking). As PocketBase does,
/// the record's other OAuth2 links go, its password is reset to one nobody knows and its
/// token key rotates (the registrant's sessions end), and it becomes verified.
async fn claim_unverified(
    state: &SharedState,
    collection: &Arc<Collection>,
    record: &Record,
) -> ApiResult<Record> {
    super::verify_proven_email(state, collection, record, true).await
}

/// The request a sign-up comes from, as the create rule sees it.
struct SignUp<'a> {
    auth: &'a AuthContext,
    headers: &'a HeaderMap,
    query: Option<&'a str>,
}

/// The body PocketBase submits for a new OAuth2 user: `createData`, then (where `createData`
/// does not set them) the mapped provider fields, the provider's email, and a random
/// password with its confirmation.
fn sign_up_body(
    collection: &Collection,
    options: &domain::collection::AuthOptions,
    user: &ProviderUser,
    mut body: Map<String, Value>,
) -> Map<String, Value> {
    let mapped = &options.oauth2.mapped_fields;
    for (field, value) in [
        (&mapped.name, &user.name),
        (&mapped.username, &user.username),
        (&mapped.id, &user.id),
    ] {
        if !field.is_empty()
            && !value.is_empty()
            && !body.contains_key(field.as_str())
            && collection
                .field(field)
                .is_some_and(|f| matches!(f.kind, domain::field::FieldKind::Text(_)))
        {
            body.insert(field.clone(), Value::String(value.clone()));
        }
    }
    if !user.email.is_empty() && !body.contains_key("email") {
        body.insert("email".into(), Value::String(user.email.clone()));
    }
    if !body.contains_key("password") {
        let password = Value::String(domain::ids::random_alnum(30));
        body.insert("password".into(), password.clone());
        body.insert("passwordConfirm".into(), password);
    }
    body
}

/// The file field `mappedFields.avatarURL` names, with its size limit, when the provider
/// gave a picture and `createData` does not set that field itself.
fn avatar_field<'a>(
    collection: &'a Collection,
    options: &'a domain::collection::AuthOptions,
    user: &ProviderUser,
    body: &Map<String, Value>,
) -> Option<(&'a str, u64)> {
    let name = options.oauth2.mapped_fields.avatar_url.as_str();
    if name.is_empty() || user.avatar_url.is_empty() || body.contains_key(name) {
        return None;
    }
    match &collection.field(name)?.kind {
        domain::field::FieldKind::File(o) => Some((
            name,
            if o.max_size == 0 {
                crate::files::upload::DEFAULT_MAX_SIZE
            } else {
                o.max_size
            },
        )),
        _ => None,
    }
}

/// Fetches the provider's picture as an upload for `field` (PocketBase stores it like any
/// uploaded file). A picture that cannot be fetched, or is larger than the field allows, is
/// left out rather than failing the sign-in: the account matters more than its avatar.
async fn download_avatar(url: &str, field: &str, max_size: u64) -> Option<UploadedFile> {
    let parsed = reqwest::Url::parse(url).ok()?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return None;
    }
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(15))
        .build()
        .ok()?;
    let mut response = client
        .get(parsed.clone())
        .send()
        .await
        .map_err(|error| tracing::warn!(%error, "fetching the OAuth2 avatar failed"))
        .ok()?;
    if !response.status().is_success() {
        tracing::warn!(status = %response.status(), "the OAuth2 avatar was not served");
        return None;
    }
    let mut bytes = Vec::new();
    while let Some(chunk) = response.chunk().await.ok()? {
        if (bytes.len() + chunk.len()) as u64 > max_size {
            tracing::warn!(
                max_size,
                "the OAuth2 avatar is larger than its field allows"
            );
            return None;
        }
        bytes.extend_from_slice(&chunk);
    }
    // The name is the last path segment, as a client uploading the picture would send it.
    let name = parsed
        .path_segments()
        .and_then(|mut segments| segments.next_back().map(str::to_owned))
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "avatar".to_owned());
    Some(UploadedFile::new(field.to_owned(), name, bytes.into()))
}

/// Creates the record for a new OAuth2 user as the records API would create it from
/// [`sign_up_body`] (field validation, create rule with `@request.context = "oauth2"`,
/// PocketBase's "Failed to create record." errors), then marks it verified when its email is
/// the one the provider vouches for.
async fn create_record(
    state: &SharedState,
    collection: &Arc<Collection>,
    user: &ProviderUser,
    create_data: Map<String, Value>,
    request: SignUp<'_>,
) -> ApiResult<Record> {
    let options = options(collection)?;
    let body = sign_up_body(collection, options, user, create_data);
    let files = match avatar_field(collection, options, user, &body) {
        Some((field, max_size)) => download_avatar(&user.avatar_url, field, max_size)
            .await
            .into_iter()
            .collect(),
        None => Vec::new(),
    };
    let meta = pipeline::Meta {
        method: &Method::POST,
        headers: request.headers,
        context: rules::contexts::OAUTH2,
    };
    let prepared = pipeline::prepare(
        state,
        pipeline::Action::Create,
        &collection.id,
        request.auth,
        meta,
        request.query,
        body,
        files,
        &[],
    )
    .await?;
    let mut results = pipeline::execute(state, vec![prepared], None)
        .await
        .map_err(|(_, error)| error)?;
    let record = match results.pop() {
        Some((_, domain::WriteResult::Created(record))) => record,
        _ => return Err(ApiError::internal("create returned no record")),
    };
    if user.email_verified && !user.email.is_empty() && record.text("email") == user.email {
        let change = SystemChange::new().set("verified", true).keep_autodates();
        return super::save_record(state, collection, record.id(), change).await;
    }
    Ok(record)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_challenge_is_unpadded_base64url_sha256() {
        // Expected value computed independently with Python's hashlib and base64.
        assert_eq!(
            code_challenge("dBjftJeZ4CQP-JXkRdtcNw1CfmEB0J2rK-i7j5VN9Gjk"),
            "rXJprLOfZFPEeU3NZ9SvcBEp4E9Ti0qM6NYAiawTlgE"
        );
    }

    #[test]
    fn provider_users_are_normalized() {
        let oidc = map_user(
            UserShape::Oidc,
            &json!({"sub": "u1", "email": "a@b.c", "email_verified": true, "name": "A",
                    "preferred_username": "aa", "picture": "http://p"}),
        );
        assert_eq!(
            oidc,
            ProviderUser {
                id: "u1".into(),
                name: "A".into(),
                username: "aa".into(),
                email: "a@b.c".into(),
                email_verified: true,
                avatar_url: "http://p".into(),
            }
        );
        let discord = map_user(
            UserShape::Discord,
            &json!({"id": "9", "username": "d", "email": "d@x.y", "verified": false, "avatar": "h"}),
        );
        assert_eq!(
            discord.avatar_url,
            "https://cdn.discordapp.com/avatars/9/h.png"
        );
        assert!(!discord.email_verified);
        let apple = map_user(
            UserShape::Apple,
            &json!({"sub": "001.abc", "email": "x@privaterelay.appleid.com",
                    "email_verified": "true",
                    "user": {"name": {"firstName": "Ann", "lastName": "Lee"}}}),
        );
        assert_eq!(
            (apple.id.as_str(), apple.name.as_str(), apple.email_verified),
            ("001.abc", "Ann Lee", true)
        );
        let unverified = map_user(
            UserShape::Apple,
            &json!({"sub": "s", "email_verified": "false"}),
        );
        assert!(!unverified.email_verified);
        let twitch = map_user(
            UserShape::Json(&TWITCH),
            &json!({"data": [{"id": "7", "login": "tw", "display_name": "Tw",
                              "email": "t@w.tv", "profile_image_url": "http://i"}]}),
        );
        assert_eq!(
            (
                twitch.id.as_str(),
                twitch.username.as_str(),
                twitch.avatar_url.as_str()
            ),
            ("7", "tw", "http://i")
        );
        assert!(!twitch.email_verified, "no verified flag: never trusted");
        let github = map_user(UserShape::GitHub, &json!({"id": 42, "login": "octo"}));
        assert_eq!(
            (github.id.as_str(), github.username.as_str()),
            ("42", "octo")
        );
    }

    #[test]
    fn auth_url_lists_pkce_and_ends_with_redirect_uri() {
        let mut collection =
            Collection::scaffold(domain::collection::CollectionType::Auth, "people");
        if let Some(auth) = collection.auth.as_mut() {
            auth.oauth2.providers = vec![
                json!({"name": "oidc", "clientId": "cid",
                "authURL": "https://id.test/auth", "tokenURL": "https://id.test/token",
                "userInfoURL": "https://id.test/me"}),
                json!({"name": "unknown"}),
            ];
        }
        let list = providers(&collection);
        assert_eq!(list.len(), 1);
        let entry = method_entry(&list[0]);
        let url = entry["authURL"].as_str().expect("url");
        assert!(
            url.starts_with("https://id.test/auth?client_id=cid&code_challenge="),
            "{url}"
        );
        assert!(url.ends_with("&redirect_uri="), "{url}");
        assert!(url.contains("&scope=openid+email+profile&"), "{url}");
        assert_eq!(entry["codeChallengeMethod"], "S256");
        let verifier = entry["codeVerifier"].as_str().expect("verifier");
        assert_eq!(entry["codeChallenge"], code_challenge(verifier).as_str());
        assert_eq!(entry["state"].as_str().map(str::len), Some(30));
    }

    #[test]
    fn presets_follow_pocketbase_names_and_urls() {
        let mut collection =
            Collection::scaffold(domain::collection::CollectionType::Auth, "people");
        if let Some(auth) = collection.auth.as_mut() {
            auth.oauth2.providers = ["apple", "google", "gitlab", "twitch", "linear"]
                .iter()
                .map(|name| json!({"name": name, "clientId": "cid", "pkce": false}))
                .collect();
        }
        let list = providers(&collection);
        let names: Vec<&str> = list.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(
            names,
            ["apple", "google", "gitlab", "twitch"],
            "linear is not offered"
        );
        let url = |index: usize| {
            method_entry(&list[index])["authURL"]
                .as_str()
                .map(str::to_owned)
        };
        let apple = url(0).expect("url");
        assert!(
            apple.starts_with(
                "https://appleid.apple.com/auth/authorize?client_id=cid\
                 &response_mode=form_post&response_type=code&scope=name+email&state="
            ),
            "{apple}"
        );
        assert!(url(2).expect("url").contains("&scope=read_user&"));
        assert_eq!(list[0].user_info_url, APPLE_KEYS_URL);
        assert!(list[3].client_id_header);
    }
}
