//! What the writer remembers between commands: facts that never change once written (a customer
//! account's id, kind, holders and address; a customer's username), and the state of
//! accounts it has read or written (counters and newest statement entry). A transfer needs all
//! of them, and asking SQLite each time cost more than the transfer's own writes.
//!
//! An account's state changes here first and reaches its row in SQLite by [`Memo::flush`], once
//! per account however many movements touched it: a bulk command of a thousand transfers writes
//! each account's row once instead of four times per transfer. The writer flushes at the end of
//! every command and before every savepoint opens or is released, so a change never crosses a
//! savepoint or a commit without being in the database.
//!
//! Only the writer thread uses it. It may hold facts written by the transaction in progress, so
//! the writer forgets everything whenever a transaction or a savepoint is rolled back. It is
//! bounded: past [`FACTS_MAX`] accounts it starts again from empty (account states only once
//! they are flushed).

use super::apply::Hot;
use super::read;
use crate::model::*;
use ledger::rules::Counters;
use ledger::{AccountKind, AccountNumber, BankCode};
use rusqlite::{Connection, OptionalExtension, params};
use std::cell::RefCell;
use std::sync::Arc;

/// The memo's maps hash small integer keys the writer chose itself (row ids, account numbers)
/// many times per transfer: foldhash instead of the standard library's SipHash, whose hashing was
/// about a twentieth of the bulk writer's instructions.
type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

/// The most accounts remembered at once (each costs a few hundred bytes).
pub const FACTS_MAX: usize = 100_000;

/// A customer account's facts that never change.
pub struct AccountFacts {
    pub id: i64,
    pub kind: AccountKind,
    pub holders: Vec<CustomerId>,
    pub address: AccountAddress,
}

/// What changes on an account's row: its counters and the newest entry of its statement.
#[derive(Clone, Copy, Debug)]
pub struct AccountState {
    pub kind: AccountKind,
    pub counters: Counters,
    pub last_entry: Option<i64>,
    /// Changed here and not yet written to the account's row.
    dirty: bool,
}

impl AccountState {
    pub fn read(kind: AccountKind, counters: Counters, last_entry: Option<i64>) -> AccountState {
        AccountState {
            kind,
            counters,
            last_entry,
            dirty: false,
        }
    }
}

#[derive(Default)]
pub struct Memo {
    by_number: RefCell<HashMap<u64, Arc<AccountFacts>>>,
    by_id: RefCell<HashMap<i64, Arc<AccountFacts>>>,
    usernames: RefCell<HashMap<CustomerId, Arc<str>>>,
    /// Each peer bank's settlement account here.
    settlements: RefCell<HashMap<BankCode, i64>>,
    states: RefCell<HashMap<i64, AccountState>>,
    /// The accounts whose state is dirty, in the order they first changed.
    dirty: RefCell<Vec<i64>>,
}

impl Memo {
    /// Forgets everything, unflushed changes too: for after a rollback, which undid them.
    pub fn forget(&self) {
        self.forget_facts();
        self.states.borrow_mut().clear();
        self.dirty.borrow_mut().clear();
    }

    /// Forgets what never changes but an account's holders, which a co-holder accepting an
    /// invitation does change; unflushed counters stay.
    pub fn forget_facts(&self) {
        self.by_number.borrow_mut().clear();
        self.by_id.borrow_mut().clear();
        self.usernames.borrow_mut().clear();
        self.settlements.borrow_mut().clear();
    }

    /// An account's state as last read or changed by this writer.
    pub fn state(&self, id: i64) -> Option<AccountState> {
        self.states.borrow().get(&id).copied()
    }

    /// Remembers an account's state as just read from its row. Nothing is forgotten here, so a
    /// state read for a movement is still there when the movement changes it; the bound is kept
    /// by [`Memo::flush`].
    pub fn remember(&self, id: i64, state: AccountState) {
        self.states.borrow_mut().insert(id, state);
    }

    /// Changes a remembered account's state; its row is written by the next [`Memo::flush`].
    pub fn change(&self, id: i64, change: impl FnOnce(&mut AccountState)) {
        let mut known = self.states.borrow_mut();
        let state = known
            .get_mut(&id)
            .expect("an account's state is read before it changes");
        change(state);
        if !state.dirty {
            state.dirty = true;
            self.dirty.borrow_mut().push(id);
        }
    }

    /// Writes every changed account's row, once each; past [`FACTS_MAX`] remembered accounts,
    /// forgets them all (every one is clean by then).
    pub fn flush(&self, hot: &Hot) -> rusqlite::Result<()> {
        let mut dirty = self.dirty.borrow_mut();
        let mut states = self.states.borrow_mut();
        if !dirty.is_empty() {
            let update = hot.statement(
                "UPDATE accounts SET debits_pending = ?2, debits_posted = ?3, credits_pending = ?4, credits_posted = ?5, last_entry = ?6 WHERE id = ?1",
            )?;
            let mut update = update.borrow_mut();
            for id in dirty.drain(..) {
                let state = states.get_mut(&id).expect("dirty accounts stay remembered");
                let c = state.counters;
                update.execute(params![
                    id,
                    c.debits_pending,
                    c.debits_posted,
                    c.credits_pending,
                    c.credits_posted,
                    state.last_entry
                ])?;
                state.dirty = false;
            }
        }
        if states.len() >= FACTS_MAX {
            states.clear();
        }
        Ok(())
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
        let holders = conn
            .prepare_cached(
                "SELECT customer_id FROM account_holders WHERE account_id = ?1 ORDER BY position",
            )?
            .query_map(params![id], |row| row.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        let facts = Arc::new(AccountFacts {
            id,
            kind: read::kind(&kind),
            holders,
            address: AccountAddress {
                bank: bank.to_string(),
                number: number.to_string(),
            },
        });
        if self.by_number.borrow().len() >= FACTS_MAX {
            self.forget_facts();
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

    /// This bank's settlement account with `peer`, if the consortium lists that bank.
    pub fn settlement(&self, conn: &Connection, peer: BankCode) -> rusqlite::Result<Option<i64>> {
        if let Some(id) = self.settlements.borrow().get(&peer) {
            return Ok(Some(*id));
        }
        let id: Option<i64> = conn
            .prepare_cached("SELECT id FROM accounts WHERE kind = 'settlement' AND peer_bank = ?1")?
            .query_row(params![peer.as_str()], |row| row.get(0))
            .optional()?;
        if let Some(id) = id {
            self.settlements.borrow_mut().insert(peer, id);
        }
        Ok(id)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn clean() -> AccountState {
        AccountState::read(AccountKind::Individual, Counters::default(), None)
    }

    /// A movement reads both accounts' states and then changes them: however full the memo is,
    /// the first state read is still there for its change, and the bound holds after a flush.
    #[test]
    fn a_full_memo_keeps_what_a_movement_read_until_it_is_flushed() {
        let memo = Memo::default();
        let mut conn = Connection::open_in_memory().unwrap();
        super::super::schema::migrate(&mut conn).unwrap();
        let hot = Hot::new(&conn);
        for id in 0..FACTS_MAX as i64 {
            memo.remember(id, clean());
        }
        let (debit, credit) = (FACTS_MAX as i64, FACTS_MAX as i64 + 1);
        memo.remember(debit, clean());
        memo.remember(credit, clean());
        memo.change(debit, |state| state.counters.debits_posted = 5);
        memo.change(credit, |state| state.counters.credits_posted = 5);
        memo.flush(&hot).unwrap();
        assert!(memo.state(debit).is_none(), "forgotten once written");
        assert_eq!(memo.states.borrow().len(), 0);
    }
}
