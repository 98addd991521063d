//! A member of the consortium turned attacker: requests signed with a real bank's key (the tests
//! hold every bank's key file) that the other banks must refuse without harm. Each test here is
//! the regression test of one finding of the security review: legs through a third bank's
//! settlement account, parts under ids that are not the sender's, clocks from the far future,
//! requests replayed to another bank than the one they were signed for, queries about other
//! banks' transactions, and bodies read before their signature was checked.

use crate::balance;
use crate::cluster::{CODES, Cluster, Customer, cents, unique};
use ledger::{AccountNumber, Amount, BankCode, EndToEndId, Stamp};
use node::interbank::signing::{self, HEADER_BANK};
use node::interbank::{Envelope, HEARTBEAT_PATH, MESSAGES_PATH, Part};
use protocol::{Endpoint, Leg, Memo, Message};
use reqwest::Method;
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::Duration;

fn code(i: usize) -> BankCode {
    BankCode::parse(CODES[i]).unwrap()
}

/// The headers that sign `body` for `path`, by bank `signer` for bank `to`.
fn signed_by(
    cluster: &Cluster,
    signer: usize,
    to: usize,
    path: &str,
    body: &[u8],
) -> Vec<(&'static str, String)> {
    let key = node::config::read_key(cluster.key_file(signer)).unwrap();
    signing::sign(
        &key,
        code(signer),
        code(to),
        "POST",
        path,
        body,
        store::wall_ms(),
    )
    .to_vec()
}

/// POSTs `body` to bank `at` with `headers`.
async fn post(
    cluster: &Cluster,
    at: usize,
    path: &str,
    headers: &[(&'static str, String)],
    body: Vec<u8>,
) -> reqwest::Response {
    let mut request = cluster
        .http
        .post(format!("{}{path}", cluster.banks[at].url))
        .body(body);
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    request.send().await.unwrap()
}

/// Status and problem code of an answer.
async fn problem(response: reqwest::Response) -> (u16, String) {
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    (status, body["code"].as_str().unwrap_or("").to_string())
}

/// An envelope of `messages` from bank `from`, stamped with the wall time.
fn envelope(from: usize, messages: Vec<Message<Part>>) -> Vec<u8> {
    serde_json::to_vec(&Envelope {
        from: code(from),
        clock: Stamp {
            physical_ms: store::wall_ms(),
            logical: 0,
        },
        messages,
    })
    .unwrap()
}

/// Protocol messages signed by bank `signer` and delivered to bank `to`; the envelope must be
/// accepted (what becomes of its messages is the engine's business).
async fn deliver(cluster: &Cluster, signer: usize, to: usize, messages: Vec<Message<Part>>) {
    let body = envelope(signer, messages);
    let headers = signed_by(cluster, signer, to, MESSAGES_PATH, &body);
    let response = post(cluster, to, MESSAGES_PATH, &headers, body).await;
    assert_eq!(response.status().as_u16(), 200, "the envelope is taken");
}

/// A credit of `amount` to `customer`'s account out of `from`.
fn credit(from: Endpoint, customer: &Customer, amount: &str) -> Leg {
    Leg {
        from,
        to: Endpoint::Account(AccountNumber::parse(&customer.number).unwrap()),
        amount: Amount::parse(amount).unwrap(),
        memo: Memo::default(),
    }
}

/// A transaction id of bank `bank` that it never made (its own ids count from the epoch's
/// microseconds, far above this).
fn forged_id(bank: usize, serial: u64) -> EndToEndId {
    EndToEndId::sequenced(code(bank), "202612060000", serial)
}

/// Bank `i`'s position with bank `other` (what `other` owes it), from its audit.
async fn position(cluster: &Cluster, i: usize, other: usize) -> i64 {
    let audit = &cluster.audits().await[i];
    audit["settlement"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["bank"] == CODES[other])
        .map_or(0, |p| cents(p["position"].as_str().unwrap()))
}

/// Bank A signs a part for bank B that credits Bia at B out of B's settlement account with bank
/// C, then signs its commit: were it obeyed, B would hold C owing it money C never agreed to
/// (and B's own audit would still say ok). B votes no, and the commit of a no vote is not obeyed.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_leg_through_a_third_banks_settlement_account_is_voted_down() {
    let cluster = Cluster::started().await;
    let bia = cluster.customer(1, "50.00").await;
    let txn = forged_id(0, 1);
    let part = Part {
        legs: vec![credit(Endpoint::Settlement(code(2)), &bia, "10.00")],
        payment: None,
        on_behalf_of: None,
    };
    deliver(
        &cluster,
        0,
        1,
        vec![Message::Prepare {
            txn: txn.clone(),
            part,
        }],
    )
    .await;
    // Before B would ask A about its vote (2 s), A commits.
    tokio::time::sleep(Duration::from_millis(700)).await;
    deliver(&cluster, 0, 1, vec![Message::Decide { txn, commit: true }]).await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(balance(&cluster, &bia).await, (5_000, 5_000));
    assert_eq!(position(&cluster, 1, 2).await, 0, "C owes B nothing");
    cluster.settle_and_audit().await;
}

/// A part under an id the sender did not make is refused: one under the id of a local transfer
/// of the receiving bank (which the database refused, and the bank stopped on: exit 70), and one
/// under a third bank's id. The receiving bank stays up, holds nothing, and pays as before.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_part_under_an_id_the_sender_did_not_make_is_a_no_vote_not_an_exit() {
    let cluster = Cluster::started().await;
    let bia = cluster.customer(1, "50.00").await;
    let caio = cluster.customer(1, "50.00").await;
    let (status, aborted) = cluster.pay(&bia, &caio, "1000.00", &unique("k")).await;
    assert_eq!(
        (status, &aborted["status"]),
        (201, &json!("aborted")),
        "{aborted}"
    );
    let used = EndToEndId::parse(aborted["id"].as_str().unwrap()).unwrap();
    let payment = store::PaymentRecord {
        e2e_id: used.to_string(),
        status: store::PaymentStatus::Pending,
        reason: None,
        from: store::AccountAddress {
            bank: CODES[0].into(),
            number: "100001-2".into(),
        },
        to: store::AccountAddress {
            bank: CODES[1].into(),
            number: bia.number.clone(),
        },
        amount_cents: 100,
        description: String::new(),
        clock: "1.0".into(),
    };
    let part = |payment| Part {
        legs: vec![credit(Endpoint::Settlement(code(0)), &bia, "1.00")],
        payment,
        on_behalf_of: None,
    };
    let third = forged_id(2, 2);
    deliver(
        &cluster,
        0,
        1,
        vec![
            Message::Prepare {
                txn: used,
                part: part(Some(payment)),
            },
            Message::Prepare {
                txn: third.clone(),
                part: part(None),
            },
        ],
    )
    .await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    deliver(
        &cluster,
        0,
        1,
        vec![Message::Decide {
            txn: third,
            commit: true,
        }],
    )
    .await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    let (status, health) = cluster
        .call(1, Method::GET, "/health", None, None, None)
        .await;
    assert_eq!(status, 200, "the bank is still up: {health}");
    assert_eq!(balance(&cluster, &bia).await, (5_000, 5_000));
    let (status, paid) = cluster.pay(&bia, &caio, "1.00", &unique("k")).await;
    assert_eq!(
        (status, &paid["status"]),
        (201, &json!("committed")),
        "{paid}"
    );
    cluster.settle_and_audit().await;
}

/// The X-Clock stamp of bank `i`'s answers.
async fn clock_of(cluster: &Cluster, i: usize) -> Stamp {
    let response = cluster
        .http
        .get(format!("{}/health", cluster.banks[i].url))
        .send()
        .await
        .unwrap();
    Stamp::parse(response.headers()["x-clock"].to_str().unwrap()).unwrap()
}

/// One signed heartbeat from the far future (the year 8307) moved every bank's clock there
/// within seconds, for good, and a restarted bank then panicked on every payment. Now such a
/// stamp is refused, every clock stays near the wall time, and a restart still pays.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_clock_from_the_far_future_is_refused_and_a_restart_still_pays() {
    let cluster = Cluster::started().await;
    let ana = cluster.customer(0, "100.00").await;
    let bia = cluster.customer(1, "50.00").await;
    let caio = cluster.customer(1, "50.00").await;
    let body = json!({"from": CODES[0], "clock": "200000000000000.0", "messages": []})
        .to_string()
        .into_bytes();
    let headers = signed_by(&cluster, 0, 1, HEARTBEAT_PATH, &body);
    let answer = post(&cluster, 1, HEARTBEAT_PATH, &headers, body).await;
    assert_eq!(problem(answer).await, (422, "clock_ahead".to_string()));
    // Heartbeats go round (each bank's answers reach the others) before the clocks are read.
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    for i in 0..cluster.banks.len() {
        let clock = clock_of(&cluster, i).await;
        assert!(
            clock.physical_ms <= store::wall_ms() + signing::WINDOW_MS,
            "bank {i}'s clock is {clock}"
        );
    }
    // A payment at B before the restart stores B's clock with it.
    let (status, paid) = cluster.pay(&bia, &caio, "1.00", &unique("k")).await;
    assert_eq!(
        (status, &paid["status"]),
        (201, &json!("committed")),
        "{paid}"
    );
    cluster.kill(1);
    cluster.start(1, None);
    cluster.wait_all_up().await;
    let (status, paid) = cluster.pay(&bia, &caio, "1.00", &unique("k")).await;
    assert_eq!(
        (status, &paid["status"]),
        (201, &json!("committed")),
        "{paid}"
    );
    let (status, paid) = cluster.pay(&ana, &bia, "2.00", &unique("k")).await;
    assert_eq!(
        (status, &paid["status"]),
        (201, &json!("committed")),
        "{paid}"
    );
    cluster.settle_and_audit().await;
}

/// A request signed for one bank is refused by every other (it was valid at all of them for
/// 30 s): a heartbeat bank A signed for bank B, replayed to bank C, and a fresh one for B sent
/// to C.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_request_signed_for_one_bank_is_refused_by_another() {
    let cluster = Cluster::started().await;
    let body = envelope(0, Vec::new());
    let for_b = signed_by(&cluster, 0, 1, HEARTBEAT_PATH, &body);
    let at_b = post(&cluster, 1, HEARTBEAT_PATH, &for_b, body.clone()).await;
    assert_eq!(
        at_b.status().as_u16(),
        200,
        "the bank it was signed for takes it"
    );
    let replayed = post(&cluster, 2, HEARTBEAT_PATH, &for_b, body.clone()).await;
    assert_eq!(
        problem(replayed).await,
        (401, "wrong_recipient".to_string())
    );
    let fresh = signed_by(&cluster, 0, 1, HEARTBEAT_PATH, &body);
    let at_c = post(&cluster, 2, HEARTBEAT_PATH, &fresh, body).await;
    assert_eq!(problem(at_c).await, (401, "wrong_recipient".to_string()));
}

/// What one bank sent another, as a stand-in for that bank records it.
#[derive(Default)]
struct Heard {
    bodies: Mutex<Vec<(String, String)>>,
}

impl Heard {
    fn count(&self, f: impl Fn(&str, &str) -> bool) -> usize {
        let bodies = self.bodies.lock().unwrap();
        bodies.iter().filter(|(path, body)| f(path, body)).count()
    }
}

/// Listens on bank `i`'s address in its place (it must be stopped) and records every request.
async fn stand_in(cluster: &Cluster, i: usize) -> Arc<Heard> {
    let heard = Arc::new(Heard::default());
    let address = cluster.banks[i]
        .url
        .trim_start_matches("http://")
        .to_string();
    let listener = tokio::net::TcpListener::bind(&address).await.unwrap();
    let recorder = heard.clone();
    let bank = CODES[i];
    let app = axum::Router::new().fallback(move |uri: axum::http::Uri, body: String| {
        let recorder = recorder.clone();
        async move {
            recorder
                .bodies
                .lock()
                .unwrap()
                .push((uri.path().to_string(), body));
            axum::Json(json!({"bank": bank, "clock": "1.0"}))
        }
    });
    tokio::spawn(async move { axum::serve(listener, app).await });
    heard
}

/// A coordinator tells a transaction's outcome only to its participants: bank C, which has no
/// part in a payment between A and B, asks A about it and hears nothing (A used to answer any
/// bank's query; one about a transaction still undecided even aborted it).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_bank_outside_a_transaction_is_not_told_its_outcome() {
    let cluster = Cluster::started().await;
    let ana = cluster.customer(0, "100.00").await;
    let bia = cluster.customer(1, "50.00").await;
    let (status, paid) = cluster.pay(&ana, &bia, "10.00", &unique("k")).await;
    assert_eq!(
        (status, &paid["status"]),
        (201, &json!("committed")),
        "{paid}"
    );
    cluster.settle_and_audit().await;
    let txn = EndToEndId::parse(paid["id"].as_str().unwrap()).unwrap();
    cluster.kill(2);
    let heard = stand_in(&cluster, 2).await;
    deliver(&cluster, 2, 0, vec![Message::Query { txn: txn.clone() }]).await;
    // A's heartbeats reach the stand-in every second; once two more have, anything A answered
    // the query with has been sent too.
    let beats = |heard: &Heard| heard.count(|path, _| path == HEARTBEAT_PATH);
    let before = beats(&heard);
    for _ in 0..100 {
        if beats(&heard) >= before + 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        beats(&heard) >= before + 2,
        "A keeps sending heartbeats to C"
    );
    let told = heard.count(|path, body| path == MESSAGES_PATH && body.contains(txn.as_str()));
    assert_eq!(told, 0, "C was told about a payment between A and B");
}

/// Sends the head of a POST to bank `at` that announces a body of `length` bytes, and only
/// the first bytes of that body; answers the status line the bank sends back without waiting for
/// the rest (at most 5 s; `None` if it waits for the body).
async fn answer_before_the_body(
    cluster: &Cluster,
    at: usize,
    headers: &[(&'static str, String)],
    length: usize,
) -> Option<String> {
    use std::io::{Read, Write};
    let address = cluster.banks[at]
        .url
        .trim_start_matches("http://")
        .to_string();
    let mut head = format!(
        "POST {MESSAGES_PATH} HTTP/1.1\r\nhost: {address}\r\ncontent-type: application/json\r\ncontent-length: {length}\r\n"
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n{\"from\":");
    tokio::task::spawn_blocking(move || {
        let mut stream = std::net::TcpStream::connect(&address).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        stream.write_all(head.as_bytes()).unwrap();
        let mut answer = vec![0u8; 4096];
        let read = stream.read(&mut answer).ok()?;
        let text = String::from_utf8_lossy(&answer[..read]).to_string();
        text.lines().next().map(str::to_string)
    })
    .await
    .unwrap()
}

/// A body is read only once its signed headers pass: a request with an unsigned head is
/// answered 401 while its body is still on its way (it used to be read whole, up to 8 MiB,
/// first), and a signed one announcing more than the limit is answered 413 without being read.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_interbank_body_is_read_only_after_its_signature_is_checked() {
    let cluster = Cluster::started().await;
    let stranger = [(HEADER_BANK, CODES[0].to_string())];
    assert_eq!(
        answer_before_the_body(&cluster, 1, &stranger, 4 * 1024 * 1024)
            .await
            .as_deref(),
        Some("HTTP/1.1 401 Unauthorized")
    );
    let too_large = vec![b' '; node::INTERBANK_BODY_BYTES_MAX + 1];
    let signed = signed_by(&cluster, 0, 1, MESSAGES_PATH, &too_large);
    assert_eq!(
        answer_before_the_body(&cluster, 1, &signed, too_large.len())
            .await
            .as_deref(),
        Some("HTTP/1.1 413 Payload Too Large")
    );
}
