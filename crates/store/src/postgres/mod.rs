//! The PostgreSQL backend (#25): one bank's ledger in a PostgreSQL database that several `bankd`
//! processes of that bank share.
//!
//! What is here: the URL ([`is_url`], [`connect_config`]), the schema as versioned migrations
//! run at start by whichever process comes first ([`migrate`], `schema.rs`), transactions run
//! again on a serialization failure or a deadlock ([`is_retryable`], [`retrying`]), the lease
//! that gives one process the bank's duties ([`duty::DutyLease`]), and the tests' databases
//! ([`testing`]).
//!
//! The SQL is kept portable to PostgreSQL-compatible distributed databases (CockroachDB,
//! YugabyteDB): no extensions, no advisory locks, no `LISTEN`, plain `INSERT … ON CONFLICT`,
//! and every transaction written to be run again whole when the database answers 40001.

pub mod duty;
pub mod read;
mod schema;
mod store;
pub mod testing;
mod tx;

pub use schema::{MIGRATIONS, migrate};
pub use store::{PgLedger, PgStore, Prepared, Writes, open, prepare};
/// The connection settings of a PostgreSQL database.
pub use tokio_postgres::Config as PgConfig;
pub use tx::{PgBackend, PgTx};

use std::time::Duration;
use tokio_postgres::error::SqlState;

/// How often a transaction is run again after a serialization failure or a deadlock before the
/// error is given up to the caller.
pub const RETRIES_MAX: u32 = 32;
/// Connecting to the server may take this long before it counts as down.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Whether `text` names a PostgreSQL database rather than a path (`postgres://…` or
/// `postgresql://…`, the two schemes libpq takes).
pub fn is_url(text: &str) -> bool {
    text.starts_with("postgres://") || text.starts_with("postgresql://")
}

/// The connection settings of `url`, with the timeouts and keepalives every connection of ours
/// uses: a server that vanishes is noticed within seconds (the duty lease depends on it), not
/// after the kernel's two hours.
pub fn connect_config(url: &str) -> Result<tokio_postgres::Config, String> {
    let mut config: tokio_postgres::Config = url
        .parse()
        .map_err(|e| format!("the database URL is not a PostgreSQL URL: {e}"))?;
    config
        .connect_timeout(CONNECT_TIMEOUT)
        .keepalives(true)
        .keepalives_idle(Duration::from_secs(5))
        .application_name("bankd");
    Ok(config)
}

/// The URL with its password replaced, for logs and error messages.
pub fn redacted(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &url[scheme_end + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme_end + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

/// Serialization failure (40001) and deadlock (40P01): the transaction did nothing and may be
/// run again whole. A distributed database answers 40001 wherever PostgreSQL would have waited.
pub fn is_retryable(error: &tokio_postgres::Error) -> bool {
    matches!(
        error.code(),
        Some(code) if *code == SqlState::T_R_SERIALIZATION_FAILURE || *code == SqlState::T_R_DEADLOCK_DETECTED
    )
}

/// A unique, foreign-key, check or not-null constraint refused the statement (class 23): the
/// data was refused, the database is as sound as before.
pub fn is_constraint(error: &tokio_postgres::Error) -> bool {
    error
        .code()
        .is_some_and(|code| code.code().starts_with("23"))
}

/// Whether the statement broke the unique constraint (23505): with an idempotency record, the
/// sign that another process recorded the same key first.
pub fn is_unique_violation(error: &tokio_postgres::Error) -> bool {
    error.code() == Some(&SqlState::UNIQUE_VIOLATION)
}

/// Runs `body` in one SERIALIZABLE transaction on the blocking client (the writer thread's) and
/// commits it, running it again whole, up to [`RETRIES_MAX`] times, when the database answers a
/// serialization failure or a deadlock, in `body` or at the commit. `body` must therefore keep
/// nothing of a failed try: everything it learns comes from the transaction.
pub fn retrying<T>(
    client: &mut postgres::Client,
    mut body: impl FnMut(&mut postgres::Transaction<'_>) -> Result<T, postgres::Error>,
) -> Result<T, postgres::Error> {
    let mut tries = 0;
    loop {
        tries += 1;
        let attempt = (|| {
            let mut tx = client
                .build_transaction()
                .isolation_level(postgres::IsolationLevel::Serializable)
                .start()?;
            let value = body(&mut tx)?;
            tx.commit()?;
            Ok(value)
        })();
        match attempt {
            Err(error) if is_retryable(&error) && tries < RETRIES_MAX => {
                // Back off a little, more each time, so two writers that keep colliding part.
                std::thread::sleep(Duration::from_millis(u64::from(tries.min(10))));
            }
            other => return other,
        }
    }
}

/// How many slots the processes of a bank on PostgreSQL take their numbers from
/// ([`process_slot`]): 1 to this. (0 is a bank's only process, on SQLite.)
pub const PROCESS_SLOTS: u64 = 35;

/// This process's slot among the bank's processes, 1 to [`PROCESS_SLOTS`]: the next number of
/// the database's sequence, so processes started one after the other take different ones (a
/// slot comes back only after [`PROCESS_SLOTS`] more starts).
pub async fn process_slot(config: &tokio_postgres::Config) -> Result<u64, tokio_postgres::Error> {
    let client = connect(config).await?;
    let taken: i64 = client
        .query_one("SELECT nextval('process_slots')", &[])
        .await?
        .get(0);
    Ok(taken.unsigned_abs() % PROCESS_SLOTS + 1)
}

/// Connects once with the async client and drives its connection on a task of its own.
pub async fn connect(
    config: &tokio_postgres::Config,
) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let (client, connection) = config.connect(tokio_postgres::NoTls).await?;
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::warn!(%error, "a PostgreSQL connection ended");
        }
    });
    Ok(client)
}
