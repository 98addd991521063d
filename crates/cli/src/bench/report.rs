//! The bench's report: a table for people, or one JSON document with `--json`.

use super::load::{BATCH, Measured, Tally};
use super::{AuditOutcome, Target};
use crate::args::BenchArgs;
use crate::commands::Context;
use crate::format::{Align, Table};
use hdrhistogram::Histogram;
use serde_json::{Value, json};

/// The percentiles reported, with their names in the JSON document.
const PERCENTILES: [(&str, f64); 4] =
    [("p50", 50.0), ("p90", 90.0), ("p99", 99.0), ("p99_9", 99.9)];

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

fn latency_json(histogram: &Histogram<u64>) -> Value {
    let mut latency = serde_json::Map::new();
    for (name, q) in PERCENTILES {
        latency.insert(name.into(), json!(ms(histogram.value_at_percentile(q))));
    }
    latency.insert("max".into(), json!(ms(histogram.max())));
    latency.insert("mean".into(), json!(histogram.mean() / 1000.0));
    Value::Object(latency)
}

pub fn print(
    context: &Context,
    args: &BenchArgs,
    target: &Target,
    measured: &Measured,
    audit: &AuditOutcome,
) {
    let tally = &measured.tally;
    let seconds = measured.elapsed.as_secs_f64().max(f64::EPSILON);
    let per_second = |n: u64| n as f64 / seconds;
    if context.json {
        let kinds: serde_json::Map<String, Value> = tally
            .latency_us
            .iter()
            .map(|(kind, h)| {
                (
                    kind.to_string(),
                    json!({
                        "requests": h.len(),
                        "requests_per_second": per_second(h.len()),
                        "latency_ms": latency_json(h),
                    }),
                )
            })
            .collect();
        let document = json!({
            "workload": args.workload.as_str(),
            "target": target.description,
            "banks": target.banks.iter().map(|b| &b.code).collect::<Vec<_>>(),
            "clients": args.clients,
            "accounts_per_bank": args.accounts,
            "customers_per_bank": args.customers.min(args.accounts),
            "batch_size": (args.workload == crate::args::Workload::Bulk).then_some(args.batch_size),
            "pool": args.pool.as_str(),
            // The threads the load generator (and an own consortium) ran on, as the runtime has them.
            "threads": tokio::runtime::Handle::current().metrics().num_workers(),
            "warmup_seconds": args.warmup.as_secs_f64(),
            "seconds": seconds,
            "requests": tally.requests(),
            "requests_per_second": per_second(tally.requests()),
            "transfers": {
                "committed": tally.committed,
                "aborted": tally.aborted,
                "rejected": tally.rejected,
                "pending": tally.pending,
            },
            "committed_per_second": per_second(tally.committed),
            "errors": tally.errors,
            "latency_ms": latency_json(&tally.all_latencies()),
            "kinds": kinds,
            "audit": match (&audit.findings, &audit.skipped_because) {
                (Some(findings), _) => json!({
                    "ran": true,
                    "ok": findings.iter().all(|f| f.ok),
                    "checks": findings,
                }),
                (None, reason) => json!({"ran": false, "ok": null, "reason": reason}),
            },
        });
        println!(
            "{}",
            serde_json::to_string_pretty(&document).expect("JSON values serialise")
        );
        return;
    }
    print!("{}", human(args, target, measured, audit));
}

fn human(args: &BenchArgs, target: &Target, measured: &Measured, audit: &AuditOutcome) -> String {
    let tally = &measured.tally;
    let seconds = measured.elapsed.as_secs_f64().max(f64::EPSILON);
    let mut out = format!(
        "bank bench: {} workload, {} clients, {} bank(s), {} accounts per bank, {} pool{}\n\
         target: {}\nmeasured {:.2} s after {:.1} s of warm-up\n\n",
        args.workload.as_str(),
        args.clients,
        target.banks.len(),
        args.accounts,
        args.pool.as_str(),
        if tally.latency_us.contains_key(BATCH) {
            format!(", {} transfers per batch", args.batch_size)
        } else {
            String::new()
        },
        target.description,
        seconds,
        args.warmup.as_secs_f64(),
    );
    let mut columns = vec![
        ("request", Align::Left),
        ("count", Align::Right),
        ("per second", Align::Right),
    ];
    let headers: Vec<String> = PERCENTILES
        .iter()
        .map(|(name, _)| format!("{} ms", name.replace('_', ".")))
        .collect();
    for header in &headers {
        columns.push((header.as_str(), Align::Right));
    }
    columns.push(("max ms", Align::Right));
    let mut latency = Table::new(&columns);
    let mut row = |name: String, histogram: &Histogram<u64>| {
        let mut cells = vec![
            name,
            histogram.len().to_string(),
            format!("{:.0}", histogram.len() as f64 / seconds),
        ];
        for (_, q) in PERCENTILES {
            cells.push(format!("{:.2}", ms(histogram.value_at_percentile(q))));
        }
        cells.push(format!("{:.2}", ms(histogram.max())));
        latency.row(cells);
    };
    for (kind, histogram) in &tally.latency_us {
        row(kind.to_string(), histogram);
    }
    if tally.latency_us.len() > 1 {
        row("all".into(), &tally.all_latencies());
    }
    out.push_str(&latency.render());
    out.push('\n');
    out.push_str(&outcomes(tally, seconds).render());
    out.push('\n');
    out.push_str(&format!(
        "throughput: {:.0} transfers committed per second, {:.0} requests per second\n",
        tally.committed as f64 / seconds,
        tally.requests() as f64 / seconds
    ));
    match (&audit.findings, &audit.skipped_because) {
        (Some(findings), _) => {
            let failed: Vec<_> = findings.iter().filter(|f| !f.ok).collect();
            if failed.is_empty() {
                out.push_str(&format!("audit: all {} checks passed\n", findings.len()));
            } else {
                out.push_str(&format!(
                    "audit: {} of {} checks FAILED\n",
                    failed.len(),
                    findings.len()
                ));
                for finding in failed {
                    out.push_str(&format!("  FAIL {}: {}\n", finding.name, finding.detail));
                }
            }
        }
        (None, reason) => out.push_str(&format!(
            "audit: skipped ({})\n",
            reason.as_deref().unwrap_or("not possible")
        )),
    }
    out
}

/// Transfers by outcome, then failed requests by code.
fn outcomes(tally: &Tally, seconds: f64) -> Table {
    let mut table = Table::new(&[
        ("outcome", Align::Left),
        ("code", Align::Left),
        ("count", Align::Right),
        ("per second", Align::Right),
    ]);
    let mut row = |outcome: &str, code: &str, n: u64| {
        table.row(vec![
            outcome.into(),
            code.into(),
            n.to_string(),
            format!("{:.0}", n as f64 / seconds),
        ]);
    };
    row("committed", "", tally.committed);
    for (reason, n) in &tally.aborted {
        row("aborted", reason, *n);
    }
    for (reason, n) in &tally.rejected {
        row("rejected", reason, *n);
    }
    if tally.pending > 0 {
        row("pending", "", tally.pending);
    }
    for (code, n) in &tally.errors {
        row("request failed", code, *n);
    }
    if tally.error_count() == 0 {
        row("request failed", "", 0);
    }
    table
}
