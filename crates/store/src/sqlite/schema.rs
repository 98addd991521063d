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
    // 3: statements as a chain. Each entry points at the same account's previous one and each
    // account at its newest, so a statement is read by following the chain and new entries only
    // append to `entries`. The `(account, id)` index it replaces put every new entry on its
    // account's own index page: about one more page written per entry, at random places.
    r#"
    ALTER TABLE accounts ADD COLUMN last_entry INTEGER REFERENCES entries (id);
    ALTER TABLE entries ADD COLUMN prev_entry INTEGER REFERENCES entries (id);
    UPDATE entries SET prev_entry =
        (SELECT MAX(p.id) FROM entries p WHERE p.account_id = entries.account_id AND p.id < entries.id);
    UPDATE accounts SET last_entry = (SELECT MAX(e.id) FROM entries e WHERE e.account_id = accounts.id);
    DROP INDEX entries_by_account;
    "#,
    // 4: the same rules without `IN` lists of three or more names in CHECK constraints. SQLite
    // builds a temporary b-tree for such a list each time it checks a row, which was about a
    // fifth of the writer's time; comparisons joined by OR say the same and cost nothing. SQLite
    // cannot change a CHECK in place, so the four tables are rebuilt (foreign keys are checked
    // once at the end, see `migrate`).
    r#"
    CREATE TABLE accounts_4 (
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
    INSERT INTO accounts_4 (id, number, kind, peer_bank, debits_pending, debits_posted, credits_pending, credits_posted, clock, last_entry)
        SELECT id, number, kind, peer_bank, debits_pending, debits_posted, credits_pending, credits_posted, clock, last_entry FROM accounts;
    DROP TABLE accounts;
    ALTER TABLE accounts_4 RENAME TO accounts;

    CREATE TABLE transfers_4 (
        id                INTEGER PRIMARY KEY,
        e2e_id            TEXT NOT NULL,
        debit_account_id  INTEGER NOT NULL REFERENCES accounts (id),
        credit_account_id INTEGER NOT NULL REFERENCES accounts (id),
        amount            INTEGER NOT NULL CHECK (amount > 0),
        flags             TEXT NOT NULL CHECK (flags = 'posted' OR flags = 'pending' OR flags = 'post_pending' OR flags = 'void_pending'),
        pending_id        INTEGER UNIQUE REFERENCES transfers (id),
        clock             TEXT NOT NULL,
        CHECK (debit_account_id <> credit_account_id),
        CHECK ((flags = 'post_pending' OR flags = 'void_pending') = (pending_id IS NOT NULL))
    );
    INSERT INTO transfers_4 (id, e2e_id, debit_account_id, credit_account_id, amount, flags, pending_id, clock)
        SELECT id, e2e_id, debit_account_id, credit_account_id, amount, flags, pending_id, clock FROM transfers;
    DROP TABLE transfers;
    ALTER TABLE transfers_4 RENAME TO transfers;
    CREATE INDEX transfers_by_e2e ON transfers (e2e_id);

    CREATE TABLE payments_4 (
        e2e_id     TEXT PRIMARY KEY,
        status     TEXT NOT NULL CHECK (status = 'pending' OR status = 'committed' OR status = 'aborted'),
        body       TEXT NOT NULL,
        -- The customer who asked for it, when it was asked here (they see it even if it touches
        -- none of their accounts at this bank).
        started_by INTEGER REFERENCES customers (id)
    ) WITHOUT ROWID;
    INSERT INTO payments_4 (e2e_id, status, body, started_by) SELECT e2e_id, status, body, started_by FROM payments;
    DROP TABLE payments;
    ALTER TABLE payments_4 RENAME TO payments;

    CREATE TABLE pix_keys_4 (
        key        TEXT PRIMARY KEY,
        type       TEXT NOT NULL CHECK (type = 'cpf' OR type = 'cnpj' OR type = 'email' OR type = 'phone' OR type = 'random'),
        account_id INTEGER NOT NULL REFERENCES accounts (id),
        owner_id   INTEGER NOT NULL REFERENCES customers (id),
        clock      TEXT NOT NULL
    ) WITHOUT ROWID;
    INSERT INTO pix_keys_4 (key, type, account_id, owner_id, clock) SELECT key, type, account_id, owner_id, clock FROM pix_keys;
    DROP TABLE pix_keys;
    ALTER TABLE pix_keys_4 RENAME TO pix_keys;
    CREATE INDEX pix_keys_by_account ON pix_keys (account_id);
    "#,
    // 5: idempotency records keyed by (key, scope) instead of (scope, key). Keys that rise with
    // time (our client's v7 UUIDs) then all land at the end of one index instead of at one place
    // per customer, each with its own leaf and parent pages rewritten by every commit. A local
    // transfer's record names its payment instead of holding a second copy of the same outcome
    // (a local transfer's payment record never changes once written).
    r#"
    CREATE TABLE idempotency_5 (
        id          INTEGER PRIMARY KEY,
        key         TEXT NOT NULL,
        scope       INTEGER NOT NULL,
        fingerprint BLOB NOT NULL,
        -- The first outcome as JSON, or NULL when it is the body of the payment `payment`.
        outcome     TEXT,
        payment     TEXT REFERENCES payments (e2e_id),
        clock       TEXT NOT NULL,
        -- Set while the outcome waits on an interbank decision for this end-to-end id.
        pending_e2e TEXT,
        UNIQUE (key, scope),
        CHECK ((outcome IS NULL) = (payment IS NOT NULL))
    );
    INSERT INTO idempotency_5 (id, key, scope, fingerprint, outcome, clock, pending_e2e)
        SELECT id, key, scope, fingerprint, outcome, clock, pending_e2e FROM idempotency;
    DROP TABLE idempotency;
    ALTER TABLE idempotency_5 RENAME TO idempotency;
    CREATE INDEX idempotency_pending ON idempotency (pending_e2e) WHERE pending_e2e IS NOT NULL;
    "#,
    // 6: a transfer between two accounts of this bank is one statement entry with a side for
    // each: the payer's (`account_id`, `transfer_out`, the amount negative, `balance_after`,
    // `counterparty`, `prev_entry`) and the payee's (`other_*`, `transfer_in`, the amount
    // positive), which share the description, author, clock and end-to-end id. Its payment
    // record, once committed, is read from that entry instead of being stored a second time as
    // JSON with a link per account (`payments.entry`; `body` stays for every other payment).
    // Entries written before keep one side each; a statement reads both kinds alike.
    r#"
    ALTER TABLE entries ADD COLUMN other_account_id INTEGER REFERENCES accounts (id);
    ALTER TABLE entries ADD COLUMN other_balance_after INTEGER CHECK (other_balance_after >= 0);
    ALTER TABLE entries ADD COLUMN other_counterparty TEXT;
    ALTER TABLE entries ADD COLUMN other_prev_entry INTEGER REFERENCES entries (id);

    CREATE TABLE payments_6 (
        e2e_id     TEXT PRIMARY KEY,
        status     TEXT NOT NULL CHECK (status = 'pending' OR status = 'committed' OR status = 'aborted'),
        -- The record as JSON, or NULL when it is read from the entry `entry`.
        body       TEXT,
        -- The customer who asked for it, when it was asked here (they see it even if it touches
        -- none of their accounts at this bank).
        started_by INTEGER REFERENCES customers (id),
        entry      INTEGER REFERENCES entries (id),
        CHECK ((body IS NULL) = (entry IS NOT NULL)),
        CHECK (entry IS NULL OR status = 'committed')
    ) WITHOUT ROWID;
    INSERT INTO payments_6 (e2e_id, status, body, started_by) SELECT e2e_id, status, body, started_by FROM payments;
    DROP TABLE payments;
    ALTER TABLE payments_6 RENAME TO payments;
    "#,
    // 7: transfers indexed only where they are looked up. Holds are found by their end-to-end id
    // and resolutions by the hold they resolve; every other transfer (a plain posted one, most of
    // them) was in both indexes anyway, a NULL `pending_id` included, and each index's last
    // leaves were rewritten by every commit. The same rules as partial indexes: a hold is still
    // resolved at most once.
    r#"
    CREATE TABLE transfers_7 (
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
    INSERT INTO transfers_7 (id, e2e_id, debit_account_id, credit_account_id, amount, flags, pending_id, clock)
        SELECT id, e2e_id, debit_account_id, credit_account_id, amount, flags, pending_id, clock FROM transfers;
    DROP TABLE transfers;
    ALTER TABLE transfers_7 RENAME TO transfers;
    CREATE UNIQUE INDEX transfers_resolving ON transfers (pending_id) WHERE pending_id IS NOT NULL;
    CREATE INDEX transfers_holds_by_e2e ON transfers (e2e_id) WHERE flags = 'pending';
    "#,
    // 8: a transfer between two customer accounts here is recorded by its two-sided entry alone
    // (payer, payee, amount, end-to-end id and clock are all there), without a `transfers` row
    // beside it: `transfer_id` is NULL exactly on those entries. Every other movement (cash,
    // opening deposits, interbank holds and their resolutions) keeps its transfer row. SQLite
    // cannot drop a NOT NULL in place, so the table is rebuilt with its rows and ids.
    r#"
    CREATE TABLE entries_8 (
        id                  INTEGER PRIMARY KEY,
        account_id          INTEGER NOT NULL REFERENCES accounts (id),
        transfer_id         INTEGER REFERENCES transfers (id),
        kind                TEXT NOT NULL,
        amount              INTEGER NOT NULL CHECK (amount <> 0),
        balance_after       INTEGER NOT NULL CHECK (balance_after >= 0),
        counterparty        TEXT NOT NULL,
        description         TEXT NOT NULL,
        made_by             TEXT NOT NULL,
        clock               TEXT NOT NULL,
        at_ms               INTEGER NOT NULL,
        e2e_id              TEXT NOT NULL,
        prev_entry          INTEGER REFERENCES entries (id),
        other_account_id    INTEGER REFERENCES accounts (id),
        other_balance_after INTEGER CHECK (other_balance_after >= 0),
        other_counterparty  TEXT,
        other_prev_entry    INTEGER REFERENCES entries (id),
        CHECK (transfer_id IS NOT NULL OR other_account_id IS NOT NULL)
    );
    INSERT INTO entries_8 (id, account_id, transfer_id, kind, amount, balance_after, counterparty, description, made_by, clock, at_ms, e2e_id,
                           prev_entry, other_account_id, other_balance_after, other_counterparty, other_prev_entry)
        SELECT id, account_id, transfer_id, kind, amount, balance_after, counterparty, description, made_by, clock, at_ms, e2e_id,
               prev_entry, other_account_id, other_balance_after, other_counterparty, other_prev_entry FROM entries;
    DROP TABLE entries;
    ALTER TABLE entries_8 RENAME TO entries;
    "#,
    // 9: a committed transfer between two accounts here has no `payments` row either: its entry
    // is found by its end-to-end id through a partial index on the two-sided entries (about
    // half what the `WITHOUT ROWID` payment row cost the writer per transfer, its uniqueness
    // check and constraints included). The rows migration 6 wrote for them are dropped. An
    // idempotency record's `payment` now names a `payments` row or such an entry, so its
    // foreign key goes (the table is rebuilt: SQLite cannot drop one in place) and the audit
    // checks it instead (`read::broken_references`).
    r#"
    CREATE INDEX entries_by_e2e ON entries (e2e_id) WHERE other_account_id IS NOT NULL;
    CREATE TABLE idempotency_9 (
        id          INTEGER PRIMARY KEY,
        key         TEXT NOT NULL,
        scope       INTEGER NOT NULL,
        fingerprint BLOB NOT NULL,
        -- The first outcome as JSON, or NULL when it is the record of the payment `payment`:
        -- its `payments` row, or the entry of a transfer between two accounts here.
        outcome     TEXT,
        payment     TEXT,
        clock       TEXT NOT NULL,
        -- Set while the outcome waits on an interbank decision for this end-to-end id.
        pending_e2e TEXT,
        UNIQUE (key, scope),
        CHECK ((outcome IS NULL) = (payment IS NOT NULL))
    );
    INSERT INTO idempotency_9 (id, key, scope, fingerprint, outcome, payment, clock, pending_e2e)
        SELECT id, key, scope, fingerprint, outcome, payment, clock, pending_e2e FROM idempotency;
    DROP TABLE idempotency;
    ALTER TABLE idempotency_9 RENAME TO idempotency;
    CREATE INDEX idempotency_pending ON idempotency (pending_e2e) WHERE pending_e2e IS NOT NULL;
    DELETE FROM payments WHERE entry IS NOT NULL;
    "#,
    // 10: idempotency records stored in their (key, scope) order, without a rowid. The rowid
    // table wrote each record twice, its row at the table's end and its key again in the
    // unique index; keys that rise with time (our clients' v7 UUIDs) put the record itself at
    // the end of the one b-tree.
    r#"
    CREATE TABLE idempotency_10 (
        key         TEXT NOT NULL,
        scope       INTEGER NOT NULL,
        fingerprint BLOB NOT NULL,
        -- The first outcome as JSON, or NULL when it is the record of the payment `payment`:
        -- its `payments` row, or the entry of a transfer between two accounts here.
        outcome     TEXT,
        payment     TEXT,
        clock       TEXT NOT NULL,
        -- Set while the outcome waits on an interbank decision for this end-to-end id.
        pending_e2e TEXT,
        PRIMARY KEY (key, scope),
        CHECK ((outcome IS NULL) = (payment IS NOT NULL))
    ) WITHOUT ROWID;
    INSERT INTO idempotency_10 (key, scope, fingerprint, outcome, payment, clock, pending_e2e)
        SELECT key, scope, fingerprint, outcome, payment, clock, pending_e2e FROM idempotency;
    DROP TABLE idempotency;
    ALTER TABLE idempotency_10 RENAME TO idempotency;
    CREATE INDEX idempotency_pending ON idempotency (pending_e2e) WHERE pending_e2e IS NOT NULL;
    "#,
    // 11: payment records and interbank votes in arrival order, found through a unique index on
    // their end-to-end id, and a vote finished without growing. A bank stores the ids of every
    // bank it deals with, and each bank's ids rise at their own place in id order: keyed by the id,
    // the rows (hundreds of bytes each) went in the middle of their b-trees, whose leaves split
    // there again and again, as they did wherever finishing a vote made its row longer. Such a
    // split reorders its pages through SQLite's placeholder page number past the 1 GiB lock
    // byte, and the commit after it then walks the writer's whole page cache to drop pages beyond
    // the end of the file (`pcache1TruncateUnsafe`: 4% of a demo's time after half a minute of
    // interbank load, and growing with the cache). Now only the index's short entries go in the
    // middle, and a vote's row keeps its size.
    r#"
    CREATE TABLE payments_11 (
        id         INTEGER PRIMARY KEY,
        e2e_id     TEXT NOT NULL UNIQUE,
        status     TEXT NOT NULL CHECK (status = 'pending' OR status = 'committed' OR status = 'aborted'),
        -- The record as JSON, or NULL when it is read from the entry `entry`.
        body       TEXT,
        -- The customer who asked for it, when it was asked here (they see it even if it touches
        -- none of their accounts at this bank).
        started_by INTEGER REFERENCES customers (id),
        entry      INTEGER REFERENCES entries (id),
        CHECK ((body IS NULL) = (entry IS NOT NULL)),
        CHECK (entry IS NULL OR status = 'committed')
    );
    INSERT INTO payments_11 (e2e_id, status, body, started_by, entry)
        SELECT e2e_id, status, body, started_by, entry FROM payments;
    DROP TABLE payments;
    ALTER TABLE payments_11 RENAME TO payments;

    CREATE TABLE interbank_votes_11 (
        id          INTEGER PRIMARY KEY,
        e2e_id      TEXT NOT NULL UNIQUE,
        coordinator TEXT,
        yes         INTEGER NOT NULL CHECK (yes IN (0, 1)),
        reason      TEXT,
        legs        TEXT NOT NULL,
        payment     TEXT,
        -- 1 once committed here, 0 once aborted, NULL while open. SQLite stores the integers 0
        -- and 1 in the record's header alone, as it does NULL, so finishing rewrites the row in
        -- place; a word there made the row longer than its full page had room for.
        finished    INTEGER CHECK (finished IN (0, 1)),
        clock       TEXT NOT NULL,
        CHECK (finished IS NULL OR finished = 0 OR yes = 1)
    );
    INSERT INTO interbank_votes_11 (e2e_id, coordinator, yes, reason, legs, payment, finished, clock)
        SELECT e2e_id, coordinator, yes, reason, legs, payment,
               CASE finished WHEN 'commit' THEN 1 WHEN 'abort' THEN 0 END, clock
        FROM interbank_votes;
    DROP TABLE interbank_votes;
    ALTER TABLE interbank_votes_11 RENAME TO interbank_votes;
    CREATE INDEX interbank_votes_open ON interbank_votes (e2e_id) WHERE finished IS NULL;
    "#,
    // 12: the entry of a transfer between two accounts here no longer copies each side's
    // counterparty: NULL there means the other account's label (`bank/number Name & Name`), which
    // never changes once the account is opened and is read from its row when a statement is. The
    // two labels were about a third of such an entry (68 of some 200 bytes in a bulk run), so of
    // every page the writer changed, logged and synced for it. Entries written before keep the
    // labels they have; only a two-sided entry may leave `counterparty` out. SQLite cannot drop
    // a NOT NULL in place, so the table is rebuilt with its rows and ids, and its index with it.
    r#"
    CREATE TABLE entries_12 (
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
        other_counterparty  TEXT,
        other_prev_entry    INTEGER REFERENCES entries (id),
        CHECK (transfer_id IS NOT NULL OR other_account_id IS NOT NULL),
        CHECK (counterparty IS NOT NULL OR other_account_id IS NOT NULL)
    );
    INSERT INTO entries_12 (id, account_id, transfer_id, kind, amount, balance_after, counterparty, description, made_by, clock, at_ms, e2e_id,
                            prev_entry, other_account_id, other_balance_after, other_counterparty, other_prev_entry)
        SELECT id, account_id, transfer_id, kind, amount, balance_after, counterparty, description, made_by, clock, at_ms, e2e_id,
               prev_entry, other_account_id, other_balance_after, other_counterparty, other_prev_entry FROM entries;
    DROP TABLE entries;
    ALTER TABLE entries_12 RENAME TO entries;
    CREATE INDEX entries_by_e2e ON entries (e2e_id) WHERE other_account_id IS NOT NULL;
    "#,
    // 13: expired sessions are purged (`PurgeSessions`, as customers log in), found by expiry.
    r#"
    CREATE INDEX sessions_by_expiry ON sessions (expires_at_ms);
    "#,
    // 14: a joint account's co-holders are invited and hold it only once they accept. An
    // invitation keeps the username as written and, when it names an individual customer here,
    // that customer (`invitee_id`); one naming nobody stays pending, so the inviter cannot tell.
    r#"
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
    "#,
];

/// Brings the database to the newest schema version, recorded in `PRAGMA user_version`.
pub fn migrate(conn: &mut Connection) -> rusqlite::Result<()> {
    migrate_to(conn, MIGRATIONS.len())
}

/// Foreign keys are off while a migration runs, so it may rebuild a table others refer to (as
/// SQLite's documented table rebuild does), and every reference is checked before it commits.
fn migrate_to(conn: &mut Connection, target: usize) -> rusqlite::Result<()> {
    let version: i64 = conn.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    let enforced: bool = conn.query_row("PRAGMA foreign_keys", [], |row| row.get(0))?;
    conn.pragma_update(None, "foreign_keys", false)?;
    let migrated = (|| {
        for (index, sql) in MIGRATIONS
            .iter()
            .enumerate()
            .take(target)
            .skip(version as usize)
        {
            let db_tx = conn.transaction()?;
            db_tx.execute_batch(sql)?;
            let broken = super::read::foreign_key_violations(&db_tx)?;
            if broken > 0 {
                return Err(rusqlite::Error::SqliteFailure(
                    rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY),
                    Some(format!(
                        "migration {} leaves {broken} broken references",
                        index + 1
                    )),
                ));
            }
            db_tx.pragma_update(None, "user_version", index as i64 + 1)?;
            db_tx.commit()?;
        }
        Ok(())
    })();
    conn.pragma_update(None, "foreign_keys", enforced)?;
    migrated
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

    #[test]
    fn migration_3_chains_the_entries_already_there() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate_to(&mut conn, 2).unwrap();
        conn.execute_batch(
            "INSERT INTO accounts (id, number, kind, credits_posted, clock) VALUES
                 (2, 10, 'individual', 300, '0.0'), (3, 20, 'individual', 100, '0.0');
             INSERT INTO transfers (id, e2e_id, debit_account_id, credit_account_id, amount, flags, clock)
                 VALUES (1, 'e', 1, 2, 100, 'posted', '0.0');
             INSERT INTO entries (id, account_id, transfer_id, kind, amount, balance_after, counterparty, description, made_by, clock, at_ms, e2e_id)
                 VALUES (1, 2, 1, 'deposit', 100, 100, '', '', '', '0.0', 0, 'e'),
                        (2, 3, 1, 'deposit', 100, 100, '', '', '', '0.0', 0, 'e'),
                        (3, 2, 1, 'deposit', 100, 200, '', '', '', '0.0', 0, 'e'),
                        (4, 2, 1, 'deposit', 100, 300, '', '', '', '0.0', 0, 'e');",
        )
        .unwrap();
        migrate(&mut conn).unwrap();
        let links = |sql: &str| -> Vec<(i64, Option<i64>)> {
            conn.prepare(sql)
                .unwrap()
                .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap()
        };
        assert_eq!(
            links("SELECT id, prev_entry FROM entries ORDER BY id"),
            [(1, None), (2, None), (3, Some(1)), (4, Some(3))]
        );
        assert_eq!(
            links("SELECT id, last_entry FROM accounts ORDER BY id"),
            [(1, None), (2, Some(4)), (3, Some(2))]
        );
    }

    #[test]
    fn migration_6_keeps_payments_and_the_statements_already_there() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate_to(&mut conn, 5).unwrap();
        conn.execute_batch(
            "INSERT INTO customers (id, public_id, name, document, kind, username, password_hash, home_bank, clock)
                 VALUES (1, 'c', 'Ana', '52998224725', 'individual', 'ana', 'h', '10000001', '0.0');
             INSERT INTO accounts (id, number, kind, credits_posted, clock) VALUES (2, 10, 'individual', 100, '0.0');
             INSERT INTO transfers (id, e2e_id, debit_account_id, credit_account_id, amount, flags, clock)
                 VALUES (1, 'e', 1, 2, 100, 'posted', '0.0');
             INSERT INTO entries (id, account_id, transfer_id, kind, amount, balance_after, counterparty, description, made_by, clock, at_ms, e2e_id)
                 VALUES (1, 2, 1, 'deposit', 100, 100, '', '', '', '0.0', 0, 'e');
             INSERT INTO payments (e2e_id, status, body, started_by) VALUES ('e', 'committed', '{}', 1);",
        )
        .unwrap();
        migrate(&mut conn).unwrap();
        let payment: (String, Option<String>, Option<i64>, Option<i64>) = conn
            .query_row(
                "SELECT status, body, started_by, entry FROM payments WHERE e2e_id = 'e'",
                [],
                |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?)),
            )
            .unwrap();
        assert_eq!(
            payment,
            ("committed".into(), Some("{}".into()), Some(1), None)
        );
        let sides: (i64, Option<i64>) = conn
            .query_row(
                "SELECT account_id, other_account_id FROM entries WHERE id = 1",
                [],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .unwrap();
        assert_eq!(
            sides,
            (2, None),
            "an entry written before keeps its one side"
        );
        // A payment is either its JSON or the entry it is read from.
        assert!(
            conn.execute(
                "INSERT INTO payments (e2e_id, status) VALUES ('f', 'committed')",
                []
            )
            .is_err()
        );
    }

    #[test]
    fn migration_5_keeps_idempotency_records_and_puts_the_key_first() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate_to(&mut conn, 4).unwrap();
        conn.execute_batch(
            "INSERT INTO idempotency (scope, key, fingerprint, outcome, clock, pending_e2e)
                 VALUES (7, 'k1', x'01', '{\"a\":1}', '0.0', NULL), (8, 'k1', x'02', 'o', '0.0', 'e');",
        )
        .unwrap();
        migrate_to(&mut conn, 5).unwrap();
        // scope, key, outcome, payment, pending_e2e
        type Record = (i64, String, Option<String>, Option<String>, Option<String>);
        let rows: Vec<Record> = conn
            .prepare(
                "SELECT scope, key, outcome, payment, pending_e2e FROM idempotency ORDER BY id",
            )
            .unwrap()
            .query_map([], |row| {
                Ok((
                    row.get(0)?,
                    row.get(1)?,
                    row.get(2)?,
                    row.get(3)?,
                    row.get(4)?,
                ))
            })
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(
            rows,
            [
                (7, "k1".into(), Some("{\"a\":1}".into()), None, None),
                (8, "k1".into(), Some("o".into()), None, Some("e".into()))
            ]
        );
        // The unique index that finds a record starts with the key.
        let columns: Vec<String> = conn
            .prepare(
                "SELECT ii.name FROM pragma_index_list('idempotency') il, pragma_index_info(il.name) ii
                 WHERE il.\"unique\" ORDER BY ii.seqno",
            )
            .unwrap()
            .query_map([], |row| row.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(columns, ["key", "scope"]);
    }

    /// Migration 8 keeps every entry with its id, transfer and links; afterwards only a two-sided
    /// entry may stand without a transfer.
    #[test]
    fn migration_8_keeps_the_entries_and_lets_a_local_transfer_stand_alone() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate_to(&mut conn, 7).unwrap();
        // Rows that refer to each other, written as the writer writes them (see `migrate`).
        conn.pragma_update(None, "foreign_keys", false).unwrap();
        conn.execute_batch(
            "INSERT INTO customers (id, public_id, name, document, kind, username, password_hash, home_bank, clock)
                 VALUES (1, 'p', 'Ana', '52998224725', 'individual', 'ana', 'h', 'b', '0.0');
             INSERT INTO accounts (id, number, kind, credits_posted, clock, last_entry) VALUES (2, 100001, 'individual', 5, '0.0', 2);
             INSERT INTO accounts (id, number, kind, credits_posted, debits_posted, clock, last_entry) VALUES (3, 100002, 'individual', 5, 0, '0.0', 2);
             INSERT INTO transfers (id, e2e_id, debit_account_id, credit_account_id, amount, flags, clock)
                 VALUES (1, 'e1', 1, 2, 5, 'posted', '0.0'), (2, 'e2', 1, 3, 5, 'posted', '0.0');
             INSERT INTO entries (id, account_id, transfer_id, kind, amount, balance_after, counterparty, description, made_by, clock, at_ms, e2e_id, prev_entry,
                                  other_account_id, other_balance_after, other_counterparty, other_prev_entry)
                 VALUES (1, 2, 1, 'deposit', 5, 5, 'cash', 'd', 'ana', '0.0', 1, 'e1', NULL, NULL, NULL, NULL, NULL),
                        (2, 2, 2, 'transfer_out', -5, 0, 'x', 'd', 'ana', '0.0', 1, 'e2', 1, 3, 5, 'y', NULL);
             INSERT INTO payments (e2e_id, status, entry) VALUES ('e2', 'committed', 2);",
        )
        .unwrap();
        type Row = (i64, Option<i64>, Option<i64>, Option<i64>);
        let rows = |conn: &Connection| -> Vec<Row> {
            conn.prepare(
                "SELECT id, transfer_id, prev_entry, other_account_id FROM entries ORDER BY id",
            )
            .unwrap()
            .query_map([], |row| {
                Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
            })
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
        };
        let before = rows(&conn);
        migrate(&mut conn).unwrap();
        assert_eq!(rows(&conn), before);
        assert_eq!(super::super::read::broken_references(&conn).unwrap(), 0);
        let insert = |transfer: &str, other: &str| {
            conn.execute(
                &format!(
                    "INSERT INTO entries (account_id, transfer_id, kind, amount, balance_after, counterparty, description, made_by, clock, at_ms, e2e_id, other_account_id)
                     VALUES (2, {transfer}, 'k', 1, 1, 'c', 'd', 'm', 'c', 1, 'e', {other})"
                ),
                [],
            )
        };
        assert!(
            insert("NULL", "3").is_ok(),
            "a local transfer's entry alone"
        );
        assert!(
            insert("NULL", "NULL").is_err(),
            "a one-sided entry names its transfer"
        );
    }

    #[test]
    fn migration_9_leaves_a_local_transfer_its_entry_alone_and_keeps_idempotency_records() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate_to(&mut conn, 8).unwrap();
        conn.pragma_update(None, "foreign_keys", false).unwrap();
        conn.execute_batch(
            "INSERT INTO customers (id, public_id, name, document, kind, username, password_hash, home_bank, clock)
                 VALUES (1, 'p', 'Ana', '52998224725', 'individual', 'ana', 'h', 'b', '0.0');
             INSERT INTO accounts (id, number, kind, credits_posted, clock, last_entry) VALUES (2, 100001, 'individual', 0, '0.0', 1);
             INSERT INTO accounts (id, number, kind, credits_posted, clock, last_entry) VALUES (3, 100002, 'individual', 5, '0.0', 1);
             INSERT INTO entries (id, account_id, kind, amount, balance_after, counterparty, description, made_by, clock, at_ms, e2e_id,
                                  other_account_id, other_balance_after, other_counterparty)
                 VALUES (1, 2, 'transfer_out', -5, 0, 'x', 'd', 'ana', '0.0', 1, 'local', 3, 5, 'y');
             INSERT INTO payments (e2e_id, status, entry) VALUES ('local', 'committed', 1);
             INSERT INTO payments (e2e_id, status, body) VALUES ('between', 'pending', '{}');
             INSERT INTO idempotency (id, key, scope, fingerprint, outcome, payment, clock)
                 VALUES (7, 'k1', 1, x'00', NULL, 'local', '0.0'), (8, 'k2', 1, x'01', NULL, 'between', '0.0'),
                        (9, 'k3', 1, x'02', '{}', NULL, '0.0');",
        )
        .unwrap();
        let idempotency = |conn: &Connection| -> Vec<(i64, String, Option<String>)> {
            conn.prepare("SELECT id, key, payment FROM idempotency ORDER BY id")
                .unwrap()
                .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap()
        };
        let before = idempotency(&conn);
        migrate_to(&mut conn, 9).unwrap();
        assert_eq!(idempotency(&conn), before);
        let payments: Vec<String> = conn
            .prepare("SELECT e2e_id FROM payments ORDER BY e2e_id")
            .unwrap()
            .query_map([], |row| row.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(
            payments,
            ["between"],
            "only the entry records a local transfer"
        );
        assert_eq!(super::super::read::broken_references(&conn).unwrap(), 0);
        // The audit still finds a record naming a payment that is nowhere.
        conn.execute(
            "INSERT INTO idempotency (key, scope, fingerprint, payment, clock) VALUES ('k4', 1, x'03', 'nowhere', '0.0')",
            [],
        )
        .unwrap();
        assert_eq!(super::super::read::broken_references(&conn).unwrap(), 1);
    }

    /// Migration 10 keeps every idempotency record, in one b-tree keyed by (key, scope): the
    /// same key may still serve two scopes, never one scope twice, and the lookup is that key.
    #[test]
    fn migration_10_keeps_idempotency_records_in_key_order_without_a_rowid() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate_to(&mut conn, 9).unwrap();
        conn.execute_batch(
            "INSERT INTO payments (e2e_id, status, body) VALUES ('between', 'pending', '{}');
             INSERT INTO idempotency (id, key, scope, fingerprint, outcome, payment, clock, pending_e2e)
                 VALUES (7, 'k2', 1, x'01', NULL, 'between', '0.1', NULL),
                        (8, 'k1', 1, x'02', '{}', NULL, '0.2', 'e'),
                        (9, 'k1', 2, x'03', '{\"a\":1}', NULL, '0.3', NULL);",
        )
        .unwrap();
        let records = "SELECT key, scope, fingerprint, outcome, payment, clock, pending_e2e FROM idempotency ORDER BY key, scope";
        let before = rows(&conn, records);
        migrate_to(&mut conn, 10).unwrap();
        assert_eq!(rows(&conn, records), before);
        let without_rowid = table_sql(&conn, "idempotency");
        assert!(without_rowid.contains("WITHOUT ROWID"), "{without_rowid}");
        let again = conn.execute(
            "INSERT INTO idempotency (key, scope, fingerprint, outcome, clock) VALUES ('k1', 2, x'04', '{}', '0.4')",
            [],
        );
        assert!(again.is_err(), "one scope uses a key once");
        let plan = explain(
            &conn,
            "EXPLAIN QUERY PLAN",
            "SELECT fingerprint FROM idempotency WHERE key = 'k1' AND scope = 2",
            3,
        );
        assert!(
            plan.iter()
                .any(|step| step.contains("PRIMARY KEY (key=? AND scope=?)")),
            "{plan:?}"
        );
        assert_eq!(
            super::super::read::broken_references(&conn).unwrap(),
            0,
            "the pending payment's record still names it"
        );
    }

    /// Migration 11 keeps every payment record and vote, now in rowid tables that an end-to-end
    /// id still names once, and finds them by that id through the unique index.
    #[test]
    fn migration_11_keeps_payments_and_votes_in_arrival_order_found_by_their_id() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate_to(&mut conn, 10).unwrap();
        conn.pragma_update(None, "foreign_keys", false).unwrap();
        conn.execute_batch(
            "INSERT INTO customers (id, public_id, name, document, kind, username, password_hash, home_bank, clock)
                 VALUES (1, 'p', 'Ana', '52998224725', 'individual', 'ana', 'h', 'b', '0.0');
             INSERT INTO accounts (id, number, kind, credits_posted, clock) VALUES (2, 100001, 'individual', 5, '0.0');
             INSERT INTO entries (id, account_id, kind, amount, balance_after, counterparty, description, made_by, clock, at_ms, e2e_id,
                                  other_account_id, other_balance_after, other_counterparty)
                 VALUES (1, 2, 'transfer_out', -5, 0, 'x', 'd', 'ana', '0.0', 1, 'E3', 2, 5, 'y');
             INSERT INTO payments (e2e_id, status, body, started_by, entry)
                 VALUES ('E2', 'pending', '{\"p\":1}', 1, NULL), ('E1', 'aborted', '{}', NULL, NULL), ('E3', 'committed', NULL, 1, 1);
             INSERT INTO payment_accounts (e2e_id, account_id) VALUES ('E2', 2);
             INSERT INTO interbank_votes (e2e_id, coordinator, yes, reason, legs, payment, finished, clock)
                 VALUES ('E9', '20000002', 1, NULL, '[1]', '{}', NULL, '0.1'), ('E8', NULL, 0, 'no', '[]', NULL, 'abort', '0.2');",
        )
        .unwrap();
        let payments =
            "SELECT e2e_id, status, body, started_by, entry FROM payments ORDER BY e2e_id";
        let votes = "SELECT e2e_id, coordinator, yes, reason, legs, payment, clock FROM interbank_votes ORDER BY e2e_id";
        let finished = "SELECT e2e_id, finished FROM interbank_votes ORDER BY e2e_id";
        let before = (rows(&conn, payments), rows(&conn, votes));
        migrate_to(&mut conn, 11).unwrap();
        assert_eq!((rows(&conn, payments), rows(&conn, votes)), before);
        use rusqlite::types::Value::{Integer, Null, Text};
        assert_eq!(
            rows(&conn, finished),
            [
                vec![Text("E8".into()), Integer(0)],
                vec![Text("E9".into()), Null]
            ],
            "an abort is 0, an open vote NULL"
        );
        // Finishing stores an integer, 0 or 1, which the record's header holds alone.
        conn.execute(
            "UPDATE interbank_votes SET finished = 1 WHERE e2e_id = 'E9'",
            [],
        )
        .unwrap();
        assert_eq!(
            rows(
                &conn,
                "SELECT typeof(finished), finished FROM interbank_votes WHERE e2e_id = 'E9'"
            ),
            [vec![Text("integer".into()), Integer(1)]]
        );
        assert!(
            conn.execute(
                "UPDATE interbank_votes SET finished = 1 WHERE e2e_id = 'E8'",
                []
            )
            .is_err(),
            "a no vote never commits"
        );
        assert_eq!(super::super::read::broken_references(&conn).unwrap(), 0);
        for table in ["payments", "interbank_votes"] {
            let sql = table_sql(&conn, table);
            assert!(!sql.contains("WITHOUT ROWID"), "{sql}");
        }
        assert!(
            conn.execute(
                "INSERT INTO payments (e2e_id, status, body) VALUES ('E1', 'pending', '{}')",
                []
            )
            .is_err(),
            "an id names one payment"
        );
        assert!(
            conn.execute(
                "INSERT INTO interbank_votes (e2e_id, yes, legs, clock) VALUES ('E9', 1, '[]', '0.3')",
                []
            )
            .is_err(),
            "an id names one vote"
        );
        for (sql, index) in [
            (
                "SELECT body FROM payments WHERE e2e_id = 'E2' AND status = 'pending'",
                "sqlite_autoindex_payments_1",
            ),
            (
                "SELECT yes, legs, finished FROM interbank_votes WHERE e2e_id = 'E9'",
                "sqlite_autoindex_interbank_votes_1",
            ),
        ] {
            let plan = explain(&conn, "EXPLAIN QUERY PLAN", sql, 3);
            assert!(
                plan.iter().any(|step| step.contains(index)),
                "{sql}: {plan:?}"
            );
        }
        let open = rows(
            &conn,
            "SELECT e2e_id FROM interbank_votes WHERE finished IS NULL",
        );
        assert!(open.is_empty(), "{open:?}");
    }

    /// Migration 12 keeps every entry, id and label, and from then on lets a two-sided entry
    /// leave its counterparties out (they are the two accounts' labels) but no other entry.
    #[test]
    fn migration_12_keeps_the_entries_and_lets_a_two_sided_one_leave_out_its_labels() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate_to(&mut conn, 11).unwrap();
        conn.pragma_update(None, "foreign_keys", false).unwrap();
        conn.execute_batch(
            "INSERT INTO accounts (id, number, kind, credits_posted, clock) VALUES (2, 100001, 'individual', 9, '0.0'), (3, 100002, 'individual', 5, '0.0');
             INSERT INTO transfers (id, e2e_id, debit_account_id, credit_account_id, amount, flags, clock) VALUES (7, 'E1', 1, 2, 9, 'posted', '0.0');
             INSERT INTO entries (id, account_id, transfer_id, kind, amount, balance_after, counterparty, description, made_by, clock, at_ms, e2e_id)
                 VALUES (4, 2, 7, 'deposit', 9, 9, 'cash', 'd', 'ana', '0.0', 1, 'E1');
             INSERT INTO entries (id, account_id, kind, amount, balance_after, counterparty, description, made_by, clock, at_ms, e2e_id, prev_entry,
                                  other_account_id, other_balance_after, other_counterparty)
                 VALUES (5, 2, 'transfer_out', -4, 5, 'b/100002-x Bia', 'Pix', 'ana', '0.1', 2, 'E2', 4, 3, 4, 'b/100001-x Ana');",
        )
        .unwrap();
        let entries = "SELECT * FROM entries ORDER BY id";
        let before = rows(&conn, entries);
        migrate_to(&mut conn, 12).unwrap();
        assert_eq!(rows(&conn, entries), before);
        assert_eq!(super::super::read::broken_references(&conn).unwrap(), 0);
        conn.execute(
            "INSERT INTO entries (id, account_id, kind, amount, balance_after, description, made_by, clock, at_ms, e2e_id, prev_entry,
                                  other_account_id, other_balance_after)
             VALUES (6, 2, 'transfer_out', -1, 4, 'Pix', 'ana', '0.2', 3, 'E3', 5, 3, 5)",
            [],
        )
        .unwrap();
        assert!(
            conn.execute(
                "INSERT INTO entries (account_id, transfer_id, kind, amount, balance_after, description, made_by, clock, at_ms, e2e_id)
                 VALUES (2, 7, 'deposit', 1, 5, 'd', 'ana', '0.3', 4, 'E4')",
                [],
            )
            .is_err(),
            "an entry with one side names its counterparty"
        );
        let plan = explain(
            &conn,
            "EXPLAIN QUERY PLAN",
            "SELECT id FROM entries WHERE e2e_id = 'E3' AND other_account_id IS NOT NULL",
            3,
        );
        assert!(
            plan.iter().any(|step| step.contains("entries_by_e2e")),
            "{plan:?}"
        );
    }

    /// A local transfer's entry is found by its end-to-end id through migration 9's index, by the
    /// writer's idempotency lookup, by `GET /transfers/{id}` and by the audit.
    #[test]
    fn local_transfers_are_found_by_their_end_to_end_id_through_an_index() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate(&mut conn).unwrap();
        for sql in [
            "SELECT i.fingerprint, coalesce(i.outcome, p.body), coalesce(p.entry, e.id) FROM idempotency i
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

    /// Every row `sql` reads, each as its columns' values.
    fn rows(conn: &Connection, sql: &str) -> Vec<Vec<rusqlite::types::Value>> {
        let mut statement = conn.prepare(sql).unwrap();
        let columns = statement.column_count();
        statement
            .query_map([], |row| (0..columns).map(|i| row.get(i)).collect())
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    /// The `CREATE` statement SQLite keeps for `table`.
    fn table_sql(conn: &Connection, table: &str) -> String {
        conn.query_row(
            "SELECT sql FROM sqlite_schema WHERE name = ?1",
            [table],
            |row| row.get(0),
        )
        .unwrap()
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

    /// Holds and their resolutions are found through the partial indexes of migration 7, never by
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
            "INSERT INTO entries (account_id, kind, amount, balance_after, counterparty, description, made_by, clock, at_ms, e2e_id, prev_entry,
                                  other_account_id, other_balance_after, other_counterparty, other_prev_entry)
             VALUES (1, 'transfer_out', -1, 1, 'c', 'd', 'm', 'c', 1, 'e', NULL, 2, 1, 'c', NULL)",
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
