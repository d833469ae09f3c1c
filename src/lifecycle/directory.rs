//! Publication in the Annuaire Santé, behind one trait so the transport can change
//! (DOMAIN.md: the push is an export/API step whose shape is not fixed).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use serde::Serialize;
use tokio::io::AsyncWriteExt;
use url::Url;

use crate::config::{DirectoryConfig, DirectoryTarget};
use crate::store::{Mailbox, MailboxKind};

/// Whether a mailbox enters or leaves the directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EventKind {
    Publish,
    Unpublish,
}

/// One change pushed to the directory, with the fields the directory shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DirectoryEvent {
    pub event: EventKind,
    pub at: DateTime<Utc>,
    /// PER, ORG or APP.
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub address: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The responsible person: never for a personal mailbox, whose holder is the
    /// responsible.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub responsible: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub telephone: Option<String>,
    /// "O" or "N", as the directory writes it.
    pub dematerialisation: &'static str,
    /// "O" or "N"; a publish event always carries "N" (red-listed mailboxes are never
    /// published).
    #[serde(rename = "listeRouge")]
    pub liste_rouge: &'static str,
}

fn yes_no(b: bool) -> &'static str {
    if b { "O" } else { "N" }
}

impl DirectoryEvent {
    pub fn new(event: EventKind, at: DateTime<Utc>, mailbox: &Mailbox) -> Self {
        let d = &mailbox.directory;
        DirectoryEvent {
            event,
            at,
            kind: mailbox.kind.directory_code(),
            address: mailbox.address.clone(),
            description: d.description.clone(),
            responsible: if mailbox.kind == MailboxKind::Personal {
                None
            } else {
                d.responsible.clone()
            },
            service: d.service.clone(),
            telephone: d.telephone.clone(),
            dematerialisation: yes_no(d.dematerialisation),
            liste_rouge: yes_no(mailbox.red_list),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("cannot write the publication file {path}: {source}")]
    File {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot serialise a directory event: {0}")]
    Encode(#[from] serde_json::Error),
    #[error("directory endpoint {url}: {problem}")]
    Http { url: Url, problem: String },
    #[error("cannot set up the directory client: {0}")]
    Setup(String),
}

/// Where publication events go. An `Ok` means the directory has the event: only then
/// does the caller record the mailbox as (un)published.
pub trait DirectoryPublisher: Send + Sync + std::fmt::Debug {
    fn publish<'a>(&'a self, event: &'a DirectoryEvent) -> BoxFuture<'a, Result<(), PublishError>>;

    /// Pushes events in order and says how many went through before the first failure
    /// (and that failure). Transports that can push several at once override it.
    fn publish_all<'a>(
        &'a self,
        events: &'a [DirectoryEvent],
    ) -> BoxFuture<'a, (usize, Option<PublishError>)> {
        Box::pin(async move {
            for (i, e) in events.iter().enumerate() {
                if let Err(err) = self.publish(e).await {
                    return (i, Some(err));
                }
            }
            (events.len(), None)
        })
    }
}

pub type SharedPublisher = Arc<dyn DirectoryPublisher>;

/// The publisher `[directory]` asks for.
pub fn publisher_from_config(config: &DirectoryConfig) -> Result<SharedPublisher, PublishError> {
    Ok(match &config.target {
        DirectoryTarget::None => Arc::new(NoPublisher),
        DirectoryTarget::File { path } => Arc::new(FilePublisher::new(path.clone())),
        DirectoryTarget::Http { url } => Arc::new(HttpPublisher::new(url.clone())?),
    })
}

/// Publication is not pushed anywhere; the events are only logged, and the mailboxes'
/// state still follows the rules (the operator may export it by other means).
#[derive(Debug, Default, Clone, Copy)]
pub struct NoPublisher;

impl DirectoryPublisher for NoPublisher {
    fn publish<'a>(&'a self, event: &'a DirectoryEvent) -> BoxFuture<'a, Result<(), PublishError>> {
        Box::pin(async move {
            tracing::info!(event = ?event.event, address = %event.address, "directory event (not pushed: directory.kind = none)");
            Ok(())
        })
    }
}

/// Appends each event as one JSON line to a file that the operator's export step reads.
/// A batch is written with one `write` and made durable before it counts as pushed.
#[derive(Debug, Clone)]
pub struct FilePublisher {
    path: PathBuf,
}

impl FilePublisher {
    pub fn new(path: PathBuf) -> Self {
        FilePublisher { path }
    }

    async fn append(&self, events: &[DirectoryEvent]) -> Result<(), PublishError> {
        let mut buf = Vec::with_capacity(events.len() * 256);
        for e in events {
            serde_json::to_writer(&mut buf, e)?;
            buf.push(b'\n');
        }
        let io = |source| PublishError::File {
            path: self.path.clone(),
            source,
        };
        let mut file = tokio::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .await
            .map_err(io)?;
        file.write_all(&buf).await.map_err(io)?;
        file.sync_data().await.map_err(io)?;
        Ok(())
    }
}

impl DirectoryPublisher for FilePublisher {
    fn publish<'a>(&'a self, event: &'a DirectoryEvent) -> BoxFuture<'a, Result<(), PublishError>> {
        Box::pin(self.append(std::slice::from_ref(event)))
    }

    fn publish_all<'a>(
        &'a self,
        events: &'a [DirectoryEvent],
    ) -> BoxFuture<'a, (usize, Option<PublishError>)> {
        Box::pin(async move {
            if events.is_empty() {
                return (0, None);
            }
            match self.append(events).await {
                Ok(()) => (events.len(), None),
                Err(e) => (0, Some(e)),
            }
        })
    }
}

/// POSTs each event as JSON to an HTTPS endpoint; any 2xx is success. Network errors,
/// 408, 429 and 5xx are retried with a doubling delay within the run; other answers
/// are final, and the next run tries again.
#[derive(Debug, Clone)]
pub struct HttpPublisher {
    url: Url,
    client: reqwest::Client,
    attempts: u32,
    first_delay: Duration,
}

/// Per request: a directory that does not answer in this time is retried.
const HTTP_TIMEOUT: Duration = Duration::from_secs(10);
const HTTP_ATTEMPTS: u32 = 4;
const HTTP_FIRST_DELAY: Duration = Duration::from_millis(500);

impl HttpPublisher {
    pub fn new(url: Url) -> Result<Self, PublishError> {
        let client = reqwest::Client::builder()
            .timeout(HTTP_TIMEOUT)
            .connect_timeout(HTTP_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| PublishError::Setup(e.to_string()))?;
        Ok(HttpPublisher {
            url,
            client,
            attempts: HTTP_ATTEMPTS,
            first_delay: HTTP_FIRST_DELAY,
        })
    }

    /// How many tries per event and the delay before the second (doubling after).
    pub fn with_retries(mut self, attempts: u32, first_delay: Duration) -> Self {
        self.attempts = attempts.max(1);
        self.first_delay = first_delay;
        self
    }

    async fn post(&self, event: &DirectoryEvent) -> Result<(), PublishError> {
        let fail = |problem: String| PublishError::Http {
            url: self.url.clone(),
            problem,
        };
        let mut delay = self.first_delay;
        let mut attempt = 1;
        loop {
            let outcome = self.client.post(self.url.clone()).json(event).send().await;
            let (retry, problem) = match outcome {
                Ok(r) if r.status().is_success() => return Ok(()),
                Ok(r) => {
                    let s = r.status();
                    let retry = s.is_server_error()
                        || s == reqwest::StatusCode::REQUEST_TIMEOUT
                        || s == reqwest::StatusCode::TOO_MANY_REQUESTS;
                    (retry, format!("answered {s}"))
                }
                Err(e) => (true, format!("request failed: {e}")),
            };
            if !retry || attempt >= self.attempts {
                return Err(fail(format!(
                    "{problem} (attempt {attempt} of {})",
                    self.attempts
                )));
            }
            tracing::debug!(address = %event.address, %problem, attempt, "directory push failed; retrying");
            tokio::time::sleep(delay).await;
            delay = delay.saturating_mul(2);
            attempt += 1;
        }
    }
}

impl DirectoryPublisher for HttpPublisher {
    fn publish<'a>(&'a self, event: &'a DirectoryEvent) -> BoxFuture<'a, Result<(), PublishError>> {
        Box::pin(self.post(event))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::DirectoryFields;

    fn mailbox(kind: MailboxKind) -> Mailbox {
        Mailbox {
            id: 1,
            address: "secretariat@hopital.mssante.fr".into(),
            kind,
            owner: None,
            display_name: None,
            created_at: DateTime::<Utc>::UNIX_EPOCH,
            last_authenticated_at: None,
            published: false,
            unpublished_at: None,
            hold: false,
            deletion_warned_at: None,
            red_list: false,
            directory: DirectoryFields {
                description: Some("Secrétariat".into()),
                responsible: Some("Dr Martin".into()),
                service: Some("Cardiologie".into()),
                telephone: None,
                dematerialisation: true,
                contact_address: Some("private@example.org".into()),
            },
        }
    }

    #[test]
    fn event_fields() {
        let at = DateTime::<Utc>::UNIX_EPOCH;
        let org = DirectoryEvent::new(
            EventKind::Publish,
            at,
            &mailbox(MailboxKind::Organisational),
        );
        let v = serde_json::to_value(&org).unwrap();
        assert_eq!(v["event"], "publish");
        assert_eq!(v["type"], "ORG");
        assert_eq!(v["responsible"], "Dr Martin");
        assert_eq!(v["dematerialisation"], "O");
        assert_eq!(v["listeRouge"], "N");
        assert_eq!(v["at"], "1970-01-01T00:00:00Z");
        assert!(v.get("telephone").is_none());
        // The contact address is private: it never goes to the directory.
        assert!(!v.to_string().contains("private@example.org"));

        let per = DirectoryEvent::new(EventKind::Unpublish, at, &mailbox(MailboxKind::Personal));
        let v = serde_json::to_value(&per).unwrap();
        assert_eq!(v["event"], "unpublish");
        assert_eq!(v["type"], "PER");
        assert!(v.get("responsible").is_none());
    }
}
