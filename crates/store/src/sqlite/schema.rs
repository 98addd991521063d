//! The schema, as numbered migrations applied in order inside one transaction each. The
//! database enforces what it can: uniqueness, foreign keys, positive amounts, and that no
//! customer account's debits ever exceed its credits.

use rusqlite::{Connection, params};

const MIGRATIONS: &[&str] = &[
    // 1: the ledger, customers, sessions, Pix keys, payments and idempotency records.
    r#"
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

    CREATE TABLE accounts (
        id              INTEGER PRIMARY KEY,
        number          INTEGER UNIQUE,
        kind            TEXT NOT NULL CHECK (kind IN ('individual', 'company', 'joint', 'vault', 'settlement')),
        peer_bank       TEXT UNIQUE,
        debits_pending  INTEGER NOT NULL DEFAULT 0 CHECK (debits_pending >= 0),
        debits_posted   INTEGER NOT NULL DEFAULT 0 CHECK (debits_posted >= 0),
        credits_pending INTEGER NOT NULL DEFAULT 0 CHECK (credits_pending >= 0),
        credits_posted  INTEGER NOT NULL DEFAULT 0 CHECK (credits_posted >= 0),
        clock           TEXT NOT NULL,
        CHECK (kind NOT IN ('individual', 'company', 'joint') OR debits_posted + debits_pending <= credits_posted),
        CHECK ((kind IN ('individual', 'company', 'joint')) = (number IS NOT NULL)),
        CHECK ((kind = 'settlement') = (peer_bank IS NOT NULL))
    );

    CREATE TABLE account_holders (
        account_id  INTEGER NOT NULL REFERENCES accounts (id),
        customer_id INTEGER NOT NULL REFERENCES customers (id),
        position    INTEGER NOT NULL,
        PRIMARY KEY (account_id, customer_id)
    ) WITHOUT ROWID;
    CREATE INDEX holders_by_customer ON account_holders (customer_id, account_id);

    CREATE TABLE transfers (
        id                INTEGER PRIMARY KEY,
        e2e_id            TEXT NOT NULL,
        debit_account_id  INTEGER NOT NULL REFERENCES accounts (id),
        credit_account_id INTEGER NOT NULL REFERENCES accounts (id),
        amount            INTEGER NOT NULL CHECK (amount > 0),
        flags             TEXT NOT NULL CHECK (flags IN ('posted', 'pending', 'post_pending', 'void_pending')),
        pending_id        INTEGER UNIQUE REFERENCES transfers (id),
        clock             TEXT NOT NULL,
        CHECK (debit_account_id <> credit_account_id),
        CHECK ((flags IN ('post_pending', 'void_pending')) = (pending_id IS NOT NULL))
    );
    CREATE INDEX transfers_by_e2e ON transfers (e2e_id);

    CREATE TABLE entries (
        id            INTEGER PRIMARY KEY,
        account_id    INTEGER NOT NULL REFERENCES accounts (id),
        transfer_id   INTEGER NOT NULL REFERENCES transfers (id),
        kind          TEXT NOT NULL,
        amount        INTEGER NOT NULL CHECK (amount <> 0),
        balance_after INTEGER NOT NULL CHECK (balance_after >= 0),
        counterparty  TEXT NOT NULL,
        description   TEXT NOT NULL,
        made_by       TEXT NOT NULL,
        clock         TEXT NOT NULL,
        at_ms         INTEGER NOT NULL,
        e2e_id        TEXT NOT NULL
    );
    CREATE INDEX entries_by_account ON entries (account_id, id);

    CREATE TABLE payments (
        e2e_id     TEXT PRIMARY KEY,
        status     TEXT NOT NULL CHECK (status IN ('pending', 'committed', 'aborted')),
        body       TEXT NOT NULL,
        -- The customer who asked for it, when it was asked here (they see it even if it touches
        -- none of their accounts at this bank).
        started_by INTEGER REFERENCES customers (id)
    ) WITHOUT ROWID;

    CREATE TABLE payment_accounts (
        e2e_id     TEXT NOT NULL REFERENCES payments (e2e_id),
        account_id INTEGER NOT NULL REFERENCES accounts (id),
        PRIMARY KEY (e2e_id, account_id)
    ) WITHOUT ROWID;

    CREATE TABLE pix_keys (
        key        TEXT PRIMARY KEY,
        type       TEXT NOT NULL CHECK (type IN ('cpf', 'cnpj', 'email', 'phone', 'random')),
        account_id INTEGER NOT NULL REFERENCES accounts (id),
        owner_id   INTEGER NOT NULL REFERENCES customers (id),
        clock      TEXT NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX pix_keys_by_account ON pix_keys (account_id);

    CREATE TABLE idempotency (
        scope       INTEGER NOT NULL,
        key         TEXT NOT NULL,
        fingerprint BLOB NOT NULL,
        outcome     TEXT NOT NULL,
        clock       TEXT NOT NULL,
        -- Set while the outcome waits on an interbank decision for this end-to-end id.
        pending_e2e TEXT,
        PRIMARY KEY (scope, key)
    ) WITHOUT ROWID;
    CREATE INDEX idempotency_pending ON idempotency (pending_e2e) WHERE pending_e2e IS NOT NULL;

    -- Interbank participant records: one per transaction this bank voted on or finished.
    CREATE TABLE interbank_votes (
        e2e_id      TEXT PRIMARY KEY,
        coordinator TEXT,
        yes         INTEGER NOT NULL CHECK (yes IN (0, 1)),
        reason      TEXT,
        legs        TEXT NOT NULL,
        payment     TEXT,
        finished    TEXT CHECK (finished IN ('commit', 'abort')),
        clock       TEXT NOT NULL,
        CHECK (finished IS NULL OR finished = 'abort' OR yes = 1)
    ) WITHOUT ROWID;
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
    "#,
    // 2: idempotency records in a rowid table. New records go at its end and only the compact
    // (scope, key) index takes them at random places; with the outcome inline in a random-keyed
    // table, every request dirtied a page of its own and split pages often.
    r#"
    CREATE TABLE idempotency_by_row (
        id          INTEGER PRIMARY KEY,
        scope       INTEGER NOT NULL,
        key         TEXT NOT NULL,
        fingerprint BLOB NOT NULL,
        outcome     TEXT NOT NULL,
        clock       TEXT NOT NULL,
        -- Set while the outcome waits on an interbank decision for this end-to-end id.
        pending_e2e TEXT,
        UNIQUE (scope, key)
    );
    INSERT INTO idempotency_by_row (scope, key, fingerprint, outcome, clock, pending_e2e)
        SELECT scope, key, fingerprint, outcome, clock, pending_e2e FROM idempotency;
    DROP TABLE idempotency;
    ALTER TABLE idempotency_by_row RENAME TO idempotency;
    CREATE INDEX idempotency_pending ON idempotency (pending_e2e) WHERE pending_e2e IS NOT NULL;
    "#,
];

/// Brings the database to the newest schema version, recorded in `PRAGMA user_version`.
pub fn migrate(conn: &mut Connection) -> rusqlite::Result<()> {
    let version: i64 = conn.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        let db_tx = conn.transaction()?;
        db_tx.execute_batch(sql)?;
        db_tx.pragma_update(None, "user_version", index as i64 + 1)?;
        db_tx.commit()?;
    }
    Ok(())
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
