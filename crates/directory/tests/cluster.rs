//! Three banks' directories in one process, real openraft over the in-process mesh (every
//! message through JSON) and real SQLite files in a temp dir: concurrent registrations, a
//! leader stopped during a stream of writes, a partitioned minority, restarts from the files.
//! Every wait is a bounded loop with a generous limit; nothing asserts how fast anything is.

use directory::mesh::Mesh;
use directory::{
    Applied, Command, Conflict, DECISIONS_PER_ENTRY_MAX, Decision, Directory, DirectoryError,
    NodeId, Settings,
};
use ledger::{AccountNumber, BankCode, Cpf, Document, EndToEndId, PixKey, PixKeyType};
use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::{Instant, sleep, timeout};

/// Generous bound for anything that should take a second or two: an election, a catch-up.
const SETTLE: Duration = Duration::from_secs(20);

struct Cluster {
    mesh: Arc<Mesh>,
    dir: tempfile::TempDir,
    ids: Vec<NodeId>,
    nodes: BTreeMap<NodeId, Directory>,
    settings: Settings,
}

impl Cluster {
    async fn start(settings: Settings) -> Cluster {
        let mut cluster = Cluster {
            mesh: Mesh::new(),
            dir: tempfile::tempdir().expect("temp dir"),
            ids: vec![1, 2, 3],
            nodes: BTreeMap::new(),
            settings,
        };
        for id in cluster.ids.clone() {
            cluster.boot(id).await;
        }
        cluster
    }

    fn path(&self, id: NodeId) -> PathBuf {
        self.dir.path().join(format!("bank{id}-directory.db"))
    }

    /// Starts (or restarts, from its files) member `id` and makes it reachable.
    async fn boot(&mut self, id: NodeId) {
        let node = Directory::start_with(
            id,
            self.ids.clone(),
            &self.path(id),
            self.mesh.endpoint(id),
            self.settings.clone(),
        )
        .await
        .expect("start directory");
        self.mesh.join(&node);
        self.nodes.insert(id, node);
    }

    /// Stops member `id`: unreachable at once, then shut down (its files stay).
    async fn stop(&mut self, id: NodeId) {
        self.mesh.leave(id);
        let node = self.nodes.remove(&id).expect("running");
        node.shutdown().await;
    }

    fn node(&self, id: NodeId) -> &Directory {
        &self.nodes[&id]
    }

    /// A member other than `leader`.
    fn follower_of(&self, leader: NodeId) -> NodeId {
        *self
            .ids
            .iter()
            .find(|id| **id != leader)
            .expect("a follower")
    }

    /// The leader that every running member reachable from it agrees on, within `SETTLE`.
    async fn leader(&self, among: &[NodeId]) -> NodeId {
        eventually("a leader all agree on", || async {
            let leader = self.node(among[0]).leader()?;
            let agreed = among
                .iter()
                .all(|id| self.node(*id).leader() == Some(leader));
            (agreed && among.contains(&leader)).then_some(leader)
        })
        .await
    }

    /// Waits until every member in `among` has applied as far as the furthest of them.
    async fn converge(&self, among: &[NodeId]) {
        let index = among
            .iter()
            .filter_map(|id| self.node(*id).metrics().last_applied.map(|l| l.index))
            .max()
            .unwrap_or(0);
        for id in among {
            assert!(
                self.node(*id).wait_for_index(index, SETTLE).await,
                "bank {id} did not apply up to {index}"
            );
        }
    }
}

/// Polls `check` every 50 ms until it gives a value, for at most `SETTLE`.
async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + SETTLE;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "not within {SETTLE:?}: {what}");
        sleep(Duration::from_millis(50)).await;
    }
}

/// Writes through `node`, retrying while the directory answers `Unavailable` (an election),
/// for at most `SETTLE`.
async fn write_retrying(node: &Directory, command: Command) -> Result<Applied, DirectoryError> {
    let deadline = Instant::now() + SETTLE;
    loop {
        match node.write(command.clone()).await {
            Err(DirectoryError::Unavailable) if Instant::now() < deadline => {
                sleep(Duration::from_millis(100)).await;
            }
            other => return other,
        }
    }
}

fn cpf(n: u32) -> Document {
    Document::Cpf(Cpf::from_base(n).expect("cpf"))
}

fn bank(id: NodeId) -> BankCode {
    BankCode::parse(&format!("{id:08}")).expect("bank code")
}

fn account(n: u64) -> AccountNumber {
    AccountNumber::from_base(n).expect("account number")
}

fn register(doc: u32, username: &str, home: NodeId) -> Command {
    Command::RegisterCustomer {
        document: cpf(doc),
        name: format!("Customer {doc}"),
        username: username.to_owned(),
        password_hash: format!("hash-of-{doc}-at-{home}"),
        home_bank: bank(home),
    }
}

fn email(name: &str) -> PixKey {
    PixKey::parse_typed(PixKeyType::Email, &format!("{name}@example.com")).expect("key")
}

/// Each bank proposes its own command at the same moment; exactly one is applied, the others
/// get `conflict`, and every replica then holds the winner's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_claims_of_one_document_username_or_key_exactly_one_wins() {
    let cluster = Cluster::start(Settings::default()).await;
    cluster.leader(&cluster.ids).await;
    // Each bank's customer and account, so that each can claim a key for its own account.
    for id in cluster.ids.clone() {
        let doc = 900 + id as u32;
        let node = cluster.node(id);
        write_retrying(node, register(doc, &format!("owner{id}"), id))
            .await
            .expect("register owner");
        write_retrying(
            node,
            Command::AddAccount {
                document: cpf(doc),
                bank: bank(id),
                account: account(100 + id),
            },
        )
        .await
        .expect("open account");
    }

    type Claim = fn(NodeId) -> Command;
    let cases: [(&str, Claim, Conflict); 3] = [
        (
            "one CPF, three usernames",
            |id| register(7, &format!("seven-at-{id}"), id),
            Conflict::DuplicateDocument,
        ),
        (
            "three CPFs, one username",
            |id| register(10 + id as u32, "same-name", id),
            Conflict::DuplicateUsername,
        ),
        (
            "one key, three accounts",
            |id| Command::AddPixKey {
                key: email("contested"),
                bank: bank(id),
                account: account(100 + id),
                holder_name: format!("Owner {id}"),
                document: cpf(900 + id as u32),
            },
            Conflict::DuplicatePixKey,
        ),
    ];
    for (what, claim, conflict) in cases {
        let mut tasks = Vec::new();
        for id in cluster.ids.clone() {
            let node = cluster.node(id).clone();
            tasks.push(tokio::spawn(async move {
                (id, write_retrying(&node, claim(id)).await)
            }));
        }
        let mut winners = Vec::new();
        for task in tasks {
            let (id, result) = task.await.expect("task");
            match result {
                // Unchanged: a retry of this bank's own write, applied before its answer was lost.
                Ok(_) => winners.push(id),
                Err(DirectoryError::Conflict(got)) => assert_eq!(got, conflict, "{what}"),
                Err(other) => panic!("{what}: bank {id} got {other:?}"),
            }
        }
        assert_eq!(winners.len(), 1, "{what}: winners {winners:?}");
        let winner = claim(winners[0]);
        cluster.converge(&cluster.ids).await;
        for id in &cluster.ids {
            let node = cluster.node(*id);
            match &winner {
                Command::RegisterCustomer {
                    document, username, ..
                } => {
                    let by_document = node.customer_by_document(document).expect("read");
                    let by_username = node.customer_by_username(username).expect("read");
                    assert!(by_document.is_some(), "{what}: bank {id}");
                    assert_eq!(by_document, by_username, "{what}: bank {id}");
                    assert_eq!(
                        by_document.map(|c| c.home_bank),
                        Some(bank(winners[0])),
                        "{what}: bank {id} holds another winner"
                    );
                }
                Command::AddPixKey { key, .. } => {
                    let entry = node.pix_key(key).expect("read").expect("key replicated");
                    assert_eq!(entry.bank, bank(winners[0]), "{what}: bank {id}");
                    assert_eq!(entry.account, account(100 + winners[0]), "{what}");
                }
                other => unreachable!("{other:?}"),
            }
        }
    }
}

/// A stream of writes through the two other banks while the leader is stopped: every write
/// that was acknowledged is on both survivors, and they elect a new leader.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_leader_stopped_mid_stream_loses_no_acknowledged_write() {
    let mut cluster = Cluster::start(Settings::default()).await;
    let old = cluster.leader(&cluster.ids).await;
    let survivors: Vec<NodeId> = cluster
        .ids
        .iter()
        .copied()
        .filter(|id| *id != old)
        .collect();
    let writers: Vec<Directory> = survivors
        .iter()
        .map(|id| cluster.node(*id).clone())
        .collect();
    let stream = tokio::spawn(async move {
        let mut acknowledged = Vec::new();
        for n in 0..40u32 {
            let writer = &writers[n as usize % writers.len()];
            // One try each: a write refused during the election is simply not acknowledged.
            if writer
                .write(register(1000 + n, &format!("stream{n}"), writer.id()))
                .await
                .is_ok()
            {
                acknowledged.push(n);
            }
            sleep(Duration::from_millis(50)).await;
        }
        acknowledged
    });
    sleep(Duration::from_millis(600)).await;
    cluster.stop(old).await;
    let acknowledged = stream.await.expect("stream");
    let new = cluster.leader(&survivors).await;
    assert_ne!(new, old);
    assert!(!acknowledged.is_empty(), "no write was acknowledged at all");
    // After the election, writes go through again.
    write_retrying(
        cluster.node(survivors[0]),
        register(2000, "after", survivors[0]),
    )
    .await
    .expect("a write after the election");
    cluster.converge(&survivors).await;
    for id in &survivors {
        for n in &acknowledged {
            assert!(
                cluster
                    .node(*id)
                    .customer_by_document(&cpf(1000 + n))
                    .expect("read")
                    .is_some(),
                "bank {id} lost acknowledged write {n}"
            );
        }
    }
    // The stopped leader comes back from its files and catches up.
    cluster.boot(old).await;
    cluster.converge(&cluster.ids).await;
    for n in &acknowledged {
        assert!(
            cluster
                .node(old)
                .customer_by_document(&cpf(1000 + n))
                .expect("read")
                .is_some(),
            "the restarted bank misses write {n}"
        );
    }
}

/// A follower cut off from the others: its writes fail fast with `Unavailable` while the
/// majority goes on writing, its reads still answer (from its own copy), and once healed it
/// catches up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partitioned_follower_fails_fast_and_catches_up_after_healing() {
    let cluster = Cluster::start(Settings::default()).await;
    let leader = cluster.leader(&cluster.ids).await;
    write_retrying(cluster.node(leader), register(1, "before", leader))
        .await
        .expect("first write");
    // Every member has the first write before one is cut off (the metrics `converge` reads may
    // lag the leader's own apply by a moment, so ask each member for the row itself).
    for id in cluster.ids.clone() {
        eventually("every member has the first write", || async {
            cluster
                .node(id)
                .customer_by_username("before")
                .expect("read")
                .map(|_| ())
        })
        .await;
    }
    let cut = cluster.follower_of(leader);
    let majority: Vec<NodeId> = cluster
        .ids
        .iter()
        .copied()
        .filter(|id| *id != cut)
        .collect();
    cluster.mesh.isolate(cut);

    let refused = timeout(
        SETTLE,
        cluster.node(cut).write(register(2, "minority", cut)),
    )
    .await
    .expect("a write in the minority answers, and does not hang");
    assert_eq!(refused, Err(DirectoryError::Unavailable));
    assert_eq!(refused.unwrap_err().code(), "directory_unavailable");

    write_retrying(
        cluster.node(majority[0]),
        register(3, "majority", majority[0]),
    )
    .await
    .expect("the majority writes");
    // Reads and logins go on in the minority, from its own copy.
    assert!(
        cluster
            .node(cut)
            .customer_by_username("before")
            .expect("read")
            .is_some()
    );
    assert!(
        cluster
            .node(cut)
            .customer_by_username("majority")
            .expect("read")
            .is_none()
    );

    cluster.mesh.heal(cut);
    eventually("the healed bank has the majority's write", || async {
        cluster.node(cut).customer_by_username("majority").ok()?
    })
    .await;
    // The refused write was never applied anywhere; a retry through the healed bank works.
    for id in &cluster.ids {
        assert!(
            cluster
                .node(*id)
                .customer_by_username("minority")
                .expect("read")
                .is_none()
        );
    }
    write_retrying(cluster.node(cut), register(2, "minority", cut))
        .await
        .expect("the healed bank writes again");
}

/// The leader itself cut off: its writes fail (it cannot reach a majority), the others elect a
/// new leader and go on, and when the old one is healed it drops what it could not commit and
/// takes the majority's log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partitioned_leader_cannot_commit_and_rejoins_the_majority() {
    let cluster = Cluster::start(Settings::default()).await;
    let old = cluster.leader(&cluster.ids).await;
    let majority: Vec<NodeId> = cluster
        .ids
        .iter()
        .copied()
        .filter(|id| *id != old)
        .collect();
    cluster.mesh.isolate(old);

    let refused = timeout(SETTLE, cluster.node(old).write(register(5, "lost", old)))
        .await
        .expect("a write at the cut-off leader answers, and does not hang");
    assert_eq!(refused, Err(DirectoryError::Unavailable));

    let new = cluster.leader(&majority).await;
    assert_ne!(new, old);
    // The same username, claimed in the majority: it wins, the cut-off leader's never counted.
    write_retrying(cluster.node(majority[0]), register(6, "lost", majority[0]))
        .await
        .expect("the majority writes");

    cluster.mesh.heal(old);
    eventually("the old leader follows the new one", || async {
        (cluster.node(old).leader() == Some(cluster.node(majority[0]).leader()?)).then_some(())
    })
    .await;
    cluster.converge(&cluster.ids).await;
    for id in &cluster.ids {
        let holder = cluster
            .node(*id)
            .customer_by_username("lost")
            .expect("read");
        assert_eq!(
            holder.map(|c| c.document),
            Some(cpf(6)),
            "bank {id} kept the uncommitted registration"
        );
        assert!(
            cluster
                .node(*id)
                .customer_by_document(&cpf(5))
                .expect("read")
                .is_none()
        );
    }
}

/// A bank stopped while the others write, restarted from its files: it catches up from the
/// log (nothing was purged).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_bank_catches_up_from_the_log() {
    let mut cluster = Cluster::start(Settings::default()).await;
    let leader = cluster.leader(&cluster.ids).await;
    let down = cluster.follower_of(leader);
    write_retrying(cluster.node(leader), register(1, "one", leader))
        .await
        .expect("write");
    cluster.converge(&cluster.ids).await;
    cluster.stop(down).await;
    for n in 0..10 {
        write_retrying(
            cluster.node(leader),
            register(100 + n, &format!("w{n}"), leader),
        )
        .await
        .expect("write while a bank is down");
    }
    cluster.boot(down).await;
    // It had the first write already, from its own file, before catching up.
    assert!(
        cluster
            .node(down)
            .customer_by_username("one")
            .expect("read")
            .is_some()
    );
    cluster.converge(&cluster.ids).await;
    for n in 0..10 {
        assert!(
            cluster
                .node(down)
                .customer_by_username(&format!("w{n}"))
                .expect("read")
                .is_some(),
            "w{n} missing after the restart"
        );
    }
    assert_eq!(
        cluster.node(down).metrics().snapshot,
        None,
        "caught up from the log"
    );
}

/// The same, with the leader snapshotting and purging its log while the bank is down: the log
/// it needs is gone, so it catches up by installing the leader's snapshot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_bank_catches_up_from_a_snapshot_when_the_log_is_purged() {
    let settings = Settings {
        snapshot_every: 10,
        logs_kept: 0,
        ..Settings::default()
    };
    let mut cluster = Cluster::start(settings).await;
    let leader = cluster.leader(&cluster.ids).await;
    let down = cluster.follower_of(leader);
    write_retrying(cluster.node(leader), register(1, "one", leader))
        .await
        .expect("write");
    cluster.converge(&cluster.ids).await;
    let behind = cluster
        .node(down)
        .metrics()
        .last_applied
        .map(|l| l.index)
        .unwrap_or(0);
    cluster.stop(down).await;
    for n in 0..30 {
        write_retrying(
            cluster.node(leader),
            register(100 + n, &format!("w{n}"), leader),
        )
        .await
        .expect("write while a bank is down");
    }
    eventually(
        "the leader purged past the stopped bank's position",
        || async {
            let purged = cluster.node(leader).metrics().purged?.index;
            (purged > behind).then_some(())
        },
    )
    .await;
    cluster.boot(down).await;
    cluster.converge(&cluster.ids).await;
    for n in 0..30 {
        assert!(
            cluster
                .node(down)
                .customer_by_username(&format!("w{n}"))
                .expect("read")
                .is_some(),
            "w{n} missing after the restart"
        );
    }
    assert!(
        cluster.node(down).metrics().snapshot.is_some(),
        "the restarted bank installed a snapshot"
    );
    // And it survives another restart: the installed snapshot and what followed are on disk.
    cluster.stop(down).await;
    cluster.boot(down).await;
    assert!(
        cluster
            .node(down)
            .customer_by_username("w29")
            .expect("read")
            .is_some()
    );
}

/// `FIELD_BYTES_MAX`: a field one byte over is refused before anything is proposed, at a
/// follower and at the leader (a forwarded write is checked again); one at the limit is taken.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_field_over_its_limit_is_refused_before_the_log() {
    let cluster = Cluster::start(Settings::default()).await;
    let leader = cluster.leader(&cluster.ids).await;
    let follower = cluster.follower_of(leader);
    let named = |doc: u32, name: String| Command::RegisterCustomer {
        document: cpf(doc),
        name,
        username: format!("u{doc}"),
        password_hash: "hash".to_owned(),
        home_bank: bank(follower),
    };
    let over = named(1, "x".repeat(directory::FIELD_BYTES_MAX + 1));
    assert_eq!(
        cluster.node(follower).write(over.clone()).await,
        Err(DirectoryError::Invalid("name".to_owned()))
    );
    match cluster
        .node(leader)
        .handle(directory::Message::Write(over))
        .await
    {
        directory::Reply::Write(result) => {
            assert_eq!(result, Err(directory::Refused::Invalid("name".to_owned())))
        }
        other => panic!("a write got {other:?}"),
    }
    let at_limit = named(2, "x".repeat(directory::FIELD_BYTES_MAX));
    write_retrying(cluster.node(follower), at_limit)
        .await
        .expect("a field at the limit is taken");
    // A write through a follower answers once the follower has applied it too: a read there
    // right after sees it (the leader applied it first).
    assert!(
        cluster
            .node(follower)
            .customer_by_document(&cpf(2))
            .expect("read")
            .is_some(),
        "the follower's own write is not visible there yet"
    );
    // The refused one was never proposed: had it been, it would have been applied (it is valid
    // but for its length) before the later write.
    cluster.converge(&cluster.ids).await;
    for id in &cluster.ids {
        assert!(
            cluster
                .node(*id)
                .customer_by_document(&cpf(1))
                .expect("read")
                .is_none()
        );
    }
}

/// A member that sends a message speaking for another (standing for election, or leading, in
/// its name), or a bank outside the group, is refused before Raft sees it. Every message in
/// these tests goes through the same check (the mesh calls `handle_from`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_speaking_for_another_bank_is_refused() {
    use openraft::Vote;
    use openraft::raft::{AppendEntriesRequest, VoteRequest};
    let cluster = Cluster::start(Settings::default()).await;
    let leader = cluster.leader(&cluster.ids).await;
    let others: Vec<NodeId> = cluster
        .ids
        .iter()
        .copied()
        .filter(|id| *id != leader)
        .collect();
    let (forger, victim) = (others[0], others[1]);
    let term_before = cluster.node(victim).metrics().current_term;
    let as_leader = directory::Message::AppendEntries(AppendEntriesRequest {
        vote: Vote::new_committed(term_before + 5, leader),
        prev_log_id: None,
        entries: Vec::new(),
        leader_commit: None,
    });
    let as_candidate = directory::Message::Vote(VoteRequest {
        vote: Vote::new(term_before + 5, leader),
        last_log_id: None,
    });
    for message in [as_leader, as_candidate] {
        let refused = cluster.node(victim).handle_from(forger, message).await;
        assert_eq!(
            refused.err(),
            Some(directory::Forged {
                from: forger,
                speaks_for: Some(leader)
            })
        );
    }
    let outsider = cluster
        .node(victim)
        .handle_from(7, directory::Message::Write(register(1, "outsider", 7)))
        .await;
    assert!(outsider.is_err(), "a bank outside the group was served");
    // (Not equality: an election may happen meanwhile on a loaded machine; the forged term is
    // five ahead, far beyond what one could reach here.)
    assert!(
        cluster.node(victim).metrics().current_term < term_before + 5,
        "a refused message moved the term"
    );
    assert!(
        cluster
            .node(victim)
            .customer_by_username("outsider")
            .expect("read")
            .is_none()
    );
}

/// Many contested claims in flight at once (ten CPFs, each claimed at all three banks, thirty
/// writes together): each CPF has exactly one winner, and every replica holds the same one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_contested_claims_at_once_each_have_exactly_one_winner() {
    let cluster = Cluster::start(Settings::default()).await;
    cluster.leader(&cluster.ids).await;
    let mut tasks = Vec::new();
    for n in 0..10u32 {
        for id in cluster.ids.clone() {
            let node = cluster.node(id).clone();
            tasks.push(tokio::spawn(async move {
                let result =
                    write_retrying(&node, register(500 + n, &format!("c{n}-{id}"), id)).await;
                (n, id, result)
            }));
        }
    }
    let mut winners: BTreeMap<u32, Vec<NodeId>> = BTreeMap::new();
    for task in tasks {
        let (n, id, result) = task.await.expect("task");
        match result {
            Ok(_) => winners.entry(n).or_default().push(id),
            Err(DirectoryError::Conflict(Conflict::DuplicateDocument)) => {}
            Err(other) => panic!("claim {n} at bank {id}: {other:?}"),
        }
    }
    cluster.converge(&cluster.ids).await;
    for n in 0..10u32 {
        let ids = winners.get(&n).cloned().unwrap_or_default();
        assert_eq!(ids.len(), 1, "CPF {n}: winners {ids:?}");
        let winner = ids[0];
        for id in &cluster.ids {
            let customer = cluster
                .node(*id)
                .customer_by_document(&cpf(500 + n))
                .expect("read")
                .expect("replicated");
            assert_eq!(
                customer.username,
                format!("c{n}-{winner}"),
                "bank {id}, CPF {n}"
            );
            assert_eq!(customer.home_bank, bank(winner), "bank {id}, CPF {n}");
        }
    }
}

/// Proposes `decisions` through `node`, retrying while the directory answers `Unavailable`, for
/// at most `SETTLE`.
async fn decide_retrying(node: &Directory, decisions: Vec<Decision>) -> Vec<bool> {
    let deadline = Instant::now() + SETTLE;
    loop {
        match node.decide(decisions.clone()).await {
            Err(DirectoryError::Unavailable) if Instant::now() < deadline => {
                sleep(Duration::from_millis(100)).await;
            }
            other => return other.expect("decide"),
        }
    }
}

fn e2e(bank_id: NodeId, n: u64) -> EndToEndId {
    EndToEndId::sequenced(bank(bank_id), "202612070300", n)
}

/// Interbank decisions (issue #24): the first recorded for a transaction wins, and every later
/// proposal, at any bank and in any batch, is answered that winner; every replica holds it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_decision_in_the_log_wins_over_a_later_conflicting_one() {
    let cluster = Cluster::start(Settings::default()).await;
    let leader = cluster.leader(&cluster.ids).await;
    let follower = cluster.follower_of(leader);
    let (a, b) = (e2e(1, 1), e2e(1, 2));
    let decide = |e2e: &EndToEndId, commit| Decision {
        e2e: e2e.clone(),
        commit,
    };
    // The coordinator's commit is first for `a`; a participant's abort is first for `b`.
    assert_eq!(
        decide_retrying(cluster.node(follower), vec![decide(&a, true)]).await,
        vec![true]
    );
    assert_eq!(
        decide_retrying(
            cluster.node(leader),
            vec![decide(&b, false), decide(&a, false)]
        )
        .await,
        vec![false, true],
        "the later abort of `a` learns the commit"
    );
    for id in cluster.ids.clone() {
        assert_eq!(
            decide_retrying(cluster.node(id), vec![decide(&b, true)]).await,
            vec![false],
            "bank {id}: the later commit of `b` learns the abort"
        );
    }
    // Contested at once: each of twenty transactions proposed commit at one bank and abort at
    // the others, all together; each has one winner, told to every proposer.
    let mut tasks = Vec::new();
    for n in 10..30u64 {
        for id in cluster.ids.clone() {
            let node = cluster.node(id).clone();
            let proposal = decide(&e2e(2, n), id == 2);
            tasks.push(tokio::spawn(async move {
                (n, decide_retrying(&node, vec![proposal]).await[0])
            }));
        }
    }
    let mut told: BTreeMap<u64, Vec<bool>> = BTreeMap::new();
    for task in tasks {
        let (n, winner) = task.await.expect("task");
        told.entry(n).or_default().push(winner);
    }
    cluster.converge(&cluster.ids).await;
    for (n, answers) in told {
        assert!(
            answers.windows(2).all(|w| w[0] == w[1]),
            "transaction {n}: proposers were told {answers:?}"
        );
        for id in &cluster.ids {
            assert_eq!(
                cluster.node(*id).decision(&e2e(2, n)).expect("read"),
                Some(answers[0]),
                "bank {id}, transaction {n}"
            );
        }
    }
    for id in &cluster.ids {
        let node = cluster.node(*id);
        assert_eq!(node.decision(&a).expect("read"), Some(true), "bank {id}");
        assert_eq!(node.decision(&b).expect("read"), Some(false), "bank {id}");
        assert_eq!(node.decision(&e2e(3, 1)).expect("read"), None, "bank {id}");
    }
    // A batch over its limit is refused before the log.
    let too_many = (0..=DECISIONS_PER_ENTRY_MAX as u64)
        .map(|n| decide(&e2e(3, n), false))
        .collect();
    assert_eq!(
        cluster.node(leader).decide(too_many).await,
        Err(DirectoryError::Invalid("decisions".to_owned()))
    );
    assert_eq!(
        cluster.node(leader).decision(&e2e(3, 0)).expect("read"),
        None
    );
}

/// Carries a front's messages for its own bank to whichever process runs the bank's member now
/// (as bankd's processes sharing a directory file do over HTTP).
#[derive(Default)]
struct ToMember(std::sync::Mutex<Option<Directory>>);

#[async_trait::async_trait]
impl directory::Transport for ToMember {
    async fn call(
        &self,
        target: NodeId,
        message: directory::Message,
    ) -> Result<directory::Reply, directory::TransportError> {
        let member = self.0.lock().unwrap().clone();
        match member {
            Some(member) => Ok(member.handle(message).await),
            None => Err(directory::TransportError {
                target,
                reason: "no process runs the member".to_owned(),
            }),
        }
    }
}

/// Two processes of one bank on one directory file: one runs the member, the other is a front
/// that reads the file and writes through it; only one may run the member at a time, and when
/// it stops the other takes it over with the log and votes in the file.
#[tokio::test]
async fn a_front_writes_through_the_member_and_takes_it_over() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("directory.db");
    let routes = Arc::new(ToMember::default());
    let settings = Settings::default();
    let a = Directory::start_with(1, [1], &path, routes.clone(), settings.clone())
        .await
        .expect("member");
    *routes.0.lock().unwrap() = Some(a.clone());
    let b = Directory::front(1, [1], &path, routes.clone(), settings).expect("front");
    assert!(a.is_member() && !b.is_member());

    // Written through the front, read back at once from the file by both.
    write_retrying(&b, register(1, "ana", 1))
        .await
        .expect("a write through the front");
    for process in [&a, &b] {
        assert_eq!(
            process
                .customer_by_username("ana")
                .expect("read")
                .map(|c| c.username),
            Some("ana".to_owned())
        );
    }
    assert_eq!(
        b.write(register(1, "ana2", 1)).await,
        Err(DirectoryError::Conflict(Conflict::DuplicateDocument))
    );
    // The front reads where the member stands from the file: its leader, term, last entry.
    // (openraft may report an apply a moment after the file holds it.)
    let standing = a.standing().expect("the member's standing");
    let read = b.standing().expect("read from the file");
    assert_eq!(standing.leader, Some(1));
    assert_eq!((read.leader, read.term), (standing.leader, standing.term));
    assert_eq!(b.leader(), Some(1));
    assert!(read.last_applied >= standing.last_applied && read.last_applied.is_some());
    // The member's file lock keeps the front from running a second member on it.
    assert!(b.run_member().await.is_err(), "two members on one file");

    // The member stops (its process loses the bank's duties): the front takes over.
    a.shutdown().await;
    assert!(!a.is_member());
    b.run_member()
        .await
        .expect("the front takes the member over");
    *routes.0.lock().unwrap() = Some(b.clone());
    assert!(b.customer_by_username("ana").expect("read").is_some());
    write_retrying(&a, register(2, "bia", 1))
        .await
        .expect("a write through the new member");
    write_retrying(&b, register(3, "caio", 1))
        .await
        .expect("a write at the new member");
    for process in [&a, &b] {
        for username in ["ana", "bia", "caio"] {
            assert!(
                process
                    .customer_by_username(username)
                    .expect("read")
                    .is_some(),
                "{username}"
            );
        }
    }
    b.shutdown().await;
}
