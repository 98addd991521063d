//! The state machine alone: each command's answer, given what was applied before it
//! (data-driven), and that applying is deterministic — the same log gives the same answers and
//! the same rows, however it is split into batches.

use directory::store::{StateMachine, open_store};
use directory::{Command, Conflict, Effect, Response, TypeConfig};
use ledger::{AccountNumber, BankCode, Cpf, Document, PixKey, PixKeyType};
use openraft::storage::RaftStateMachine;
use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId, RaftSnapshotBuilder};

fn cpf(n: u32) -> Document {
    Document::Cpf(Cpf::from_base(n).expect("cpf"))
}

fn bank(n: u8) -> BankCode {
    BankCode::parse(&format!("0000000{n}")).expect("bank code")
}

fn account(n: u64) -> AccountNumber {
    AccountNumber::from_base(n).expect("account number")
}

fn email(name: &str) -> PixKey {
    PixKey::parse_typed(PixKeyType::Email, &format!("{name}@example.com")).expect("email key")
}

fn register(doc: u32, username: &str, hash: &str, home: u8) -> Command {
    Command::RegisterCustomer {
        document: cpf(doc),
        name: format!("Customer {doc}"),
        username: username.to_owned(),
        password_hash: hash.to_owned(),
        home_bank: bank(home),
    }
}

fn open_account(doc: u32, at: u8, number: u64) -> Command {
    Command::AddAccount {
        document: cpf(doc),
        bank: bank(at),
        account: account(number),
    }
}

fn add_key(key: &str, at: u8, number: u64, doc: u32) -> Command {
    Command::AddPixKey {
        key: email(key),
        bank: bank(at),
        account: account(number),
        holder_name: format!("Customer {doc}"),
        document: cpf(doc),
    }
}

fn remove_key(key: &str, at: u8) -> Command {
    Command::RemovePixKey {
        key: email(key),
        bank: bank(at),
    }
}

const CHANGED: Response = Ok(Effect::Changed);
const UNCHANGED: Response = Ok(Effect::Unchanged);

fn conflict(c: Conflict) -> Response {
    Err(c)
}

/// One story of the log: each command with the answer it must get.
fn story() -> Vec<(&'static str, Command, Response)> {
    use Conflict::*;
    vec![
        (
            "ana registers at bank 1",
            register(1, "ana", "h1", 1),
            CHANGED,
        ),
        (
            "the same registration again (a retry)",
            register(1, "ana", "h1", 1),
            UNCHANGED,
        ),
        (
            "ana's CPF again at bank 2",
            register(1, "ana2", "h2", 2),
            conflict(DuplicateDocument),
        ),
        (
            "ana's CPF, same username, other hash",
            register(1, "ana", "h2", 1),
            conflict(DuplicateDocument),
        ),
        (
            "another CPF takes ana's username",
            register(2, "ana", "h3", 2),
            conflict(DuplicateUsername),
        ),
        (
            "bia registers at bank 2",
            register(2, "bia", "h4", 2),
            CHANGED,
        ),
        (
            "a key before any account",
            add_key("ana", 1, 100, 1),
            conflict(AccountNotHeld),
        ),
        (
            "an account of nobody registered",
            open_account(3, 1, 300),
            conflict(CustomerNotFound),
        ),
        ("ana's account at bank 1", open_account(1, 1, 100), CHANGED),
        ("the same account again", open_account(1, 1, 100), UNCHANGED),
        (
            "bia joins ana's account (joint)",
            open_account(2, 1, 100),
            CHANGED,
        ),
        (
            "ana's key on her account",
            add_key("ana", 1, 100, 1),
            CHANGED,
        ),
        (
            "the same key again (a retry)",
            add_key("ana", 1, 100, 1),
            UNCHANGED,
        ),
        (
            "bia takes ana's key",
            add_key("ana", 1, 100, 2),
            conflict(DuplicatePixKey),
        ),
        (
            "ana's key to another account",
            add_key("ana", 1, 101, 1),
            conflict(DuplicatePixKey),
        ),
        (
            "a key on an account ana does not hold",
            add_key("ana-b", 2, 200, 1),
            conflict(AccountNotHeld),
        ),
        (
            "a key of nobody registered",
            add_key("zed", 1, 100, 3),
            conflict(CustomerNotFound),
        ),
        (
            "bia's key on the joint account",
            add_key("bia", 1, 100, 2),
            CHANGED,
        ),
        (
            "bank 2 removes a key of bank 1",
            remove_key("ana", 2),
            conflict(PixKeyNotYours),
        ),
        ("bank 1 removes ana's key", remove_key("ana", 1), CHANGED),
        ("removed twice (a retry)", remove_key("ana", 1), UNCHANGED),
        (
            "bia now takes the freed key",
            add_key("ana", 1, 100, 2),
            CHANGED,
        ),
    ]
}

fn entries(commands: impl IntoIterator<Item = Command>) -> Vec<Entry<TypeConfig>> {
    commands
        .into_iter()
        .enumerate()
        .map(|(i, command)| Entry {
            log_id: LogId::new(CommittedLeaderId::new(1, 1), i as u64 + 1),
            payload: EntryPayload::Normal(command),
        })
        .collect()
}

fn fresh() -> (tempfile::TempDir, StateMachine) {
    let dir = tempfile::tempdir().expect("temp dir");
    let (_log, machine) = open_store(&dir.path().join("directory.db")).expect("open");
    (dir, machine)
}

async fn snapshot_bytes(machine: &mut StateMachine) -> Vec<u8> {
    let snapshot = machine
        .get_snapshot_builder()
        .await
        .build_snapshot()
        .await
        .expect("snapshot");
    snapshot.snapshot.into_inner()
}

#[tokio::test]
async fn each_command_gets_the_answer_its_place_in_the_log_gives() {
    let (_dir, mut machine) = fresh();
    let story = story();
    let answers = machine
        .apply(entries(story.iter().map(|(_, c, _)| c.clone())))
        .await
        .expect("apply");
    for ((what, _, expected), got) in story.iter().zip(&answers) {
        assert_eq!(got, expected, "{what}");
    }
    assert_eq!(answers.len(), story.len());
}

#[tokio::test]
async fn a_refused_command_changes_nothing() {
    let (_dir, mut machine) = fresh();
    let mut index = 0;
    for (what, command, expected) in story() {
        let before = snapshot_bytes(&mut machine).await;
        index += 1;
        let entry = Entry {
            log_id: LogId::new(CommittedLeaderId::new(1, 1), index),
            payload: EntryPayload::Normal(command),
        };
        let got = machine.apply([entry]).await.expect("apply");
        assert_eq!(got, vec![expected.clone()], "{what}");
        let after = snapshot_bytes(&mut machine).await;
        // The snapshot's bytes are the rows only; its position is in its metadata.
        if expected.is_err() || expected == UNCHANGED {
            assert_eq!(before, after, "{what} changed the rows");
        } else {
            assert_ne!(before, after, "{what} did not change the rows");
        }
    }
}

#[tokio::test]
async fn the_same_log_gives_the_same_answers_and_rows_in_any_batches() {
    let story = story();
    let log = entries(story.iter().map(|(_, c, _)| c.clone()));
    let (_a, mut whole) = fresh();
    let (_b, mut one_by_one) = fresh();
    let (_c, mut in_threes) = fresh();
    let answers_whole = whole.apply(log.clone()).await.expect("apply");
    let mut answers_single = Vec::new();
    for entry in &log {
        answers_single.extend(one_by_one.apply([entry.clone()]).await.expect("apply"));
    }
    let mut answers_threes = Vec::new();
    for chunk in log.chunks(3) {
        answers_threes.extend(in_threes.apply(chunk.to_vec()).await.expect("apply"));
    }
    assert_eq!(answers_whole, answers_single);
    assert_eq!(answers_whole, answers_threes);
    let rows = snapshot_bytes(&mut whole).await;
    assert_eq!(rows, snapshot_bytes(&mut one_by_one).await);
    assert_eq!(rows, snapshot_bytes(&mut in_threes).await);
}

#[tokio::test]
async fn a_snapshot_installed_elsewhere_gives_the_same_rows_and_position() {
    let (_a, mut source) = fresh();
    source
        .apply(entries(story().into_iter().map(|(_, c, _)| c)))
        .await
        .expect("apply");
    let snapshot = source
        .get_snapshot_builder()
        .await
        .build_snapshot()
        .await
        .expect("snapshot");
    let (_b, mut target) = fresh();
    // Something already there is replaced, not merged.
    target
        .apply(entries([register(9, "zoe", "h9", 3)]))
        .await
        .expect("apply");
    target
        .install_snapshot(&snapshot.meta, snapshot.snapshot.clone())
        .await
        .expect("install");
    assert_eq!(
        snapshot_bytes(&mut target).await,
        snapshot.snapshot.into_inner()
    );
    let (applied, _) = target.applied_state().await.expect("applied state");
    assert_eq!(applied, snapshot.meta.last_log_id);
}

#[tokio::test]
async fn a_command_travels_as_json_and_is_validated_again_on_the_way_in() {
    let command = add_key("ana", 1, 100, 1);
    let text = serde_json::to_string(&command).expect("json");
    assert_eq!(
        serde_json::from_str::<Command>(&text).expect("parse"),
        command
    );
    let forged = text.replace(cpf(1).as_str(), "11111111112");
    assert!(
        serde_json::from_str::<Command>(&forged).is_err(),
        "a CPF with a wrong check digit is refused: {forged}"
    );
}

/// The end-to-end id of bank 1's transaction `n`.
fn decision_e2e(n: u64) -> ledger::EndToEndId {
    ledger::EndToEndId::sequenced(bank(1), "202612070300", n)
}

/// Records `(transaction, commit)` for each pair and forgets the transactions of `forget`.
fn record_decisions(pairs: &[(u64, bool)], forget: &[u64]) -> Command {
    Command::RecordDecisions {
        decisions: pairs
            .iter()
            .map(|(n, commit)| directory::Decision {
                e2e: decision_e2e(*n),
                commit: *commit,
            })
            .collect(),
        forget: forget.iter().map(|n| decision_e2e(*n)).collect(),
    }
}

/// Interbank decisions (issue #24): in one batch or across entries, the first recorded for a
/// transaction stands; they travel in a snapshot, replacing what the receiver held.
#[tokio::test]
async fn the_first_decision_stands_and_decisions_travel_in_a_snapshot() {
    let e2e = decision_e2e;
    let decide = |pairs: &[(u64, bool)]| record_decisions(pairs, &[]);
    let (_a, mut source) = fresh();
    let answers = source
        .apply(entries([
            decide(&[(1, true), (1, false)]),
            decide(&[(1, false)]),
            decide(&[(2, false), (1, false)]),
        ]))
        .await
        .expect("apply");
    let decided = |winners: &[bool], changed| {
        Ok(Effect::Decided {
            winners: winners.to_vec(),
            changed,
        })
    };
    let expected: Vec<Response> = vec![
        decided(&[true, true], true),
        decided(&[true], false),
        decided(&[false, true], true),
    ];
    assert_eq!(answers, expected);
    let snapshot = source
        .get_snapshot_builder()
        .await
        .build_snapshot()
        .await
        .expect("snapshot");
    let text = String::from_utf8(snapshot.snapshot.get_ref().clone()).expect("json");
    assert!(
        text.contains(&format!("[\"{}\",true]", e2e(1)))
            && text.contains(&format!("[\"{}\",false]", e2e(2))),
        "{text}"
    );
    let (_b, mut target) = fresh();
    target
        .apply(entries([decide(&[(1, false), (3, true)])]))
        .await
        .expect("apply");
    target
        .install_snapshot(&snapshot.meta, snapshot.snapshot.clone())
        .await
        .expect("install");
    assert_eq!(
        snapshot_bytes(&mut target).await,
        snapshot.snapshot.into_inner(),
        "the receiver holds the sender's decisions, and only those"
    );
}

/// Decisions of finished transactions are forgotten (issue #24: the table and the snapshots stay
/// the size of what is in flight), in the same entry as new ones; forgetting one the log does not
/// hold changes nothing.
#[tokio::test]
async fn forgotten_decisions_leave_the_table_and_the_snapshots() {
    let e2e = decision_e2e;
    let record = |commits: &[u64], forget: &[u64]| {
        let pairs: Vec<(u64, bool)> = commits.iter().map(|n| (*n, true)).collect();
        record_decisions(&pairs, forget)
    };
    let (_dir, mut machine) = fresh();
    let answers = machine
        .apply(entries([
            record(&[1, 2], &[]),
            record(&[3], &[1]),
            record(&[], &[1, 9]),
        ]))
        .await
        .expect("apply");
    let decided = |winners: &[bool], changed| {
        Ok(Effect::Decided {
            winners: winners.to_vec(),
            changed,
        })
    };
    let expected: Vec<Response> = vec![
        decided(&[true, true], true),
        decided(&[true], true),
        decided(&[], false),
    ];
    assert_eq!(answers, expected);
    let snapshot = machine
        .get_snapshot_builder()
        .await
        .build_snapshot()
        .await
        .expect("snapshot");
    let text = String::from_utf8(snapshot.snapshot.into_inner()).expect("json");
    assert!(
        !text.contains(&e2e(1).to_string())
            && text.contains(&e2e(2).to_string())
            && text.contains(&e2e(3).to_string()),
        "{text}"
    );
}
