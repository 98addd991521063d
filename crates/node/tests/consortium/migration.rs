//! What a bank's own ledger holds reaches the consortium's directory (issue #24), with real
//! `bankd` processes: a ledger made before the directory is loaded into it at first start, its
//! conflicts with what other banks registered reported (never dropped); an account opened while
//! the directory had no majority is listed once it has one again, also across a restart.

use crate::cluster::{CODES, Cluster, Customer, OPERATOR_TOKEN, PASSWORD, cpf, unique};
use reqwest::Method;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// Registers a person at bank `i` (retrying while its directory elects a leader, at most 15 s),
/// logs them in and opens an account for them there.
async fn person(cluster: &Cluster, i: usize, username: &str, document: &str) -> Customer {
    let body = json!({"name": format!("Cliente {username}"), "document": document, "username": username, "password": PASSWORD});
    let mut answer = (0, Value::Null);
    for _ in 0..30 {
        answer = cluster
            .call(
                i,
                Method::POST,
                "/api/v1/customers",
                Some(body.clone()),
                None,
                None,
            )
            .await;
        if answer.0 != 503 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(answer.0, 201, "{}", answer.1);
    let (status, session) = cluster.login(i, username).await;
    assert_eq!(status, 201, "{session}");
    let token = session["token"].as_str().unwrap().to_string();
    let (status, account) = cluster
        .call(
            i,
            Method::POST,
            "/api/v1/accounts",
            Some(json!({"kind": "individual", "opening_deposit": "50.00"})),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(status, 201, "{account}");
    Customer {
        bank: i,
        token,
        number: account["number"].as_str().unwrap().to_string(),
        username: username.to_string(),
        document: document.to_string(),
    }
}

async fn add_key(cluster: &Cluster, who: &Customer, key: &str) {
    let (status, added) = cluster
        .post_as(
            who,
            "/api/v1/pix-keys",
            json!({"account": {"bank": CODES[who.bank], "number": who.number}, "type": "email", "value": key}),
            None,
        )
        .await;
    assert_eq!(status, 201, "{added}");
}

/// Bank `i`'s audit check of the migration, once its detail no longer says it is in progress
/// (at most 30 s).
async fn migration_check(cluster: &Cluster, i: usize) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, audit) = cluster
            .call(
                i,
                Method::GET,
                "/api/v1/audit",
                None,
                Some(OPERATOR_TOKEN),
                None,
            )
            .await;
        let check = audit["checks"]
            .as_array()
            .and_then(|checks| {
                checks
                    .iter()
                    .find(|c| c["name"] == "directory_migration")
                    .cloned()
            })
            .unwrap_or(Value::Null);
        if status == 200
            && check["detail"]
                .as_str()
                .is_some_and(|d| d.starts_with("finished"))
        {
            return check;
        }
        assert!(
            Instant::now() < deadline,
            "the migration did not finish: {status} {check}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Logs `username` in at bank `i`, at most 15 s (a bank just started may not have a leader's
/// word yet): the session's token.
async fn logged_in(cluster: &Cluster, i: usize, username: &str) -> String {
    let mut answer = (0, Value::Null);
    for _ in 0..30 {
        answer = cluster.login(i, username).await;
        if answer.0 == 201 {
            return answer.1["token"].as_str().unwrap().to_string();
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    panic!("{username} cannot log in at bank {i}: {answer:?}");
}

/// The banks a key resolves to at bank `i` for `token` (`None`: not found).
async fn key_bank(cluster: &Cluster, i: usize, token: &str, key: &str) -> Option<String> {
    let (status, found) = cluster
        .call(
            i,
            Method::GET,
            &format!("/api/v1/pix-keys/{key}"),
            None,
            Some(token),
            None,
        )
        .await;
    match status {
        200 => found["bank"].as_str().map(str::to_string),
        404 => None,
        _ => panic!("looking {key} up at bank {i}: {status} {found}"),
    }
}

/// A ledger made while bank 0 was alone (its directory lost, as before the directory existed)
/// joins a consortium where others registered the same document, username and key meanwhile:
/// what is its own is loaded (its customer logs in at every bank and sees their account there,
/// its key resolves to it everywhere), each conflict is in the report file, the audit and the
/// security trail; the conflicting key leaves bank 0's copy. A crash midway and a restart finish
/// it; a further start does not load again.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_ledger_made_before_the_directory_is_loaded_and_its_conflicts_reported() {
    let cluster = Cluster::configured_as(crate::cluster::Shape::THREE);
    cluster.start_alone(0);
    let ana = person(&cluster, 0, &unique("ana"), &cpf()).await;
    let ana_key = format!("{}@example.com", unique("ana"));
    let shared_key = format!("{}@example.com", unique("shared"));
    add_key(&cluster, &ana, &ana_key).await;
    add_key(&cluster, &ana, &shared_key).await;
    let taken_document = cpf();
    let beto = person(&cluster, 0, &unique("beto"), &taken_document).await;
    let beto_key = format!("{}@example.com", unique("beto"));
    add_key(&cluster, &beto, &beto_key).await;
    let taken_username = unique("carla");
    person(&cluster, 0, &taken_username, &cpf()).await;
    cluster.kill(0);
    // As a ledger made before the directory: no directory file, no migration report.
    std::fs::remove_file(cluster.data_dir(0).join("directory.db")).unwrap();
    std::fs::remove_file(cluster.data_dir(0).join("directory-migration.json")).unwrap();

    // The consortium meanwhile, without bank 0: the same document, username and key, others'.
    cluster.start(1, None);
    cluster.start(2, None);
    cluster.wait_directory_leader().await;
    let dora = person(&cluster, 1, &unique("dora"), &taken_document).await;
    person(&cluster, 1, &taken_username, &cpf()).await;
    let eva = person(&cluster, 1, &unique("eva"), &cpf()).await;
    add_key(&cluster, &eva, &shared_key).await;

    // Bank 0 joins; it stops (as a crash) once its customers are loaded, before the rest.
    cluster.start(0, Some("migration_customers_loaded"));
    assert!(
        cluster.wait_stopped(0, Duration::from_secs(30)),
        "bank 0 never reached the fault point"
    );
    let report = std::fs::read_to_string(cluster.data_dir(0).join("directory-migration.json"))
        .expect("the report is written as soon as a conflict is found");
    let report: Value = serde_json::from_str(&report).unwrap();
    assert_eq!(report["finished"], json!(false), "{report}");
    cluster.start(0, None);
    let check = migration_check(&cluster, 0).await;
    let detail = check["detail"].as_str().unwrap();
    assert_eq!(
        check["ok"],
        json!(false),
        "conflicts fail the audit: {check}"
    );
    for expected in [
        format!("customer {} (duplicate_document)", beto.username),
        format!("customer {taken_username} (duplicate_username)"),
        format!(
            "pix_key {} email:{shared_key} (duplicate_pix_key)",
            ana.username
        ),
        format!(
            "pix_key {} email:{beto_key} (holder_not_loaded)",
            beto.username
        ),
    ] {
        assert!(detail.contains(&expected), "{expected:?} not in {detail}");
    }
    assert!(detail.contains("4 conflicts"), "{detail}");

    // Ana logs in at every bank and sees her account at bank 0 from each.
    for i in 0..3 {
        let token = logged_in(&cluster, i, &ana.username).await;
        let (status, me) = cluster
            .call(i, Method::GET, "/api/v1/me", None, Some(&token), None)
            .await;
        assert_eq!(status, 200, "{me}");
        let listed = me["accounts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["bank"] == CODES[0] && a["number"] == ana.number.as_str());
        assert!(listed, "bank {i} does not list ana's account: {me}");
        // One answer for each key at every bank: hers at 0, the shared one Eva's at 1, the
        // one of a customer not loaded nowhere.
        assert_eq!(
            key_bank(&cluster, i, &token, &ana_key).await.as_deref(),
            Some(CODES[0])
        );
        assert_eq!(
            key_bank(&cluster, i, &token, &shared_key).await.as_deref(),
            Some(CODES[1])
        );
        assert_eq!(key_bank(&cluster, i, &token, &beto_key).await, None);
    }
    // The shared key left bank 0's copy; hers stays.
    let token = logged_in(&cluster, 0, &ana.username).await;
    let (status, keys) = cluster
        .call(0, Method::GET, "/api/v1/pix-keys", None, Some(&token), None)
        .await;
    assert_eq!(status, 200, "{keys}");
    let keys: Vec<&str> = keys["keys"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|k| k["key"].as_str())
        .collect();
    assert_eq!(keys, vec![ana_key.as_str()]);
    // Dora, whom the directory knows by that document, is not let into Beto's accounts at 0.
    let (status, refused) = cluster.login(0, &dora.username).await;
    assert_eq!(
        (status, &refused["code"]),
        (409, &json!("identity_conflict")),
        "{refused}"
    );
    // The security trail has each conflict.
    let (status, events) = cluster
        .call(
            0,
            Method::GET,
            "/api/v1/audit/events?limit=1000",
            None,
            Some(OPERATOR_TOKEN),
            None,
        )
        .await;
    assert_eq!(status, 200, "{events}");
    let conflicts = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "directory_migration_conflict")
        .count();
    assert!(conflicts >= 4, "{events}");

    // A further start does not load again: the report is as it was.
    let path = cluster.data_dir(0).join("directory-migration.json");
    let before = std::fs::read_to_string(&path).unwrap();
    let report: Value = serde_json::from_str(&before).unwrap();
    assert_eq!(
        (
            &report["finished"],
            report["conflicts"].as_array().map(Vec::len)
        ),
        (&json!(true), Some(4)),
        "{report}"
    );
    cluster.kill(0);
    cluster.start(0, None);
    migration_check(&cluster, 0).await;
    assert_eq!(std::fs::read_to_string(&path).unwrap(), before);
}

/// An account opened while its bank has no majority of the directory is listed once a majority
/// is back, although the bank restarted in between: another bank then shows it in `GET /me`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_account_opened_without_a_majority_is_listed_after_a_restart_and_the_heal() {
    let cluster = Cluster::started().await;
    let ana = cluster.customer(0, "50.00").await;
    cluster.kill(1);
    cluster.kill(2);
    let (status, opened) = cluster
        .post_as(
            &ana,
            "/api/v1/accounts",
            json!({"kind": "individual", "opening_deposit": "60.00"}),
            None,
        )
        .await;
    assert_eq!(status, 201, "{opened}");
    let number = opened["number"].as_str().unwrap().to_string();
    cluster.kill(0);
    cluster.start(0, None);
    cluster.start(1, None);
    cluster.start(2, None);
    cluster.wait_directory_leader().await;
    let token = logged_in(&cluster, 1, &ana.username).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, me) = cluster
            .call(1, Method::GET, "/api/v1/me", None, Some(&token), None)
            .await;
        assert_eq!(status, 200, "{me}");
        let listed = me["accounts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["bank"] == CODES[0] && a["number"] == number.as_str());
        if listed {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "bank 1 never lists the account opened at bank 0: {me}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// A joint account's co-holder who registered at another bank and never logged in at the
/// account's bank is invited all the same: logging in there, they find the invitation and accept
/// it, and from then on their home bank lists the account for them too.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_co_holder_registered_at_another_bank_joins_a_joint_account_and_sees_it_at_home() {
    let cluster = Cluster::started().await;
    let ana = cluster.customer(0, "50.00").await;
    let beto = cluster.customer(1, "50.00").await;
    let (status, joint) = cluster
        .post_as(
            &ana,
            "/api/v1/accounts",
            json!({"kind": "joint", "opening_deposit": "80.00", "co_holders": [beto.username]}),
            None,
        )
        .await;
    assert_eq!(status, 201, "{joint}");
    let number = joint["number"].as_str().unwrap().to_string();
    let token = logged_in(&cluster, 0, &beto.username).await;
    let (status, invitations) = cluster
        .call(
            0,
            Method::GET,
            "/api/v1/invitations",
            None,
            Some(&token),
            None,
        )
        .await;
    assert_eq!(status, 200, "{invitations}");
    let received = invitations["received"].as_array().unwrap();
    assert_eq!(received.len(), 1, "{invitations}");
    let id = received[0]["id"].as_str().unwrap();
    let (status, accepted) = cluster
        .call(
            0,
            Method::POST,
            &format!("/api/v1/invitations/{id}/accept"),
            None,
            Some(&token),
            None,
        )
        .await;
    assert_eq!(status, 201, "{accepted}");
    let (status, me) = cluster
        .call(1, Method::GET, "/api/v1/me", None, Some(&beto.token), None)
        .await;
    assert_eq!(status, 200, "{me}");
    let listed = me["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .any(|a| a["bank"] == CODES[0] && a["number"] == number.as_str());
    assert!(
        listed,
        "beto's home bank does not list the joint account: {me}"
    );
}
