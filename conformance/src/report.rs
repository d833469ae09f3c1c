//! The conformance report: one self-contained HTML page (inline CSS, no script, no
//! external asset, so it can be mailed or archived as is) and the same facts as JSON.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::case::{CaseResult, Outcome};
use crate::psc_standin::PscStandIn;
use crate::target::Target;
use crate::wire::Direction;

#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct Summary {
    pub passed: usize,
    pub failed: usize,
    pub skipped: usize,
}

/// What was tested, against what, and every case's verdict and transcript.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub tool: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub psc_issuer: String,
    pub mailbox: String,
    pub idnat: String,
    pub imap: Option<String>,
    pub imap_starttls: Option<String>,
    pub smtp: Option<String>,
    pub smtp_starttls: Option<String>,
    pub inbound: Option<String>,
    /// False when no CA bundle was given: the server certificate was not checked.
    pub server_certificate_verified: bool,
    pub summary: Summary,
    pub cases: Vec<CaseResult>,
}

impl Report {
    pub(crate) fn new(
        psc: &PscStandIn,
        target: &Target,
        started_at: DateTime<Utc>,
        cases: Vec<CaseResult>,
    ) -> Self {
        let mut summary = Summary::default();
        for c in &cases {
            match c.outcome {
                Outcome::Pass(_) => summary.passed += 1,
                Outcome::Fail(_) => summary.failed += 1,
                Outcome::Skipped(_) => summary.skipped += 1,
            }
        }
        Report {
            tool: format!("mssante conformance {}", env!("CARGO_PKG_VERSION")),
            started_at,
            finished_at: Utc::now(),
            psc_issuer: psc.issuer().to_string(),
            mailbox: target.mailbox.clone(),
            idnat: target.idnat.clone(),
            imap: target.imap.clone(),
            imap_starttls: target.imap_starttls.clone(),
            smtp: target.smtp.clone(),
            smtp_starttls: target.smtp_starttls.clone(),
            inbound: target.inbound.clone(),
            server_certificate_verified: target.ca.is_some(),
            summary,
            cases,
        }
    }

    /// The case with this id.
    pub fn case(&self, id: &str) -> Option<&CaseResult> {
        self.cases.iter().find(|c| c.info.id == id)
    }

    pub fn to_json(&self) -> String {
        // invariant: every field is plain data (strings, numbers, enums) that serialises.
        serde_json::to_string_pretty(self).unwrap_or_else(|e| unreachable!("report JSON: {e}"))
    }

    /// Writes the HTML page to `html` and the JSON beside it (same name, `.json`);
    /// returns the JSON path.
    pub fn write(&self, html: &Path) -> anyhow::Result<PathBuf> {
        if let Some(dir) = html.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        std::fs::write(html, self.to_html())
            .with_context(|| format!("writing {}", html.display()))?;
        let json = html.with_extension("json");
        std::fs::write(&json, self.to_json())
            .with_context(|| format!("writing {}", json.display()))?;
        Ok(json)
    }

    pub fn to_html(&self) -> String {
        let mut h = String::with_capacity(64 * 1024);
        let s = &self.summary;
        let overall = if s.failed == 0 { "pass" } else { "fail" };
        let _ = write!(
            h,
            r#"<!DOCTYPE html>
<html lang="fr"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>MSSanté conformance report — {mailbox}</title>
<style>{CSS}</style></head><body>
<header><h1>MSSanté conformance report</h1>
<p class="verdict {overall}">{verdict}</p>
<p class="counts"><span class="badge pass">{passed} passed</span> <span class="badge fail">{failed} failed</span> <span class="badge skipped">{skipped} skipped</span></p>
</header>
<section class="meta"><table>
"#,
            mailbox = esc(&self.mailbox),
            verdict = if s.failed == 0 {
                "No failure"
            } else {
                "Failures found"
            },
            passed = s.passed,
            failed = s.failed,
            skipped = s.skipped,
        );
        let opt = |v: &Option<String>| v.as_deref().map(esc).unwrap_or_else(|| "—".into());
        for (k, v) in [
            ("Mailbox under test", esc(&self.mailbox)),
            ("IdNat", esc(&self.idnat)),
            ("IMAP (TLS)", opt(&self.imap)),
            ("IMAP (STARTTLS)", opt(&self.imap_starttls)),
            ("SMTP submission (TLS)", opt(&self.smtp)),
            ("SMTP submission (STARTTLS)", opt(&self.smtp_starttls)),
            ("Operator interface", opt(&self.inbound)),
            ("PSC stand-in issuer", esc(&self.psc_issuer)),
            (
                "Server certificate",
                if self.server_certificate_verified {
                    "verified against the given CA".into()
                } else {
                    "<strong>not verified</strong> (no --ca given)".into()
                },
            ),
            (
                "Run",
                format!(
                    "{} → {} UTC",
                    self.started_at.format("%Y-%m-%d %H:%M:%S"),
                    self.finished_at.format("%H:%M:%S")
                ),
            ),
            ("Tool", esc(&self.tool)),
        ] {
            let _ = writeln!(h, "<tr><th>{k}</th><td>{v}</td></tr>");
        }
        h.push_str("</table></section>\n<section><h2>Summary</h2><table class=\"summary\"><thead><tr><th>Case</th><th>Checks</th><th>Requirement (public reference)</th><th>Result</th></tr></thead><tbody>\n");
        for c in &self.cases {
            let _ = writeln!(
                h,
                "<tr class=\"{label}\"><td><a href=\"#{id}\"><code>{id}</code></a></td><td>{title}</td><td><span class=\"section\">{reference}</span> {req}</td><td><span class=\"badge {label}\">{label}</span>{why}</td></tr>",
                id = esc(c.info.id),
                title = esc(c.info.title),
                reference = esc(c.info.reference),
                req = esc(c.info.requirement),
                label = c.outcome.label(),
                why = match &c.outcome {
                    Outcome::Skipped(why) => format!("<span class=\"why\">{}</span>", esc(why)),
                    _ => String::new(),
                },
            );
        }
        h.push_str("</tbody></table></section>\n<section><h2>Cases</h2>\n");
        for c in &self.cases {
            let label = c.outcome.label();
            let _ = write!(
                h,
                "<article id=\"{id}\" class=\"case {label}\"><h3><span class=\"badge {label}\">{label}</span> <code>{id}</code> {title}</h3>\n<p class=\"req\"><span class=\"section\">{reference}</span> {req}</p>\n<p class=\"detail\">{detail}</p>\n",
                id = esc(c.info.id),
                title = esc(c.info.title),
                reference = esc(c.info.reference),
                req = esc(c.info.requirement),
                detail = esc(c.outcome.detail()),
            );
            if !c.transcript.is_empty() {
                let open = if matches!(c.outcome, Outcome::Fail(_)) {
                    " open"
                } else {
                    ""
                };
                let _ = write!(
                    h,
                    "<details{open}><summary>Transcript ({} lines, {} ms)</summary><pre>",
                    c.transcript.len(),
                    c.duration_ms
                );
                for l in &c.transcript {
                    let (class, arrow) = match l.direction {
                        Direction::Client => ("c", "C:"),
                        Direction::Server => ("s", "S:"),
                        Direction::Note => ("n", "--"),
                    };
                    let _ = writeln!(
                        h,
                        "<span class=\"{class}\"><span class=\"t\">{:>6}</span> {arrow} {}</span>",
                        l.at_ms,
                        esc(&l.text)
                    );
                }
                h.push_str("</pre></details>\n");
            }
            h.push_str("</article>\n");
        }
        h.push_str("</section>\n<footer>Tokens were minted by the suite's own PSC stand-in; every token in the transcripts is redacted.</footer>\n</body></html>\n");
        h
    }
}

fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() && c != '\n' && c != '\t' => {
                let _ = write!(out, "\\x{:02x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out
}

const CSS: &str = r#"
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0 auto;max-width:1200px;padding:1.5rem;color:#1d2430;background:#fafbfc}
h1{margin:0 0 .4rem;font-size:1.6rem}h2{margin-top:2rem;border-bottom:2px solid #dfe3e8;padding-bottom:.3rem}
h3{font-size:1.05rem;margin:.2rem 0 .4rem}
table{border-collapse:collapse;width:100%;background:#fff}
th,td{border:1px solid #dfe3e8;padding:.35rem .55rem;text-align:left;vertical-align:top;font-size:.9rem}
.meta th{width:14rem;background:#f2f4f7}
.summary thead th{background:#1d3557;color:#fff}
.summary tr.fail td{background:#fff1f1}.summary td:first-child{white-space:nowrap}.why{display:block;font-size:.75rem;color:#666;margin-top:.2rem}
.badge{display:inline-block;border-radius:.8rem;padding:.05rem .6rem;font-size:.8rem;font-weight:600;text-transform:uppercase;letter-spacing:.03em}
.badge.pass{background:#d3f4dc;color:#0f6a2b}.badge.fail{background:#ffd9d9;color:#a21515}.badge.skipped{background:#eceff3;color:#555}
.verdict{font-size:1.2rem;font-weight:700;margin:.2rem 0}.verdict.pass{color:#0f6a2b}.verdict.fail{color:#a21515}
.section{display:inline-block;font-size:.75rem;color:#3d5a80;background:#e7eef7;border-radius:.3rem;padding:0 .35rem;margin-right:.3rem}
.case{background:#fff;border:1px solid #dfe3e8;border-left:5px solid #aab;border-radius:.3rem;padding:.6rem .9rem;margin:.8rem 0}
.case.pass{border-left-color:#2da44e}.case.fail{border-left-color:#d1242f}.case.skipped{border-left-color:#aab}
.req{margin:.2rem 0;color:#444;font-size:.9rem}.detail{margin:.3rem 0;font-family:ui-monospace,monospace;font-size:.85rem;white-space:pre-wrap;word-break:break-word}
details summary{cursor:pointer;color:#3d5a80;font-size:.85rem}
pre{background:#0f1720;color:#d8dee9;padding:.7rem;border-radius:.3rem;overflow-x:auto;font-size:.8rem;line-height:1.35;white-space:pre-wrap;word-break:break-all}
pre .c{color:#8fd3ff}pre .s{color:#c3e88d}pre .n{color:#9aa5b1;font-style:italic}pre .t{color:#5c6773}
footer{margin-top:2rem;color:#666;font-size:.8rem}
code{font-size:.85rem}
"#;

#[cfg(test)]
mod tests {
    use super::esc;

    #[test]
    fn server_text_cannot_inject_markup() {
        assert_eq!(
            esc("<script>alert('x')</script> & \u{1}"),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; \\x01"
        );
    }
}
