//! The PSC the fuzz harness trusts: the conformance crate's stand-in on a loopback port,
//! and a token it signed for the harness's professional that outlives any run. Shared
//! by the session and token targets and by tests/fuzz_replay.rs, which include it.

use std::net::SocketAddr;
use std::time::Duration;

use mssante::fuzzing::{IDNAT, Psc};
use mssante_conformance::psc_standin::{PscStandIn, TokenSpec};

pub async fn start() -> std::io::Result<Psc> {
    let psc = PscStandIn::start(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
    let years = Duration::from_secs(20 * 365 * 86_400);
    Ok(Psc {
        config: psc.config_toml("local"),
        token: psc.mint(&TokenSpec::valid(IDNAT).with_lifetime(years)),
        kid: psc.current_kid(),
        server: Box::new(psc),
    })
}
