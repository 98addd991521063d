//! The schema: one baseline that creates every table as it stands, then numbered migrations
//! after it, each applied once inside its own transaction. The database enforces what it can:
//! uniqueness, foreign keys, positive amounts, and that no customer account's debits ever exceed
//! its credits.
//!
//! Versions 1 to 14 were the schema's history during development (never shipped); a database
//! still at one of them is refused, not converted. The comments below say why each table is
//! shaped as it is, with what its earlier shapes cost.

use crate::StoreError;
use rusqlite::{Connection, params};

/// The version (`PRAGMA user_version`) the baseline creates: one past the last migration of the
/// development history it replaces.
const BASELINE_VERSION: i64 = 15;

const BASELINE: &str = r#"
    CREATE TABLE meta (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL
    ) WITHOUT ROWID;

    CREATE TABLE customers (
        id            INTEGER PRIMARY KEY,
        public_id     TEXT NOT NULL UNIQUE,
        name          TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 120),
        document      TEXT NOT NULL UNIQUE,
        kind          TEXT NOT NULL CHECK (kind IN ('individual', 'company')),
        username      TEXT NOT NULL UNIQUE,
        password_hash TEXT NOT NULL,
        home_bank     TEXT NOT NULL,
        clock         TEXT NOT NULL
    );

    CREATE TABLE sessions (
        token_hash    BLOB PRIMARY KEY,
        customer_id   INTEGER NOT NULL REFERENCES customers (id),
        expires_at_ms INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX sessions_by_customer ON sessions (customer_id);
    -- Expired sessions are purged (`PurgeSessions`, as customers log in), found by expiry.
    CREATE INDEX sessions_by_expiry ON sessions (expires_at_ms);

    -- No CHECK here (or anywhere on the write path) lists three or more names with `IN`: SQLite
    -- builds a temporary b-tree for such a list each time it checks a row, which was about a fifth
    -- of the writer's time; comparisons joined by OR say the same and cost nothing.
    --
    -- `last_entry` heads the account's statement, a chain through `entries.prev_entry`: new
    -- entries only append to `entries`, where an `(account, id)` index put every one on its
    -- account's own index page, about one more page written per entry at random places.
    CREATE TABLE accounts (
        id              INTEGER PRIMARY KEY,
        number          INTEGER UNIQUE,
        kind            TEXT NOT NULL CHECK (kind = 'individual' OR kind = 'company' OR kind = 'joint' OR kind = 'vault' OR kind = 'settlement'),
        peer_bank       TEXT UNIQUE,
        debits_pending  INTEGER NOT NULL DEFAULT 0 CHECK (debits_pending >= 0),
        debits_posted   INTEGER NOT NULL DEFAULT 0 CHECK (debits_posted >= 0),
        credits_pending INTEGER NOT NULL DEFAULT 0 CHECK (credits_pending >= 0),
        credits_posted  INTEGER NOT NULL DEFAULT 0 CHECK (credits_posted >= 0),
        clock           TEXT NOT NULL,
        last_entry      INTEGER REFERENCES entries (id),
        -- Customer accounts are the ones with a number; they never spend money they do not have.
        CHECK (kind = 'vault' OR kind = 'settlement' OR debits_posted + debits_pending <= credits_posted),
        CHECK ((kind = 'vault' OR kind = 'settlement') = (number IS NULL)),
        CHECK ((kind = 'settlement') = (peer_bank IS NOT NULL))
    );

    CREATE TABLE account_holders (
        account_id  INTEGER NOT NULL REFERENCES accounts (id),
        customer_id INTEGER NOT NULL REFERENCES customers (id),
        position    INTEGER NOT NULL,
        PRIMARY KEY (account_id, customer_id)
    ) WITHOUT ROWID;
    CREATE INDEX holders_by_customer ON account_holders (customer_id, account_id);

    -- A joint account's co-holders are invited and hold it only once they accept. An invitation
    -- keeps the username as written and, when it names an individual customer here, that
    -- customer (`invitee_id`); one naming nobody stays pending, so the inviter cannot tell.
    CREATE TABLE invitations (
        id         INTEGER PRIMARY KEY,
        account_id INTEGER NOT NULL REFERENCES accounts (id),
        inviter_id INTEGER NOT NULL REFERENCES customers (id),
        username   TEXT NOT NULL,
        invitee_id INTEGER REFERENCES customers (id),
        status     TEXT NOT NULL CHECK (status = 'pending' OR status = 'accepted' OR status = 'declined'),
        clock      TEXT NOT NULL
    );
    CREATE INDEX invitations_by_invitee ON invitations (invitee_id) WHERE invitee_id IS NOT NULL;
    CREATE INDEX invitations_by_inviter ON invitations (inviter_id);

    -- Every movement but a transfer between two customer accounts here (cash, opening deposits,
    -- interbank holds and their resolutions). Indexed only where it is looked up: holds by their
    -- end-to-end id, resolutions by the hold they resolve (at most once); a plain posted transfer,
    -- most of them, is in no index, whose last leaves every commit would rewrite.
    CREATE TABLE transfers (
        id                INTEGER PRIMARY KEY,
        e2e_id            TEXT NOT NULL,
        debit_account_id  INTEGER NOT NULL REFERENCES accounts (id),
        credit_account_id INTEGER NOT NULL REFERENCES accounts (id),
        amount            INTEGER NOT NULL CHECK (amount > 0),
        flags             TEXT NOT NULL CHECK (flags = 'posted' OR flags = 'pending' OR flags = 'post_pending' OR flags = 'void_pending'),
        pending_id        INTEGER REFERENCES transfers (id),
        clock             TEXT NOT NULL,
        CHECK (debit_account_id <> credit_account_id),
        CHECK ((flags = 'post_pending' OR flags = 'void_pending') = (pending_id IS NOT NULL))
    );
    CREATE UNIQUE INDEX transfers_resolving ON transfers (pending_id) WHERE pending_id IS NOT NULL;
    CREATE INDEX transfers_holds_by_e2e ON transfers (e2e_id) WHERE flags = 'pending';

    -- Statement lines, each account's a chain from `accounts.last_entry` through `prev_entry`.
    -- A transfer between two customer accounts here is one entry with a side for each: the
    -- payer's (`account_id`, `transfer_out`, the amount negative, `balance_after`, `prev_entry`)
    -- and the payee's (`other_*`, read as `transfer_in`), sharing description, author, clock and
    -- end-to-end id. That entry is the transfer's only record: no `transfers` row, no `payments`
    -- row (its payment record is read back from it, found by its end-to-end id through
    -- `entries_by_e2e`), and no counterparty labels: each side's is the other account's label,
    -- which never changes once the account is opened and is read with the statement. Those
    -- were about a third of such an entry's bytes. Every other entry names its transfer and its
    -- counterparty.
    CREATE TABLE entries (
        id                  INTEGER PRIMARY KEY,
        account_id          INTEGER NOT NULL REFERENCES accounts (id),
        transfer_id         INTEGER REFERENCES transfers (id),
        kind                TEXT NOT NULL,
        amount              INTEGER NOT NULL CHECK (amount <> 0),
        balance_after       INTEGER NOT NULL CHECK (balance_after >= 0),
        counterparty        TEXT,
        description         TEXT NOT NULL,
        made_by             TEXT NOT NULL,
        clock               TEXT NOT NULL,
        at_ms               INTEGER NOT NULL,
        e2e_id              TEXT NOT NULL,
        prev_entry          INTEGER REFERENCES entries (id),
        other_account_id    INTEGER REFERENCES accounts (id),
        other_balance_after INTEGER CHECK (other_balance_after >= 0),
        other_prev_entry    INTEGER REFERENCES entries (id),
        CHECK ((transfer_id IS NULL) = (other_account_id IS NOT NULL)),
        CHECK ((counterparty IS NULL) = (other_account_id IS NOT NULL))
    );
    CREATE INDEX entries_by_e2e ON entries (e2e_id) WHERE other_account_id IS NOT NULL;

    -- Payment records as JSON, in arrival order, found through the unique index on their
    -- end-to-end id. Keyed by the id itself, the rows (hundreds of bytes each) went in the middle
    -- of their b-tree, since each bank's ids rise at their own place; its leaves split there again
    -- and again, and such a split reorders pages through SQLite's placeholder page past the 1 GiB
    -- lock byte, after which a commit walked the whole page cache (`pcache1TruncateUnsafe`).
    CREATE TABLE payments (
        id         INTEGER PRIMARY KEY,
        e2e_id     TEXT NOT NULL UNIQUE,
        status     TEXT NOT NULL CHECK (status = 'pending' OR status = 'committed' OR status = 'aborted'),
        body       TEXT NOT NULL,
        -- The customer who asked for it, when it was asked here (they see it even if it touches
        -- none of their accounts at this bank).
        started_by INTEGER REFERENCES customers (id)
    );

    CREATE TABLE payment_accounts (
        e2e_id     TEXT NOT NULL REFERENCES payments (e2e_id),
        account_id INTEGER NOT NULL REFERENCES accounts (id),
        PRIMARY KEY (e2e_id, account_id)
    ) WITHOUT ROWID;

    CREATE TABLE pix_keys (
        key        TEXT PRIMARY KEY,
        type       TEXT NOT NULL CHECK (type = 'cpf' OR type = 'cnpj' OR type = 'email' OR type = 'phone' OR type = 'random'),
        account_id INTEGER NOT NULL REFERENCES accounts (id),
        owner_id   INTEGER NOT NULL REFERENCES customers (id),
        clock      TEXT NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX pix_keys_by_account ON pix_keys (account_id);

    -- Idempotency records in (key, scope) order without a rowid: keys that rise with time (our
    -- clients' v7 UUIDs) put each record at the end of the one b-tree, where a rowid table wrote
    -- it twice (its row, and its key again in a unique index) and a (scope, key) order put it at
    -- one place per customer. A transfer's record names its payment (`payment`: a `payments` row,
    -- or the entry of a transfer between two accounts here) instead of copying its outcome; the
    -- audit checks that it names one (`read::broken_references`).
    CREATE TABLE idempotency (
        key         TEXT NOT NULL,
        scope       INTEGER NOT NULL,
        fingerprint BLOB NOT NULL,
        -- The first outcome as JSON, or NULL when it is the record of the payment `payment`.
        outcome     TEXT,
        payment     TEXT,
        clock       TEXT NOT NULL,
        -- Set while the outcome waits on an interbank decision for this end-to-end id.
        pending_e2e TEXT,
        PRIMARY KEY (key, scope),
        CHECK ((outcome IS NULL) = (payment IS NOT NULL))
    ) WITHOUT ROWID;
    CREATE INDEX idempotency_pending ON idempotency (pending_e2e) WHERE pending_e2e IS NOT NULL;

    -- Interbank participant records: one per transaction this bank voted on or finished, in
    -- arrival order like payments. `finished` is 1 once committed here, 0 once aborted, NULL
    -- while open: SQLite stores 0 and 1 in the record's header alone, as it does NULL, so
    -- finishing rewrites the row in place without growing it.
    CREATE TABLE interbank_votes (
        id          INTEGER PRIMARY KEY,
        e2e_id      TEXT NOT NULL UNIQUE,
        coordinator TEXT,
        yes         INTEGER NOT NULL CHECK (yes IN (0, 1)),
        reason      TEXT,
        legs        TEXT NOT NULL,
        finished    INTEGER CHECK (finished IN (0, 1)),
        clock       TEXT NOT NULL,
        CHECK (finished IS NULL OR finished = 0 OR yes = 1)
    );
    CREATE INDEX interbank_votes_open ON interbank_votes (e2e_id) WHERE finished IS NULL;

    -- Interbank coordinator records: the decision, written before anyone is told.
    CREATE TABLE interbank_decisions (
        e2e_id       TEXT PRIMARY KEY,
        commit_flag  INTEGER NOT NULL CHECK (commit_flag IN (0, 1)),
        participants TEXT NOT NULL,
        completed    INTEGER NOT NULL DEFAULT 0 CHECK (completed IN (0, 1)),
        clock        TEXT NOT NULL
    ) WITHOUT ROWID;

    INSERT INTO accounts (kind, clock) VALUES ('vault', '0.0');
"#;

/// Migrations after the baseline, in order: the first makes version `BASELINE_VERSION + 1`.
/// Add new ones at the end.
const MIGRATIONS: &[&str] = &[];

/// Creates the schema in an empty database, or brings one created by this program to the newest
/// version (`PRAGMA user_version`). A database of the development history before the baseline,
/// or of a newer program, is refused.
pub fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let version: i64 = conn.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    let newest = BASELINE_VERSION + MIGRATIONS.len() as i64;
    if version != 0 && !(BASELINE_VERSION..=newest).contains(&version) {
        return Err(StoreError::Corrupt(format!(
            "the ledger's schema is version {version}, which this program does not read \
             (it creates version {BASELINE_VERSION} and migrates up to {newest}); \
             a ledger from before the baseline schema must be started afresh"
        )));
    }
    let steps = std::iter::once((BASELINE_VERSION, BASELINE)).chain(
        MIGRATIONS
            .iter()
            .enumerate()
            .map(|(index, sql)| (BASELINE_VERSION + 1 + index as i64, *sql)),
    );
    for (target, sql) in steps.filter(|(target, _)| *target > version) {
        apply(conn, target, sql)?;
    }
    Ok(())
}

/// Runs one step in its own transaction. Foreign keys are off while it runs, so it may rebuild a
/// table others refer to (as SQLite's documented table rebuild does), and every reference is
/// checked before it commits.
fn apply(conn: &mut Connection, target: i64, sql: &str) -> rusqlite::Result<()> {
    let enforced: bool = conn.query_row("PRAGMA foreign_keys", [], |row| row.get(0))?;
    conn.pragma_update(None, "foreign_keys", false)?;
    let applied = (|| {
        let db_tx = conn.transaction()?;
        db_tx.execute_batch(sql)?;
        let broken = super::read::foreign_key_violations(&db_tx)?;
        if broken > 0 {
            return Err(rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY),
                Some(format!(
                    "schema version {target} leaves {broken} broken references"
                )),
            ));
        }
        db_tx.pragma_update(None, "user_version", target)?;
        db_tx.commit()
    })();
    conn.pragma_update(None, "foreign_keys", enforced)?;
    applied
}

/// Creates the settlement account for each peer bank that does not have one yet.
pub fn ensure_settlement_accounts(conn: &Connection, peers: &[String]) -> rusqlite::Result<()> {
    for peer in peers {
        conn.execute(
            "INSERT INTO accounts (kind, peer_bank, clock) VALUES ('settlement', ?1, '0.0') ON CONFLICT (peer_bank) DO NOTHING",
            params![peer],
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A local transfer's entry is found by its end-to-end id through `entries_by_e2e`, by the
    /// writer's idempotency lookup, by `GET /transfers/{id}` and by the audit.
    #[test]
    fn local_transfers_are_found_by_their_end_to_end_id_through_an_index() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate(&mut conn).unwrap();
        for sql in [
            "SELECT i.fingerprint, coalesce(i.outcome, p.body), e.id FROM idempotency i
             LEFT JOIN payments p ON p.e2e_id = i.payment
             LEFT JOIN entries e ON e.e2e_id = i.payment AND e.other_account_id IS NOT NULL
             WHERE i.key = 'k' AND i.scope = 1",
            "SELECT e.id FROM entries e WHERE e.e2e_id = 'e' AND e.other_account_id IS NOT NULL",
            "SELECT COUNT(*) FROM idempotency i WHERE i.payment IS NOT NULL
             AND NOT EXISTS (SELECT 1 FROM entries e WHERE e.e2e_id = i.payment AND e.other_account_id IS NOT NULL)",
        ] {
            let plan = explain(&conn, "EXPLAIN QUERY PLAN", sql, 3);
            assert!(
                plan.iter().any(|step| step.contains("entries_by_e2e")),
                "{sql}: {plan:?}"
            );
            assert!(
                !plan.iter().any(|step| step == "SCAN e"),
                "{sql}: {plan:?}"
            );
        }
    }

    /// A database of the development history before the baseline (or of a newer program) is
    /// refused, not half-read; an empty one gets the baseline, and opening it again changes
    /// nothing.
    #[test]
    fn a_ledger_from_before_the_baseline_is_refused() {
        for version in [1, 14, BASELINE_VERSION + MIGRATIONS.len() as i64 + 1] {
            let mut conn = Connection::open_in_memory().unwrap();
            conn.pragma_update(None, "user_version", version).unwrap();
            let refused = migrate(&mut conn);
            assert!(
                matches!(&refused, Err(StoreError::Corrupt(why)) if why.contains(&format!("version {version}"))),
                "{version}: {refused:?}"
            );
            let tables: i64 = conn
                .query_row("SELECT COUNT(*) FROM sqlite_schema", [], |row| row.get(0))
                .unwrap();
            assert_eq!(tables, 0, "nothing was created");
        }
        let mut conn = Connection::open_in_memory().unwrap();
        migrate(&mut conn).unwrap();
        migrate(&mut conn).unwrap();
        let (version, vaults): (i64, i64) = conn
            .query_row(
                "SELECT (SELECT user_version FROM pragma_user_version), (SELECT COUNT(*) FROM accounts WHERE kind = 'vault')",
                [],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .unwrap();
        assert_eq!((version, vaults), (BASELINE_VERSION, 1));
    }

    /// What the baseline enforces besides keys: an entry is one-sided (a transfer and a
    /// counterparty) or two-sided (neither), a payment is JSON, an idempotency record holds its
    /// outcome or names its payment, a no vote never commits, a key serves a scope once.
    #[test]
    fn the_baseline_refuses_rows_the_rules_never_write() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate(&mut conn).unwrap();
        conn.execute_batch(
            "INSERT INTO accounts (id, number, kind, credits_posted, clock) VALUES (2, 100001, 'individual', 9, '0.0'), (3, 100002, 'individual', 9, '0.0');
             INSERT INTO transfers (id, e2e_id, debit_account_id, credit_account_id, amount, flags, clock) VALUES (7, 'E1', 1, 2, 9, 'posted', '0.0');
             INSERT INTO interbank_votes (e2e_id, yes, legs, finished, clock) VALUES ('V', 0, '[]', NULL, '0.0');
             INSERT INTO idempotency (key, scope, fingerprint, outcome, clock) VALUES ('k', 1, x'00', '{}', '0.0');",
        )
        .unwrap();
        let entry = |transfer: &str, counterparty: &str, other: &str| {
            conn.execute(
                &format!(
                    "INSERT INTO entries (account_id, transfer_id, kind, amount, balance_after, counterparty, description, made_by, clock, at_ms, e2e_id, other_account_id, other_balance_after)
                     VALUES (2, {transfer}, 'k', -1, 1, {counterparty}, 'd', 'm', 'c', 1, 'e', {other}, 1)"
                ),
                [],
            )
        };
        assert!(entry("7", "'cash'", "NULL").is_ok(), "one-sided");
        assert!(entry("NULL", "NULL", "3").is_ok(), "two-sided");
        for (transfer, counterparty, other) in [
            ("NULL", "'x'", "NULL"),
            ("7", "NULL", "NULL"),
            ("7", "NULL", "3"),
            ("NULL", "'x'", "3"),
        ] {
            assert!(
                entry(transfer, counterparty, other).is_err(),
                "{transfer} {counterparty} {other}"
            );
        }
        for sql in [
            "INSERT INTO payments (e2e_id, status) VALUES ('P', 'committed')",
            "INSERT INTO idempotency (key, scope, fingerprint, clock) VALUES ('k2', 1, x'00', '0.0')",
            "INSERT INTO idempotency (key, scope, fingerprint, outcome, clock) VALUES ('k', 1, x'01', '{}', '0.1')",
            "UPDATE interbank_votes SET finished = 1 WHERE e2e_id = 'V'",
        ] {
            assert!(conn.execute(sql, []).is_err(), "{sql}");
        }
    }

    /// One column of what `how` (`EXPLAIN` or `EXPLAIN QUERY PLAN`) says of `sql`.
    fn explain(conn: &Connection, how: &str, sql: &str, column: usize) -> Vec<String> {
        conn.prepare(&format!("{how} {sql}"))
            .unwrap()
            .query_map([], |row| row.get(column))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    /// Holds and their resolutions are found through their partial indexes, never by
    /// reading every transfer, and a hold still takes one resolution only.
    #[test]
    fn holds_are_looked_up_by_index_and_resolved_once() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate(&mut conn).unwrap();
        for (sql, index) in [
            (
                "SELECT id FROM transfers WHERE e2e_id = 'e' AND flags = 'pending' ORDER BY id",
                "transfers_holds_by_e2e",
            ),
            (
                "SELECT flags FROM transfers WHERE pending_id = 1",
                "transfers_resolving",
            ),
            (
                "SELECT 1 FROM transfers r WHERE r.pending_id = 7",
                "transfers_resolving",
            ),
        ] {
            let plan = explain(&conn, "EXPLAIN QUERY PLAN", sql, 3);
            assert!(
                plan.iter().any(|step| step.contains(index)),
                "{sql}: {plan:?}"
            );
        }
        conn.execute_batch(
            "INSERT INTO accounts (id, kind, peer_bank, clock) VALUES (2, 'settlement', 'x', '0.0');
             INSERT INTO transfers (id, e2e_id, debit_account_id, credit_account_id, amount, flags, clock)
                 VALUES (1, 'e', 1, 2, 5, 'pending', '0.0');
             INSERT INTO transfers (e2e_id, debit_account_id, credit_account_id, amount, flags, pending_id, clock)
                 VALUES ('e', 1, 2, 5, 'post_pending', 1, '0.0');",
        )
        .unwrap();
        let twice = conn.execute(
            "INSERT INTO transfers (e2e_id, debit_account_id, credit_account_id, amount, flags, pending_id, clock)
             VALUES ('e', 1, 2, 5, 'void_pending', 1, '0.0')",
            [],
        );
        assert!(twice.is_err(), "a hold resolved twice");
    }

    /// SQLite checks a constant `IN` list of three or more values through a temporary b-tree
    /// built on every row; no write on the transfer path may pay for that.
    #[test]
    fn the_transfer_path_builds_no_temporary_tables() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.pragma_update(None, "foreign_keys", true).unwrap();
        migrate(&mut conn).unwrap();
        for sql in [
            "UPDATE accounts SET debits_pending = 1, debits_posted = 2, credits_pending = 3, credits_posted = 4, last_entry = 1 WHERE id = 1",
            "INSERT INTO transfers (e2e_id, debit_account_id, credit_account_id, amount, flags, clock) VALUES ('e', 1, 2, 3, 'posted', 'c')",
            "INSERT INTO entries (account_id, transfer_id, kind, amount, balance_after, counterparty, description, made_by, clock, at_ms, e2e_id, prev_entry)
             VALUES (1, 1, 'k', 1, 1, 'c', 'd', 'm', 'c', 1, 'e', NULL)",
            "INSERT INTO payments (e2e_id, status, body) VALUES ('e', 'committed', 'b')",
            "INSERT INTO entries (account_id, kind, amount, balance_after, description, made_by, clock, at_ms, e2e_id, prev_entry,
                                  other_account_id, other_balance_after, other_prev_entry)
             VALUES (1, 'transfer_out', -1, 1, 'd', 'm', 'c', 1, 'e', NULL, 2, 1, NULL)",
            "INSERT OR IGNORE INTO payment_accounts (e2e_id, account_id) VALUES ('e', 1)",
            "INSERT INTO idempotency (scope, key, fingerprint, outcome, payment, clock, pending_e2e) VALUES (1, 'k', x'00', NULL, 'e', 'c', NULL)",
            "INSERT INTO pix_keys (key, type, account_id, owner_id, clock) VALUES ('k', 'email', 1, 1, 'c')",
        ] {
            let opcodes = explain(&conn, "EXPLAIN", sql, 1);
            assert!(opcodes.iter().any(|op| op == "Halt"), "{opcodes:?}");
            assert!(
                !opcodes.iter().any(|op| op == "OpenEphemeral"),
                "{sql} builds a temporary b-tree"
            );
        }
    }
}
