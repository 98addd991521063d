//! [`LedgerTx`] and [`Backend`] for PostgreSQL: the rows of one bank's ledger read and written
//! inside one transaction of the writer's blocking connection.
//!
//! Several processes of one bank write the same database, so the writer's transaction is READ
//! COMMITTED with every account row it will change read `FOR UPDATE` ([`LedgerTx::account_row`]):
//! a second writer touching the same account waits for the first to commit and then reads its
//! counters, so no update is lost and no balance is spent twice (the schema's CHECK refuses an
//! overdraft as a last guard). Two writers that lock the same accounts in opposite orders are a
//! deadlock, which PostgreSQL breaks by failing one of them (40P01): the writer runs that batch
//! again ([`Backend::retryable`]). An idempotency key recorded by two processes at once is a
//! unique violation for the second, whose batch is then run again and finds the first's record
//! (a replay). The account cache does not outlive a transaction
//! ([`Backend::exclusive`] is false).

use super::read;
use crate::model::*;
use crate::tx::*;
use ledger::rules::Counters;
use ledger::{AccountKind, AccountNumber, BankCode};
use postgres::types::ToSql;
use postgres::{Client, Statement};
use std::collections::HashMap;

type Result<T> = std::result::Result<T, postgres::Error>;

/// The writer's connection and its prepared statements.
pub struct PgBackend {
    client: Client,
    statements: HashMap<&'static str, Statement>,
}

impl PgBackend {
    /// Connects the writer's blocking client (on the writer's thread: the blocking client may
    /// not run inside an async task).
    pub fn connect(config: &tokio_postgres::Config) -> Result<PgBackend> {
        let config: postgres::Config = config.clone().into();
        Ok(PgBackend {
            client: config.connect(postgres::NoTls)?,
            statements: HashMap::new(),
        })
    }
}

impl Backend for PgBackend {
    type Error = postgres::Error;
    type Tx<'b> = PgTx<'b>;

    fn begin(&mut self) -> Result<PgTx<'_>> {
        self.client
            .batch_execute("BEGIN ISOLATION LEVEL READ COMMITTED")?;
        Ok(PgTx {
            client: &mut self.client,
            statements: &mut self.statements,
            failed: false,
        })
    }

    fn rollback(&mut self) -> Result<()> {
        self.client.batch_execute("ROLLBACK")
    }

    /// Other processes write the same rows.
    fn exclusive(&self) -> bool {
        false
    }

    /// A serialization failure or a deadlock, and also a unique violation: with several
    /// processes, the row another process inserted between this batch's read and its insert
    /// (the same idempotency key, account number, Pix key, vote). Run again, the batch reads
    /// that row and the rules answer from it (a replay, the next number, a refusal), where
    /// failing would answer a request a 500 (a batch of one is not tried alone).
    fn retryable(&self, error: &postgres::Error) -> bool {
        super::is_retryable(error) || super::is_unique_violation(error)
    }
}

/// One open transaction on the writer's connection.
pub struct PgTx<'a> {
    client: &'a mut Client,
    statements: &'a mut HashMap<&'static str, Statement>,
    /// A statement failed since the last rollback to a savepoint: PostgreSQL has aborted the
    /// transaction, and a `COMMIT` would quietly roll it back, so [`LedgerTx::commit`] refuses.
    failed: bool,
}

impl PgTx<'_> {
    fn statement(&mut self, sql: &'static str) -> Result<Statement> {
        if let Some(statement) = self.statements.get(sql) {
            return Ok(statement.clone());
        }
        let statement = self.client.prepare(sql)?;
        self.statements.insert(sql, statement.clone());
        Ok(statement)
    }

    fn noted<T>(&mut self, result: Result<T>) -> Result<T> {
        if result.is_err() {
            self.failed = true;
        }
        result
    }

    fn execute(&mut self, sql: &'static str, params: &[&(dyn ToSql + Sync)]) -> Result<u64> {
        let result = self
            .statement(sql)
            .and_then(|statement| self.client.execute(&statement, params));
        self.noted(result)
    }

    fn query_opt(
        &mut self,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<postgres::Row>> {
        let result = self
            .statement(sql)
            .and_then(|statement| self.client.query_opt(&statement, params));
        self.noted(result)
    }

    fn query_one(
        &mut self,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<postgres::Row> {
        let result = self
            .statement(sql)
            .and_then(|statement| self.client.query_one(&statement, params));
        self.noted(result)
    }

    fn query(
        &mut self,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<postgres::Row>> {
        let result = self
            .statement(sql)
            .and_then(|statement| self.client.query(&statement, params));
        self.noted(result)
    }

    /// A query of `read.rs` on this transaction.
    fn read<T>(&mut self, query: impl FnOnce(&mut Client) -> Result<T>) -> Result<T> {
        let result = query(self.client);
        self.noted(result)
    }
}

fn base(number: AccountNumber) -> i64 {
    i64::try_from(number.base()).unwrap_or(i64::MAX)
}

impl LedgerTx for PgTx<'_> {
    type Error = postgres::Error;

    fn savepoint(&mut self, savepoint: Savepoint) -> Result<()> {
        let result = self.client.batch_execute(match savepoint {
            Savepoint::Package => "SAVEPOINT package",
            Savepoint::Step => "SAVEPOINT step",
        });
        self.noted(result)
    }

    fn release(&mut self, savepoint: Savepoint) -> Result<()> {
        let result = self.client.batch_execute(match savepoint {
            Savepoint::Package => "RELEASE SAVEPOINT package",
            Savepoint::Step => "RELEASE SAVEPOINT step",
        });
        self.noted(result)
    }

    fn rollback_to(&mut self, savepoint: Savepoint) -> Result<()> {
        // Rolled back and closed, as SQLite's `ROLLBACK TO x; RELEASE x` leaves it.
        let result = self.client.batch_execute(match savepoint {
            Savepoint::Package => "ROLLBACK TO SAVEPOINT package; RELEASE SAVEPOINT package",
            Savepoint::Step => "ROLLBACK TO SAVEPOINT step; RELEASE SAVEPOINT step",
        });
        if result.is_ok() {
            self.failed = false;
        }
        self.noted(result)
    }

    fn commit(self, _commands: usize) -> Result<()> {
        if self.failed {
            // An error PostgreSQL already raised aborted the transaction; ask it again for that
            // error rather than let COMMIT turn into a silent ROLLBACK.
            self.client.batch_execute("SELECT 1")?;
        }
        self.client.batch_execute("COMMIT")
    }

    fn idempotency(&mut self, bank: &str, scope: i64, key: &str) -> Result<Option<StoredRequest>> {
        let Some(row) = self.query_opt(
            "SELECT i.fingerprint, coalesce(i.outcome, p.body), coalesce(p.entry, e.id) FROM idempotency i
             LEFT JOIN payments p ON p.e2e_id = i.payment
             LEFT JOIN entries e ON e.e2e_id = i.payment AND e.other_account_id IS NOT NULL
             WHERE i.key = $2 AND i.scope = $1",
            &[&scope, &key],
        )?
        else {
            return Ok(None);
        };
        let fingerprint: Vec<u8> = row.get(0);
        let body: Option<String> = row.get(1);
        let entry: Option<i64> = row.get(2);
        let outcome = self.read(|conn| read::stored_outcome(conn, bank, body, entry))?;
        Ok(Some(StoredRequest {
            fingerprint,
            outcome,
        }))
    }

    fn insert_idempotency(&mut self, record: &NewIdempotency) -> Result<()> {
        self.execute(
            "INSERT INTO idempotency (scope, key, fingerprint, outcome, payment, clock, pending_e2e)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
            &[
                &record.scope,
                &record.key,
                &record.fingerprint,
                &record.outcome,
                &record.payment,
                &record.clock,
                &record.pending_e2e,
            ],
        )
        .map(drop)
    }

    fn settle_idempotency(&mut self, e2e: &str, outcome: &str) -> Result<()> {
        self.execute(
            "UPDATE idempotency SET outcome = $2, pending_e2e = NULL WHERE pending_e2e = $1",
            &[&e2e, &outcome],
        )
        .map(drop)
    }

    fn set_clock(&mut self, stamp: &str) -> Result<()> {
        // Only ever forward: another process of the bank may have stored a later stamp.
        self.execute(
            "INSERT INTO meta (key, value) VALUES ('clock', $1)
             ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
            &[&stamp],
        )
        .map(drop)
    }

    fn totals(&mut self) -> Result<Totals> {
        self.read(read::totals)
    }

    fn customer(&mut self, id: CustomerId) -> Result<Option<CustomerRecord>> {
        self.read(|conn| read::customer(conn, id))
    }

    fn customer_id_by_username(&mut self, username: &str) -> Result<Option<CustomerId>> {
        Ok(self
            .query_opt("SELECT id FROM customers WHERE username = $1", &[&username])?
            .map(|row| row.get(0)))
    }

    fn document_registered(&mut self, document: &str) -> Result<bool> {
        Ok(self
            .query_opt("SELECT 1 FROM customers WHERE document = $1", &[&document])?
            .is_some())
    }

    fn insert_customer(&mut self, customer: &NewCustomer) -> Result<CustomerId> {
        Ok(self
            .query_one(
                "INSERT INTO customers (public_id, name, document, kind, username, password_hash, home_bank, clock)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
                &[
                    &customer.public_id,
                    &customer.name,
                    &customer.document.as_str(),
                    &customer.document.kind().as_str(),
                    &customer.username,
                    &customer.password_hash,
                    &customer.home_bank,
                    &customer.clock,
                ],
            )?
            .get(0))
    }

    fn username(&mut self, id: CustomerId) -> Result<String> {
        Ok(self
            .query_one("SELECT username FROM customers WHERE id = $1", &[&id])?
            .get(0))
    }

    fn insert_session(
        &mut self,
        token_hash: &[u8; 32],
        customer: CustomerId,
        expires_at_ms: i64,
    ) -> Result<()> {
        self.execute(
            "INSERT INTO sessions (token_hash, customer_id, expires_at_ms) VALUES ($1, $2, $3)",
            &[&&token_hash[..], &customer, &expires_at_ms],
        )
        .map(drop)
    }

    fn delete_session(&mut self, token_hash: &[u8; 32]) -> Result<()> {
        self.execute(
            "DELETE FROM sessions WHERE token_hash = $1",
            &[&&token_hash[..]],
        )
        .map(drop)
    }

    fn purge_sessions(&mut self, now_ms: i64) -> Result<()> {
        self.execute("DELETE FROM sessions WHERE expires_at_ms <= $1", &[&now_ms])
            .map(drop)
    }

    fn account_by_number(&mut self, number: AccountNumber) -> Result<Option<(RowId, AccountKind)>> {
        Ok(self
            .query_opt(
                "SELECT id, kind FROM accounts WHERE number = $1",
                &[&base(number)],
            )?
            .map(|row| (row.get(0), read::kind(row.get(1)))))
    }

    fn account_number(&mut self, id: RowId) -> Result<AccountNumber> {
        let number: Option<i64> = self
            .query_one("SELECT number FROM accounts WHERE id = $1", &[&id])?
            .get(0);
        // Asked only of customer accounts, which have numbers (a CHECK).
        Ok(number
            .and_then(|n| u64::try_from(n).ok())
            .and_then(AccountNumber::from_base)
            .unwrap_or_else(|| AccountNumber::from_base(100_001).unwrap_or_else(|| unreachable!())))
    }

    fn holders(&mut self, account: RowId) -> Result<Vec<CustomerId>> {
        Ok(self
            .query(
                "SELECT customer_id FROM account_holders WHERE account_id = $1 ORDER BY position",
                &[&account],
            )?
            .iter()
            .map(|row| row.get(0))
            .collect())
    }

    fn settlement_account(&mut self, peer: BankCode) -> Result<Option<RowId>> {
        Ok(self
            .query_opt(
                "SELECT id FROM accounts WHERE kind = 'settlement' AND peer_bank = $1",
                &[&peer.as_str()],
            )?
            .map(|row| row.get(0)))
    }

    /// Read `FOR UPDATE`: the row is this transaction's until it ends (see the module's doc).
    fn account_row(&mut self, id: RowId) -> Result<AccountRow> {
        let row = self.query_one(
            "SELECT kind, debits_pending, debits_posted, credits_pending, credits_posted, last_entry
             FROM accounts WHERE id = $1 FOR UPDATE",
            &[&id],
        )?;
        Ok(AccountRow {
            kind: read::kind(row.get(0)),
            counters: Counters {
                debits_pending: row.get(1),
                debits_posted: row.get(2),
                credits_pending: row.get(3),
                credits_posted: row.get(4),
            },
            last_entry: row.get(5),
        })
    }

    fn update_account(
        &mut self,
        id: RowId,
        counters: &Counters,
        last_entry: Option<RowId>,
    ) -> Result<()> {
        self.execute(
            "UPDATE accounts SET debits_pending = $2, debits_posted = $3, credits_pending = $4,
                                 credits_posted = $5, last_entry = $6 WHERE id = $1",
            &[
                &id,
                &counters.debits_pending,
                &counters.debits_posted,
                &counters.credits_pending,
                &counters.credits_posted,
                &last_entry,
            ],
        )
        .map(drop)
    }

    fn next_account_number(&mut self) -> Result<u64> {
        // One more than the highest number given, kept in a row of `meta` that this transaction
        // holds until it ends: two processes opening accounts at once take turns there instead
        // of both reading the same highest number (each then failing the other's insert).
        let next: i64 = self
            .query_one(
                "INSERT INTO meta (key, value)
                 VALUES ('last_account_number', (SELECT COALESCE(MAX(number), 100000) + 1 FROM accounts)::TEXT)
                 ON CONFLICT (key) DO UPDATE SET value =
                     (GREATEST(meta.value::BIGINT, (SELECT COALESCE(MAX(number), 100000) FROM accounts)) + 1)::TEXT
                 RETURNING value::BIGINT",
                &[],
            )?
            .get(0);
        Ok(u64::try_from(next).unwrap_or(100_001))
    }

    fn insert_account(&mut self, number: u64, kind: AccountKind, clock: &str) -> Result<RowId> {
        let number = i64::try_from(number).unwrap_or(i64::MAX);
        Ok(self
            .query_one(
                "INSERT INTO accounts (number, kind, clock) VALUES ($1, $2, $3) RETURNING id",
                &[&number, &kind.as_str(), &clock],
            )?
            .get(0))
    }

    fn insert_holder(&mut self, account: RowId, customer: CustomerId, position: i64) -> Result<()> {
        self.execute(
            "INSERT INTO account_holders (account_id, customer_id, position) VALUES ($1, $2, $3)",
            &[&account, &customer, &position],
        )
        .map(drop)
    }

    fn holder_count(&mut self, account: RowId) -> Result<(usize, i64)> {
        let row = self.query_one(
            "SELECT COUNT(*), COALESCE(MAX(position), -1) + 1 FROM account_holders WHERE account_id = $1",
            &[&account],
        )?;
        Ok((
            usize::try_from(row.get::<_, i64>(0)).unwrap_or(0),
            row.get(1),
        ))
    }

    fn account_record(&mut self, bank: &str, id: RowId) -> Result<AccountRecord> {
        self.read(|conn| read::account_by_id(conn, bank, id))
    }

    fn insert_invitation(
        &mut self,
        account: RowId,
        inviter: CustomerId,
        username: &str,
        invitee: Option<CustomerId>,
        clock: &str,
    ) -> Result<()> {
        self.execute(
            "INSERT INTO invitations (account_id, inviter_id, username, invitee_id, status, clock)
             VALUES ($1, $2, $3, $4, 'pending', $5)",
            &[&account, &inviter, &username, &invitee, &clock],
        )
        .map(drop)
    }

    fn pending_invitation(&mut self, id: i64, invitee: CustomerId) -> Result<Option<RowId>> {
        Ok(self
            .query_opt(
                "SELECT account_id FROM invitations WHERE id = $1 AND invitee_id = $2 AND status = 'pending'",
                &[&id, &invitee],
            )?
            .map(|row| row.get(0)))
    }

    fn set_invitation_status(&mut self, id: i64, status: &str) -> Result<()> {
        self.execute(
            "UPDATE invitations SET status = $2 WHERE id = $1",
            &[&id, &status],
        )
        .map(drop)
    }

    fn pix_key_count(&mut self, account: RowId) -> Result<usize> {
        let count: i64 = self
            .query_one(
                "SELECT COUNT(*) FROM pix_keys WHERE account_id = $1",
                &[&account],
            )?
            .get(0);
        Ok(usize::try_from(count).unwrap_or(0))
    }

    fn pix_key_account(&mut self, key: &str) -> Result<Option<RowId>> {
        Ok(self
            .query_opt("SELECT account_id FROM pix_keys WHERE key = $1", &[&key])?
            .map(|row| row.get(0)))
    }

    fn insert_pix_key(
        &mut self,
        key: &ledger::PixKey,
        account: RowId,
        owner: CustomerId,
        clock: &str,
    ) -> Result<()> {
        self.execute(
            "INSERT INTO pix_keys (key, type, account_id, owner_id, clock) VALUES ($1, $2, $3, $4, $5)",
            &[
                &key.as_str(),
                &key.key_type().as_str(),
                &account,
                &owner,
                &clock,
            ],
        )
        .map(drop)
    }

    fn delete_held_pix_key(&mut self, key: &str, holder: CustomerId) -> Result<bool> {
        Ok(self.execute(
            "DELETE FROM pix_keys WHERE key = $1
             AND account_id IN (SELECT account_id FROM account_holders WHERE customer_id = $2)",
            &[&key, &holder],
        )? == 1)
    }

    fn pix_key_record(&mut self, bank: &str, key: &str) -> Result<Option<PixKeyRecord>> {
        self.read(|conn| read::pix_key(conn, bank, key))
    }

    fn insert_transfer(&mut self, transfer: &NewTransfer) -> Result<RowId> {
        Ok(self
            .query_one(
                "INSERT INTO transfers (e2e_id, debit_account_id, credit_account_id, amount, flags, pending_id, clock)
                 VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
                &[
                    &transfer.e2e,
                    &transfer.debit,
                    &transfer.credit,
                    &transfer.amount_cents,
                    &transfer.flags.as_str(),
                    &transfer.pending_id,
                    &transfer.clock,
                ],
            )?
            .get(0))
    }

    fn holds(&mut self, e2e: &str) -> Result<Vec<Hold>> {
        Ok(self
            .query(
                "SELECT id, debit_account_id, credit_account_id, amount FROM transfers
                 WHERE e2e_id = $1 AND flags = 'pending' ORDER BY id",
                &[&e2e],
            )?
            .iter()
            .filter_map(|row| {
                Some(Hold {
                    id: row.get(0),
                    debit_id: row.get(1),
                    credit_id: row.get(2),
                    // The schema keeps amounts positive.
                    amount: ledger::Amount::from_cents(row.get(3))?,
                })
            })
            .collect())
    }

    fn insert_entry(&mut self, entry: &NewEntry) -> Result<RowId> {
        Ok(self
            .query_one(
                "INSERT INTO entries (account_id, transfer_id, kind, amount, balance_after, counterparty, description,
                                      made_by, clock, at_ms, e2e_id, prev_entry)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING id",
                &[
                    &entry.account_id,
                    &entry.transfer_id,
                    &entry.kind,
                    &entry.amount_cents,
                    &entry.balance_after_cents,
                    &entry.counterparty,
                    &entry.description,
                    &entry.made_by,
                    &entry.clock,
                    &entry.at_ms,
                    &entry.e2e,
                    &entry.prev_entry,
                ],
            )?
            .get(0))
    }

    fn insert_transfer_entry(&mut self, entry: &NewTransferEntry) -> Result<RowId> {
        Ok(self
            .query_one(
                "INSERT INTO entries (account_id, kind, amount, balance_after, description, made_by, clock, at_ms, e2e_id,
                                      prev_entry, other_account_id, other_balance_after, other_prev_entry)
                 VALUES ($1, 'transfer_out', $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING id",
                &[
                    &entry.payer.account_id,
                    &-entry.amount_cents,
                    &entry.payer.balance_after_cents,
                    &entry.description,
                    &entry.made_by,
                    &entry.clock,
                    &entry.at_ms,
                    &entry.e2e,
                    &entry.payer.prev_entry,
                    &entry.payee.account_id,
                    &entry.payee.balance_after_cents,
                    &entry.payee.prev_entry,
                ],
            )?
            .get(0))
    }

    fn insert_payment(
        &mut self,
        e2e: &str,
        status: &PaymentStatus,
        body: &str,
        started_by: Option<CustomerId>,
    ) -> Result<()> {
        self.execute(
            "INSERT INTO payments (e2e_id, status, body, started_by) VALUES ($1, $2, $3, $4)",
            &[&e2e, &status.as_str(), &body, &started_by],
        )
        .map(drop)
    }

    fn link_payment(&mut self, e2e: &str, account: RowId) -> Result<()> {
        self.execute(
            "INSERT INTO payment_accounts (e2e_id, account_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            &[&e2e, &account],
        )
        .map(drop)
    }

    fn pending_payment(&mut self, e2e: &str) -> Result<Option<String>> {
        Ok(self
            .query_opt(
                "SELECT body FROM payments WHERE e2e_id = $1 AND status = 'pending'",
                &[&e2e],
            )?
            .and_then(|row| row.get(0)))
    }

    fn update_payment(&mut self, e2e: &str, status: &PaymentStatus, body: &str) -> Result<()> {
        self.execute(
            "UPDATE payments SET status = $2, body = $3 WHERE e2e_id = $1",
            &[&e2e, &status.as_str(), &body],
        )
        .map(drop)
    }

    fn vote(&mut self, e2e: &str) -> Result<Option<VoteRow>> {
        Ok(self
            .query_opt(
                "SELECT yes, reason, legs, finished FROM interbank_votes WHERE e2e_id = $1",
                &[&e2e],
            )?
            .map(|row| VoteRow {
                yes: row.get(0),
                reason: row.get(1),
                legs: row.get(2),
                finished: row.get(3),
            }))
    }

    fn insert_vote(&mut self, vote: &NewVote) -> Result<()> {
        self.execute(
            "INSERT INTO interbank_votes (e2e_id, coordinator, yes, reason, legs, finished, clock)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
            &[
                &vote.e2e,
                &vote.coordinator,
                &vote.yes,
                &vote.reason,
                &vote.legs,
                &vote.finished,
                &vote.clock,
            ],
        )
        .map(drop)
    }

    fn finish_vote(&mut self, e2e: &str, commit: bool) -> Result<()> {
        self.execute(
            "UPDATE interbank_votes SET finished = $2 WHERE e2e_id = $1",
            &[&e2e, &commit],
        )
        .map(drop)
    }

    fn decision(&mut self, e2e: &str) -> Result<Option<bool>> {
        Ok(self
            .query_opt(
                "SELECT commit_flag FROM interbank_decisions WHERE e2e_id = $1",
                &[&e2e],
            )?
            .map(|row| row.get(0)))
    }

    fn insert_decision(
        &mut self,
        e2e: &str,
        commit: bool,
        participants: &str,
        clock: &str,
    ) -> Result<()> {
        self.execute(
            "INSERT INTO interbank_decisions (e2e_id, commit_flag, participants, clock) VALUES ($1, $2, $3, $4)",
            &[&e2e, &commit, &participants, &clock],
        )
        .map(drop)
    }

    fn complete_decision(&mut self, e2e: &str) -> Result<()> {
        self.execute(
            "UPDATE interbank_decisions SET completed = true WHERE e2e_id = $1",
            &[&e2e],
        )
        .map(drop)
    }
}
