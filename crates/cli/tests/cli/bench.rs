//! `bank bench` as a smoke test: a few seconds of load of each workload, against its own
//! consortium, a running consortium and a single bank. Benchmarks are not tests: nothing here
//! asserts a speed, only that the run completed, committed transfers, and that the audit at the
//! end passed.

use crate::helpers::*;
use serde_json::Value;

/// The options that keep a smoke run small: few accounts and customers, no warm-up.
const SMALL: [&str; 8] = [
    "--accounts",
    "10",
    "--customers",
    "2",
    "--clients",
    "4",
    "--warmup",
    "0s",
];

#[track_caller]
fn assert_completed(report: &Value) {
    assert!(
        report["transfers"]["committed"].as_u64().unwrap() > 0,
        "{report:#}"
    );
    assert_eq!(report["audit"]["ran"], true, "{report:#}");
    assert_eq!(report["audit"]["ok"], true, "{report:#}");
    assert!(
        report["latency_ms"]["p99"].as_f64().unwrap() > 0.0,
        "{report:#}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn bench_starts_its_own_consortium_runs_the_mixed_workload_and_audits() {
    let person = Person::new();
    let mut args = vec!["--json", "bench", "--workload", "mixed", "--duration", "2s"];
    args.extend(SMALL);
    let run = person.bank(&args).run().await.ok();
    let report = run.json();
    assert_completed(&report);
    assert_eq!(report["workload"], "mixed");
    assert_eq!(
        report["pool"], "lane",
        "one connection per client by default"
    );
    assert_eq!(report["banks"].as_array().unwrap().len(), 3, "{report:#}");
    // Intra-bank transfers, interbank transfers and packages were all made.
    for kind in ["intra", "interbank", "package"] {
        assert!(
            report["kinds"][kind]["requests"].as_u64().unwrap() > 0,
            "{kind}: {report:#}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn bench_bulk_against_a_running_consortium() {
    let dir = tempfile::tempdir().unwrap();
    let (running, _file) = node::demo::start(dir.path(), None).await.unwrap();
    let person = Person::new();
    let folder = dir.path().to_str().unwrap();
    let mut args = vec![
        "--json",
        "bench",
        "--consortium",
        folder,
        "--workload",
        "bulk",
        "--batch-size",
        "50",
        "--duration",
        "1s",
    ];
    args.extend(SMALL);
    let run = person.bank(&args).run().await;
    if run.code != EXIT_OK
        && run
            .stderr
            .contains("does not offer POST /api/v1/transfers/batch")
    {
        eprintln!(
            "SKIPPED: the node has no bulk endpoint yet (404 not_found): {}",
            run.stderr
        );
        return;
    }
    let report = run.ok().json();
    assert_completed(&report);
    assert_eq!(report["batch_size"], 50);
    assert!(report["kinds"]["batch"]["requests"].as_u64().unwrap() > 0);
    for bank in running {
        bank.stop().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn bench_against_one_bank_stops_after_count_and_audits_with_the_operator_token() {
    let bank = spawn_bank().await;
    let person = Person::new();
    // A bounded run against the bank, audited, with `extra` options.
    let run = async |extra: &[&str]| {
        let mut args = vec![
            "--json",
            "--bank",
            &bank.url,
            "bench",
            "--duration",
            "60s",
            "--operator-token",
            OPERATOR_TOKEN,
        ];
        args.extend(extra);
        args.extend(SMALL);
        let report = person.bank(&args).run().await.ok().json();
        assert_completed(&report);
        report
    };
    let report = run(&["--count", "40", "--pool", "per-client"]).await;
    assert_eq!(report["requests"], 40, "{report:#}");
    assert_eq!(report["pool"], "per-client");
    // A bank elsewhere: the load generator runs on one thread unless told otherwise.
    assert_eq!(report["threads"], 1, "{report:#}");
    let report = run(&["--count", "10", "--threads", "2"]).await;
    assert_eq!(report["threads"], 2, "{report:#}");
    person
        .bank(&["--bank", &bank.url, "bench", "--threads", "0"])
        .run()
        .await
        .code(EXIT_USAGE);

    // One bank cannot pay another; the interbank workload says so before any load.
    person
        .bank(&["--bank", &bank.url, "bench", "--workload", "interbank"])
        .run()
        .await
        .code(EXIT_USAGE)
        .stderr_has("two banks or more");
}
