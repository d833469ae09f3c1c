//! The messages the lifecycle sends to mailbox holders, in French (the holders are
//! French health professionals) with a short English summary.

use chrono::{DateTime, Utc};
use mail_builder::MessageBuilder;
use mail_builder::headers::message_id::MessageId;
use mail_builder::headers::raw::Raw;

use crate::store::Mailbox;

/// The notice's sender: the postmaster of the mailbox's own domain.
fn postmaster(mailbox: &Mailbox) -> String {
    let domain = mailbox
        .address
        .rsplit_once('@')
        .map(|(_, d)| d)
        .unwrap_or("localhost");
    format!("postmaster@{domain}")
}

fn build(
    mailbox: &Mailbox,
    id: String,
    at: DateTime<Utc>,
    subject: String,
    body: String,
) -> Vec<u8> {
    let builder = MessageBuilder::new()
        .from(("Messagerie MSSanté".to_owned(), postmaster(mailbox)))
        .to(mailbox.address.clone())
        .subject(subject)
        .date(at.timestamp())
        .message_id(MessageId::new(id))
        // RFC 3834: nobody should answer it automatically.
        .header("Auto-Submitted", Raw::new("auto-generated"))
        .text_body(body);
    let mut out = Vec::new();
    // invariant: writing into a Vec cannot fail.
    let _ = builder.write_to(&mut out);
    out
}

fn day(d: DateTime<Utc>) -> String {
    d.format("%d/%m/%Y").to_string()
}

/// Tells the holder the mailbox will be deleted on `deletion_at` unless someone signs
/// in before, and how to object.
pub fn deletion_warning(
    mailbox: &Mailbox,
    cycle: i64,
    deletion_at: DateTime<Utc>,
    at: DateTime<Utc>,
    hostname: &str,
) -> Vec<u8> {
    let days = (deletion_at - at).num_days().max(0);
    let subject = format!(
        "Votre boîte aux lettres MSSanté {} sera supprimée le {}",
        mailbox.address,
        day(deletion_at)
    );
    let last = mailbox
        .last_authenticated_at
        .map(|d| format!("la dernière connexion date du {}", day(d)))
        .unwrap_or_else(|| {
            format!(
                "aucune connexion depuis sa création le {}",
                day(mailbox.created_at)
            )
        });
    let body = format!(
        "Bonjour,\r\n\r\n\
         Personne ne s'est connecté à la boîte aux lettres MSSanté {address} depuis \
         longtemps ({last}).\r\n\r\n\
         Conformément aux règles de l'espace de confiance MSSanté, une boîte sans \
         connexion pendant un an est supprimée avec tous ses messages. Cette boîte sera \
         supprimée le {date} (dans {days} jours).\r\n\r\n\
         Pour la conserver, il suffit de vous y connecter avant cette date avec votre \
         logiciel de messagerie. Pour vous opposer à la suppression, répondez à votre \
         opérateur de messagerie en indiquant l'adresse de la boîte.\r\n\r\n\
         --\r\n\
         The MSSanté mailbox {address} has had no sign-in for a long time and will be \
         deleted on {iso} unless someone signs in before then.\r\n",
        address = mailbox.address,
        date = day(deletion_at),
        iso = deletion_at.format("%Y-%m-%d"),
    );
    build(
        mailbox,
        format!(
            "lifecycle.deletion-warning.{}.{cycle}.{}@{hostname}",
            mailbox.id,
            at.timestamp()
        ),
        at,
        subject,
        body,
    )
}

/// Tells the holder of a new personal mailbox which other mailboxes exist in their name.
pub fn existing_mailboxes(
    mailbox: &Mailbox,
    others: &[Mailbox],
    at: DateTime<Utc>,
    hostname: &str,
) -> Vec<u8> {
    let list: String = others
        .iter()
        .map(|m| format!("  - {} ({})\r\n", m.address, kind_fr(m)))
        .collect();
    let body = format!(
        "Bonjour,\r\n\r\n\
         La boîte aux lettres MSSanté {address} vient d'être créée à votre nom. \
         D'autres boîtes existent déjà à votre nom ou vous sont ouvertes :\r\n\r\n\
         {list}\r\n\
         Si l'une d'elles ne vous est plus utile, signalez-le à votre opérateur de \
         messagerie.\r\n\r\n\
         --\r\n\
         The MSSanté mailbox {address} was created in your name. The mailboxes listed \
         above already exist in your name or are open to you.\r\n",
        address = mailbox.address,
    );
    build(
        mailbox,
        format!(
            "lifecycle.existing-mailboxes.{}.{}@{hostname}",
            mailbox.id,
            at.timestamp()
        ),
        at,
        format!(
            "Boîtes aux lettres MSSanté existant à votre nom ({})",
            others.len()
        ),
        body,
    )
}

fn kind_fr(m: &Mailbox) -> &'static str {
    match m.kind {
        crate::store::MailboxKind::Personal => "boîte personnelle",
        crate::store::MailboxKind::Organisational => "boîte organisationnelle",
        crate::store::MailboxKind::Applicative => "boîte applicative",
    }
}
