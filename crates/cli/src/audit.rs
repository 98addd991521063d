//! `bank audit`: asks banks for their ledger totals (`GET /api/v1/audit`, operator token) and
//! checks what no single bank can check about itself. Each bank proves its own books balance;
//! only someone who reads every bank can see that two banks agree on what they owe each other
//! and that the consortium as a whole created no money.
//!
//! The checks, for a consortium:
//! 1. every bank's posted debits equal its posted credits, and pending debits pending credits;
//! 2. every local check a bank reports is ok (among them: no customer account is negative);
//! 3. for every pair of banks A and B, A's settlement position with B is exactly the opposite of
//!    B's with A;
//! 4. the sum of all customer balances equals the sum over banks of cash in minus cash out
//!    (settlement positions cancel out across the consortium).
//!
//! The checks are a pure function of the audits ([`check_consortium`]), so they are tested on
//! hand-made audits; the command only fetches and prints.

use crate::commands::Context;
use crate::error::CliError;
use crate::format::{Align, Table, brl, wide_cents, wire_cents};
use client::Client;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// Local checks a bank must report; a missing one is a failure, not a pass.
pub const REQUIRED_LOCAL_CHECKS: [&str; 1] = ["no_customer_account_negative"];

/// One verdict of the audit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// The DESIGN §3 invariant it checks (1 to 4), if it is one of them.
    pub invariant: Option<u8>,
    pub name: String,
    pub ok: bool,
    pub detail: String,
}

impl Finding {
    fn new(
        invariant: Option<u8>,
        name: impl Into<String>,
        ok: bool,
        detail: impl Into<String>,
    ) -> Finding {
        Finding {
            invariant,
            name: name.into(),
            ok,
            detail: detail.into(),
        }
    }
}

/// The DESIGN §3 invariant a bank's own check is about, by the check's name.
fn local_invariant(check: &str) -> Option<u8> {
    match check {
        "posted_debits_equal_posted_credits" | "pending_debits_equal_pending_credits" => Some(1),
        "no_customer_account_negative" => Some(2),
        "customer_money_equals_cash_and_settlement" => Some(4),
        _ => None,
    }
}

/// The name of the file `bankd demo` writes in its folder.
pub const DEMO_FILE: &str = "demo.json";

/// A bank as `bankd demo` lists it in `demo.json`.
#[derive(Debug, Clone, Deserialize)]
pub struct ListedBank {
    pub code: String,
    #[serde(default)]
    pub name: String,
    pub url: String,
    pub operator_token: String,
    /// What its https certificate is checked against: the file's `ca` when it names one.
    #[serde(skip)]
    pub trust: client::Trust,
}

/// `demo.json`; fields other than `banks` and `ca` are ignored.
#[derive(Debug, Clone, Deserialize)]
pub struct ConsortiumFile {
    pub banks: Vec<ListedBank>,
    /// The consortium's CA certificate (PEM), as `bankd demo` writes it.
    #[serde(default)]
    pub ca: Option<std::path::PathBuf>,
}

fn cents(text: &str) -> Result<i128, String> {
    wide_cents(text).ok_or_else(|| format!("unreadable amount {text:?}"))
}

/// Checks 1 and 2 for one bank.
pub fn check_bank(audit: &wire::Audit) -> Vec<Finding> {
    let bank = &audit.bank;
    let mut findings = Vec::new();
    let pairs = [
        (
            "posted debits = posted credits",
            &audit.totals.debits_posted,
            &audit.totals.credits_posted,
        ),
        (
            "pending debits = pending credits",
            &audit.totals.debits_pending,
            &audit.totals.credits_pending,
        ),
    ];
    for (name, debits, credits) in pairs {
        let finding = match (cents(debits), cents(credits)) {
            (Ok(d), Ok(c)) => Finding::new(
                Some(1),
                format!("{bank} {name}"),
                d == c,
                format!("debits {} / credits {}", brl(d), brl(c)),
            ),
            (Err(e), _) | (_, Err(e)) => Finding::new(Some(1), format!("{bank} {name}"), false, e),
        };
        findings.push(finding);
    }
    for required in REQUIRED_LOCAL_CHECKS {
        if !audit.checks.iter().any(|c| c.name == required) {
            findings.push(Finding::new(
                local_invariant(required),
                format!("{bank} {required}"),
                false,
                "the bank did not report this check",
            ));
        }
    }
    for check in &audit.checks {
        findings.push(Finding::new(
            local_invariant(&check.name),
            format!("{bank} {}", check.name),
            check.ok,
            check.detail.clone(),
        ));
    }
    findings
}

/// Every check over a consortium: `listed` are the banks the file names (code, URL), `audits`
/// their answers in the same order.
pub fn check_consortium(listed: &[ListedBank], audits: &[wire::Audit]) -> Vec<Finding> {
    assert_eq!(listed.len(), audits.len(), "one audit per listed bank");
    let mut findings = Vec::new();
    for (bank, audit) in listed.iter().zip(audits) {
        if audit.bank != bank.code {
            findings.push(Finding::new(
                None,
                format!("{} identity", bank.code),
                false,
                format!(
                    "{} answered as bank {}, not {}",
                    bank.url, audit.bank, bank.code
                ),
            ));
        }
        findings.extend(check_bank(audit));
    }

    // 3. Settlement positions are opposite in every pair.
    let mut positions: BTreeMap<(&str, &str), Result<i128, String>> = BTreeMap::new();
    for audit in audits {
        for position in &audit.settlement {
            positions.insert(
                (audit.bank.as_str(), position.bank.as_str()),
                cents(&position.position),
            );
        }
    }
    let position = |a: &str, b: &str| positions.get(&(a, b)).cloned().unwrap_or(Ok(0));
    // Positions may differ while an interbank payment is between prepare and commit; say so,
    // since running the audit again then is the first thing to try.
    let in_flight = |audit: &wire::Audit| cents(&audit.totals.debits_pending) != Ok(0);
    for (i, a) in audits.iter().enumerate() {
        for b in &audits[i + 1..] {
            let name = format!("settlement {} <-> {} opposite", a.bank, b.bank);
            let finding = match (position(&a.bank, &b.bank), position(&b.bank, &a.bank)) {
                (Ok(ab), Ok(ba)) => {
                    let ok = ab.checked_add(ba) == Some(0);
                    let mut detail = format!(
                        "{} with {}: {}; {} with {}: {}",
                        a.bank,
                        b.bank,
                        brl(ab),
                        b.bank,
                        a.bank,
                        brl(ba)
                    );
                    if !ok && (in_flight(a) || in_flight(b)) {
                        detail
                            .push_str(" (holds pending: a payment may be in flight; audit again)");
                    }
                    Finding::new(Some(3), name, ok, detail)
                }
                (Err(e), _) | (_, Err(e)) => Finding::new(Some(3), name, false, e),
            };
            findings.push(finding);
        }
    }
    let known: Vec<&str> = audits.iter().map(|a| a.bank.as_str()).collect();
    for ((from, to), value) in &positions {
        if !known.contains(to) && *value != Ok(0) {
            findings.push(Finding::new(
                Some(3),
                format!("settlement {from} <-> {to} opposite"),
                false,
                format!("{from} has a position with {to}, which the consortium file does not list"),
            ));
        }
    }

    // 4. Customer money equals the cash the consortium took in and paid out.
    let name = "customer balances = cash in - cash out (consortium)";
    let mut sums = (0i128, 0i128, 0i128);
    let mut unreadable = None;
    for audit in audits {
        match (
            cents(&audit.customer_balances),
            cents(&audit.cash_in),
            cents(&audit.cash_out),
        ) {
            (Ok(customers), Ok(cash_in), Ok(cash_out)) => {
                sums.0 += customers;
                sums.1 += cash_in;
                sums.2 += cash_out;
            }
            (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => {
                unreadable = Some(format!("{}: {e}", audit.bank));
            }
        }
    }
    findings.push(match unreadable {
        Some(e) => Finding::new(Some(4), name, false, e),
        None => Finding::new(
            Some(4),
            name,
            sums.0 == sums.1 - sums.2,
            format!(
                "customers {} = cash in {} - cash out {}",
                brl(sums.0),
                brl(sums.1),
                brl(sums.2)
            ),
        ),
    });
    findings
}

/// The file's banks, each checked for a usable entry. A folder means the `demo.json` in it.
/// Their https certificates are checked against the file's `ca` when it names one, else
/// against `trust` (`--ca`).
pub fn read_consortium_file(
    path: &Path,
    trust: &client::Trust,
) -> Result<Vec<ListedBank>, CliError> {
    let joined;
    let path = if path.is_dir() {
        joined = path.join(DEMO_FILE);
        joined.as_path()
    } else {
        path
    };
    let text = std::fs::read_to_string(path)
        .map_err(|e| CliError::Other(format!("cannot read {}: {e}", path.display())))?;
    let mut file: ConsortiumFile = serde_json::from_str(&text).map_err(|e| {
        CliError::Usage(format!(
            "{} is not a consortium file like bankd demo's demo.json: {e}",
            path.display()
        ))
    })?;
    if file.banks.is_empty() {
        return Err(CliError::Usage(format!("{} lists no bank", path.display())));
    }
    let mut codes: Vec<&str> = file.banks.iter().map(|b| b.code.as_str()).collect();
    codes.sort_unstable();
    if codes.windows(2).any(|w| w[0] == w[1]) {
        return Err(CliError::Usage(format!(
            "{} lists a bank twice",
            path.display()
        )));
    }
    let trust = match &file.ca {
        Some(ca) => {
            // As written (relative to where `bankd demo` ran), else beside the file.
            let beside = path
                .parent()
                .zip(ca.file_name())
                .map(|(dir, name)| dir.join(name));
            let found = match beside {
                Some(beside) if !ca.exists() && beside.exists() => beside,
                _ => ca.clone(),
            };
            client::Trust::with_ca_file(&found)
                .map_err(|e| CliError::Other(format!("{}: ca: {e}", path.display())))?
        }
        None => trust.clone(),
    };
    for bank in &mut file.banks {
        bank.trust = trust.clone();
    }
    Ok(file.banks)
}

async fn fetch(
    url: &str,
    token: &str,
    code: &str,
    trust: &client::Trust,
) -> Result<client::Reply<wire::Audit>, CliError> {
    let client = Client::with_trust(url, trust)?.with_token(token);
    client.audit().await.map_err(|error| {
        eprintln!("bank {code} at {url} could not be audited:");
        CliError::Client(error)
    })
}

/// What auditing a consortium found: each bank's audit (typed and as it answered), and every
/// check over them.
pub struct ConsortiumAudit {
    pub audits: Vec<wire::Audit>,
    pub raw: Vec<serde_json::Value>,
    pub findings: Vec<Finding>,
}

/// Asks every listed bank for its audit and checks them together (also for `bank bench`).
pub async fn audit_listed(listed: &[ListedBank]) -> Result<ConsortiumAudit, CliError> {
    let mut audits = Vec::with_capacity(listed.len());
    let mut raw = Vec::with_capacity(listed.len());
    for bank in listed {
        let reply = fetch(&bank.url, &bank.operator_token, &bank.code, &bank.trust).await?;
        raw.push(reply.json);
        audits.push(reply.value);
    }
    let findings = check_consortium(listed, &audits);
    Ok(ConsortiumAudit {
        audits,
        raw,
        findings,
    })
}

pub async fn consortium(context: &Context, path: &Path) -> Result<(), CliError> {
    let listed = read_consortium_file(path, &context.trust)?;
    let ConsortiumAudit {
        audits,
        raw,
        findings,
    } = audit_listed(&listed).await?;
    let title = format!(
        "Consortium audit of {} banks ({})",
        listed.len(),
        path.display()
    );
    report(context, &title, &listed, &audits, raw, &findings)
}

pub async fn one_bank(context: &Context, url: &str, token: &str) -> Result<(), CliError> {
    let reply = fetch(url, token, "", &context.trust).await?;
    let findings = check_bank(&reply.value);
    let listed = [ListedBank {
        code: reply.value.bank.clone(),
        name: String::new(),
        url: url.to_string(),
        operator_token: String::new(),
        trust: context.trust.clone(),
    }];
    let title = format!("Audit of bank {} ({url})", reply.value.bank);
    report(
        context,
        &title,
        &listed,
        std::slice::from_ref(&reply.value),
        vec![reply.json],
        &findings,
    )
}

fn report(
    context: &Context,
    title: &str,
    listed: &[ListedBank],
    audits: &[wire::Audit],
    raw: Vec<serde_json::Value>,
    findings: &[Finding],
) -> Result<(), CliError> {
    let failed = findings.iter().filter(|f| !f.ok).count();
    if context.json {
        let document = serde_json::json!({
            "ok": failed == 0,
            "banks": raw,
            "checks": findings,
        });
        println!(
            "{}",
            serde_json::to_string_pretty(&document).expect("JSON values serialise")
        );
    } else {
        let mut banks = Table::new(&[
            ("bank", Align::Left),
            ("name", Align::Left),
            ("accounts", Align::Right),
            ("customer balances", Align::Right),
            ("cash in", Align::Right),
            ("cash out", Align::Right),
            ("clock", Align::Left),
        ]);
        for (bank, audit) in listed.iter().zip(audits) {
            let show = |text: &str| wire_cents(text).map_or_else(|| text.to_string(), brl);
            banks.row(vec![
                audit.bank.clone(),
                bank.name.clone(),
                audit.accounts.to_string(),
                show(&audit.customer_balances),
                show(&audit.cash_in),
                show(&audit.cash_out),
                audit.clock.clone(),
            ]);
        }
        let mut checks = Table::new(&[
            ("invariant", Align::Right),
            ("check", Align::Left),
            ("result", Align::Left),
            ("detail", Align::Left),
        ]);
        for finding in findings {
            checks.row(vec![
                finding
                    .invariant
                    .map_or_else(|| "-".to_string(), |i| i.to_string()),
                finding.name.clone(),
                if finding.ok { "ok" } else { "FAIL" }.into(),
                finding.detail.clone(),
            ]);
        }
        println!("{title}\n\n{}\n{}", banks.render(), checks.render());
        if failed == 0 {
            println!("All {} checks passed.", findings.len());
        } else {
            println!("{failed} of {} checks FAILED.", findings.len());
        }
    }
    if failed == 0 {
        Ok(())
    } else {
        Err(CliError::AuditFailed(failed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn audit(
        bank: &str,
        settlement: &[(&str, &str)],
        customers: &str,
        cash: (&str, &str),
    ) -> wire::Audit {
        wire::Audit {
            bank: bank.into(),
            clock: "1.0".into(),
            accounts: 3,
            totals: wire::LedgerTotals {
                debits_pending: "0.00".into(),
                debits_posted: "100.00".into(),
                credits_pending: "0.00".into(),
                credits_posted: "100.00".into(),
            },
            customer_balances: customers.into(),
            cash_in: cash.0.into(),
            cash_out: cash.1.into(),
            settlement: settlement
                .iter()
                .map(|(b, p)| wire::SettlementPosition {
                    bank: b.to_string(),
                    position: p.to_string(),
                })
                .collect(),
            checks: vec![wire::Check {
                name: "no_customer_account_negative".into(),
                ok: true,
                detail: "0".into(),
            }],
            ok: true,
        }
    }

    fn listed(codes: &[&str]) -> Vec<ListedBank> {
        codes
            .iter()
            .map(|c| ListedBank {
                code: c.to_string(),
                name: String::new(),
                url: format!("http://{c}"),
                operator_token: String::new(),
                trust: client::Trust::default(),
            })
            .collect()
    }

    fn failed(findings: &[Finding]) -> Vec<String> {
        findings
            .iter()
            .filter(|f| !f.ok)
            .map(|f| f.name.clone())
            .collect()
    }

    #[test]
    fn a_consistent_consortium_passes() {
        // A paid B 30.00: A's customers lost it, B's gained it; A owes B.
        let audits = [
            audit("A", &[("B", "-30.00")], "70.00", ("100.00", "0.00")),
            audit("B", &[("A", "30.00")], "130.00", ("100.00", "0.00")),
        ];
        let findings = check_consortium(&listed(&["A", "B"]), &audits);
        assert_eq!(failed(&findings), Vec::<String>::new(), "{findings:?}");
        assert!(
            findings
                .iter()
                .any(|f| f.name == "settlement A <-> B opposite")
        );
    }

    #[test]
    fn violations_are_found() {
        let table: Vec<(Vec<wire::Audit>, &str)> = vec![
            (
                vec![
                    audit("A", &[("B", "-30.00")], "70.00", ("100.00", "0.00")),
                    audit("B", &[("A", "20.00")], "130.00", ("100.00", "0.00")),
                ],
                "settlement A <-> B opposite",
            ),
            (
                vec![
                    audit("A", &[("B", "-30.00")], "70.00", ("100.00", "0.00")),
                    audit("B", &[], "130.00", ("100.00", "0.00")),
                ],
                "settlement A <-> B opposite",
            ),
            (
                vec![
                    audit("A", &[], "100.00", ("100.00", "0.00")),
                    audit("B", &[], "100.01", ("100.00", "0.00")),
                ],
                "customer balances = cash in - cash out (consortium)",
            ),
            (
                vec![
                    audit("A", &[("C", "5.00")], "100.00", ("100.00", "0.00")),
                    audit("B", &[], "100.00", ("100.00", "0.00")),
                ],
                "settlement A <-> C opposite",
            ),
            (
                vec![
                    audit("A", &[("B", "x")], "100.00", ("100.00", "0.00")),
                    audit("B", &[], "100.00", ("100.00", "0.00")),
                ],
                "settlement A <-> B opposite",
            ),
        ];
        for (audits, expected) in table {
            let findings = check_consortium(&listed(&["A", "B"]), &audits);
            assert_eq!(
                failed(&findings),
                vec![expected.to_string()],
                "{findings:?}"
            );
        }
    }

    #[test]
    fn a_bank_that_does_not_balance_fails() {
        let mut unbalanced = audit("A", &[], "100.00", ("100.00", "0.00"));
        unbalanced.totals.credits_posted = "99.99".into();
        unbalanced.totals.debits_pending = "1.00".into();
        unbalanced.checks.push(wire::Check {
            name: "statements_match_balances".into(),
            ok: false,
            detail: "1 account".into(),
        });
        let findings = check_bank(&unbalanced);
        assert_eq!(
            failed(&findings),
            vec![
                "A posted debits = posted credits".to_string(),
                "A pending debits = pending credits".to_string(),
                "A statements_match_balances".to_string(),
            ]
        );

        let mut silent = audit("A", &[], "100.00", ("100.00", "0.00"));
        silent.checks.clear();
        assert_eq!(
            failed(&check_bank(&silent)),
            vec!["A no_customer_account_negative".to_string()]
        );
    }

    #[test]
    fn a_bank_answering_as_another_fails() {
        let audits = [audit("B", &[], "100.00", ("100.00", "0.00"))];
        let findings = check_consortium(&listed(&["A"]), &audits);
        assert_eq!(failed(&findings), vec!["A identity".to_string()]);
    }
}
