//! The non-blocking commit (issue #24): every interbank decision is recorded in the directory's
//! Raft log, the first one recorded for a transaction wins. A coordinator killed once the votes
//! are in, and kept down, no longer blocks its participants: they read the decision from their
//! replica of the log, or force an abort there, and post or void their holds; when it returns
//! it agrees with the log.

use super::{armed, balance, entries_with, outcome_of};
use crate::cluster::{Cluster, OPERATOR_TOKEN, unique};
use reqwest::Method;
use serde_json::Value;
use std::time::{Duration, Instant};

/// Waits until bank `bank` (running while others may be down) holds nothing pending, at most
/// 30 s; its audit then.
async fn settled_at(cluster: &Cluster, bank: usize) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, audit) = cluster
            .call(
                bank,
                Method::GET,
                "/api/v1/audit",
                None,
                Some(OPERATOR_TOKEN),
                None,
            )
            .await;
        assert_eq!(status, 200, "{audit}");
        if audit["totals"]["debits_pending"] == "0.00" {
            return audit;
        }
        assert!(
            Instant::now() < deadline,
            "bank {bank} still holds a part after 30 s: {audit:#}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Ana (bank 0, R$ 100) pays Bia (bank 1, R$ 50) R$ 30 with bank 0, the coordinator, stopped at
/// `point` once every vote is in; it stays down while the participant finishes from the log.
/// Answers the cluster, the customers and the payment's idempotency key, with bank 0 back.
async fn coordinator_down_after_the_votes(
    point: &str,
) -> (
    Cluster,
    super::cluster::Customer,
    super::cluster::Customer,
    String,
) {
    let (cluster, ana, bia) = armed(0, point).await;
    let key = unique("k");
    let (first_answer, _) = cluster.pay(&ana, &bia, "30.00", &key).await;
    assert_eq!(first_answer, 0, "the coordinator died before answering");
    assert!(
        cluster.wait_stopped(0, Duration::from_secs(10)),
        "the fault point stopped bank 0"
    );
    // Bank 0 stays down: banks 1 and 2 are a majority of the directory, and bank 1 settles its
    // vote in doubt from the log.
    settled_at(&cluster, 1).await;
    settled_at(&cluster, 2).await;
    (cluster, ana, bia, key)
}

/// Killed after deciding commit but before proposing it: the log has nothing, so the
/// participant forces an abort there and voids Bia's incoming part; the coordinator returns,
/// proposes abort for the payment it never decided, and aborts it too.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn coordinator_killed_before_the_log_and_kept_down_participants_abort_from_the_log() {
    let (cluster, ana, bia, key) = coordinator_down_after_the_votes("before_log_decision").await;
    assert_eq!(
        balance(&cluster, &bia).await,
        (5000, 5000),
        "voided while the coordinator is down"
    );
    cluster.start(0, None);
    let paid = outcome_of(&cluster, &ana, &bia, "30.00", &key).await;
    assert_eq!(paid["status"], "aborted", "{paid}");
    cluster.settle_and_audit().await;
    assert_eq!(balance(&cluster, &ana).await, (10000, 10000));
    assert_eq!(balance(&cluster, &bia).await, (5000, 5000));
    let id = paid["id"].as_str().unwrap();
    assert_eq!(entries_with(&cluster, &bia, id).await, 0);
    assert_eq!(entries_with(&cluster, &ana, id).await, 0);
}

/// Killed once the log holds its commit, before its own store does: the participant reads the
/// commit from its replica and posts Bia's part while the coordinator is down; the coordinator
/// returns, proposes abort for a payment its store never decided, learns the log's commit and
/// commits it (never contradicting the log).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn coordinator_killed_after_the_log_and_kept_down_participants_commit_from_the_log() {
    let (cluster, ana, bia, key) = coordinator_down_after_the_votes("after_log_decision").await;
    assert_eq!(
        balance(&cluster, &bia).await,
        (8000, 8000),
        "posted while the coordinator is down"
    );
    cluster.start(0, None);
    let paid = outcome_of(&cluster, &ana, &bia, "30.00", &key).await;
    assert_eq!(paid["status"], "committed", "{paid}");
    cluster.settle_and_audit().await;
    assert_eq!(balance(&cluster, &ana).await, (7000, 7000));
    assert_eq!(balance(&cluster, &bia).await, (8000, 8000));
    let id = paid["id"].as_str().unwrap();
    assert_eq!(entries_with(&cluster, &bia, id).await, 1);
    assert_eq!(entries_with(&cluster, &ana, id).await, 1);
}
