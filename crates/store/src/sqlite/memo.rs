//! What the writer remembers between commands: facts that never change once written (a customer
//! account's id, kind, holders and statement label; a customer's username), and the counters of
//! accounts it has read or written (every change is still written to SQLite at once; this only
//! spares reading them back). A transfer needs all of them, and asking SQLite each time cost
//! more than the transfer's own writes.
//!
//! Only the writer thread uses it. It may hold facts written by the transaction in progress, so
//! the writer forgets everything whenever a transaction or a savepoint is rolled back. It is
//! bounded: past [`FACTS_MAX`] accounts it starts again from empty.

use super::read;
use crate::model::*;
use ledger::rules::Counters;
use ledger::{AccountKind, AccountNumber};
use rusqlite::{Connection, OptionalExtension, params};
use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;

/// The most accounts remembered at once (each costs a few hundred bytes).
pub const FACTS_MAX: usize = 100_000;

/// A customer account's facts that never change.
pub struct AccountFacts {
    pub id: i64,
    pub kind: AccountKind,
    pub holders: Vec<CustomerId>,
    pub address: AccountAddress,
    /// `bank/number Name & Name`, the counterparty shown on the other side's statement.
    pub label: String,
}

#[derive(Default)]
pub struct Memo {
    by_number: RefCell<HashMap<u64, Arc<AccountFacts>>>,
    by_id: RefCell<HashMap<i64, Arc<AccountFacts>>>,
    usernames: RefCell<HashMap<CustomerId, Arc<str>>>,
    counters: RefCell<HashMap<i64, (AccountKind, Counters)>>,
}

impl Memo {
    pub fn forget(&self) {
        self.by_number.borrow_mut().clear();
        self.by_id.borrow_mut().clear();
        self.usernames.borrow_mut().clear();
        self.counters.borrow_mut().clear();
    }

    /// An account's counters as last read or written by this writer.
    pub fn counters(&self, id: i64) -> Option<(AccountKind, Counters)> {
        self.counters.borrow().get(&id).copied()
    }

    pub fn remember_counters(&self, id: i64, kind: AccountKind, counters: Counters) {
        let mut known = self.counters.borrow_mut();
        if known.len() >= FACTS_MAX {
            known.clear();
        }
        known.insert(id, (kind, counters));
    }

    /// Records counters just written; an account not remembered stays so (it is read again).
    pub fn set_counters(&self, id: i64, counters: Counters) {
        if let Some(known) = self.counters.borrow_mut().get_mut(&id) {
            known.1 = counters;
        }
    }

    /// The customer account with this number, if there is one.
    pub fn account(
        &self,
        conn: &Connection,
        bank: &str,
        number: AccountNumber,
    ) -> rusqlite::Result<Option<Arc<AccountFacts>>> {
        if let Some(facts) = self.by_number.borrow().get(&number.base()) {
            return Ok(Some(facts.clone()));
        }
        let found: Option<(i64, String)> = conn
            .prepare_cached("SELECT id, kind FROM accounts WHERE number = ?1")?
            .query_row(params![number.base() as i64], |row| {
                Ok((row.get(0)?, row.get(1)?))
            })
            .optional()?;
        let Some((id, kind)) = found else {
            return Ok(None);
        };
        let holders: Vec<(CustomerId, String)> = conn
            .prepare_cached(
                "SELECT h.customer_id, c.name FROM account_holders h JOIN customers c ON c.id = h.customer_id
                 WHERE h.account_id = ?1 ORDER BY h.position",
            )?
            .query_map(params![id], |row| Ok((row.get(0)?, row.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?;
        let address = AccountAddress {
            bank: bank.to_string(),
            number: number.to_string(),
        };
        let names: Vec<&str> = holders.iter().map(|(_, name)| name.as_str()).collect();
        let label = format!("{}/{} {}", address.bank, address.number, names.join(" & "));
        let holders = holders.into_iter().map(|(id, _)| id).collect();
        let facts = Arc::new(AccountFacts {
            id,
            kind: read::kind(&kind),
            holders,
            address,
            label,
        });
        if self.by_number.borrow().len() >= FACTS_MAX {
            self.forget();
        }
        self.by_number
            .borrow_mut()
            .insert(number.base(), facts.clone());
        self.by_id.borrow_mut().insert(id, facts.clone());
        Ok(Some(facts))
    }

    /// The customer account `actor` holds with this number.
    pub fn held(
        &self,
        conn: &Connection,
        bank: &str,
        actor: CustomerId,
        number: AccountNumber,
    ) -> rusqlite::Result<Option<Arc<AccountFacts>>> {
        Ok(self
            .account(conn, bank, number)?
            .filter(|facts| facts.holders.contains(&actor)))
    }

    /// The customer account with this id (which must exist).
    pub fn account_by_id(
        &self,
        conn: &Connection,
        bank: &str,
        id: i64,
    ) -> rusqlite::Result<Arc<AccountFacts>> {
        if let Some(facts) = self.by_id.borrow().get(&id) {
            return Ok(facts.clone());
        }
        let number: i64 = conn
            .prepare_cached("SELECT number FROM accounts WHERE id = ?1")?
            .query_row(params![id], |row| row.get(0))?;
        let number = AccountNumber::from_base(number as u64).expect("stored numbers are valid");
        Ok(self
            .account(conn, bank, number)?
            .expect("the account was just read"))
    }

    pub fn username(&self, conn: &Connection, id: CustomerId) -> rusqlite::Result<Arc<str>> {
        if let Some(name) = self.usernames.borrow().get(&id) {
            return Ok(name.clone());
        }
        let name: String = conn
            .prepare_cached("SELECT username FROM customers WHERE id = ?1")?
            .query_row(params![id], |row| row.get(0))?;
        let name: Arc<str> = name.into();
        let mut usernames = self.usernames.borrow_mut();
        if usernames.len() >= FACTS_MAX {
            usernames.clear();
        }
        usernames.insert(id, name.clone());
        Ok(name)
    }
}
