//! SQLite's [`LedgerTx`]: the rows of one writer transaction, each read or write one SQL
//! statement on the writer's connection.

use super::priority::Priority;
use super::read;
use crate::model::*;
use crate::tx::*;
use ledger::rules::Counters;
use ledger::{AccountKind, AccountNumber, Amount, BankCode};
use rusqlite::{CachedStatement, Connection, OptionalExtension, params};
use std::cell::RefCell;
use std::rc::Rc;

/// The writer's statements, each taken from the statement cache once per batch instead of once
/// per use: a lookup hashes and compares the statement's whole text, and cost the interbank path
/// about a tenth of its instructions (`cargo bench -p store`, interbank_payments, under
/// callgrind). A statement is taken the first time the batch runs it ([`Hot::statement`]).
///
/// It is opt-in tuning ([`super::SqliteTuning::batch_statements`]): without it each use takes
/// its statement from the cache, as any other statement is.
pub struct Hot<'c> {
    conn: &'c Connection,
    /// Whether statements are kept for the batch.
    keep: bool,
    /// Taken so far, by the address of their text.
    taken: RefCell<Vec<(usize, Taken<'c>)>>,
}

/// A statement [`Hot`] holds for the rest of the batch.
pub type Taken<'c> = Rc<RefCell<CachedStatement<'c>>>;

impl<'c> Hot<'c> {
    pub fn new(conn: &'c Connection, keep: bool) -> Hot<'c> {
        Hot {
            conn,
            keep,
            taken: RefCell::new(Vec::new()),
        }
    }

    /// The statement with this text, from this batch's or else from the cache. Statements are
    /// told apart by where their text lives, so each is a literal written once (one call site,
    /// or one `const`): a second copy of the same text would be prepared a second time.
    pub fn statement(&self, sql: &'static str) -> rusqlite::Result<Taken<'c>> {
        if !self.keep {
            return Ok(Rc::new(RefCell::new(self.conn.prepare_cached(sql)?)));
        }
        let at = sql.as_ptr() as usize;
        if let Some((_, taken)) = self.taken.borrow().iter().find(|(key, _)| *key == at) {
            return Ok(taken.clone());
        }
        let taken = Rc::new(RefCell::new(self.conn.prepare_cached(sql)?));
        self.taken.borrow_mut().push((at, taken.clone()));
        Ok(taken)
    }
}

/// One writer transaction on SQLite (opened with `BEGIN IMMEDIATE` by the backend).
pub struct SqliteTx<'c> {
    pub(super) conn: &'c Connection,
    pub(super) hot: Hot<'c>,
    pub(super) priority: Option<&'c Priority>,
}

impl SqliteTx<'_> {
    fn run(&self, sql: &'static str, params: impl rusqlite::Params) -> rusqlite::Result<usize> {
        self.hot.statement(sql)?.borrow_mut().execute(params)
    }
}

impl LedgerTx for SqliteTx<'_> {
    type Error = rusqlite::Error;

    fn savepoint(&mut self, savepoint: Savepoint) -> rusqlite::Result<()> {
        match savepoint {
            Savepoint::Step => self.run("SAVEPOINT step", [])?,
            Savepoint::Package => self.run("SAVEPOINT package", [])?,
        };
        Ok(())
    }

    fn release(&mut self, savepoint: Savepoint) -> rusqlite::Result<()> {
        match savepoint {
            Savepoint::Step => self.run("RELEASE step", [])?,
            Savepoint::Package => self.run("RELEASE package", [])?,
        };
        Ok(())
    }

    fn rollback_to(&mut self, savepoint: Savepoint) -> rusqlite::Result<()> {
        match savepoint {
            Savepoint::Step => self.run("ROLLBACK TO step", [])?,
            Savepoint::Package => self.run("ROLLBACK TO package", [])?,
        };
        self.release(savepoint)
    }

    fn commit(self, commands: usize) -> rusqlite::Result<()> {
        let conn = self.conn;
        drop(self.hot);
        if let Some(priority) = self.priority {
            priority.arm(commands);
        }
        conn.execute_batch("COMMIT")
    }

    fn idempotency(
        &mut self,
        bank: &str,
        scope: i64,
        key: &str,
    ) -> rusqlite::Result<Option<StoredRequest>> {
        let stored: Option<(Vec<u8>, Option<String>, Option<i64>)> = self
            .hot
            .statement(
                "SELECT i.fingerprint, coalesce(i.outcome, p.body), e.id FROM idempotency i
                 LEFT JOIN payments p ON p.e2e_id = i.payment
                 LEFT JOIN entries e ON e.e2e_id = i.payment AND e.other_account_id IS NOT NULL
                 WHERE i.key = ?2 AND i.scope = ?1",
            )?
            .borrow_mut()
            .query_row(params![scope, key], |row| {
                Ok((row.get(0)?, row.get(1)?, row.get(2)?))
            })
            .optional()?;
        let Some((fingerprint, body, entry)) = stored else {
            return Ok(None);
        };
        Ok(Some(StoredRequest {
            fingerprint,
            outcome: read::stored_outcome(self.conn, bank, body, entry)?,
        }))
    }

    fn insert_idempotency(&mut self, record: &NewIdempotency) -> rusqlite::Result<()> {
        self.run(
            "INSERT INTO idempotency (scope, key, fingerprint, outcome, payment, clock, pending_e2e) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                record.scope,
                record.key,
                record.fingerprint,
                record.outcome,
                record.payment,
                record.clock,
                record.pending_e2e
            ],
        )?;
        Ok(())
    }

    fn settle_idempotency(&mut self, e2e: &str, outcome: &str) -> rusqlite::Result<()> {
        self.run(
            "UPDATE idempotency SET outcome = ?2, pending_e2e = NULL WHERE pending_e2e = ?1",
            params![e2e, outcome],
        )?;
        Ok(())
    }

    fn set_clock(&mut self, stamp: &str) -> rusqlite::Result<()> {
        self.conn
            .prepare_cached("INSERT INTO meta (key, value) VALUES ('clock', ?1) ON CONFLICT (key) DO UPDATE SET value = excluded.value")?
            .execute(params![stamp])?;
        Ok(())
    }

    fn totals(&mut self) -> rusqlite::Result<Totals> {
        read::totals(self.conn)
    }

    fn customer(&mut self, id: CustomerId) -> rusqlite::Result<Option<CustomerRecord>> {
        read::customer(self.conn, id)
    }

    fn customer_id_by_username(&mut self, username: &str) -> rusqlite::Result<Option<CustomerId>> {
        read::customer_id_by_username(self.conn, username)
    }

    fn document_registered(&mut self, document: &str) -> rusqlite::Result<bool> {
        self.conn
            .prepare_cached("SELECT 1 FROM customers WHERE document = ?1")?
            .exists(params![document])
    }

    fn insert_customer(&mut self, c: &NewCustomer) -> rusqlite::Result<CustomerId> {
        self.conn.prepare_cached(
            "INSERT INTO customers (public_id, name, document, kind, username, password_hash, home_bank, clock)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )?
        .execute(params![
            c.public_id,
            c.name,
            c.document.as_str(),
            c.document.kind().as_str(),
            c.username,
            c.password_hash,
            c.home_bank,
            c.clock
        ])?;
        Ok(self.conn.last_insert_rowid())
    }

    fn username(&mut self, id: CustomerId) -> rusqlite::Result<String> {
        self.conn
            .prepare_cached("SELECT username FROM customers WHERE id = ?1")?
            .query_row(params![id], |row| row.get(0))
    }

    fn insert_session(
        &mut self,
        token_hash: &[u8; 32],
        customer: CustomerId,
        expires_at_ms: i64,
    ) -> rusqlite::Result<()> {
        self.conn
            .prepare_cached(
                "INSERT INTO sessions (token_hash, customer_id, expires_at_ms) VALUES (?1, ?2, ?3)",
            )?
            .execute(params![&token_hash[..], customer, expires_at_ms])?;
        Ok(())
    }

    fn delete_session(&mut self, token_hash: &[u8; 32]) -> rusqlite::Result<()> {
        self.conn
            .prepare_cached("DELETE FROM sessions WHERE token_hash = ?1")?
            .execute(params![&token_hash[..]])?;
        Ok(())
    }

    fn purge_sessions(&mut self, now_ms: i64) -> rusqlite::Result<()> {
        // Through `sessions_by_expiry`: only the expired rows are visited.
        self.conn
            .prepare_cached("DELETE FROM sessions WHERE expires_at_ms <= ?1")?
            .execute(params![now_ms])?;
        Ok(())
    }

    fn account_by_number(
        &mut self,
        number: AccountNumber,
    ) -> rusqlite::Result<Option<(RowId, AccountKind)>> {
        let found: Option<(i64, String)> = self
            .conn
            .prepare_cached("SELECT id, kind FROM accounts WHERE number = ?1")?
            .query_row(params![number.base() as i64], |row| {
                Ok((row.get(0)?, row.get(1)?))
            })
            .optional()?;
        Ok(found.map(|(id, kind)| (id, read::kind(&kind))))
    }

    fn account_number(&mut self, id: RowId) -> rusqlite::Result<AccountNumber> {
        let number: i64 = self
            .conn
            .prepare_cached("SELECT number FROM accounts WHERE id = ?1")?
            .query_row(params![id], |row| row.get(0))?;
        Ok(AccountNumber::from_base(number as u64).expect("stored numbers are valid"))
    }

    fn holders(&mut self, account: RowId) -> rusqlite::Result<Vec<CustomerId>> {
        self.conn
            .prepare_cached(
                "SELECT customer_id FROM account_holders WHERE account_id = ?1 ORDER BY position",
            )?
            .query_map(params![account], |row| row.get(0))?
            .collect()
    }

    fn settlement_account(&mut self, peer: BankCode) -> rusqlite::Result<Option<RowId>> {
        self.conn
            .prepare_cached("SELECT id FROM accounts WHERE kind = 'settlement' AND peer_bank = ?1")?
            .query_row(params![peer.as_str()], |row| row.get(0))
            .optional()
    }

    fn account_row(&mut self, id: RowId) -> rusqlite::Result<AccountRow> {
        self.conn.prepare_cached("SELECT kind, debits_pending, debits_posted, credits_pending, credits_posted, last_entry FROM accounts WHERE id = ?1")?
            .query_row(params![id], |row| {
                Ok(AccountRow {
                    kind: read::kind(row.get_ref(0)?.as_str()?),
                    counters: Counters {
                        debits_pending: row.get(1)?,
                        debits_posted: row.get(2)?,
                        credits_pending: row.get(3)?,
                        credits_posted: row.get(4)?,
                    },
                    last_entry: row.get(5)?,
                })
            })
    }

    fn update_account(
        &mut self,
        id: RowId,
        c: &Counters,
        last_entry: Option<RowId>,
    ) -> rusqlite::Result<()> {
        self.run(
            "UPDATE accounts SET debits_pending = ?2, debits_posted = ?3, credits_pending = ?4, credits_posted = ?5, last_entry = ?6 WHERE id = ?1",
            params![
                id,
                c.debits_pending,
                c.debits_posted,
                c.credits_pending,
                c.credits_posted,
                last_entry
            ],
        )?;
        Ok(())
    }

    fn next_account_number(&mut self) -> rusqlite::Result<u64> {
        let base: i64 = self
            .conn
            .prepare_cached("SELECT COALESCE(MAX(number), 100000) + 1 FROM accounts")?
            .query_row([], |row| row.get(0))?;
        Ok(base as u64)
    }

    fn insert_account(
        &mut self,
        number: u64,
        kind: AccountKind,
        clock: &str,
    ) -> rusqlite::Result<RowId> {
        self.conn
            .prepare_cached("INSERT INTO accounts (number, kind, clock) VALUES (?1, ?2, ?3)")?
            .execute(params![number as i64, kind.as_str(), clock])?;
        Ok(self.conn.last_insert_rowid())
    }

    fn insert_holder(
        &mut self,
        account: RowId,
        customer: CustomerId,
        position: i64,
    ) -> rusqlite::Result<()> {
        self.conn
            .prepare_cached(
                "INSERT INTO account_holders (account_id, customer_id, position) VALUES (?1, ?2, ?3)",
            )?
            .execute(params![account, customer, position])?;
        Ok(())
    }

    fn holder_count(&mut self, account: RowId) -> rusqlite::Result<(usize, i64)> {
        let (count, position): (i64, i64) = self
            .conn
            .prepare_cached(
                "SELECT COUNT(*), COALESCE(MAX(position), -1) + 1 FROM account_holders WHERE account_id = ?1",
            )?
            .query_row(params![account], |row| Ok((row.get(0)?, row.get(1)?)))?;
        Ok((count as usize, position))
    }

    fn account_record(&mut self, bank: &str, id: RowId) -> rusqlite::Result<AccountRecord> {
        read::account_by_id(self.conn, bank, id)
    }

    fn insert_invitation(
        &mut self,
        account: RowId,
        inviter: CustomerId,
        username: &str,
        invitee: Option<CustomerId>,
        clock: &str,
    ) -> rusqlite::Result<()> {
        self.conn
            .prepare_cached(
                "INSERT INTO invitations (account_id, inviter_id, username, invitee_id, status, clock)
                 VALUES (?1, ?2, ?3, ?4, 'pending', ?5)",
            )?
            .execute(params![account, inviter, username, invitee, clock])?;
        Ok(())
    }

    fn pending_invitation(
        &mut self,
        id: i64,
        invitee: CustomerId,
    ) -> rusqlite::Result<Option<RowId>> {
        self.conn
            .prepare_cached(
                "SELECT account_id FROM invitations WHERE id = ?1 AND invitee_id = ?2 AND status = 'pending'",
            )?
            .query_row(params![id, invitee], |row| row.get(0))
            .optional()
    }

    fn set_invitation_status(&mut self, id: i64, status: &str) -> rusqlite::Result<()> {
        self.conn
            .prepare_cached("UPDATE invitations SET status = ?2 WHERE id = ?1")?
            .execute(params![id, status])?;
        Ok(())
    }

    fn pix_key_count(&mut self, account: RowId) -> rusqlite::Result<usize> {
        let count: i64 = self
            .conn
            .prepare_cached("SELECT COUNT(*) FROM pix_keys WHERE account_id = ?1")?
            .query_row(params![account], |row| row.get(0))?;
        Ok(count as usize)
    }

    fn pix_key_account(&mut self, key: &str) -> rusqlite::Result<Option<RowId>> {
        self.conn
            .prepare_cached("SELECT account_id FROM pix_keys WHERE key = ?1")?
            .query_row(params![key], |row| row.get(0))
            .optional()
    }

    fn insert_pix_key(
        &mut self,
        key: &ledger::PixKey,
        account: RowId,
        owner: CustomerId,
        clock: &str,
    ) -> rusqlite::Result<()> {
        self.conn.prepare_cached(
            "INSERT INTO pix_keys (key, type, account_id, owner_id, clock) VALUES (?1, ?2, ?3, ?4, ?5)",
        )?
        .execute(params![
            key.as_str(),
            key.key_type().as_str(),
            account,
            owner,
            clock
        ])?;
        Ok(())
    }

    fn delete_held_pix_key(&mut self, key: &str, holder: CustomerId) -> rusqlite::Result<bool> {
        let deleted = self
            .conn
            .prepare_cached(
                "DELETE FROM pix_keys WHERE key = ?1
                 AND account_id IN (SELECT account_id FROM account_holders WHERE customer_id = ?2)",
            )?
            .execute(params![key, holder])?;
        Ok(deleted == 1)
    }

    fn pix_key_record(&mut self, bank: &str, key: &str) -> rusqlite::Result<Option<PixKeyRecord>> {
        read::pix_key(self.conn, bank, key)
    }

    fn insert_transfer(&mut self, t: &NewTransfer) -> rusqlite::Result<RowId> {
        match t.pending_id {
            None => self.run(
                "INSERT INTO transfers (e2e_id, debit_account_id, credit_account_id, amount, flags, clock) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![t.e2e, t.debit, t.credit, t.amount_cents, t.flags.as_str(), t.clock],
            )?,
            Some(pending) => self.run(
                "INSERT INTO transfers (e2e_id, debit_account_id, credit_account_id, amount, flags, pending_id, clock)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    t.e2e,
                    t.debit,
                    t.credit,
                    t.amount_cents,
                    t.flags.as_str(),
                    pending,
                    t.clock
                ],
            )?,
        };
        Ok(self.conn.last_insert_rowid())
    }

    fn holds(&mut self, e2e: &str) -> rusqlite::Result<Vec<Hold>> {
        self.hot
            .statement(
                "SELECT id, debit_account_id, credit_account_id, amount FROM transfers
                 WHERE e2e_id = ?1 AND flags = 'pending' ORDER BY id",
            )?
            .borrow_mut()
            .query_map(params![e2e], |row| {
                Ok(Hold {
                    id: row.get(0)?,
                    debit_id: row.get(1)?,
                    credit_id: row.get(2)?,
                    amount: Amount::from_cents(row.get(3)?).expect("stored amounts are positive"),
                })
            })?
            .collect()
    }

    fn insert_entry(&mut self, e: &NewEntry) -> rusqlite::Result<RowId> {
        self.run(
            "INSERT INTO entries (account_id, transfer_id, kind, amount, balance_after, counterparty, description, made_by, clock, at_ms, e2e_id, prev_entry)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
            params![
                e.account_id,
                e.transfer_id,
                e.kind,
                e.amount_cents,
                e.balance_after_cents,
                e.counterparty,
                e.description,
                e.made_by,
                e.clock,
                e.at_ms,
                e.e2e,
                e.prev_entry
            ],
        )?;
        Ok(self.conn.last_insert_rowid())
    }

    fn insert_transfer_entry(&mut self, e: &NewTransferEntry) -> rusqlite::Result<RowId> {
        self.run(
            "INSERT INTO entries (account_id, kind, amount, balance_after, description, made_by, clock, at_ms, e2e_id, prev_entry,
                                  other_account_id, other_balance_after, other_prev_entry)
             VALUES (?1, 'transfer_out', ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
            params![
                e.payer.account_id,
                -e.amount_cents,
                e.payer.balance_after_cents,
                e.description,
                e.made_by,
                e.clock,
                e.at_ms,
                e.e2e,
                e.payer.prev_entry,
                e.payee.account_id,
                e.payee.balance_after_cents,
                e.payee.prev_entry
            ],
        )?;
        Ok(self.conn.last_insert_rowid())
    }

    fn insert_payment(
        &mut self,
        e2e: &str,
        status: &PaymentStatus,
        body: &str,
        started_by: Option<CustomerId>,
    ) -> rusqlite::Result<()> {
        self.run(
            "INSERT INTO payments (e2e_id, status, body, started_by) VALUES (?1, ?2, ?3, ?4)",
            params![e2e, status.as_str(), body, started_by],
        )?;
        Ok(())
    }

    fn link_payment(&mut self, e2e: &str, account: RowId) -> rusqlite::Result<()> {
        self.run(
            "INSERT OR IGNORE INTO payment_accounts (e2e_id, account_id) VALUES (?1, ?2)",
            params![e2e, account],
        )?;
        Ok(())
    }

    fn pending_payment(&mut self, e2e: &str) -> rusqlite::Result<Option<String>> {
        self.hot
            .statement("SELECT body FROM payments WHERE e2e_id = ?1 AND status = 'pending'")?
            .borrow_mut()
            .query_row(params![e2e], |row| row.get(0))
            .optional()
    }

    fn update_payment(
        &mut self,
        e2e: &str,
        status: &PaymentStatus,
        body: &str,
    ) -> rusqlite::Result<()> {
        self.run(
            "UPDATE payments SET status = ?2, body = ?3 WHERE e2e_id = ?1",
            params![e2e, status.as_str(), body],
        )?;
        Ok(())
    }

    fn vote(&mut self, e2e: &str) -> rusqlite::Result<Option<VoteRow>> {
        self.hot
            .statement("SELECT yes, reason, legs, finished FROM interbank_votes WHERE e2e_id = ?1")?
            .borrow_mut()
            .query_row(params![e2e], |row| {
                Ok(VoteRow {
                    yes: row.get(0)?,
                    reason: row.get(1)?,
                    legs: row.get(2)?,
                    finished: row.get(3)?,
                })
            })
            .optional()
    }

    fn insert_vote(&mut self, v: &NewVote) -> rusqlite::Result<()> {
        self.run(
            "INSERT INTO interbank_votes (e2e_id, coordinator, yes, reason, legs, finished, clock) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![v.e2e, v.coordinator, v.yes, v.reason, v.legs, v.finished, v.clock],
        )?;
        Ok(())
    }

    fn finish_vote(&mut self, e2e: &str, commit: bool) -> rusqlite::Result<()> {
        self.run(
            "UPDATE interbank_votes SET finished = ?2 WHERE e2e_id = ?1",
            params![e2e, commit],
        )?;
        Ok(())
    }

    fn decision(&mut self, e2e: &str) -> rusqlite::Result<Option<bool>> {
        self.hot
            .statement("SELECT commit_flag FROM interbank_decisions WHERE e2e_id = ?1")?
            .borrow_mut()
            .query_row(params![e2e], |row| row.get(0))
            .optional()
    }

    fn insert_decision(
        &mut self,
        e2e: &str,
        commit: bool,
        participants: &str,
        clock: &str,
    ) -> rusqlite::Result<()> {
        self.run(
            "INSERT INTO interbank_decisions (e2e_id, commit_flag, participants, clock) VALUES (?1, ?2, ?3, ?4)",
            params![e2e, commit, participants, clock],
        )?;
        Ok(())
    }

    fn complete_decision(&mut self, e2e: &str) -> rusqlite::Result<()> {
        self.run(
            "UPDATE interbank_decisions SET completed = 1 WHERE e2e_id = ?1",
            params![e2e],
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::memo::{AccountState, FACTS_MAX, Memo};

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
        let mut tx = SqliteTx {
            conn: &conn,
            hot: Hot::new(&conn, true),
            priority: None,
        };
        for id in 0..FACTS_MAX as i64 {
            memo.remember(id, clean());
        }
        let (debit, credit) = (FACTS_MAX as i64, FACTS_MAX as i64 + 1);
        memo.remember(debit, clean());
        memo.remember(credit, clean());
        memo.change(debit, |state| state.counters.debits_posted = 5);
        memo.change(credit, |state| state.counters.credits_posted = 5);
        memo.flush(&mut tx).unwrap();
        assert!(memo.state(debit).is_none(), "forgotten once written");
        assert_eq!(memo.states.borrow().len(), 0);
    }
}
