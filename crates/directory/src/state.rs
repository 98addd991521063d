//! The directory's tables and the deterministic application of a command to them. Everything
//! here runs inside a transaction the caller opened and commits; it reads and writes only the
//! directory's own tables (no clock, no randomness, no network), so every replica that applies
//! the same log reaches the same rows.

use crate::model::{
    AccountRef, Command, Conflict, Customer, Effect, PixEntry, Response, pix_key_text,
};
use ledger::{AccountNumber, BankCode, Document, PixKey};
use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};

/// The schema version this code writes (`PRAGMA user_version`).
pub(crate) const SCHEMA_VERSION: i64 = 1;

/// Creates the tables of a new file; checks the version of an existing one.
pub(crate) fn migrate(conn: &Connection) -> rusqlite::Result<Result<(), i64>> {
    let version: i64 = conn.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    if version == SCHEMA_VERSION {
        return Ok(Ok(()));
    }
    if version != 0 {
        return Ok(Err(version));
    }
    conn.execute_batch(
        "BEGIN IMMEDIATE;
         -- Raft's own state: the vote and the last purged log id (JSON).
         CREATE TABLE raft_meta (name TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
         -- The log: one JSON entry per index, without holes.
         CREATE TABLE raft_log (idx INTEGER PRIMARY KEY, entry TEXT NOT NULL);
         -- The state machine's position: last applied log id and membership (JSON).
         CREATE TABLE machine (name TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
         -- The newest snapshot, kept so that a lagging bank can be sent it after a purge.
         CREATE TABLE snapshot (only INTEGER PRIMARY KEY CHECK (only = 1),
                                meta TEXT NOT NULL, data BLOB NOT NULL);
         CREATE TABLE customers (document TEXT PRIMARY KEY, name TEXT NOT NULL,
                                 username TEXT NOT NULL UNIQUE, password_hash TEXT NOT NULL,
                                 home_bank TEXT NOT NULL) WITHOUT ROWID;
         -- key is `type:canonical text` (model::pix_key_text).
         CREATE TABLE pix_keys (key TEXT PRIMARY KEY, bank TEXT NOT NULL, account TEXT NOT NULL,
                                holder_name TEXT NOT NULL,
                                document TEXT NOT NULL REFERENCES customers) WITHOUT ROWID;
         CREATE TABLE accounts (document TEXT NOT NULL REFERENCES customers,
                                bank TEXT NOT NULL, account TEXT NOT NULL,
                                PRIMARY KEY (document, bank, account)) WITHOUT ROWID;
         PRAGMA user_version = 1;
         COMMIT;",
    )?;
    Ok(Ok(()))
}

fn key_text(key: &PixKey) -> String {
    format!("{}:{}", key.key_type().as_str(), key.as_str())
}

/// Applies one command. Checks come first and nothing is written on a conflict, so a refused
/// command leaves the tables as they were.
pub(crate) fn apply(conn: &Connection, command: &Command) -> rusqlite::Result<Response> {
    match command {
        Command::RegisterCustomer {
            document,
            name,
            username,
            password_hash,
            home_bank,
        } => {
            let new = Customer {
                document: document.clone(),
                name: name.clone(),
                username: username.clone(),
                password_hash: password_hash.clone(),
                home_bank: *home_bank,
            };
            if let Some(existing) = raw_customer(conn, "document", document.as_str())? {
                return Ok(if existing == RawCustomer::of(&new) {
                    Ok(Effect::Unchanged)
                } else {
                    Err(Conflict::DuplicateDocument)
                });
            }
            if raw_customer(conn, "username", username)?.is_some() {
                return Ok(Err(Conflict::DuplicateUsername));
            }
            let raw = RawCustomer::of(&new);
            conn.prepare_cached(
                "INSERT INTO customers (document, name, username, password_hash, home_bank)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![
                raw.document,
                raw.name,
                raw.username,
                raw.password_hash,
                raw.home_bank
            ])?;
            Ok(Ok(Effect::Changed))
        }
        Command::AddPixKey {
            key,
            bank,
            account,
            holder_name,
            document,
        } => {
            let new = RawPixKey::of(&PixEntry {
                key: key.clone(),
                bank: *bank,
                account: *account,
                holder_name: holder_name.clone(),
                document: document.clone(),
            });
            if let Some(existing) = raw_pix_key(conn, &new.key)? {
                return Ok(if existing == new {
                    Ok(Effect::Unchanged)
                } else {
                    Err(Conflict::DuplicatePixKey)
                });
            }
            if raw_customer(conn, "document", document.as_str())?.is_none() {
                return Ok(Err(Conflict::CustomerNotFound));
            }
            let held: bool = conn
                .prepare_cached(
                    "SELECT EXISTS (SELECT 1 FROM accounts
                                    WHERE document = ?1 AND bank = ?2 AND account = ?3)",
                )?
                .query_row(params![new.document, new.bank, new.account], |row| {
                    row.get(0)
                })?;
            if !held {
                return Ok(Err(Conflict::AccountNotHeld));
            }
            conn.prepare_cached(
                "INSERT INTO pix_keys (key, bank, account, holder_name, document)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![
                new.key,
                new.bank,
                new.account,
                new.holder_name,
                new.document
            ])?;
            Ok(Ok(Effect::Changed))
        }
        Command::RemovePixKey { key, bank } => {
            let text = key_text(key);
            let Some(existing) = raw_pix_key(conn, &text)? else {
                return Ok(Ok(Effect::Unchanged));
            };
            if existing.bank != bank.as_str() {
                return Ok(Err(Conflict::PixKeyNotYours));
            }
            conn.prepare_cached("DELETE FROM pix_keys WHERE key = ?1")?
                .execute([text])?;
            Ok(Ok(Effect::Changed))
        }
        Command::AddAccount {
            document,
            bank,
            account,
        } => {
            if raw_customer(conn, "document", document.as_str())?.is_none() {
                return Ok(Err(Conflict::CustomerNotFound));
            }
            let added = conn
                .prepare_cached(
                    "INSERT OR IGNORE INTO accounts (document, bank, account) VALUES (?1, ?2, ?3)",
                )?
                .execute(params![
                    document.as_str(),
                    bank.as_str(),
                    account.to_string()
                ])?;
            Ok(Ok(if added == 1 {
                Effect::Changed
            } else {
                Effect::Unchanged
            }))
        }
        Command::RecordDecisions { decisions, forget } => record_decisions(conn, decisions, forget),
    }
}

/// A customer row as stored: canonical texts, compared as they are.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct RawCustomer {
    document: String,
    name: String,
    username: String,
    password_hash: String,
    home_bank: String,
}

impl RawCustomer {
    fn of(customer: &Customer) -> RawCustomer {
        RawCustomer {
            document: customer.document.as_str().to_owned(),
            name: customer.name.clone(),
            username: customer.username.clone(),
            password_hash: customer.password_hash.clone(),
            home_bank: customer.home_bank.as_str().to_owned(),
        }
    }

    fn parse(self) -> Option<Customer> {
        Some(Customer {
            document: Document::parse(&self.document).ok()?,
            name: self.name,
            username: self.username,
            password_hash: self.password_hash,
            home_bank: BankCode::parse(&self.home_bank)?,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct RawPixKey {
    key: String,
    bank: String,
    account: String,
    holder_name: String,
    document: String,
}

impl RawPixKey {
    fn of(entry: &PixEntry) -> RawPixKey {
        RawPixKey {
            key: key_text(&entry.key),
            bank: entry.bank.as_str().to_owned(),
            account: entry.account.to_string(),
            holder_name: entry.holder_name.clone(),
            document: entry.document.as_str().to_owned(),
        }
    }

    fn parse(self) -> Option<PixEntry> {
        Some(PixEntry {
            key: pix_key_text::parse(&self.key)?,
            bank: BankCode::parse(&self.bank)?,
            account: AccountNumber::parse(&self.account)?,
            holder_name: self.holder_name,
            document: Document::parse(&self.document).ok()?,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct RawAccount {
    document: String,
    bank: String,
    account: String,
}

fn raw_customer(
    conn: &Connection,
    column: &'static str,
    value: &str,
) -> rusqlite::Result<Option<RawCustomer>> {
    // `column` is one of two constants, never outside input.
    let sql = format!(
        "SELECT document, name, username, password_hash, home_bank FROM customers WHERE {column} = ?1"
    );
    conn.prepare_cached(&sql)?
        .query_row([value], |row| {
            Ok(RawCustomer {
                document: row.get(0)?,
                name: row.get(1)?,
                username: row.get(2)?,
                password_hash: row.get(3)?,
                home_bank: row.get(4)?,
            })
        })
        .optional()
}

fn raw_pix_key(conn: &Connection, key: &str) -> rusqlite::Result<Option<RawPixKey>> {
    conn.prepare_cached(
        "SELECT key, bank, account, holder_name, document FROM pix_keys WHERE key = ?1",
    )?
    .query_row([key], |row| {
        Ok(RawPixKey {
            key: row.get(0)?,
            bank: row.get(1)?,
            account: row.get(2)?,
            holder_name: row.get(3)?,
            document: row.get(4)?,
        })
    })
    .optional()
}

/// A stored row that no longer parses: the file was changed by something other than this code.
#[derive(Debug, thiserror::Error)]
#[error("the directory's {0} table holds a row that does not parse")]
pub struct Corrupt(pub &'static str);

/// Read errors: SQLite's, or a row that does not parse.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error(transparent)]
    Sql(#[from] rusqlite::Error),
    #[error(transparent)]
    Corrupt(#[from] Corrupt),
}

pub(crate) fn customer_by(
    conn: &Connection,
    by_username: bool,
    value: &str,
) -> Result<Option<Customer>, ReadError> {
    let column = if by_username { "username" } else { "document" };
    match raw_customer(conn, column, value)? {
        None => Ok(None),
        Some(raw) => Ok(Some(raw.parse().ok_or(Corrupt("customers"))?)),
    }
}

pub(crate) fn pix_key(conn: &Connection, key: &PixKey) -> Result<Option<PixEntry>, ReadError> {
    match raw_pix_key(conn, &key_text(key))? {
        None => Ok(None),
        Some(raw) => Ok(Some(raw.parse().ok_or(Corrupt("pix_keys"))?)),
    }
}

pub(crate) fn accounts_of(
    conn: &Connection,
    document: &Document,
) -> Result<Vec<AccountRef>, ReadError> {
    let mut statement = conn.prepare_cached(
        "SELECT bank, account FROM accounts WHERE document = ?1 ORDER BY bank, account",
    )?;
    let rows = statement.query_map([document.as_str()], |row| {
        Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))
    })?;
    let mut accounts = Vec::new();
    for row in rows {
        let (bank, account) = row?;
        accounts.push(AccountRef {
            bank: BankCode::parse(&bank).ok_or(Corrupt("accounts"))?,
            account: AccountNumber::parse(&account).ok_or(Corrupt("accounts"))?,
        });
    }
    Ok(accounts)
}

/// The whole directory in a snapshot: every row, in key order, so two replicas at the same log
/// index make byte-identical snapshots.
#[derive(Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Dump {
    customers: Vec<RawCustomer>,
    pix_keys: Vec<RawPixKey>,
    accounts: Vec<RawAccount>,
    /// Interbank decisions, `(end-to-end id, commit)` (absent from snapshots made before them).
    #[serde(default)]
    decisions: Vec<(String, bool)>,
}

pub(crate) fn dump(conn: &Connection) -> rusqlite::Result<Dump> {
    let mut dump = Dump::default();
    let mut statement = conn.prepare(
        "SELECT document, name, username, password_hash, home_bank FROM customers ORDER BY document",
    )?;
    for row in statement.query_map([], |row| {
        Ok(RawCustomer {
            document: row.get(0)?,
            name: row.get(1)?,
            username: row.get(2)?,
            password_hash: row.get(3)?,
            home_bank: row.get(4)?,
        })
    })? {
        dump.customers.push(row?);
    }
    let mut statement = conn
        .prepare("SELECT key, bank, account, holder_name, document FROM pix_keys ORDER BY key")?;
    for row in statement.query_map([], |row| {
        Ok(RawPixKey {
            key: row.get(0)?,
            bank: row.get(1)?,
            account: row.get(2)?,
            holder_name: row.get(3)?,
            document: row.get(4)?,
        })
    })? {
        dump.pix_keys.push(row?);
    }
    let mut statement = conn
        .prepare("SELECT document, bank, account FROM accounts ORDER BY document, bank, account")?;
    for row in statement.query_map([], |row| {
        Ok(RawAccount {
            document: row.get(0)?,
            bank: row.get(1)?,
            account: row.get(2)?,
        })
    })? {
        dump.accounts.push(row?);
    }
    dump.decisions = dump_decisions(conn)?;
    Ok(dump)
}

/// Replaces every row with the snapshot's.
pub(crate) fn restore(conn: &Connection, dump: &Dump) -> rusqlite::Result<()> {
    conn.execute_batch("DELETE FROM pix_keys; DELETE FROM accounts; DELETE FROM customers;")?;
    let mut statement = conn.prepare(
        "INSERT INTO customers (document, name, username, password_hash, home_bank)
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    for c in &dump.customers {
        statement.execute(params![
            c.document,
            c.name,
            c.username,
            c.password_hash,
            c.home_bank
        ])?;
    }
    let mut statement =
        conn.prepare("INSERT INTO accounts (document, bank, account) VALUES (?1, ?2, ?3)")?;
    for a in &dump.accounts {
        statement.execute(params![a.document, a.bank, a.account])?;
    }
    let mut statement = conn.prepare(
        "INSERT INTO pix_keys (key, bank, account, holder_name, document)
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    for k in &dump.pix_keys {
        statement.execute(params![k.key, k.bank, k.account, k.holder_name, k.document])?;
    }
    restore_decisions(conn, &dump.decisions)
}

/// The interbank decisions' table (issue #24), created beside the others in a file of any
/// version: one row per transaction, written once (the first decision recorded wins).
pub(crate) fn create_decisions(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS decisions (
             e2e TEXT PRIMARY KEY,
             committed INTEGER NOT NULL CHECK (committed IN (0, 1))
         ) WITHOUT ROWID;",
    )
}

/// Records each decision whose transaction has none yet; the ones already decided keep theirs.
fn record_decisions(
    conn: &Connection,
    decisions: &[crate::model::Decision],
    forget: &[ledger::EndToEndId],
) -> rusqlite::Result<Response> {
    let mut statement =
        conn.prepare_cached("INSERT OR IGNORE INTO decisions (e2e, committed) VALUES (?1, ?2)")?;
    let mut changed = false;
    let mut winners = Vec::with_capacity(decisions.len());
    for decision in decisions {
        let e2e = decision.e2e.as_str();
        if statement.execute(params![e2e, decision.commit])? == 1 {
            changed = true;
            winners.push(decision.commit);
        } else {
            // Recorded before (rare: a retry, or a participant in doubt forcing an abort first).
            let first = self::decision(conn, e2e)?.ok_or(rusqlite::Error::QueryReturnedNoRows)?;
            winners.push(first);
        }
    }
    let mut statement = conn.prepare_cached("DELETE FROM decisions WHERE e2e = ?1")?;
    for e2e in forget {
        changed |= statement.execute([e2e.as_str()])? == 1;
    }
    Ok(Ok(Effect::Decided { winners, changed }))
}

/// Every transaction the log holds a decision for.
pub(crate) fn decided(conn: &Connection) -> rusqlite::Result<Vec<String>> {
    let mut statement = conn.prepare_cached("SELECT e2e FROM decisions")?;
    let rows = statement.query_map([], |row| row.get(0))?;
    rows.collect()
}

/// The decision the log recorded for a transaction, if any.
pub(crate) fn decision(conn: &Connection, e2e: &str) -> rusqlite::Result<Option<bool>> {
    conn.prepare_cached("SELECT committed FROM decisions WHERE e2e = ?1")?
        .query_row([e2e], |row| row.get(0))
        .optional()
}

fn dump_decisions(conn: &Connection) -> rusqlite::Result<Vec<(String, bool)>> {
    let mut statement = conn.prepare("SELECT e2e, committed FROM decisions ORDER BY e2e")?;
    let rows = statement.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?;
    rows.collect()
}

fn restore_decisions(conn: &Connection, decisions: &[(String, bool)]) -> rusqlite::Result<()> {
    conn.execute("DELETE FROM decisions", [])?;
    let mut statement = conn.prepare("INSERT INTO decisions (e2e, committed) VALUES (?1, ?2)")?;
    for (e2e, committed) in decisions {
        statement.execute(params![e2e, committed])?;
    }
    Ok(())
}
