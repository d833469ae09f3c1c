//! The configuration contract: every documented key parses; mistakes name their key.

use std::path::Path;

use mssante::config::{Config, ConfigError, DirectoryTarget, PscValidation, StoreBackend};

/// A folder with the files the example configuration points at.
fn workspace() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("certs")).unwrap();
    for f in ["server.crt", "server.key", "ca.crt", "organisations.crl"] {
        std::fs::write(dir.path().join("certs").join(f), "placeholder").unwrap();
    }
    std::fs::write(dir.path().join("listeblanchemssante.xml"), "<x/>").unwrap();
    dir
}

const MINIMAL: &str = r#"
[server]
hostname = "mail.operator.example"
domains  = ["operator.mssante.fr"]
data_dir = "data"

[tls]
certificate = "certs/server.crt"
private_key = "certs/server.key"
client_ca   = "certs/ca.crt"

[imap]
tls      = ["127.0.0.1:993"]
starttls = ["127.0.0.1:143"]

[smtp]
submission_tls      = ["127.0.0.1:465"]
submission_starttls = ["127.0.0.1:587"]
inbound             = ["127.0.0.1:25"]
max_message_size    = 20971520

[psc]
issuer     = "https://auth.bas.psc.esante.gouv.fr/auth/realms/esante-wallet"
validation = "local"
client_id     = "operator-client-id"
client_secret = "s3cret"
"#;

fn parse(text: &str, dir: &Path) -> Result<Config, ConfigError> {
    Config::parse(text, dir)
}

fn error(text: &str, dir: &Path) -> String {
    parse(text, dir)
        .expect_err("configuration should be refused")
        .to_string()
}

#[test]
fn every_key_of_the_example_parses() {
    let dir = workspace();
    let example =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("config.example.toml"))
            .unwrap();
    // Turn every commented `# key = value` (and commented table) into a live setting.
    let mut lines = Vec::new();
    for line in example.lines() {
        let trimmed = line.trim_start();
        let live = trimmed
            .strip_prefix("# ")
            .filter(|rest| {
                let key = rest.split(['=', ' ']).next().unwrap_or("");
                (rest.contains(" = ") && !key.is_empty() && !rest.starts_with('-'))
                    || rest.starts_with("[smtp.routes]")
            })
            .map(str::to_owned);
        lines.push(live.unwrap_or_else(|| line.to_owned()));
    }
    let text = lines
        .join("\n")
        .replace(
            "/etc/mssante/listeblanchemssante.xml",
            "listeblanchemssante.xml",
        )
        .replace("/var/lib/mssante", "data")
        // The commented `url` belongs to the other backend.
        .replace("backend = \"sqlite\"", "backend = \"postgres\"");
    let config = parse(&text, dir.path()).unwrap_or_else(|e| panic!("{e}\n---\n{text}"));
    assert_eq!(config.store.backend, StoreBackend::Postgres);
    assert_eq!(config.store.pool_size, 16);
    assert_eq!(config.server.domains, ["operator.mssante.fr"]);
    assert_eq!(config.smtp.max_message_size.0, 20_971_520);
    // No IMAP override: APPEND takes what SMTP takes.
    assert_eq!(config.imap.max_literal_size.0, 20_971_520);
    assert_eq!(config.session.idle_timeout.to_string(), "15m");
    assert_eq!(config.session.max_lifetime.to_string(), "4h");
    assert_eq!(config.lifecycle.unpublish_after.to_string(), "60d");
    assert_eq!(config.lifecycle.warn_before.len(), 2);
    assert_eq!(config.psc.validation, PscValidation::Local);
    assert_eq!(config.psc.accepted_acr, ["eidas1"]);
    assert_eq!(config.smtp.routes.len(), 1);
    assert_eq!(config.tls.crls.len(), 1);
    assert!(config.trust.list.is_some());
    assert_eq!(config.directory.target, DirectoryTarget::None);
    assert_eq!(config.session.trusted_networks.len(), 1);
    assert_eq!(config.session.max_mailbox_connections_per_address, 20);
    assert_eq!(config.admin.listen, Some("127.0.0.1:9187".parse().unwrap()));
    assert!(config.admin.uses_tls());
    assert_eq!(
        config.autoconfig.listen,
        Some("0.0.0.0:443".parse().unwrap())
    );
}

#[test]
fn the_design_keys_alone_are_a_complete_configuration() {
    let dir = workspace();
    let config = parse(MINIMAL, dir.path()).unwrap();
    assert_eq!(config.server.data_dir, dir.path().join("data"));
    assert_eq!(config.imap.tls[0].port(), 993);
    assert_eq!(config.session.idle_timeout.0.as_secs(), 900);
    assert_eq!(config.psc.algorithms, ["RS256"]);
    assert!(config.trust.list.is_none());
    assert_eq!(config.admin.listen, Some("127.0.0.1:9187".parse().unwrap()));
    assert!(!config.admin.uses_tls());
    assert_eq!(config.autoconfig.listen, None);
    let shown = config.to_display_toml();
    assert!(!shown.contains("s3cret"), "secrets are masked: {shown}");
    assert!(shown.contains("********"));
}

/// A first-milestone file keeps loading: its per-protocol cap on connections per
/// address now caps the unauthenticated ones, the smaller of the two winning, and the
/// `[session]` key wins over both.
#[test]
fn the_old_per_peer_cap_still_loads_as_the_unauthenticated_cap() {
    let dir = workspace();
    let old = MINIMAL
        .replace("[imap]", "[imap]\nmax_connections_per_peer = 50")
        .replace("[smtp]", "[smtp]\nmax_connections_per_peer = 30");
    let config = parse(&old, dir.path()).unwrap();
    assert_eq!(config.session.max_unauthenticated_per_address, 30);
    let both = format!("{old}\n[session]\nmax_unauthenticated_per_address = 200\n");
    let config = parse(&both, dir.path()).unwrap();
    assert_eq!(config.session.max_unauthenticated_per_address, 200);
    let config = parse(MINIMAL, dir.path()).unwrap();
    assert_eq!(config.session.max_unauthenticated_per_address, 100);
    let e = error(
        &MINIMAL.replace("[imap]", "[imap]\nmax_connections_per_peer = 0"),
        dir.path(),
    );
    assert!(e.contains("imap.max_connections_per_peer"), "{e}");
}

#[test]
fn an_empty_listener_list_turns_it_off() {
    let dir = workspace();
    let config = parse(
        &MINIMAL.replace(r#"inbound             = ["127.0.0.1:25"]"#, "inbound = []"),
        dir.path(),
    )
    .unwrap();
    assert!(config.smtp.inbound.is_empty());
}

#[test]
fn an_unknown_key_is_named() {
    let dir = workspace();
    let e = error(
        &MINIMAL.replace("[imap]", "[imap]\nmax_connexions = 3"),
        dir.path(),
    );
    assert!(e.contains("unknown field `max_connexions`"), "{e}");
    let e = error(&format!("{MINIMAL}\n[imapp]\nx = 1\n"), dir.path());
    assert!(e.contains("unknown field `imapp`"), "{e}");
}

#[test]
fn a_bad_address_is_named() {
    let dir = workspace();
    let e = error(
        &MINIMAL.replace("127.0.0.1:143", "localhost-143"),
        dir.path(),
    );
    assert!(e.contains("`imap.starttls[0]`"), "{e}");
    assert!(
        e.contains("localhost-143") && e.contains("not a socket address"),
        "{e}"
    );
}

#[test]
fn a_missing_certificate_file_is_named() {
    let dir = workspace();
    std::fs::remove_file(dir.path().join("certs/server.crt")).unwrap();
    let e = error(MINIMAL, dir.path());
    assert!(
        e.contains("`tls.certificate`") && e.contains("server.crt"),
        "{e}"
    );
}

#[test]
fn plain_http_is_refused_for_a_remote_issuer_only() {
    let dir = workspace();
    let remote = MINIMAL.replace("https://auth.bas.psc", "http://auth.bas.psc");
    let e = error(&remote, dir.path());
    assert!(e.contains("`psc.issuer`") && e.contains("https://"), "{e}");
    let local = MINIMAL.replace(
        "https://auth.bas.psc.esante.gouv.fr/auth/realms/esante-wallet",
        "http://127.0.0.1:8080/auth/realms/esante-wallet",
    );
    parse(&local, dir.path()).unwrap();
}

#[test]
fn bad_values_are_explained() {
    let dir = workspace();
    let cases = [
        (
            MINIMAL.replace(
                "max_message_size    = 20971520",
                "max_message_size = \"20 pounds\"",
            ),
            "`smtp.max_message_size`",
        ),
        (
            MINIMAL.replace("validation = \"local\"", "validation = \"trust-me\""),
            "`psc.validation`",
        ),
        (
            format!("{MINIMAL}\n[session]\nidle_timeout = \"15 fortnights\"\n"),
            "`session.idle_timeout`",
        ),
        (
            MINIMAL.replace("[psc]", "[psc]\nalgorithms = [\"HS256\"]"),
            "`psc.algorithms`",
        ),
        (
            MINIMAL.replace("[psc]", "[psc]\nalgorithms = [\"none\"]"),
            "`psc.algorithms`",
        ),
        (
            MINIMAL.replace("domains  = [\"operator.mssante.fr\"]", "domains = []"),
            "`server.domains`",
        ),
        (
            format!("{MINIMAL}\n[session]\ntrusted_networks = [\"10.0.0.0/33\"]\n"),
            "`session.trusted_networks[0]`",
        ),
    ];
    for (text, key) in cases {
        let e = error(&text, dir.path());
        assert!(e.contains(key), "expected {key} in: {e}");
    }
}

#[test]
fn introspection_needs_client_credentials() {
    let dir = workspace();
    let text = MINIMAL
        .replace("validation = \"local\"", "validation = \"introspection\"")
        .replace("client_secret = \"s3cret\"", "");
    let e = error(&text, dir.path());
    assert!(
        e.contains("psc.client_id") && e.contains("client_secret"),
        "{e}"
    );
}

#[test]
fn the_store_is_sqlite_unless_postgres_is_asked_for_with_one_url() {
    let dir = workspace();
    let config = parse(MINIMAL, dir.path()).unwrap();
    assert_eq!(config.store.backend, StoreBackend::Sqlite);
    assert!(config.store.url.is_none());

    let with = |store: &str| format!("{MINIMAL}\n[store]\n{store}\n");
    let e = error(&with("backend = \"postgres\""), dir.path());
    assert!(e.contains("store.url") && e.contains("url_file"), "{e}");
    let e = error(
        &with("backend = \"postgres\"\nurl = \"postgres://a@db/m\"\nurl_file = \"u\""),
        dir.path(),
    );
    assert!(e.contains("not both"), "{e}");
    let e = error(&with("url = \"postgres://a@db/m\""), dir.path());
    assert!(e.contains("store.url") && e.contains("postgres"), "{e}");
    let e = error(&with("backend = \"mysql\""), dir.path());
    assert!(e.contains("store.backend"), "{e}");
    // A wrong scheme is named without repeating the URL, which may hold a password.
    let e = error(
        &with("backend = \"postgres\"\nurl = \"mysql://u:hunter2@db/m\""),
        dir.path(),
    );
    assert!(e.contains("store.url") && !e.contains("hunter2"), "{e}");

    // The password in a file of its own; shown masked, whichever way it came.
    std::fs::write(
        dir.path().join("db-url"),
        "postgres://mssante:hunter2@db.internal:5433/mail\n",
    )
    .unwrap();
    let config = parse(
        &with(
            "backend = \"postgres\"\nurl_file = \"db-url\"\npool_size = 4\n\
             connect_timeout = \"3s\"\nstatement_timeout = \"90s\"",
        ),
        dir.path(),
    )
    .unwrap();
    let url = config.store.url.as_ref().unwrap();
    assert_eq!(
        url.expose(),
        "postgres://mssante:hunter2@db.internal:5433/mail"
    );
    assert_eq!(url.host(), "db.internal:5433");
    assert_eq!(config.store.pool_size, 4);
    assert_eq!(config.store.connect_timeout.to_string(), "3s");
    assert_eq!(config.store.statement_timeout.to_string(), "90s");
    let shown = config.to_display_toml();
    assert!(!shown.contains("hunter2"), "{shown}");
    assert!(
        shown.contains("postgres://mssante:********@db.internal:5433/mail"),
        "{shown}"
    );
}

/// Metrics and health say how much mail flows and whether the node is up: beyond the
/// machine itself only holders of a client certificate may read them.
#[test]
fn the_admin_listener_leaves_loopback_only_behind_client_certificates() {
    let dir = workspace();
    let remote = format!("{MINIMAL}\n[admin]\nlisten = \"0.0.0.0:9187\"\n");
    let e = error(&remote, dir.path());
    assert!(
        e.contains("admin.listen") && e.contains("admin.client_ca"),
        "{e}"
    );
    let with_ca = format!("{remote}client_ca = \"certs/ca.crt\"\n");
    let config = parse(&with_ca, dir.path()).unwrap();
    assert!(config.admin.uses_tls());
    let off = format!("{MINIMAL}\n[admin]\nlisten = \"\"\n");
    assert_eq!(parse(&off, dir.path()).unwrap().admin.listen, None);
    let bad = format!("{MINIMAL}\n[admin]\nlisten = \"localhost:9187\"\n");
    assert!(error(&bad, dir.path()).contains("admin.listen"));
}
