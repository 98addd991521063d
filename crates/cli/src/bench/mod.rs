//! `bank bench`: a bounded load generator for a consortium. It finds (or starts) the banks,
//! registers customers and opens accounts with opening deposits large enough that refusals for
//! insufficient funds stay rare, runs `--clients` concurrent clients through one workload for
//! `--duration` or `--count` operations, prints throughput, latency percentiles (an HDR
//! histogram per kind of request) and every outcome and error by code, and ends with the
//! consortium audit (`crate::audit`), so a benchmark that loses money does not pass.
//!
//! Benchmarks are not tests: nothing here asserts a speed. The speed targets and one run's
//! figures live in BENCHMARKS.md.

mod load;
mod report;
mod setup;

use crate::args::{BenchArgs, Workload};
use crate::audit::{self, Finding, ListedBank};
use crate::commands::Context;
use crate::error::CliError;
use client::Client;
use std::time::Duration;

/// Times the audit is asked again while a check fails, in case an interbank payment was still
/// settling when the load stopped (a 202 `pending` answer finishes in the background).
const AUDIT_ATTEMPTS_MAX: u32 = 20;
const AUDIT_RETRY_DELAY: Duration = Duration::from_millis(250);

/// The banks a run talks to.
pub struct Target {
    /// How the report names it: "own consortium in DIR", "consortium FILE", "bank URL".
    pub description: String,
    pub banks: Vec<ListedBank>,
    /// Whether every bank has an operator token, so the audit can run.
    pub auditable: bool,
    /// Just one bank of a consortium: only its own checks apply.
    pub single_bank: bool,
}

/// The audit at the end of a run.
pub struct AuditOutcome {
    /// `None` when it could not run (one bank and no operator token); the reason instead.
    pub findings: Option<Vec<Finding>>,
    pub skipped_because: Option<String>,
}

pub async fn run(context: &Context, args: BenchArgs) -> Result<(), CliError> {
    // Our own consortium lives as long as the run; its folder is removed after, unless given.
    let mut own = None;
    let mut temp_dir = None;
    let target = if let Some(path) = &args.consortium {
        Target {
            description: format!("consortium {}", path.display()),
            banks: audit::read_consortium_file(path, &context.trust)?,
            auditable: true,
            single_bank: false,
        }
    } else if let Some(url) = &context.bank {
        let code = context.client(url)?.health().await?.value.bank;
        Target {
            description: format!("bank {url}"),
            banks: vec![ListedBank {
                code,
                name: String::new(),
                url: url.clone(),
                operator_token: args.operator_token.clone().unwrap_or_default(),
                trust: context.trust.clone(),
            }],
            auditable: args.operator_token.is_some(),
            single_bank: true,
        }
    } else {
        let dir = match &args.data_dir {
            Some(dir) => dir.clone(),
            None => {
                let dir = tempfile::Builder::new()
                    .prefix("interbank-bench-")
                    .tempdir()
                    .map_err(|e| CliError::Other(format!("cannot make a temporary folder: {e}")))?;
                let path = dir.path().to_path_buf();
                temp_dir = Some(dir);
                path
            }
        };
        store::sqlite::set_tuning(args.sqlite_tuning);
        let (running, file) = node::demo::start(&dir, None)
            .await
            .map_err(|e| CliError::Other(format!("cannot start the bench's consortium: {e}")))?;
        own = Some(running);
        // Its banks serve HTTPS under the CA it made.
        let trust = match &file.ca {
            Some(ca) => client::Trust::with_ca_file(std::path::Path::new(ca))
                .map_err(|e| CliError::Other(format!("the bench's consortium: {e}")))?,
            None => context.trust.clone(),
        };
        Target {
            description: format!("own consortium in {}", dir.display()),
            banks: file
                .banks
                .into_iter()
                .map(|b| ListedBank {
                    code: b.code,
                    name: b.name,
                    url: b.url,
                    operator_token: b.operator_token,
                    trust: trust.clone(),
                })
                .collect(),
            auditable: true,
            single_bank: false,
        }
    };
    let result = bench(context, &args, &target).await;
    if let Some(running) = own {
        for bank in running {
            if let Err(error) = bank.stop().await {
                eprintln!("warning: a bench bank did not stop cleanly: {error}");
            }
        }
    }
    drop(temp_dir);
    result
}

async fn bench(context: &Context, args: &BenchArgs, target: &Target) -> Result<(), CliError> {
    if matches!(args.workload, Workload::Interbank) && target.banks.len() < 2 {
        return Err(CliError::Usage(
            "the interbank workload needs two banks or more: pass --consortium FILE, or no --bank \
             (and no $BANK_URL) to let the bench start its own consortium"
                .into(),
        ));
    }
    if !context.json {
        eprintln!(
            "setting up: {} bank(s), {} customers and {} accounts each ({})",
            target.banks.len(),
            args.customers.min(args.accounts),
            args.accounts,
            target.description
        );
    }
    let banks = setup::prepare(args, &target.banks).await?;
    if matches!(args.workload, Workload::Bulk) {
        setup::probe_bulk(&banks[0]).await?;
    }
    let measured = load::run(args, &banks, !context.json).await;
    let audit = run_audit(target).await?;
    report::print(context, args, target, &measured, &audit);
    match &audit.findings {
        Some(findings) if findings.iter().any(|f| !f.ok) => Err(CliError::AuditFailed(
            findings.iter().filter(|f| !f.ok).count(),
        )),
        _ => Ok(()),
    }
}

/// The consortium audit (or one bank's own checks), asked again for a few seconds while a check
/// fails, since a payment the load left pending may still be settling.
async fn run_audit(target: &Target) -> Result<AuditOutcome, CliError> {
    if !target.auditable {
        return Ok(AuditOutcome {
            findings: None,
            skipped_because: Some(
                "no operator token: pass --operator-token (or $BANK_OPERATOR_TOKEN) to audit"
                    .into(),
            ),
        });
    }
    let mut attempt = 0;
    loop {
        attempt += 1;
        let findings = if target.single_bank {
            let bank = &target.banks[0];
            let reply = Client::with_trust(&bank.url, &bank.trust)?
                .with_token(bank.operator_token.clone())
                .audit()
                .await?;
            audit::check_bank(&reply.value)
        } else {
            audit::audit_listed(&target.banks).await?.findings
        };
        if findings.iter().all(|f| f.ok) || attempt >= AUDIT_ATTEMPTS_MAX {
            return Ok(AuditOutcome {
                findings: Some(findings),
                skipped_because: None,
            });
        }
        tokio::time::sleep(AUDIT_RETRY_DELAY).await;
    }
}
