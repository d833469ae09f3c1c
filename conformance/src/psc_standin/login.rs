//! The authorization endpoint and its login page: how a mail client (Thunderbird) gets
//! a code for a demo professional, picked on the page or named by `login_hint`.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use url::Url;

use super::{CodeGrant, REALM_PATH, Shared, StandInState, lock, read, unavailable};

/// The endpoints, at the paths PSC serves them under its realm.
pub(super) fn routes() -> Router<Arc<StandInState>> {
    Router::new().route(
        &format!("{REALM_PATH}/protocol/openid-connect/auth"),
        get(authorize),
    )
}

#[derive(Deserialize)]
struct AuthorizeQuery {
    response_type: Option<String>,
    client_id: Option<String>,
    redirect_uri: Option<String>,
    state: Option<String>,
    login_hint: Option<String>,
    scope: Option<String>,
    acr_values: Option<String>,
    code_challenge: Option<String>,
    code_challenge_method: Option<String>,
}

/// The IdNat a `login_hint` names: a known professional's IdNat or a mailbox address
/// only they open; otherwise the hint itself when it is not an address.
fn resolve_login(state: &StandInState, hint: &str) -> Option<String> {
    let hint = hint.trim();
    let known = read(&state.professionals);
    if let Some(p) = known.iter().find(|p| p.idnat == hint) {
        return Some(p.idnat.clone());
    }
    // A mailbox several professionals open (organisational) names nobody in particular.
    let mut holders = known
        .iter()
        .filter(|p| p.mailboxes.iter().any(|m| m.eq_ignore_ascii_case(hint)));
    if let (Some(p), None) = (holders.next(), holders.next()) {
        return Some(p.idnat.clone());
    }
    if hint.is_empty() || hint.contains('@') {
        None
    } else if state.interactive.load(Ordering::SeqCst) && !known.is_empty() {
        // Interactive with a list: only listed professionals log in.
        None
    } else {
        Some(hint.to_owned())
    }
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The page that lets a person pick a demo professional: each choice is the same
/// authorization request with `login_hint` set, which is then approved at once.
fn login_page(state: &StandInState, q: &AuthorizeQuery, client_id: &str) -> Response {
    let mut rows = String::new();
    for p in read(&state.professionals).iter() {
        let mut target = match Url::parse(&format!("{}/protocol/openid-connect/auth", state.issuer))
        {
            Ok(u) => u,
            Err(_) => continue,
        };
        {
            let mut pairs = target.query_pairs_mut();
            pairs.append_pair("response_type", "code");
            pairs.append_pair("client_id", client_id);
            for (k, v) in [
                ("redirect_uri", &q.redirect_uri),
                ("state", &q.state),
                ("scope", &q.scope),
                ("acr_values", &q.acr_values),
                ("code_challenge", &q.code_challenge),
                ("code_challenge_method", &q.code_challenge_method),
            ] {
                if let Some(v) = v {
                    pairs.append_pair(k, v);
                }
            }
            pairs.append_pair("login_hint", &p.idnat);
        }
        rows.push_str(&format!(
            "<li><a href=\"{}\"><strong>{}</strong><span>IdNat {} · {}</span></a></li>\n",
            html_escape(target.as_str()),
            html_escape(&p.name),
            html_escape(&p.idnat),
            html_escape(&p.mailboxes.join(", ")),
        ));
    }
    let page = format!(
        r#"<!DOCTYPE html><html lang="fr"><head><meta charset="utf-8"><title>Pro Santé Connect (bac à sable)</title>
<style>body{{font-family:system-ui,sans-serif;max-width:40rem;margin:3rem auto;color:#1d2430}}
h1{{font-size:1.3rem}}ul{{list-style:none;padding:0}}li a{{display:block;border:1px solid #ccd;border-radius:.4rem;padding:.7rem 1rem;margin:.5rem 0;text-decoration:none;color:inherit}}
li a:hover{{background:#eef4fb}}span{{display:block;color:#556;font-size:.85rem}}p.note{{color:#a21515;font-size:.85rem}}</style></head>
<body><h1>Pro Santé Connect — stand-in</h1><p>Application <code>{client}</code> asks to act for a professional. Choose who you are:</p>
<ul>{rows}</ul><p class="note">Sandbox only: no card, no e-CPS, anyone can be anyone.</p></body></html>"#,
        client = html_escape(client_id),
    );
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        page,
    )
        .into_response()
}

/// The authorization endpoint. `login_hint` (an IdNat or a known mailbox address) is
/// approved at once; without one, the configured login is, unless the stand-in is
/// interactive, which shows a page to pick a professional. PKCE S256 is honoured when
/// the client sends a challenge (`plain` is refused).
async fn authorize(State(state): Shared, Query(q): Query<AuthorizeQuery>) -> Response {
    if state.down.load(Ordering::SeqCst) {
        return unavailable();
    }
    let (Some("code"), Some(client_id), Some(redirect)) = (
        q.response_type.as_deref(),
        q.client_id.clone(),
        q.redirect_uri.clone(),
    ) else {
        return (
            StatusCode::BAD_REQUEST,
            "response_type=code, client_id and redirect_uri are required",
        )
            .into_response();
    };
    let Ok(mut target) = Url::parse(&redirect) else {
        return (StatusCode::BAD_REQUEST, "redirect_uri is not a URL").into_response();
    };
    let challenge = match (
        q.code_challenge.as_deref(),
        q.code_challenge_method.as_deref(),
    ) {
        (None, _) => None,
        (Some(c), Some("S256")) if (43..=128).contains(&c.len()) => Some(c.to_owned()),
        (Some(_), Some("S256")) => {
            return (
                StatusCode::BAD_REQUEST,
                "code_challenge must be 43 to 128 characters",
            )
                .into_response();
        }
        (Some(_), _) => {
            return (
                StatusCode::BAD_REQUEST,
                "code_challenge_method must be S256",
            )
                .into_response();
        }
    };
    let interactive = state.interactive.load(Ordering::SeqCst);
    let idnat = match q
        .login_hint
        .as_deref()
        .and_then(|h| resolve_login(&state, h))
    {
        Some(idnat) => idnat,
        None if interactive => return login_page(&state, &q, &client_id),
        None => lock(&state.login).clone(),
    };
    let code = format!("{:032x}", rand::random::<u128>());
    lock(&state.codes).insert(
        code.clone(),
        CodeGrant {
            idnat,
            client_id,
            redirect_uri: redirect,
            challenge,
        },
    );
    {
        let mut pairs = target.query_pairs_mut();
        pairs.append_pair("code", &code);
        if let Some(s) = &q.state {
            pairs.append_pair("state", s);
        }
    }
    (StatusCode::FOUND, [(header::LOCATION, target.to_string())]).into_response()
}
