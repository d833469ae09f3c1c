//! `mssante report usage`: the month's figures the operator reports to the national
//! agency, read from the store's durable records (so a past month gives the same
//! numbers again), as a table, JSON or CSV.

use std::fmt::Write as _;
use std::process::ExitCode;

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use clap::Subcommand;

use super::status;
use mssante::config::Config;
use mssante::store::{MailboxKind, Store, Usage};

#[derive(Subcommand, Debug)]
pub enum ReportCommand {
    /// Mailboxes by kind (existing at month end, created, deleted, published,
    /// unpublished, active), authentications by mechanism and messages carried in one
    /// calendar month (UTC).
    Usage {
        /// The month, YYYY-MM.
        #[arg(long, value_parser = parse_month)]
        month: NaiveDate,
        /// One JSON object.
        #[arg(long, conflicts_with = "csv")]
        json: bool,
        /// `figure,kind,value` lines under a header.
        #[arg(long)]
        csv: bool,
    },
}

/// The first day of the month `YYYY-MM`.
fn parse_month(s: &str) -> Result<NaiveDate, String> {
    NaiveDate::parse_from_str(&format!("{s}-01"), "%Y-%m-%d")
        .map_err(|_| format!("`{s}` is not a month (YYYY-MM, e.g. 2026-11)"))
}

/// `[first day of the month, first day of the next)` at 00:00 UTC.
fn bounds(first: NaiveDate) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
    let next = if first.month() == 12 {
        NaiveDate::from_ymd_opt(first.year() + 1, 1, 1)?
    } else {
        NaiveDate::from_ymd_opt(first.year(), first.month() + 1, 1)?
    };
    Some((
        first.and_hms_opt(0, 0, 0)?.and_utc(),
        next.and_hms_opt(0, 0, 0)?.and_utc(),
    ))
}

pub async fn run(config: &Config, cmd: ReportCommand) -> ExitCode {
    let ReportCommand::Usage { month, json, csv } = cmd;
    let Some((from, to)) = bounds(month) else {
        eprintln!("error: no such month");
        return ExitCode::from(status::USAGE);
    };
    let usage = async {
        let store = Store::open_configured(config, mssante::clock::system()).await?;
        let usage = store.usage(from, to).await;
        store.close().await;
        anyhow::Ok(usage?)
    };
    let usage = match usage.await {
        Ok(u) => u,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::from(status::FAILURE);
        }
    };
    let label = month.format("%Y-%m").to_string();
    let out = if json {
        match serde_json::to_string_pretty(&serde_json::json!({ "month": label, "usage": usage })) {
            Ok(text) => text + "\n",
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(status::FAILURE);
            }
        }
    } else if csv {
        as_csv(&usage)
    } else {
        as_table(&label, &usage)
    };
    print!("{out}");
    ExitCode::SUCCESS
}

const KINDS: [MailboxKind; 3] = [
    MailboxKind::Personal,
    MailboxKind::Organisational,
    MailboxKind::Applicative,
];

/// The mailbox figures, by name, as each kind holds them.
fn mailbox_rows(u: &Usage) -> [(&'static str, [u64; 3]); 6] {
    let by = |f: fn(&mssante::store::KindFigures) -> u64| KINDS.map(|k| f(u.kind(k)));
    [
        ("existing", by(|f| f.existing)),
        ("created", by(|f| f.created)),
        ("deleted", by(|f| f.deleted)),
        ("published", by(|f| f.published)),
        ("unpublished", by(|f| f.unpublished)),
        ("active", by(|f| f.active)),
    ]
}

fn other_rows(u: &Usage) -> [(&'static str, u64); 7] {
    [
        ("authentications_psc_token", u.authentications.psc_token),
        (
            "authentications_client_certificate",
            u.authentications.client_certificate,
        ),
        ("messages_submitted", u.messages.submitted),
        ("messages_received_from_operators", u.messages.received),
        ("messages_sent_to_operators", u.messages.relayed),
        ("messages_delivered_locally", u.messages.delivered),
        ("messages_bounced", u.messages.bounced),
    ]
}

fn as_csv(u: &Usage) -> String {
    let mut out = String::from("figure,kind,value\n");
    for (name, values) in mailbox_rows(u) {
        for (kind, v) in KINDS.iter().zip(values) {
            let _ = writeln!(out, "mailboxes_{name},{kind},{v}");
        }
    }
    for (name, v) in other_rows(u) {
        let _ = writeln!(out, "{name},,{v}");
    }
    out
}

fn as_table(month: &str, u: &Usage) -> String {
    let mut out = format!(
        "Usage for {month} ({} to {}, UTC)\n\nmailboxes     personal  organisational  applicative     total\n",
        u.from.to_rfc3339(),
        u.to.to_rfc3339()
    );
    for (name, [p, o, a]) in mailbox_rows(u) {
        let _ = writeln!(out, "{name:<12} {p:>9} {o:>15} {a:>12} {:>9}", p + o + a);
    }
    out.push('\n');
    for (name, v) in other_rows(u) {
        let _ = writeln!(out, "{:<36} {v:>9}", name.replace('_', " "));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_and_their_bounds() {
        let (from, to) = bounds(parse_month("2026-12").unwrap()).unwrap();
        assert_eq!(from.to_rfc3339(), "2026-12-01T00:00:00+00:00");
        assert_eq!(to.to_rfc3339(), "2027-01-01T00:00:00+00:00");
        assert!(parse_month("2026-13").is_err());
        assert!(parse_month("november").is_err());
    }
}
