//! Cases as data: each case is a named async function in a table beside what it checks.
//! The runner goes through a table in order, times each case under a limit, keeps its
//! transcript whatever happens, and reports skipped, with why, a case whose inputs were
//! not given: adding a case is one function and one table row.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

use anyhow::anyhow;
use rustls::ClientConfig;
use serde::Serialize;

use crate::psc_standin::{Flaw, PscStandIn, TokenSpec};
use crate::rules::{SECTION_PSC, flaw_rule};
use crate::target::{ClientCertificate, Target};
use crate::wire::{self, Endpoint, Recorder};

/// Longest a case may take, whatever the server does.
const CASE_LIMIT: Duration = Duration::from_secs(180);

/// The verdict of one case.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", content = "detail", rename_all = "lowercase")]
pub enum Outcome {
    Pass(String),
    Fail(String),
    Skipped(String),
}

impl Outcome {
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Pass(_) => "pass",
            Outcome::Fail(_) => "fail",
            Outcome::Skipped(_) => "skipped",
        }
    }

    pub fn detail(&self) -> &str {
        match self {
            Outcome::Pass(d) | Outcome::Fail(d) | Outcome::Skipped(d) => d,
        }
    }
}

/// Pass when `ok`, else fail, with the same explanation.
pub(crate) fn verdict(ok: bool, detail: impl Into<String>) -> Outcome {
    if ok {
        Outcome::Pass(detail.into())
    } else {
        Outcome::Fail(detail.into())
    }
}

/// What a case is and which rule it checks.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct CaseInfo {
    /// Stable name, e.g. `imap-xoauth2-expired`.
    pub id: &'static str,
    pub title: &'static str,
    /// The public documents the rule comes from (ANS documents, PSC documentation, RFC
    /// sections), so the report can be shown to the ANS as it is.
    pub reference: &'static str,
    /// The rule, in a sentence.
    pub requirement: &'static str,
}

impl CaseInfo {
    pub const fn new(
        id: &'static str,
        title: &'static str,
        reference: &'static str,
        requirement: &'static str,
    ) -> Self {
        CaseInfo {
            id,
            title,
            reference,
            requirement,
        }
    }
}

/// One case's result with its evidence.
#[derive(Debug, Clone, Serialize)]
pub struct CaseResult {
    #[serde(flatten)]
    pub info: CaseInfo,
    pub outcome: Outcome,
    pub duration_ms: u64,
    pub transcript: Vec<wire::Line>,
}

/// What every case of a run shares.
pub(crate) struct Suite<'a> {
    pub psc: &'a PscStandIn,
    pub target: &'a Target,
    pub tls: Arc<ClientConfig>,
    pub tls_certificate: Option<Arc<ClientConfig>>,
    pub tls_bad_certificate: Option<Arc<ClientConfig>>,
    pub tls_operator: Option<Arc<ClientConfig>>,
}

impl Suite<'_> {
    pub fn endpoint(&self, address: &str) -> anyhow::Result<Endpoint> {
        Endpoint::parse(address, self.target.server_name.as_deref())
    }

    /// The endpoint at `address` (given by the command-line `option`); without one, each of
    /// `cases` is reported skipped, with why.
    pub fn endpoint_or_skip(
        &self,
        address: Option<&str>,
        option: &str,
        cases: impl IntoIterator<Item = CaseInfo>,
        out: &mut Vec<CaseResult>,
    ) -> Option<Endpoint> {
        let why = match address.map(|a| self.endpoint(a)) {
            Some(Ok(e)) => return Some(e),
            Some(Err(err)) => format!("{err:#}"),
            None => format!("no {option} address given"),
        };
        out.extend(cases.into_iter().map(|i| skipped(i, &why)));
        None
    }

    /// The AUTH_CLI certificate that opens an applicative mailbox, with the TLS set-up
    /// that presents it.
    pub fn certificate(&self) -> Result<(&Arc<ClientConfig>, &ClientCertificate), &'static str> {
        match (&self.tls_certificate, &self.target.certificate) {
            (Some(tls), Some(cert)) => Ok((tls, cert)),
            _ => Err("no --certificate/--key given"),
        }
    }

    /// The certificate that must be refused, with the TLS set-up that presents it.
    pub fn bad_certificate(
        &self,
    ) -> Result<(&Arc<ClientConfig>, &ClientCertificate), &'static str> {
        match (&self.tls_bad_certificate, &self.target.bad_certificate) {
            (Some(tls), Some(cert)) => Ok((tls, cert)),
            _ => Err("no --bad-certificate/--bad-key given"),
        }
    }
}

/// What a case function runs with.
pub(crate) struct CaseCtx<'a> {
    pub suite: &'a Suite<'a>,
    pub target: &'a Target,
    /// The port the case's table tests; `None` for cases that find their own.
    endpoint: Option<&'a Endpoint>,
    /// The case's transcript.
    pub rec: Recorder,
}

impl CaseCtx<'_> {
    /// The port under test.
    pub fn endpoint(&self) -> anyhow::Result<&Endpoint> {
        self.endpoint
            .ok_or_else(|| anyhow!("this case has no port under test"))
    }

    /// A token for `idnat` (`flaw` on purpose), masked wherever the transcript meets it.
    pub fn token(&self, idnat: &str, flaw: Option<Flaw>) -> String {
        let spec = match flaw {
            Some(f) => TokenSpec::flawed(idnat, f),
            None => TokenSpec::valid(idnat),
        };
        let token = self.suite.psc.mint(&spec);
        self.rec.secret(&token);
        token
    }
}

pub(crate) type CaseFuture<'c> = Pin<Box<dyn Future<Output = anyhow::Result<Outcome>> + 'c>>;
/// A case: an error is a failure whose detail is the error chain.
pub(crate) type CaseFn = for<'c> fn(&'c CaseCtx<'c>) -> CaseFuture<'c>;
/// Why a case cannot run with what was given (the reason it is reported skipped).
pub(crate) type Needs = fn(&Suite<'_>) -> Result<(), &'static str>;

/// A table row: `case_fn!(name)` runs `name(ctx)`, `case_fn!(name, a, b)` runs
/// `name(ctx, a, b)`.
macro_rules! case_fn {
    ($f:path $(, $arg:expr)*) => {
        |ctx| Box::pin($f(ctx $(, $arg)*))
    };
}
pub(crate) use case_fn;

/// One row of a case table.
#[derive(Clone, Copy)]
pub(crate) struct Case {
    pub info: CaseInfo,
    needs: Needs,
    run: CaseFn,
}

fn nothing(_: &Suite<'_>) -> Result<(), &'static str> {
    Ok(())
}

impl Case {
    pub const fn new(
        id: &'static str,
        title: &'static str,
        reference: &'static str,
        requirement: &'static str,
        run: CaseFn,
    ) -> Self {
        Case {
            info: CaseInfo::new(id, title, reference, requirement),
            needs: nothing,
            run,
        }
    }

    /// The case that presents a token with `flaw`, which must be refused.
    pub const fn flaw(id: &'static str, flaw: Flaw, run: CaseFn) -> Self {
        let (title, requirement) = flaw_rule(flaw);
        Case::new(id, title, SECTION_PSC, requirement, run)
    }

    /// Runs only when `needs` finds what the case needs among the inputs.
    pub const fn needs(self, needs: Needs) -> Self {
        Case {
            info: self.info,
            needs,
            run: self.run,
        }
    }
}

/// What the cases of a table check, in order.
pub(crate) fn infos(cases: &[Case]) -> impl Iterator<Item = CaseInfo> + '_ {
    cases.iter().map(|c| c.info)
}

/// Runs each of `cases` in order against `endpoint`, or reports it skipped when what it
/// needs was not given.
pub(crate) async fn run_cases(
    suite: &Suite<'_>,
    endpoint: Option<&Endpoint>,
    cases: &[Case],
    out: &mut Vec<CaseResult>,
) {
    for case in cases {
        if let Err(why) = (case.needs)(suite) {
            out.push(skipped(case.info, why));
            continue;
        }
        let ctx = CaseCtx {
            suite,
            target: suite.target,
            endpoint,
            rec: Recorder::new(),
        };
        out.push(run_case(case, &ctx).await);
    }
}

/// Runs one case under the time limit and keeps its transcript whatever happens.
async fn run_case(case: &Case, ctx: &CaseCtx<'_>) -> CaseResult {
    let started = Instant::now();
    let outcome = match tokio::time::timeout(CASE_LIMIT, (case.run)(ctx)).await {
        Ok(Ok(o)) => o,
        Ok(Err(e)) => Outcome::Fail(format!("{e:#}")),
        Err(_) => Outcome::Fail(format!(
            "the case did not finish within {} s",
            CASE_LIMIT.as_secs()
        )),
    };
    CaseResult {
        info: case.info,
        outcome,
        duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        transcript: ctx.rec.lines(),
    }
}

/// A case that cannot run, with why.
pub(crate) fn skipped(info: CaseInfo, why: &str) -> CaseResult {
    CaseResult {
        info,
        outcome: Outcome::Skipped(why.to_owned()),
        duration_ms: 0,
        transcript: Vec::new(),
    }
}
