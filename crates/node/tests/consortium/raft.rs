//! The consortium's directory as a Raft group of real `bankd` processes under races and faults
//! (issue #24): five banks racing for one document, username or Pix key agree on one winner;
//! the leader killed during a stream of registrations loses none it acknowledged; a bank cut
//! off by a fault-injecting proxy refuses writes, keeps serving reads, and catches up once
//! healed.

use crate::cluster::{CODES, Cluster, Customer, Link, PASSWORD, Shape, cpf, unique};
use reqwest::Method;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The longest the survivors of a killed leader, or the majority of a partition, may go without
/// taking a write: a liveness bound, not a measure of speed. A follower stands for election
/// after 3–4 s without its leader (openraft's lease, then the election timeout); a first round
/// lost to a bank with a longer log adds 4 s; the rest is room for a busy machine.
const WRITES_AGAIN_WITHIN: Duration = Duration::from_secs(15);
/// The longest a write may take to be refused at a bank cut off from the others: the
/// directory's write timeout (3 s) with room for a busy machine.
const REFUSED_WITHIN: Duration = Duration::from_secs(6);
/// How long a bank's copy of the directory may take to show what the leader committed.
const REPLICATED_WITHIN: Duration = Duration::from_secs(10);

async fn register(
    cluster: &Cluster,
    bank: usize,
    name: &str,
    username: &str,
    document: &str,
) -> (u16, Value) {
    cluster
        .call(
            bank,
            Method::POST,
            "/api/v1/customers",
            Some(json!({"name": name, "document": document, "username": username, "password": PASSWORD})),
            None,
            None,
        )
        .await
}

/// `/me` of `username` at bank `i`, logging in there; polls until the login works (the bank's
/// copy follows the leader within a heartbeat or so), at most [`REPLICATED_WITHIN`].
async fn me_at(cluster: &Cluster, i: usize, username: &str) -> Value {
    let deadline = Instant::now() + REPLICATED_WITHIN;
    loop {
        let (status, session) = cluster.login(i, username).await;
        if status == 201 {
            let token = session["token"].as_str().expect("a token");
            let (status, me) = cluster
                .call(i, Method::GET, "/api/v1/me", None, Some(token), None)
                .await;
            assert_eq!(status, 200, "{me}");
            return me;
        }
        assert!(
            Instant::now() < deadline,
            "{username} cannot log in at bank {i}: {status} {session}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The index of the one answer that is 201; every other must be 409 with `code`.
fn one_winner(answers: &[(u16, Value)], code: &str) -> usize {
    let winners: Vec<usize> = (0..answers.len())
        .filter(|&i| answers[i].0 == 201)
        .collect();
    assert_eq!(winners.len(), 1, "exactly one wins: {answers:?}");
    for (status, body) in answers.iter().filter(|a| a.0 != 201) {
        assert_eq!(
            (*status, body["code"].as_str()),
            (409, Some(code)),
            "{answers:?}"
        );
    }
    winners[0]
}

/// Runs `call(i)` for every bank `i` at once, each again while it answers 503 (no majority in
/// time: a busy machine, an election), 250 ms apart and at most [`WRITES_AGAIN_WITHIN`]: the
/// same request again is safe, the directory takes a repeated command once. The last answers,
/// in bank order.
async fn at_every_bank<F, Fut>(cluster: &Arc<Cluster>, call: F) -> Vec<(u16, Value)>
where
    F: Fn(Arc<Cluster>, usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = (u16, Value)> + Send + 'static,
{
    let call = Arc::new(call);
    let tasks: Vec<_> = (0..cluster.banks.len())
        .map(|i| {
            let (cluster, call) = (cluster.clone(), call.clone());
            tokio::spawn(async move {
                let deadline = Instant::now() + WRITES_AGAIN_WITHIN;
                loop {
                    let answer = call(cluster.clone(), i).await;
                    if answer.0 != 503 || Instant::now() >= deadline {
                        return answer;
                    }
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
            })
        })
        .collect();
    let mut answers = Vec::new();
    for task in tasks {
        answers.push(task.await.unwrap());
    }
    answers
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

/// Five banks each register the same document, then the same username, then claim the same Pix
/// key, all at once: one of the five wins each time, the four others are 409 with the conflict's
/// code, and every bank's own copy of the directory answers with the winner. (The three-bank
/// races and the takeover in full are in `directory.rs`.)
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn five_banks_racing_for_a_document_a_username_or_a_key_agree_on_one_winner() {
    let cluster = Arc::new(
        Cluster::started_as(Shape {
            banks: 5,
            ..Shape::THREE
        })
        .await,
    );
    let banks = 0..cluster.banks.len();

    let document = cpf();
    let usernames: Arc<Vec<String>> = Arc::new(banks.clone().map(|_| unique("doc")).collect());
    let (named, shared) = (usernames.clone(), document.clone());
    let answers = at_every_bank(&cluster, move |cluster, i| {
        let (usernames, document) = (named.clone(), shared.clone());
        async move { register(&cluster, i, &usernames[i], &usernames[i], &document).await }
    })
    .await;
    let winner = one_winner(&answers, "duplicate_document");
    for i in banks.clone() {
        let me = me_at(&cluster, i, &usernames[winner]).await;
        assert_eq!(
            (&me["username"], &me["home_bank"]),
            (&json!(usernames[winner]), &json!(CODES[winner])),
            "bank {i}: {me}"
        );
        for loser in banks.clone().filter(|&l| l != winner) {
            let (status, refused) = cluster.login(i, &usernames[loser]).await;
            assert_eq!(status, 401, "a loser is registered nowhere: {refused}");
        }
    }

    let username = unique("same");
    // A document each, the same for each of a bank's tries.
    let documents: Arc<Vec<String>> = Arc::new(banks.clone().map(|_| cpf()).collect());
    let shared = username.clone();
    let answers = at_every_bank(&cluster, move |cluster, i| {
        let (username, documents) = (shared.clone(), documents.clone());
        async move {
            let name = format!("Cliente do banco {i}");
            register(&cluster, i, &name, &username, &documents[i]).await
        }
    })
    .await;
    let winner = one_winner(&answers, "duplicate_username");
    for i in banks.clone() {
        let me = me_at(&cluster, i, &username).await;
        assert_eq!(
            (&me["name"], &me["home_bank"]),
            (
                &json!(format!("Cliente do banco {winner}")),
                &json!(CODES[winner])
            ),
            "bank {i}: {me}"
        );
    }

    let mut holders = Vec::new();
    for i in banks.clone() {
        holders.push(cluster.customer(i, "50.00").await);
    }
    let holders = Arc::new(holders);
    let key = format!("{}@example.com", unique("beto"));
    let (claimants, claimed) = (holders.clone(), key.clone());
    let answers = at_every_bank(&cluster, move |cluster, i| {
        let (holders, key) = (claimants.clone(), claimed.clone());
        async move { add_key(&cluster, &holders[i], &key).await }
    })
    .await;
    let winner = one_winner(&answers, "duplicate_pix_key");
    for (i, holder) in holders.iter().enumerate() {
        let deadline = Instant::now() + REPLICATED_WITHIN;
        let path = format!("/api/v1/pix-keys/{key}");
        let found = loop {
            let found = cluster
                .call(i, Method::GET, &path, None, Some(&holder.token), None)
                .await;
            if found.0 == 200 || Instant::now() >= deadline {
                break found;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        assert_eq!(
            (found.0, &found.1["bank"], &found.1["holder_name"]),
            (
                200,
                &json!(CODES[winner]),
                &json!(format!("Cliente {}", holders[winner].username))
            ),
            "bank {i}: {}",
            found.1
        );
        // A loser's bank keeps no copy of the key it was refused.
        if i != winner {
            let (status, keys) = cluster
                .call(
                    i,
                    Method::GET,
                    "/api/v1/pix-keys",
                    None,
                    Some(&holder.token),
                    None,
                )
                .await;
            assert_eq!(
                (status, &keys["keys"]),
                (200, &json!([])),
                "bank {i}: {keys}"
            );
        }
    }
    // The takeover of issue #24 with five banks: every other bank's customer, asking their own
    // bank about the key holder's account, is answered that there is no such account.
    let theirs = format!(
        "/api/v1/accounts/{}/{}",
        CODES[winner], holders[winner].number
    );
    for (i, other) in holders.iter().enumerate().filter(|(i, _)| *i != winner) {
        let (status, hidden) = cluster
            .call(i, Method::GET, &theirs, None, Some(&other.token), None)
            .await;
        assert_eq!(
            (status, &hidden["code"]),
            (404, &json!("account_not_found")),
            "bank {i}: {hidden}"
        );
        let body = json!({"from": {"bank": CODES[winner], "number": holders[winner].number}, "to": {"bank": CODES[i], "number": other.number}, "amount": "5.00"});
        let (status, refused) = cluster
            .post_as(other, "/api/v1/transfers", body, None)
            .await;
        assert_eq!(
            (status, &refused["code"]),
            (404, &json!("account_not_found")),
            "bank {i}: {refused}"
        );
    }
    cluster.settle_and_audit().await;
}

/// The leader every answering bank follows, waiting for one (at most [`WRITES_AGAIN_WITHIN`]);
/// banks in `gone` are not asked.
async fn agreed_leader(cluster: &Cluster, gone: &[usize]) -> usize {
    let deadline = Instant::now() + WRITES_AGAIN_WITHIN;
    loop {
        let leaders: Vec<Option<usize>> = cluster
            .leaders()
            .await
            .into_iter()
            .enumerate()
            .filter(|(i, _)| !gone.contains(i))
            .map(|(_, leader)| leader)
            .collect();
        if let Some(Some(leader)) = leaders.first()
            && !gone.contains(leader)
            && leaders.iter().all(|l| *l == Some(*leader))
        {
            return *leader;
        }
        assert!(
            Instant::now() < deadline,
            "the banks agree on no leader: {leaders:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// One registration of the stream: who asked at which bank, and its last answer.
#[derive(Debug)]
struct Attempt {
    bank: usize,
    username: String,
    step: usize,
    status: u16,
    tries: usize,
    body: Value,
    /// When its last try was sent and answered.
    sent: Instant,
    answered: Instant,
}

/// Registrations in a stream: how many each bank's client makes (at most). Every bank's client
/// registers the same document at each step, so each step is also a race; the refusals this
/// earns a bank stay under the per-client throttle (`REGISTRATION_REFUSALS_FREE_MAX`, 10).
const STREAM_STEPS: usize = 8;
/// How many times a registration answered 503 (no leader yet) is tried again, 250 ms apart.
const RETRIES_MAX: usize = 60;

/// The directory's leader killed (`kill -9`) while every bank takes a stream of registrations:
/// every registration acknowledged logs in at every surviving bank afterwards as the person it
/// was, no document is taken twice, and the survivors take writes again within a bounded wait.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killing_the_directory_leader_loses_no_acknowledged_registration() {
    let cluster = Arc::new(Cluster::started().await);
    let leader = agreed_leader(&cluster, &[]).await;
    let documents: Arc<Vec<String>> = Arc::new((0..STREAM_STEPS).map(|_| cpf()).collect());
    let attempts = Arc::new(Mutex::new(Vec::<Attempt>::new()));
    let mut clients = Vec::new();
    for bank in 0..cluster.banks.len() {
        let (cluster, documents, attempts) = (cluster.clone(), documents.clone(), attempts.clone());
        clients.push(tokio::spawn(async move {
            for (step, document) in documents.iter().enumerate() {
                let username = unique("stream");
                let mut tries = 0;
                let attempt = loop {
                    let sent = Instant::now();
                    let (status, body) =
                        register(&cluster, bank, &username, &username, document).await;
                    tries += 1;
                    if status == 503 && tries < RETRIES_MAX {
                        tokio::time::sleep(Duration::from_millis(250)).await;
                        continue;
                    }
                    break Attempt {
                        bank,
                        username: username.clone(),
                        step,
                        status,
                        tries,
                        body,
                        sent,
                        answered: Instant::now(),
                    };
                };
                let gone = attempt.status == 0;
                attempts.lock().unwrap().push(attempt);
                // Its bank was killed: this client is done.
                if gone {
                    return;
                }
            }
        }));
    }
    // Kill the leader once the stream is well under way.
    let deadline = Instant::now() + Duration::from_secs(60);
    while attempts
        .lock()
        .unwrap()
        .iter()
        .filter(|a| a.status == 201)
        .count()
        < 2
    {
        assert!(Instant::now() < deadline, "the stream never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    cluster.kill(leader);
    let killed = Instant::now();
    // The survivors follow a new leader within the bound (the stream goes on meanwhile).
    let new_leader = agreed_leader(&cluster, &[leader]).await;
    let elected = killed.elapsed();
    assert_ne!(new_leader, leader);
    for client in clients {
        client.await.unwrap();
    }

    let attempts = std::mem::take(&mut *attempts.lock().unwrap());
    let survivors: Vec<usize> = (0..cluster.banks.len()).filter(|&i| i != leader).collect();
    let mut by_step: BTreeMap<usize, Vec<&Attempt>> = BTreeMap::new();
    for attempt in &attempts {
        by_step.entry(attempt.step).or_default().push(attempt);
        match attempt.status {
            // The killed bank's client: no answer, nothing acknowledged.
            0 => assert_eq!(attempt.bank, leader, "{attempt:?}"),
            201 => {}
            409 => assert_eq!(attempt.body["code"], "duplicate_document", "{attempt:?}"),
            _ => panic!("a registration answered neither 201 nor 409: {attempt:?}"),
        }
    }
    for (step, tried) in &by_step {
        let won: Vec<_> = tried.iter().filter(|a| a.status == 201).collect();
        assert!(
            won.len() <= 1,
            "step {step}'s document taken twice: {tried:#?}"
        );
        // Each survivor finished the stream, so every step was decided: a refusal names a
        // winner the directory holds, acknowledged (or the killed bank's, unanswered).
        let survivors_tried = tried.iter().filter(|a| a.bank != leader).count();
        assert_eq!(survivors_tried, survivors.len(), "step {step}: {tried:#?}");
    }
    // Writes went through again after the kill, within the bound: a registration sent after it
    // was decided by the directory (taken, or refused as another bank's).
    let since_kill = |at: Instant| at.saturating_duration_since(killed).as_millis();
    let timeline: Vec<String> = attempts
        .iter()
        .map(|a| {
            format!(
                "bank {} step {}: {} after {} tries, last sent {} ms after the kill, answered {} ms",
                a.bank,
                a.step,
                a.status,
                a.tries,
                since_kill(a.sent),
                since_kill(a.answered)
            )
        })
        .collect();
    let again = attempts
        .iter()
        .filter(|a| matches!(a.status, 201 | 409) && a.sent > killed)
        .map(|a| a.answered)
        .min()
        .unwrap_or_else(|| panic!("nothing sent after the kill was decided: {timeline:#?}"));
    assert!(
        again.duration_since(killed) < WRITES_AGAIN_WITHIN,
        "no write decided for {:?} after the leader was killed (a new one followed after {elected:?}): {timeline:#?}",
        again.duration_since(killed)
    );
    // Every acknowledged registration is the person it was, at every surviving bank.
    let acknowledged: Vec<&Attempt> = attempts.iter().filter(|a| a.status == 201).collect();
    assert!(acknowledged.len() >= 2, "{attempts:#?}");
    for attempt in &acknowledged {
        for &i in &survivors {
            let me = me_at(&cluster, i, &attempt.username).await;
            assert_eq!(
                (&me["username"], &me["home_bank"]),
                (&json!(attempt.username), &json!(CODES[attempt.bank])),
                "bank {i}: {me}"
            );
        }
    }
    // The killed leader comes back, catches up, and agrees.
    cluster.start(leader, None);
    for attempt in &acknowledged {
        let me = me_at(&cluster, leader, &attempt.username).await;
        assert_eq!(me["home_bank"], json!(CODES[attempt.bank]), "{me}");
    }
}

/// One bank cut off from the others by the proxies between them: a registration or a Pix key
/// there is refused (503 `directory_unavailable`) within the directory's write timeout, at
/// once on a follower, while the majority takes writes; the
/// cut-off bank still logs people in and resolves keys from its copy; once healed it has what
/// the majority wrote meanwhile, and takes writes again. Done with the leader cut off, its
/// connections refused (it must notice it lost the majority), and then with a follower whose
/// traffic is silently lost (it must not wait on a leader it cannot hear from beyond the write's
/// deadline).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_bank_cut_off_refuses_writes_at_once_serves_reads_and_catches_up() {
    let cluster = Cluster::started_as(Shape {
        proxied: true,
        ..Shape::THREE
    })
    .await;
    for round in 0..2 {
        let leader = agreed_leader(&cluster, &[]).await;
        let (cut, how) = if round == 0 {
            (leader, Link::Refused)
        } else {
            ((leader + 1) % cluster.banks.len(), Link::Silent)
        };
        let majority: Vec<usize> = (0..cluster.banks.len()).filter(|&i| i != cut).collect();
        // Someone known before the cut, with a key.
        let before = cluster.customer(majority[0], "50.00").await;
        let key = format!("{}@example.com", unique("k"));
        let (status, added) = add_key(&cluster, &before, &key).await;
        assert_eq!(status, 201, "{added}");
        let local = cluster.customer(cut, "50.00").await;
        // Its copy has the key before the cut.
        let path = format!("/api/v1/pix-keys/{key}");
        let deadline = Instant::now() + REPLICATED_WITHIN;
        while cluster
            .call(cut, Method::GET, &path, None, Some(&local.token), None)
            .await
            .0
            != 200
        {
            assert!(Instant::now() < deadline, "bank {cut} never had the key");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }

        cluster.partition(cut, how);
        let name = unique("cut");
        let started = Instant::now();
        let (status, refused) = register(&cluster, cut, &name, &name, &cpf()).await;
        assert_eq!(
            (status, &refused["code"]),
            (503, &json!("directory_unavailable")),
            "bank {cut} cut off: {refused}"
        );
        assert!(
            started.elapsed() < REFUSED_WITHIN,
            "refused only after {:?}",
            started.elapsed()
        );
        let (status, refused) =
            add_key(&cluster, &local, &format!("{}@example.com", unique("k"))).await;
        assert_eq!(
            (status, &refused["code"]),
            (503, &json!("directory_unavailable")),
            "{refused}"
        );
        let (status, refused) = cluster.login(majority[0], &name).await;
        assert_eq!(
            status, 401,
            "the refused registration is nowhere: {refused}"
        );

        // The majority takes writes (after an election when the leader was cut off).
        // Tried again while 503, as the same registration: an earlier try may have been taken.
        let (during, document) = (unique("during"), cpf());
        let deadline = Instant::now() + WRITES_AGAIN_WITHIN;
        loop {
            let (status, body) = register(&cluster, majority[1], &during, &during, &document).await;
            if status == 201 {
                break;
            }
            assert_eq!(status, 503, "{body}");
            assert!(
                Instant::now() < deadline,
                "the majority took no write: {body}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        // The cut-off bank still logs people in and resolves keys from its copy.
        let me = me_at(&cluster, cut, &before.username).await;
        assert_eq!(me["home_bank"], json!(CODES[majority[0]]), "{me}");
        let (status, found) = cluster
            .call(cut, Method::GET, &path, None, Some(&local.token), None)
            .await;
        assert_eq!(
            (status, &found["bank"]),
            (200, &json!(CODES[majority[0]])),
            "{found}"
        );

        cluster.heal(cut);
        let me = me_at(&cluster, cut, &during).await;
        assert_eq!(me["home_bank"], json!(CODES[majority[1]]), "{me}");
        let (after, document) = (unique("after"), cpf());
        let deadline = Instant::now() + WRITES_AGAIN_WITHIN;
        loop {
            let (status, body) = register(&cluster, cut, &after, &after, &document).await;
            if status == 201 {
                break;
            }
            assert_eq!(status, 503, "{body}");
            assert!(
                Instant::now() < deadline,
                "the healed bank took no write: {body}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        for &i in &majority {
            me_at(&cluster, i, &after).await;
        }
    }
}
