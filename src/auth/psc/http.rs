//! Requests to PSC: bounded answers, and errors worded for the log and the audit trail.

use std::fmt;

use url::Url;

use super::Inner;

/// Largest discovery, JWKS or introspection answer read from PSC.
pub(super) const MAX_ANSWER: usize = 256 * 1024;

pub(super) fn temporary(what: &str, e: impl fmt::Display) -> String {
    format!("{what}: {e}")
}

/// Reads at most `MAX_ANSWER` bytes of a response body.
pub(super) async fn bounded_body(mut response: reqwest::Response) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| e.to_string())? {
        if body.len() + chunk.len() > MAX_ANSWER {
            return Err(format!("answer larger than {MAX_ANSWER} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

pub(super) fn describe(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timed out".into()
    } else if e.is_connect() {
        "unreachable".into()
    } else {
        let mut text = e.to_string();
        let mut source = std::error::Error::source(e);
        while let Some(s) = source {
            text.push_str(": ");
            text.push_str(&s.to_string());
            source = s.source();
        }
        text
    }
}

impl Inner {
    pub(super) async fn get(&self, url: &Url) -> Result<Vec<u8>, String> {
        let response = self
            .http
            .get(url.clone())
            .header("accept", "application/json")
            .send()
            .await
            .map_err(|e| format!("GET {url}: {}", describe(&e)))?;
        let status = response.status();
        if !status.is_success() {
            return Err(format!("GET {url}: answered {status}"));
        }
        bounded_body(response)
            .await
            .map_err(|e| format!("GET {url}: {e}"))
    }
}
