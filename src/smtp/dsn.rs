//! Delivery status notifications (RFC 3464): what the sender gets when the queue gives
//! up on a recipient.

use chrono::{DateTime, Utc};
use mail_builder::MessageBuilder;
use mail_builder::headers::content_type::ContentType;
use mail_builder::mime::MimePart;

use super::io::one_line;

/// One recipient the queue gave up on.
#[derive(Debug, Clone)]
pub struct FailedRecipient {
    pub address: String,
    pub orcpt: Option<String>,
    /// Enhanced status code, e.g. `5.1.1` (or `4.4.7` when the lifetime ran out).
    pub status: String,
    /// What the remote server said, or why it could not be reached.
    pub diagnostic: String,
}

/// What the notice is about.
pub struct Notice<'a> {
    pub hostname: &'a str,
    pub sender: &'a str,
    pub envid: Option<&'a str>,
    pub arrival: DateTime<Utc>,
    pub now: DateTime<Utc>,
    pub failed: &'a [FailedRecipient],
    /// The original message; only its header section is returned unless `ret_full`.
    pub original: &'a [u8],
    pub ret_full: bool,
}

/// A `multipart/report; report-type=delivery-status` message for the sender.
pub fn failure_notice(n: &Notice<'_>) -> std::io::Result<Vec<u8>> {
    let mut text = String::from(
        "This is the mail system at the MSSanté operator.\r\n\r\n\
         Your message could not be delivered to the following recipients:\r\n\r\n",
    );
    for f in n.failed {
        text.push_str(&format!(
            "  <{}>: {}\r\n",
            f.address,
            one_line(&f.diagnostic)
        ));
    }
    let mut status = format!("Reporting-MTA: dns; {}\r\n", n.hostname);
    if let Some(envid) = n.envid {
        status.push_str(&format!("Original-Envelope-Id: {}\r\n", one_line(envid)));
    }
    status.push_str(&format!("Arrival-Date: {}\r\n", n.arrival.to_rfc2822()));
    for f in n.failed {
        status.push_str("\r\n");
        if let Some(orcpt) = &f.orcpt {
            status.push_str(&format!("Original-Recipient: {}\r\n", one_line(orcpt)));
        }
        status.push_str(&format!(
            "Final-Recipient: rfc822; {}\r\nAction: failed\r\nStatus: {}\r\nDiagnostic-Code: smtp; {}\r\nLast-Attempt-Date: {}\r\n",
            f.address,
            f.status,
            one_line(&f.diagnostic),
            n.now.to_rfc2822()
        ));
    }
    let returned = if n.ret_full {
        MimePart::new("message/rfc822", n.original.to_vec())
    } else {
        let end = crate::store::header_end(n.original);
        MimePart::new("text/rfc822-headers", n.original[..end].to_vec())
    };
    let report = MimePart::new(
        ContentType::new("multipart/report").attribute("report-type", "delivery-status"),
        vec![
            MimePart::new("text/plain", text),
            MimePart::new("message/delivery-status", status),
            returned,
        ],
    );
    let from = format!("MAILER-DAEMON@{}", n.hostname);
    MessageBuilder::new()
        .from(("Mail Delivery System", from.as_str()))
        .to(n.sender)
        .subject("Undelivered Mail Returned to Sender")
        .date(n.now.timestamp())
        .message_id(format!("{}@{}", super::message::new_id(), n.hostname).as_str())
        .header(
            "Auto-Submitted",
            mail_builder::headers::raw::Raw::new("auto-replied"),
        )
        .body(report)
        .write_to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_shape() {
        let now = crate::clock::SystemClock::now_utc();
        let failed = [FailedRecipient {
            address: "x@b.fr".into(),
            orcpt: None,
            status: "5.1.1".into(),
            diagnostic: "550 5.1.1 no such user".into(),
        }];
        let original = b"Subject: hi\r\nX-MSS-INS: 1\r\n\r\nsecret body\r\n";
        let bytes = failure_notice(&Notice {
            hostname: "mx.a.fr",
            sender: "s@a.fr",
            envid: Some("env1"),
            arrival: now,
            now,
            failed: &failed,
            original,
            ret_full: false,
        })
        .unwrap();
        let text = String::from_utf8_lossy(&bytes);
        assert!(text.contains("multipart/report"), "{text}");
        assert!(
            text.contains("report-type=\"delivery-status\"")
                || text.contains("report-type=delivery-status"),
            "{text}"
        );
        assert!(text.contains("Final-Recipient: rfc822; x@b.fr"));
        assert!(text.contains("Status: 5.1.1"));
        assert!(text.contains("Original-Envelope-Id: env1"));
        assert!(text.contains("X-MSS-INS: 1"));
        assert!(!text.contains("secret body"));
    }
}
