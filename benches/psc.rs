//! Validations per second on one core: local RS256 verification (every token new), local
//! with the success cache (the same token again), and introspection cache hits.
//!
//! Run with `cargo bench --bench psc`. The stand-in runs on the same runtime, but only the
//! first validation of each kind reaches it.

use std::time::Duration;

use mssante::auth::PscValidator;
use mssante::clock;
use mssante::config::Config;
use mssante_conformance::psc_standin::{PscStandIn, TokenSpec};

#[path = "../tests/common/config.rs"]
mod setup;

/// A configuration with this `[psc]` section and no listener (the certificate files
/// must exist, but nothing reads them).
fn config(dir: &std::path::Path, psc_section: &str) -> Config {
    std::fs::write(dir.join("server.crt"), "").unwrap();
    std::fs::write(dir.join("server.key"), "").unwrap();
    let mut setup = setup::Setup::new("h.mssante.fr");
    setup.psc = psc_section.into();
    setup.load(dir)
}

fn report(name: &str, count: usize, elapsed: Duration) {
    let per_second = count as f64 / elapsed.as_secs_f64();
    println!(
        "{name:<44} {count:>8} validations in {:>8.3} s = {per_second:>12.0} /s/core ({:.2} µs each)",
        elapsed.as_secs_f64(),
        elapsed.as_secs_f64() * 1e6 / count as f64
    );
}

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let psc = PscStandIn::start("127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let dir = tempfile::tempdir().unwrap();

        let local = PscValidator::new(
            &config(dir.path(), &psc.config_toml("local")).psc,
            clock::system(),
            Default::default(),
        )
        .unwrap();
        let distinct = 4000;
        let tokens: Vec<String> = (0..distinct)
            .map(|i| psc.mint(&TokenSpec::valid(&format!("8997{i:08}"))))
            .collect();
        // Warm up: discovery and JWKS.
        local.validate(&tokens[0]).await.unwrap();
        let start = tokio::time::Instant::now();
        for t in &tokens[1..] {
            local.validate(t).await.unwrap();
        }
        report(
            "local, RS256 signature checked each time",
            distinct - 1,
            start.elapsed(),
        );

        let repeats = 1_000_000;
        let start = tokio::time::Instant::now();
        for _ in 0..repeats {
            local.validate(&tokens[1]).await.unwrap();
        }
        report("local, success cache hit", repeats, start.elapsed());

        let introspection = PscValidator::new(
            &config(dir.path(), &psc.config_toml("introspection")).psc,
            clock::system(),
            Default::default(),
        )
        .unwrap();
        introspection.validate(&tokens[0]).await.unwrap();
        let start = tokio::time::Instant::now();
        for _ in 0..repeats {
            introspection.validate(&tokens[0]).await.unwrap();
        }
        report("introspection, cache hit", repeats, start.elapsed());
        assert_eq!(psc.introspection_calls(), 1);
        println!("token size: {} bytes", tokens[0].len());
        psc.shutdown().await;
    });
}
