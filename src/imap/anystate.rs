//! Commands valid in every state: CAPABILITY, NOOP, LOGOUT, ID.

use imap_codec::imap_types::command::{Command, CommandBody};
use imap_codec::imap_types::core::{IString, NString};
use imap_codec::imap_types::response::{Data, StatusKind};

use super::capabilities::{self, Stage};
use super::connection::ConnError;
use super::session::Session;
use super::state::{Transition, User};
use super::text;
use super::view::View;

impl Session {
    /// `stage` says what CAPABILITY lists; `selected` is the selected folder, for the
    /// changes NOOP reports.
    pub(crate) async fn any_state(
        &mut self,
        c: Command<'static>,
        stage: Stage,
        selected: Option<(&mut User, &mut View)>,
    ) -> Result<Transition, ConnError> {
        match c.body {
            CommandBody::Capability => {
                let caps = capabilities::list(stage, self.conn.max_literal());
                self.conn.send(&text::data(Data::Capability(caps))).await?;
                self.conn
                    .send(&text::tagged_ok(&c.tag, None, "CAPABILITY completed"))
                    .await?;
                Ok(Transition::None)
            }
            CommandBody::Noop => {
                if let Some((user, view)) = selected
                    && let Some(t) = self.sync_or_refuse(&c.tag, user, view, true).await?
                {
                    return Ok(t);
                }
                self.conn
                    .send(&text::tagged_ok(&c.tag, None, "NOOP completed"))
                    .await?;
                Ok(Transition::None)
            }
            CommandBody::Logout => {
                self.conn.send(&text::bye("logging out")).await?;
                self.conn
                    .send(&text::tagged_ok(&c.tag, None, "LOGOUT completed"))
                    .await?;
                Ok(Transition::Logout)
            }
            CommandBody::Id { parameters } => {
                // Which client is on the line: the first thing to look for in a trace.
                tracing::debug!(client = ?client_id(parameters.as_deref()), "ID");
                let mut parameters = vec![(istr("name"), text::nstring(Some("mssante")))];
                // The exact version tells a scanner which known flaws to try: only those
                // who logged in get it.
                if stage == Stage::Authenticated {
                    parameters.push((
                        istr("version"),
                        text::nstring(Some(env!("CARGO_PKG_VERSION"))),
                    ));
                }
                self.conn
                    .send(&text::data(Data::Id {
                        parameters: Some(parameters),
                    }))
                    .await?;
                self.conn
                    .send(&text::tagged_ok(&c.tag, None, "ID completed"))
                    .await?;
                Ok(Transition::None)
            }
            _ => {
                self.conn
                    .send(&text::tagged(
                        &c.tag,
                        StatusKind::Bad,
                        None,
                        "unexpected command",
                    ))
                    .await?;
                Ok(Transition::None)
            }
        }
    }
}

fn istr(s: &'static str) -> IString<'static> {
    text::istring(s)
}

/// The client's `name` and `version` from its ID parameters, for the log.
fn client_id(parameters: Option<&[(IString<'_>, NString<'_>)]>) -> String {
    let field = |key: &str| {
        parameters?
            .iter()
            .find(|(k, _)| k.as_ref().eq_ignore_ascii_case(key.as_bytes()))
            .and_then(|(_, v)| v.0.as_ref())
            .map(|v| String::from_utf8_lossy(v.as_ref()).into_owned())
    };
    match (field("name"), field("version")) {
        (Some(n), Some(v)) => format!("{n} {v}"),
        (Some(n), None) => n,
        _ => "unnamed".into(),
    }
}
