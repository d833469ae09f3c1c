//! RFC 7662 introspection at the issuer, one request per token however many clients
//! present it at once.

use std::sync::Arc;

use futures::FutureExt as _;

use super::http::{bounded_body, describe, temporary};
use super::jws::Claims;
use super::{Inner, Outcome, Refusal, TokenError, lock};
use crate::auth::access::Professional;

impl Inner {
    /// One introspection per token at a time: concurrent callers share the request, and
    /// its answer lands in the cache before the request is forgotten, so a caller arriving
    /// afterwards finds it there.
    pub(super) async fn introspect_shared(
        self: &Arc<Self>,
        token: &str,
        hash: [u8; 32],
    ) -> Outcome {
        let flight = {
            let mut flights = lock(&self.flights);
            if let Some(f) = flights.get(&hash) {
                f.clone()
            } else {
                if let Some(p) = self.cached(&hash, self.clock.now().timestamp()) {
                    return Ok(p);
                }
                let inner = Arc::clone(self);
                let token = token.to_owned();
                // Spawned so the request completes and fills the cache even if every
                // waiting client goes away.
                let task = tokio::spawn(async move {
                    let outcome = inner.introspect(&token).await;
                    match &outcome {
                        Ok((p, exp)) => inner.remember(hash, p.clone(), *exp),
                        // Any introspection PSC did not answer, discovery's failures
                        // included (those are also counted as `discovery`).
                        Err(TokenError::Temporary(_)) => inner.count_fetch_failure("introspection"),
                        Err(TokenError::Refused(_)) => {}
                    }
                    lock(&inner.flights).remove(&hash);
                    outcome.map(|(p, _)| p)
                });
                let flight = async move {
                    task.await.unwrap_or_else(|e| {
                        Err(TokenError::Temporary(format!(
                            "introspection task failed: {e}"
                        )))
                    })
                }
                .boxed()
                .shared();
                flights.insert(hash, flight.clone());
                flight
            }
        };
        flight.await
    }

    pub(super) async fn introspect(&self, token: &str) -> Result<(Professional, i64), TokenError> {
        let endpoint = match &self.configured_introspection {
            Some(u) => u.clone(),
            None => self
                .endpoints()
                .await
                .map_err(TokenError::Temporary)?
                .introspection_endpoint
                .clone()
                .ok_or_else(|| {
                    TokenError::Temporary(
                        "the discovery document names no introspection_endpoint".into(),
                    )
                })?,
        };
        let (Some(id), Some(secret)) = (&self.client_id, &self.client_secret) else {
            return Err(TokenError::Temporary(
                "psc.client_id and psc.client_secret are not set".into(),
            ));
        };
        let response = self
            .http
            .post(endpoint.clone())
            .basic_auth(id, Some(secret))
            .header("accept", "application/json")
            .form(&[("token", token), ("token_type_hint", "access_token")])
            .send()
            .await
            .map_err(|e| TokenError::Temporary(format!("introspection: {}", describe(&e))))?;
        let status = response.status();
        if !status.is_success() {
            return Err(TokenError::Temporary(format!(
                "introspection answered {status}"
            )));
        }
        let body = bounded_body(response)
            .await
            .map_err(|e| TokenError::Temporary(format!("introspection: {e}")))?;
        let claims: Claims = serde_json::from_slice(&body).map_err(|e| {
            TokenError::Temporary(temporary("introspection answer is not valid", e))
        })?;
        if claims.active != Some(true) {
            return Err(Refusal::Inactive.into());
        }
        let now = self.clock.now().timestamp();
        Ok(self.rules.check(&claims, now)?)
    }
}
