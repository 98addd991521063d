//! The consortium's directory through real `bankd` processes (issue #24): a document, a
//! username and a Pix key are unique across the banks, a person registers once and logs in at
//! any bank, a key is paid to the same bank from every bank, and no bank can vouch for someone
//! the directory does not list as an account's holder.

use crate::cluster::{CODES, Cluster, Customer, PASSWORD, cpf, unique};
use reqwest::Method;
use serde_json::{Value, json};
use std::time::Duration;

async fn register(
    cluster: &Cluster,
    bank: usize,
    username: String,
    document: String,
) -> (u16, Value) {
    cluster
        .call(
            bank,
            Method::POST,
            "/api/v1/customers",
            Some(json!({"name": format!("Cliente {username}"), "document": document, "username": username, "password": PASSWORD})),
            None,
            None,
        )
        .await
}

/// Calls `call` until it answers something other than 503 (an election under way after a bank
/// stopped), at most 15 s; the last answer.
async fn through_election<F, Fut>(mut call: F) -> (u16, Value)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = (u16, Value)>,
{
    let mut answer = call().await;
    for _ in 0..30 {
        if answer.0 != 503 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        answer = call().await;
    }
    answer
}

/// The two answers' statuses, sorted, and the refused one's code.
fn one_wins(a: &(u16, Value), b: &(u16, Value)) -> ([u16; 2], Value) {
    let mut statuses = [a.0, b.0];
    statuses.sort_unstable();
    let refused = if a.0 == 201 { &b.1 } else { &a.1 };
    (statuses, refused["code"].clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_document_or_username_registered_at_two_banks_at_once_is_taken_once() {
    let cluster = Cluster::started().await;
    let document = cpf();
    let (a, b) = tokio::join!(
        register(&cluster, 0, unique("a"), document.clone()),
        register(&cluster, 1, unique("b"), document.clone()),
    );
    assert_eq!(
        one_wins(&a, &b),
        ([201, 409], json!("duplicate_document")),
        "{a:?} {b:?}"
    );
    let (status, again) = register(&cluster, 2, unique("c"), document.clone()).await;
    assert_eq!(
        (status, &again["code"]),
        (409, &json!("duplicate_document")),
        "{again}"
    );

    let username = unique("same");
    let (a, b) = tokio::join!(
        register(&cluster, 1, username.clone(), cpf()),
        register(&cluster, 2, username.clone(), cpf()),
    );
    assert_eq!(
        one_wins(&a, &b),
        ([201, 409], json!("duplicate_username")),
        "{a:?} {b:?}"
    );
    let (status, again) = register(&cluster, 0, username.to_uppercase(), cpf()).await;
    assert_eq!(
        (status, &again["code"]),
        (409, &json!("duplicate_username")),
        "usernames are unique whatever their case: {again}"
    );
}

/// Registered once at Aurora, Ana logs in at Boreal and opens an account there; `/me` at either
/// bank lists both. She still logs in with Aurora down; with two banks of three down, the one
/// left cannot register anyone (503 `directory_unavailable`) but still logs her in; a bank
/// restarted after missing a registration catches up and logs that person in.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_person_registered_at_one_bank_logs_in_at_any_bank() {
    let cluster = Cluster::started().await;
    let ana0 = cluster.customer(0, "100.00").await;
    let caio = cluster.customer(2, "50.00").await;
    let ana1 = cluster.also_at(1, &ana0, "60.00").await;
    for (bank, token) in [(0, &ana0.token), (1, &ana1.token)] {
        // Each bank lists what its copy of the directory has, which follows the leader within a
        // heartbeat or so.
        let (mut status, mut me) = (0, Value::Null);
        for _ in 0..50 {
            (status, me) = cluster
                .call(bank, Method::GET, "/api/v1/me", None, Some(token), None)
                .await;
            if me["accounts"].as_array().is_some_and(|a| a.len() == 2) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(
            (status, &me["username"], &me["home_bank"]),
            (200, &json!(ana0.username), &json!(CODES[0])),
            "{me}"
        );
        let mut held: Vec<(String, String)> = me["accounts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| {
                (
                    a["bank"].as_str().unwrap().into(),
                    a["number"].as_str().unwrap().into(),
                )
            })
            .collect();
        held.sort();
        assert_eq!(
            held,
            vec![
                (CODES[0].to_string(), ana0.number.clone()),
                (CODES[1].to_string(), ana1.number.clone())
            ],
            "{me}"
        );
    }
    let (status, wrong) = cluster
        .call(
            2,
            Method::POST,
            "/api/v1/sessions",
            Some(json!({"username": ana0.username, "password": "not-her-password"})),
            None,
            None,
        )
        .await;
    assert_eq!(
        (status, &wrong["code"]),
        (401, &json!("invalid_credentials")),
        "{wrong}"
    );

    cluster.kill(0);
    let (status, session) = cluster.login(2, &ana0.username).await;
    assert_eq!(status, 201, "her home bank is down: {session}");
    let late = unique("late");
    let (status, body) = through_election(|| register(&cluster, 2, late.clone(), cpf())).await;
    assert_eq!(status, 201, "a majority is up: {body}");

    cluster.kill(1);
    let (status, refused) = register(&cluster, 2, unique("alone"), cpf()).await;
    assert_eq!(
        (status, &refused["code"]),
        (503, &json!("directory_unavailable")),
        "{refused}"
    );
    let (status, session) = cluster.login(2, &ana0.username).await;
    assert_eq!(status, 201, "logins go on on a minority: {session}");
    // A Pix key needs the directory: refused, and not kept here either.
    let (status, refused) = add_key(&cluster, &caio, &format!("{}@example.com", unique("k"))).await;
    assert_eq!(
        (status, &refused["code"]),
        (503, &json!("directory_unavailable")),
        "{refused}"
    );
    let (status, keys) = cluster
        .call(
            2,
            Method::GET,
            "/api/v1/pix-keys",
            None,
            Some(&caio.token),
            None,
        )
        .await;
    assert_eq!((status, &keys["keys"]), (200, &json!([])), "{keys}");
    // An account opened here meanwhile is listed in the directory once a majority is back.
    let (status, opened) = cluster
        .post_as(
            &caio,
            "/api/v1/accounts",
            json!({"kind": "individual", "opening_deposit": "50.00"}),
            None,
        )
        .await;
    assert_eq!(status, 201, "{opened}");

    cluster.start(0, None);
    cluster.start(1, None);
    let mut session = (0, Value::Null);
    for _ in 0..50 {
        session = cluster.login(0, &late).await;
        if session.0 == 201 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        session.0, 201,
        "the restarted bank caught up: {}",
        session.1
    );
    let (status, session) = cluster.login(0, &caio.username).await;
    assert_eq!(status, 201, "{session}");
    let token = session["token"].as_str().unwrap();
    let mut listed = Value::Null;
    for _ in 0..100 {
        let (_, me) = cluster
            .call(0, Method::GET, "/api/v1/me", None, Some(token), None)
            .await;
        listed = me["accounts"].clone();
        if listed.as_array().is_some_and(|a| a.len() == 2) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        listed
            .as_array()
            .is_some_and(|a| a.iter().any(|a| a["number"] == opened["number"])),
        "{listed}"
    );
}

async fn add_key(cluster: &Cluster, who: &Customer, key: &str) -> (u16, Value) {
    cluster
        .post_as(
            who,
            "/api/v1/pix-keys",
            json!({"account": {"bank": CODES[who.bank], "number": who.number}, "type": "email", "value": key}),
            None,
        )
        .await
}

/// The same e-mail key asked for at two banks at once: one wins, the other is 409; every bank
/// then resolves the key to the winner, and paying it from any bank pays the winner.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_pix_key_is_one_bank_s_and_every_bank_pays_it_there() {
    let cluster = Cluster::started().await;
    let beto = cluster.customer(0, "50.00").await;
    let dora = cluster.customer(1, "50.00").await;
    let caio = cluster.customer(2, "100.00").await;
    let key = format!("{}@example.com", unique("beto"));
    let (a, b) = tokio::join!(
        add_key(&cluster, &beto, &key),
        add_key(&cluster, &dora, &key)
    );
    assert_eq!(
        one_wins(&a, &b),
        ([201, 409], json!("duplicate_pix_key")),
        "{a:?} {b:?}"
    );
    let (winner, loser) = if a.0 == 201 {
        (&beto, &dora)
    } else {
        (&dora, &beto)
    };
    // The loser's bank keeps no copy of the key.
    let (status, keys) = cluster
        .call(
            loser.bank,
            Method::GET,
            "/api/v1/pix-keys",
            None,
            Some(&loser.token),
            None,
        )
        .await;
    assert_eq!(
        (status, keys["keys"].as_array().map(Vec::len)),
        (200, Some(0)),
        "{keys}"
    );
    // Each bank answers from its own copy, which follows the leader within a heartbeat or so.
    for (bank, token) in [(0, &beto.token), (1, &dora.token), (2, &caio.token)] {
        let mut found = (0, Value::Null);
        for _ in 0..50 {
            found = cluster
                .call(
                    bank,
                    Method::GET,
                    &format!("/api/v1/pix-keys/{key}"),
                    None,
                    Some(token),
                    None,
                )
                .await;
            if found.0 == 200 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(
            (found.0, &found.1["bank"]),
            (200, &json!(CODES[winner.bank])),
            "bank {bank}: {}",
            found.1
        );
    }
    for payer in [&caio, loser] {
        let body = json!({"from": {"bank": CODES[payer.bank], "number": payer.number}, "to": {"pix_key": key}, "amount": "1.00"});
        let (status, paid) = cluster
            .post_as(payer, "/api/v1/transfers", body, None)
            .await;
        assert_eq!(
            (status, &paid["status"], &paid["to"]["bank"]),
            (201, &json!("committed"), &json!(CODES[winner.bank])),
            "{paid}"
        );
    }
    cluster.settle_and_audit().await;
    let (status, account) = cluster
        .call(
            winner.bank,
            Method::GET,
            &format!("/api/v1/accounts/{}/{}", CODES[winner.bank], winner.number),
            None,
            Some(&winner.token),
            None,
        )
        .await;
    assert_eq!(
        (status, &account["balance"]),
        (200, &json!("52.00")),
        "{account}"
    );
}

/// The takeover of issue #24: registering the victim's CPF at another bank is refused, so no
/// bank can vouch for the attacker as the victim; and a bank asking on behalf of the attacker
/// about the victim's account (read, statement, transfer out) is answered not found.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_bank_cannot_vouch_for_someone_the_directory_does_not_list_as_holder() {
    let cluster = Cluster::started().await;
    let victim = cluster.customer(1, "50.00").await;
    let (status, refused) = register(&cluster, 0, unique("mallory"), victim.document.clone()).await;
    assert_eq!(
        (status, &refused["code"]),
        (409, &json!("duplicate_document")),
        "{refused}"
    );
    let (status, refused) = register(&cluster, 0, victim.username.clone(), cpf()).await;
    assert_eq!(
        (status, &refused["code"]),
        (409, &json!("duplicate_username")),
        "{refused}"
    );

    let mallory = cluster.customer(0, "50.00").await;
    let theirs = format!("/api/v1/accounts/{}/{}", CODES[1], victim.number);
    for path in [theirs.clone(), format!("{theirs}/statement")] {
        let (status, hidden) = cluster
            .call(0, Method::GET, &path, None, Some(&mallory.token), None)
            .await;
        assert_eq!(
            (status, &hidden["code"]),
            (404, &json!("account_not_found")),
            "{path}: {hidden}"
        );
    }
    let body = json!({"from": {"bank": CODES[1], "number": victim.number}, "to": {"bank": CODES[0], "number": mallory.number}, "amount": "50.00"});
    let (status, refused) = cluster
        .post_as(&mallory, "/api/v1/transfers", body, None)
        .await;
    assert_eq!(
        (status, &refused["code"]),
        (404, &json!("account_not_found")),
        "{refused}"
    );
    let (status, me) = cluster
        .call(
            0,
            Method::GET,
            "/api/v1/me",
            None,
            Some(&mallory.token),
            None,
        )
        .await;
    assert_eq!(
        (status, me["accounts"].as_array().map(Vec::len)),
        (200, Some(1)),
        "{me}"
    );
    cluster.settle_and_audit().await;
}
