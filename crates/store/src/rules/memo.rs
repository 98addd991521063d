//! What the writer remembers between commands: facts that never change once written (a customer
//! account's id, kind, holders and address; a customer's username), and the state of
//! accounts it has read or written (counters and newest statement entry). A transfer needs all
//! of them, and asking SQLite each time cost more than the transfer's own writes.
//!
//! An account's state changes here first and reaches its row by [`Memo::flush`], once
//! per account however many movements touched it: a bulk command of a thousand transfers writes
//! each account's row once instead of four times per transfer. The writer flushes at the end of
//! every command and before every savepoint opens or is released, so a change never crosses a
//! savepoint or a commit without being in the database.
//!
//! Only the writer thread uses it. It may hold facts written by the transaction in progress, so
//! the writer forgets everything whenever a transaction or a savepoint is rolled back, and at
//! the start of every transaction when other processes write the same database
//! ([`crate::tx::Backend::exclusive`]). It is
//! bounded: past [`FACTS_MAX`] accounts it starts again from empty (account states only once
//! they are flushed).

use crate::model::*;
use crate::tx::{LedgerTx, RowId};
use ledger::rules::Counters;
use ledger::{AccountKind, AccountNumber, BankCode};
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
    pub(crate) states: RefCell<HashMap<i64, AccountState>>,
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
    pub fn flush<T: LedgerTx>(&self, tx: &mut T) -> Result<(), T::Error> {
        let mut dirty = self.dirty.borrow_mut();
        let mut states = self.states.borrow_mut();
        for id in dirty.drain(..) {
            let state = states.get_mut(&id).expect("dirty accounts stay remembered");
            tx.update_account(id, &state.counters, state.last_entry)?;
            state.dirty = false;
        }
        if states.len() >= FACTS_MAX {
            states.clear();
        }
        Ok(())
    }

    /// The customer account with this number, if there is one.
    pub fn account<T: LedgerTx>(
        &self,
        tx: &mut T,
        bank: &str,
        number: AccountNumber,
    ) -> Result<Option<Arc<AccountFacts>>, T::Error> {
        if let Some(facts) = self.by_number.borrow().get(&number.base()) {
            return Ok(Some(facts.clone()));
        }
        let Some((id, kind)) = tx.account_by_number(number)? else {
            return Ok(None);
        };
        let holders = tx.holders(id)?;
        let facts = Arc::new(AccountFacts {
            id,
            kind,
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
    pub fn held<T: LedgerTx>(
        &self,
        tx: &mut T,
        bank: &str,
        actor: CustomerId,
        number: AccountNumber,
    ) -> Result<Option<Arc<AccountFacts>>, T::Error> {
        Ok(self
            .account(tx, bank, number)?
            .filter(|facts| facts.holders.contains(&actor)))
    }

    /// The customer account with this id (which must exist).
    pub fn account_by_id<T: LedgerTx>(
        &self,
        tx: &mut T,
        bank: &str,
        id: RowId,
    ) -> Result<Arc<AccountFacts>, T::Error> {
        if let Some(facts) = self.by_id.borrow().get(&id) {
            return Ok(facts.clone());
        }
        let number = tx.account_number(id)?;
        Ok(self
            .account(tx, bank, number)?
            .expect("the account was just read"))
    }

    /// This bank's settlement account with `peer`, if the consortium lists that bank.
    pub fn settlement<T: LedgerTx>(
        &self,
        tx: &mut T,
        peer: BankCode,
    ) -> Result<Option<RowId>, T::Error> {
        if let Some(id) = self.settlements.borrow().get(&peer) {
            return Ok(Some(*id));
        }
        let id = tx.settlement_account(peer)?;
        if let Some(id) = id {
            self.settlements.borrow_mut().insert(peer, id);
        }
        Ok(id)
    }

    pub fn username<T: LedgerTx>(&self, tx: &mut T, id: CustomerId) -> Result<Arc<str>, T::Error> {
        if let Some(name) = self.usernames.borrow().get(&id) {
            return Ok(name.clone());
        }
        let name: Arc<str> = tx.username(id)?.into();
        let mut usernames = self.usernames.borrow_mut();
        if usernames.len() >= FACTS_MAX {
            usernames.clear();
        }
        usernames.insert(id, name.clone());
        Ok(name)
    }
}
