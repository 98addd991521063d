//! The SQLite log store and state machine against openraft's own storage test suite (log
//! reads, purge, truncate, vote, applied state, membership, snapshot transfer), then what must
//! survive closing the file and opening it again.

use directory::store::{LogStore, StateMachine, open_store};
use directory::{Command, NodeId, TypeConfig};
use ledger::{BankCode, Cpf, Document};
use openraft::storage::{RaftLogStorage, RaftStateMachine};
use openraft::testing::{StoreBuilder, Suite};
use openraft::{
    CommittedLeaderId, Entry, EntryPayload, LogId, RaftLogReader, RaftSnapshotBuilder,
    StorageError, Vote,
};
use tempfile::TempDir;

struct SqliteBuilder;

impl StoreBuilder<TypeConfig, LogStore, StateMachine, TempDir> for SqliteBuilder {
    async fn build(&self) -> Result<(TempDir, LogStore, StateMachine), StorageError<NodeId>> {
        let dir = tempfile::tempdir().expect("temp dir");
        let (log, machine) = open_store(&dir.path().join("directory.db")).expect("open store");
        Ok((dir, log, machine))
    }
}

#[test]
fn passes_openraft_storage_suite() {
    Suite::test_all(SqliteBuilder).expect("openraft's storage suite");
}

fn log_id(term: u64, index: u64) -> LogId<NodeId> {
    LogId::new(CommittedLeaderId::new(term, 1), index)
}

fn register(n: u32) -> Command {
    Command::RegisterCustomer {
        document: Document::Cpf(Cpf::from_base(n).expect("cpf")),
        name: format!("Customer {n}"),
        username: format!("user{n}"),
        password_hash: "hash".to_owned(),
        home_bank: BankCode::parse("00000001").expect("bank"),
    }
}

/// openraft's suite checks each call; this checks that what the calls wrote is on disk: a
/// second open of the file sees the vote, the log, the purge, the applied position, the rows
/// and the snapshot.
#[tokio::test]
async fn everything_survives_reopening_the_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("directory.db");
    let entries: Vec<Entry<TypeConfig>> = (1..=6)
        .map(|i| Entry {
            log_id: log_id(2, i),
            payload: EntryPayload::Normal(register(100 + i as u32)),
        })
        .collect();
    {
        let (mut log, mut machine) = open_store(&path).expect("open");
        log.save_vote(&Vote::new_committed(2, 1))
            .await
            .expect("vote");
        // `blocking_append` runs `append` and waits for its durability callback.
        openraft::storage::RaftLogStorageExt::blocking_append(&mut log, entries.clone())
            .await
            .expect("append");
        let answers = machine.apply(entries[..4].to_vec()).await.expect("apply");
        assert!(answers.iter().all(Result::is_ok), "{answers:?}");
        machine
            .get_snapshot_builder()
            .await
            .build_snapshot()
            .await
            .expect("snapshot");
        log.purge(log_id(2, 2)).await.expect("purge");
    }
    let (mut log, mut machine) = open_store(&path).expect("reopen");
    assert_eq!(
        log.read_vote().await.expect("vote"),
        Some(Vote::new_committed(2, 1))
    );
    let state = log.get_log_state().await.expect("log state");
    assert_eq!(state.last_purged_log_id, Some(log_id(2, 2)));
    assert_eq!(state.last_log_id, Some(log_id(2, 6)));
    let kept = log.try_get_log_entries(0..100).await.expect("entries");
    assert_eq!(
        kept.iter().map(|e| e.log_id.index).collect::<Vec<_>>(),
        vec![3, 4, 5, 6]
    );
    let (applied, _) = machine.applied_state().await.expect("applied");
    assert_eq!(applied, Some(log_id(2, 4)));
    let snapshot = machine
        .get_current_snapshot()
        .await
        .expect("snapshot")
        .expect("a snapshot was stored");
    assert_eq!(snapshot.meta.last_log_id, Some(log_id(2, 4)));
    // Entries 5 and 6 were not applied: applying them now registers two more customers, and
    // entry 4 applied again is the same registration, so it changes nothing.
    let answers = machine.apply(entries[3..].to_vec()).await.expect("apply");
    assert_eq!(
        answers,
        vec![
            Ok(directory::Effect::Unchanged),
            Ok(directory::Effect::Changed),
            Ok(directory::Effect::Changed)
        ]
    );
}
