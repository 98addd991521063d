//! A database of its own for each test that needs a real PostgreSQL server (this crate's tests
//! and the node's): created on the server `cargo xtask test` starts (its URL in [`URL_VAR`]),
//! dropped when the test ends. Without the variable such a test is skipped with a loud message,
//! but fails when `CI=true`: CI must never pass by skipping them.

use std::sync::atomic::{AtomicU32, Ordering};

/// The variable that names the tests' server (`cargo xtask test` sets it).
pub const URL_VAR: &str = "INTERBANK_TEST_PG";
/// PostgreSQL's longest name.
const NAME_LEN_MAX: usize = 63;

static CREATED: AtomicU32 = AtomicU32::new(0);

/// A database that lives as long as this value.
pub struct TestDatabase {
    admin_url: String,
    name: String,
    url: String,
}

impl TestDatabase {
    /// A fresh, empty database for the test `test`; `None` (after saying so loudly) when no
    /// server is given. Panics when `CI=true` and no server is given, or when the server refuses.
    pub fn create(test: &str) -> Option<TestDatabase> {
        let Some(admin_url) = std::env::var(URL_VAR).ok().filter(|v| !v.is_empty()) else {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("{URL_VAR} is not set under CI=true: the PostgreSQL test {test} must run");
            }
            // Written to the stream itself, not through `eprintln!`, which the test harness
            // captures and hides for a test that passes.
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr(),
                "\n######## SKIPPING the PostgreSQL test {test}: {URL_VAR} is not set \
                 (`cargo xtask test` starts a server; `cargo xtask with-pg cargo test ...` too) ########\n"
            );
            return None;
        };
        let mut name: String = format!(
            "t_{}_{}_{}",
            std::process::id(),
            CREATED.fetch_add(1, Ordering::Relaxed),
            test
        )
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
        name.truncate(NAME_LEN_MAX);
        let url = with_database(&admin_url, &name);
        let sql = format!("CREATE DATABASE \"{name}\"");
        if let Err(error) = admin(&admin_url, &sql) {
            panic!("cannot create the test database {name}: {error}");
        }
        Some(TestDatabase {
            admin_url,
            name,
            url,
        })
    }

    /// The database's URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The server's own database (for what cannot be done from inside this one).
    pub fn admin_url(&self) -> &str {
        &self.admin_url
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        // FORCE: a `bankd` the test killed may leave a connection the server has not closed yet.
        let sql = format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name);
        if let Err(error) = admin(&self.admin_url, &sql) {
            eprintln!("cannot drop the test database {}: {error}", self.name);
        }
    }
}

/// `url` with its database replaced by `name`.
pub fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let base = match base[authority_start..].find('/') {
        Some(slash) => &base[..authority_start + slash],
        None => base,
    };
    match query {
        Some(query) => format!("{base}/{name}?{query}"),
        None => format!("{base}/{name}"),
    }
}

/// Runs one statement on the server with the blocking client, on a thread of its own (the
/// blocking client may not run inside a tokio runtime, and tests call this from both kinds).
fn admin(url: &str, sql: &str) -> Result<(), String> {
    let url = url.to_string();
    let sql = sql.to_string();
    std::thread::spawn(move || {
        let mut client = postgres::Client::connect(&url, postgres::NoTls)
            .map_err(|e| format!("cannot connect to {}: {e}", super::redacted(&url)))?;
        client.batch_execute(&sql).map_err(|e| e.to_string())
    })
    .join()
    .map_err(|_| "the admin thread panicked".to_string())?
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn the_database_of_a_url_is_replaced() {
        assert_eq!(
            with_database("postgres://u@127.0.0.1:5432/postgres", "t_1"),
            "postgres://u@127.0.0.1:5432/t_1"
        );
        assert_eq!(
            with_database("postgres://u@h:1", "t_1"),
            "postgres://u@h:1/t_1"
        );
        assert_eq!(
            with_database("postgresql://u:p@h/db?sslmode=disable", "t_2"),
            "postgresql://u:p@h/t_2?sslmode=disable"
        );
    }
}
