//! The OpenID Connect endpoints a server and an LPS talk to: discovery (at both of
//! PSC's paths), the JWKS, RFC 7662 introspection, the token endpoint, and the
//! sandbox's own mint for `mssante dev token`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::extract::{ConnectInfo, Form, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, Validation};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::Digest as _;

use super::{
    CLIENT_ID, CLIENT_SECRET, DEV_TOKEN_PATH, REALM_PATH, Shared, StandInState, TokenSpec, lock,
    read, unavailable,
};

/// The endpoints, at the paths PSC serves them under its realm.
pub(super) fn routes() -> Router<Arc<StandInState>> {
    Router::new()
        .route(
            &format!("{REALM_PATH}/.well-known/openid-configuration"),
            get(standard_discovery),
        )
        .route(
            &format!("{REALM_PATH}/.well-known/wallet-openid-configuration"),
            get(wallet_discovery),
        )
        .route(
            &format!("{REALM_PATH}/protocol/openid-connect/certs"),
            get(jwks),
        )
        .route(
            &format!("{REALM_PATH}/protocol/openid-connect/token/introspect"),
            post(introspect),
        )
        .route(
            &format!("{REALM_PATH}/protocol/openid-connect/token"),
            post(token),
        )
        .route(&format!("{REALM_PATH}{DEV_TOKEN_PATH}"), post(dev_token))
}

/// What a garbled endpoint answers: `200 OK`, JSON announced, not JSON given.
fn garbled(state: &StandInState) -> Option<Response> {
    state.garbled.load(Ordering::SeqCst).then(|| {
        (
            [(header::CONTENT_TYPE, "application/json")],
            "<html><body>{\"keys\": [ truncated",
        )
            .into_response()
    })
}

fn discovery_document(state: &StandInState) -> Value {
    let i = &state.issuer;
    json!({
        "issuer": i,
        "authorization_endpoint": format!("{i}/protocol/openid-connect/auth"),
        "token_endpoint": format!("{i}/protocol/openid-connect/token"),
        "introspection_endpoint": format!("{i}/protocol/openid-connect/token/introspect"),
        "userinfo_endpoint": format!("{i}/protocol/openid-connect/userinfo"),
        "jwks_uri": format!("{i}/protocol/openid-connect/certs"),
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "response_types_supported": ["code"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic"],
        "acr_values_supported": ["eidas1"],
    })
}

async fn standard_discovery(State(state): Shared) -> Response {
    if state.down.load(Ordering::SeqCst) {
        return unavailable();
    }
    if !state.standard_discovery.load(Ordering::SeqCst) {
        return StatusCode::NOT_FOUND.into_response();
    }
    if let Some(r) = garbled(&state) {
        return r;
    }
    Json(discovery_document(&state)).into_response()
}

async fn wallet_discovery(State(state): Shared) -> Response {
    if state.down.load(Ordering::SeqCst) {
        return unavailable();
    }
    if let Some(r) = garbled(&state) {
        return r;
    }
    Json(discovery_document(&state)).into_response()
}

async fn jwks(State(state): Shared) -> Response {
    if state.down.load(Ordering::SeqCst) {
        return unavailable();
    }
    state.jwks_fetches.fetch_add(1, Ordering::SeqCst);
    if let Some(r) = garbled(&state) {
        return r;
    }
    Json(read(&state.keys).jwks()).into_response()
}

#[derive(Deserialize)]
struct IntrospectionForm {
    token: Option<String>,
}

fn client_authenticated(headers: &HeaderMap) -> bool {
    let Some(value) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let Some(encoded) = value.strip_prefix("Basic ") else {
        return false;
    };
    let Ok(decoded) = STANDARD.decode(encoded.trim()) else {
        return false;
    };
    decoded == format!("{CLIENT_ID}:{CLIENT_SECRET}").as_bytes()
}

async fn introspect(
    State(state): Shared,
    headers: HeaderMap,
    Form(form): Form<IntrospectionForm>,
) -> Response {
    state.introspections.fetch_add(1, Ordering::SeqCst);
    if state.down.load(Ordering::SeqCst) {
        return unavailable();
    }
    let delay = *lock(&state.introspection_delay);
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    if let Some(r) = garbled(&state) {
        return r;
    }
    if !client_authenticated(&headers) {
        return (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Basic realm=\"esante-wallet\"")],
            Json(json!({"error": "invalid_client"})),
        )
            .into_response();
    }
    let inactive = Json(json!({"active": false})).into_response();
    let Some(token) = form.token else {
        return inactive;
    };
    if lock(&state.revoked).contains(&token) {
        return inactive;
    }
    let Ok(header) = jsonwebtoken::decode_header(&token) else {
        return inactive;
    };
    if header.alg != Algorithm::RS256 {
        return inactive;
    }
    let key = header
        .kid
        .as_deref()
        .and_then(|kid| read(&state.keys).published(kid));
    let Some(key) = key else {
        return inactive;
    };
    let mut validation = Validation::new(Algorithm::RS256);
    validation.leeway = 0;
    validation.validate_aud = false;
    validation.validate_nbf = true;
    validation.set_required_spec_claims(&["exp"]);
    match jsonwebtoken::decode::<serde_json::Map<String, Value>>(&token, &key.decoding, &validation)
    {
        Ok(data) => {
            let mut answer = data.claims;
            answer.insert("active".into(), Value::Bool(true));
            answer.insert(
                "client_id".into(),
                answer.get("azp").cloned().unwrap_or(Value::Null),
            );
            answer.insert("token_type".into(), Value::String("Bearer".into()));
            Json(Value::Object(answer)).into_response()
        }
        Err(_) => inactive,
    }
}

#[derive(Deserialize)]
struct TokenForm {
    grant_type: Option<String>,
    code: Option<String>,
    redirect_uri: Option<String>,
    code_verifier: Option<String>,
    refresh_token: Option<String>,
}

/// `authorization_code` (a code from `authorize`, once, same redirect URI, PKCE verifier
/// when a challenge was given) and `refresh_token` (as Thunderbird does on its next
/// start).
async fn token(State(state): Shared, Form(form): Form<TokenForm>) -> Response {
    if state.down.load(Ordering::SeqCst) {
        return unavailable();
    }
    let bad =
        |error: &str| (StatusCode::BAD_REQUEST, Json(json!({ "error": error }))).into_response();
    let (idnat, client_id) = match form.grant_type.as_deref() {
        Some("authorization_code") => {
            let Some(grant) = form.code.and_then(|c| lock(&state.codes).remove(&c)) else {
                return bad("invalid_grant");
            };
            if form.redirect_uri.as_deref() != Some(grant.redirect_uri.as_str()) {
                return bad("invalid_grant");
            }
            if let Some(challenge) = &grant.challenge {
                let Some(verifier) = form.code_verifier.as_deref() else {
                    return bad("invalid_grant");
                };
                let digest = sha2::Sha256::digest(verifier.as_bytes());
                if URL_SAFE_NO_PAD.encode(digest) != *challenge {
                    return bad("invalid_grant");
                }
            }
            (grant.idnat, grant.client_id)
        }
        Some("refresh_token") => {
            let Some(found) = form
                .refresh_token
                .and_then(|r| lock(&state.refresh).get(&r).cloned())
            else {
                return bad("invalid_grant");
            };
            found
        }
        _ => return bad("unsupported_grant_type"),
    };
    let spec = TokenSpec::valid(&idnat).with_azp(&client_id);
    let token = state.mint(&spec);
    let refresh = format!("{:032x}", rand::random::<u128>());
    lock(&state.refresh).insert(refresh.clone(), (idnat, client_id));
    Json(json!({
        "access_token": token,
        "token_type": "Bearer",
        "expires_in": spec.lifetime.as_secs(),
        "refresh_token": refresh,
        "refresh_expires_in": 1800,
        "scope": "openid scope_all",
    }))
    .into_response()
}

#[derive(Deserialize)]
struct DevTokenForm {
    idnat: Option<String>,
}

/// `POST {issuer}/dev/token`: a good token for `idnat`, for `mssante dev token`.
async fn dev_token(
    State(state): Shared,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Form(form): Form<DevTokenForm>,
) -> Response {
    if !state.dev_mint.load(Ordering::SeqCst) {
        return StatusCode::NOT_FOUND.into_response();
    }
    if !peer.ip().is_loopback() {
        return (StatusCode::FORBIDDEN, "loopback clients only").into_response();
    }
    let Some(idnat) = form.idnat.filter(|i| !i.trim().is_empty()) else {
        return (StatusCode::BAD_REQUEST, "idnat is required").into_response();
    };
    let spec = TokenSpec::valid(idnat.trim());
    Json(json!({
        "access_token": state.mint(&spec),
        "token_type": "Bearer",
        "expires_in": spec.lifetime.as_secs(),
    }))
    .into_response()
}
