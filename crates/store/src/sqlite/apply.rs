//! Executes one command against an open database transaction. Every function here answers
//! `Ok(Ok(_))` when it did its work, `Ok(Err(refusal))` when the business rules said no (and it
//! wrote nothing that is kept), and `Err(_)` only for database failures. Counters change only
//! through `ledger::rules`.

use super::memo::{AccountFacts, AccountState, Memo};
use super::read;
use crate::model::*;
use ledger::rules::{self, Counters, HoldState, Side};
use ledger::{
    AccountKind, AccountNumber, Amount, EndToEndId, PartyKind, PixKey, PixKeyType, Stamp,
};
use rusqlite::{CachedStatement, Connection, OptionalExtension, params};
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::Arc;

/// A database result holding a business result.
pub type Applied<T> = rusqlite::Result<Result<T, Refusal>>;

/// What a command needs besides the database: who we are, the bank's internal accounts, the
/// command's clock stamp, the running sum of counter changes (asserted balanced), and what the
/// writer remembers.
pub struct Ctx<'w, 'c> {
    pub bank: &'w str,
    pub vault: i64,
    pub stamp: Stamp,
    /// `stamp` as written in every row the command writes (formatted once per command).
    pub clock: String,
    pub delta: Cell<Totals>,
    pub memo: &'w Memo,
    pub hot: &'w Hot<'c>,
}

/// The writer's statements, each taken from the statement cache once per batch instead of once
/// per use: a lookup hashes and compares the statement's whole text, and cost the interbank path
/// about a tenth of its instructions (`cargo bench -p store`, interbank_payments, under
/// callgrind). A statement is taken the first time the batch runs it ([`Hot::statement`]).
pub struct Hot<'c> {
    conn: &'c Connection,
    /// Taken so far, by the address of their text.
    taken: RefCell<Vec<(usize, Taken<'c>)>>,
}

/// A statement [`Hot`] holds for the rest of the batch.
pub type Taken<'c> = Rc<RefCell<CachedStatement<'c>>>;

impl<'c> Hot<'c> {
    pub fn new(conn: &'c Connection) -> Hot<'c> {
        Hot {
            conn,
            taken: RefCell::new(Vec::new()),
        }
    }

    /// The statement with this text, from this batch's or else from the cache. Statements are
    /// told apart by where their text lives, so each is a literal written once (one call site,
    /// or one `const`): a second copy of the same text would be prepared a second time.
    pub fn statement(&self, sql: &'static str) -> rusqlite::Result<Taken<'c>> {
        let at = sql.as_ptr() as usize;
        if let Some((_, taken)) = self.taken.borrow().iter().find(|(key, _)| *key == at) {
            return Ok(taken.clone());
        }
        let taken = Rc::new(RefCell::new(self.conn.prepare_cached(sql)?));
        self.taken.borrow_mut().push((at, taken.clone()));
        Ok(taken)
    }
}

/// Runs `f` inside a savepoint: kept if it succeeded, rolled back if it was refused or failed.
/// The memo's changes are written before the savepoint opens and before it is released, so a
/// rollback to it undoes exactly what `f` did.
pub fn in_savepoint<T>(ctx: &Ctx, f: impl FnOnce() -> Applied<T>) -> Applied<T> {
    const RELEASE: &str = "RELEASE step";
    ctx.memo.flush(ctx.hot)?;
    ctx.hot
        .statement("SAVEPOINT step")?
        .borrow_mut()
        .execute([])?;
    let result = f();
    if let Ok(Ok(_)) = &result {
        ctx.memo.flush(ctx.hot)?;
        ctx.hot.statement(RELEASE)?.borrow_mut().execute([])?;
    } else {
        ctx.hot
            .statement("ROLLBACK TO step")?
            .borrow_mut()
            .execute([])?;
        ctx.hot.statement(RELEASE)?.borrow_mut().execute([])?;
        ctx.memo.forget();
    }
    result
}

/// Runs `f` inside a savepoint only when `needed`: a step that checks everything before it writes
/// spares SQLite the savepoint's journal (a copy of every page it is about to change).
pub fn in_savepoint_if<T>(needed: bool, ctx: &Ctx, f: impl FnOnce() -> Applied<T>) -> Applied<T> {
    if needed { in_savepoint(ctx, f) } else { f() }
}

/// Whether a refusal of `command` leaves the database untouched without a savepoint: these
/// commands check everything before they write, or (an interbank part of several legs) take
/// their own savepoint around the legs, which spares SQLite the savepoint's journal.
pub fn writes_only_when_done(command: &Command) -> bool {
    matches!(
        command,
        Command::Transfer { .. }
            | Command::TransferBatch { .. }
            | Command::Prepare { .. }
            | Command::Finish { .. }
            | Command::RecordDecision { .. }
            | Command::CompleteDecisions { .. }
            | Command::BeginPayment { .. }
            | Command::BeginPackage { .. }
    )
}

/// The payment whose stored record answers a retry of `command`, for an idempotency record to
/// name instead of copying it: a local transfer's (`transfer` records the outcome it answers,
/// and nothing changes a local payment's record afterwards), and an interbank transfer's as its
/// coordinator began it (pending, or aborted when refused here): its record then takes the
/// decision, so a retry reads the payment as it stands, as the customer's first answer does.
pub fn recorded_payment<'o>(command: &Command, outcome: &'o Outcome) -> Option<&'o str> {
    match (command, outcome) {
        (Command::Transfer { .. }, Outcome::Payment(payment))
        | (Command::BeginPayment { .. }, Outcome::Pending(payment) | Outcome::Payment(payment)) => {
            Some(&payment.e2e_id)
        }
        _ => None,
    }
}

pub fn apply(conn: &Connection, ctx: &Ctx, command: &Command) -> Applied<Outcome> {
    match command {
        Command::RegisterCustomer {
            public_id,
            name,
            document,
            username,
            password_hash,
        } => register(
            conn,
            ctx,
            public_id,
            name,
            document,
            username,
            password_hash,
            ctx.bank,
        )
        .map(|r| r.map(Outcome::Customer)),
        Command::AdoptCustomer {
            public_id,
            name,
            document,
            username,
            password_hash,
            home_bank,
        } => register(
            conn,
            ctx,
            public_id,
            name,
            document,
            username,
            password_hash,
            home_bank.as_str(),
        )
        .map(|r| r.map(Outcome::Customer)),
        Command::CreateSession {
            customer,
            token_hash,
            expires_at_ms,
        } => {
            conn.prepare_cached(
                "INSERT INTO sessions (token_hash, customer_id, expires_at_ms) VALUES (?1, ?2, ?3)",
            )?
            .execute(params![&token_hash[..], customer, *expires_at_ms as i64])?;
            Ok(Ok(Outcome::Done))
        }
        Command::DeleteSession { token_hash } => {
            conn.prepare_cached("DELETE FROM sessions WHERE token_hash = ?1")?
                .execute(params![&token_hash[..]])?;
            Ok(Ok(Outcome::Done))
        }
        Command::OpenAccount {
            actor,
            kind,
            co_holders,
            opening_deposit,
            e2e,
        } => open_account(conn, ctx, *actor, *kind, co_holders, *opening_deposit, e2e)
            .map(|r| r.map(Outcome::Account)),
        Command::AddPixKey {
            actor,
            account,
            key,
        } => add_pix_key(conn, ctx, *actor, *account, key).map(|r| r.map(Outcome::PixKey)),
        Command::DeletePixKey { actor, key } => {
            delete_pix_key(conn, *actor, key).map(|r| r.map(|()| Outcome::Done))
        }
        Command::Deposit {
            actor,
            account,
            amount,
            description,
            e2e,
        } => cash(
            conn,
            ctx,
            *actor,
            *account,
            *amount,
            description,
            e2e,
            Cash::Deposit,
        )
        .map(|r| r.map(Outcome::Entry)),
        Command::Withdraw {
            actor,
            account,
            amount,
            description,
            e2e,
        } => cash(
            conn,
            ctx,
            *actor,
            *account,
            *amount,
            description,
            e2e,
            Cash::Withdrawal,
        )
        .map(|r| r.map(Outcome::Entry)),
        Command::Transfer {
            actor,
            from,
            to,
            amount,
            description,
            e2e,
        } => {
            let asked = Asked {
                actor: *actor,
                from: *from,
                to,
                amount: *amount,
                description,
                e2e,
            };
            Ok(post(conn, ctx, &asked)?.map(|posted| match posted {
                Posted::Committed(settled) => Outcome::Payment(settled.record(ctx, &asked)),
                Posted::Aborted(record) => Outcome::Payment(record),
            }))
        }
        Command::Package {
            actor,
            operations,
            e2e,
        } => package(conn, ctx, *actor, operations, e2e).map(|r| r.map(Outcome::Package)),
        Command::TransferBatch { actor, transfers } => {
            let mut records = Vec::with_capacity(transfers.len());
            for entry in transfers {
                let rejected = |code: &str| BatchRecord {
                    id: entry.id.clone(),
                    status: "rejected".into(),
                    reason: Some(code.to_string()),
                    e2e_id: None,
                };
                let item = match &entry.transfer {
                    Ok(item) => item,
                    Err(code) => {
                        records.push(rejected(code));
                        continue;
                    }
                };
                // A batch answers with each transfer's status, not its payment record.
                let asked = Asked {
                    actor: *actor,
                    from: item.from,
                    to: &item.to,
                    amount: item.amount,
                    description: &item.description,
                    e2e: &item.e2e,
                };
                let done = post(conn, ctx, &asked)?;
                let (status, reason) = match done {
                    Ok(Posted::Committed(_)) => (PaymentStatus::Committed, None),
                    Ok(Posted::Aborted(payment)) => (payment.status, payment.reason),
                    Err(refusal) => {
                        records.push(rejected(refusal.code()));
                        continue;
                    }
                };
                records.push(BatchRecord {
                    id: entry.id.clone(),
                    status: status.as_str().to_string(),
                    reason,
                    e2e_id: Some(item.e2e.to_string()),
                });
            }
            Ok(Ok(Outcome::Batch(records)))
        }
        Command::Prepare {
            e2e,
            coordinator,
            legs,
            payment,
        } => super::interbank::prepare(conn, ctx, e2e, *coordinator, legs, payment.as_ref()),
        Command::Finish { e2e, commit } => super::interbank::finish(conn, ctx, e2e, *commit, true),
        Command::RecordDecision {
            e2e,
            commit,
            participants,
            reason,
            finish_here,
        } => super::interbank::record_decision(
            conn,
            ctx,
            e2e,
            *commit,
            participants,
            reason.as_deref(),
            *finish_here,
        ),
        Command::CompleteDecisions { e2es } => super::interbank::complete_decisions(ctx, e2es),
        Command::BeginPayment {
            actor,
            from,
            payment,
            legs,
        } => super::interbank::begin_payment(conn, ctx, *actor, *from, payment, legs),
        Command::BeginPackage {
            actor,
            accounts,
            package,
        } => super::interbank::begin_package(conn, ctx, *actor, accounts, package),
        Command::AnswerInvitation {
            actor,
            invitation,
            accept,
        } => answer_invitation(conn, ctx, *actor, *invitation, *accept),
        Command::PurgeSessions { now_ms } => {
            // Through `sessions_by_expiry` (migration 13): only the expired rows are visited.
            conn.prepare_cached("DELETE FROM sessions WHERE expires_at_ms <= ?1")?
                .execute(params![i64::try_from(*now_ms).unwrap_or(i64::MAX)])?;
            Ok(Ok(Outcome::Done))
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn register(
    conn: &Connection,
    ctx: &Ctx,
    public_id: &str,
    name: &str,
    document: &ledger::Document,
    username: &str,
    password_hash: &str,
    home_bank: &str,
) -> Applied<CustomerRecord> {
    // One writer runs at a time, so these checks cannot race; the unique constraints back them.
    let taken = |sql: &str, value: &str| -> rusqlite::Result<bool> {
        conn.prepare_cached(sql)?.exists(params![value])
    };
    if taken(
        "SELECT 1 FROM customers WHERE document = ?1",
        document.as_str(),
    )? {
        return Ok(Err(Refusal::DuplicateDocument));
    }
    if taken("SELECT 1 FROM customers WHERE username = ?1", username)? {
        return Ok(Err(Refusal::DuplicateUsername));
    }
    conn.prepare_cached(
        "INSERT INTO customers (public_id, name, document, kind, username, password_hash, home_bank, clock)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?
    .execute(params![
        public_id,
        name,
        document.as_str(),
        document.kind().as_str(),
        username,
        password_hash,
        home_bank,
        ctx.clock
    ])?;
    let id = conn.last_insert_rowid();
    Ok(Ok(read::customer(conn, id)?.expect("just inserted")))
}

/// The id and kind of the customer account with this number, if `actor` holds it.
pub fn held_account(
    conn: &Connection,
    ctx: &Ctx,
    actor: CustomerId,
    number: AccountNumber,
) -> rusqlite::Result<Option<(i64, AccountKind)>> {
    Ok(ctx
        .memo
        .held(conn, ctx.bank, actor, number)?
        .map(|facts| (facts.id, facts.kind)))
}

pub fn customer_account(
    conn: &Connection,
    ctx: &Ctx,
    number: AccountNumber,
) -> rusqlite::Result<Option<i64>> {
    Ok(ctx
        .memo
        .account(conn, ctx.bank, number)?
        .map(|facts| facts.id))
}

/// An account's counters and newest statement entry, from the memo or else from its row.
fn state(conn: &Connection, ctx: &Ctx, id: i64) -> rusqlite::Result<AccountState> {
    if let Some(known) = ctx.memo.state(id) {
        return Ok(known);
    }
    let read = conn.prepare_cached("SELECT kind, debits_pending, debits_posted, credits_pending, credits_posted, last_entry FROM accounts WHERE id = ?1")?
        .query_row(params![id], |row| {
            Ok(AccountState::read(
                read::kind(row.get_ref(0)?.as_str()?),
                Counters {
                    debits_pending: row.get(1)?,
                    debits_posted: row.get(2)?,
                    credits_pending: row.get(3)?,
                    credits_posted: row.get(4)?,
                },
                row.get(5)?,
            ))
        })?;
    ctx.memo.remember(id, read);
    Ok(read)
}

fn counters(conn: &Connection, ctx: &Ctx, id: i64) -> rusqlite::Result<(AccountKind, Counters)> {
    let state = state(conn, ctx, id)?;
    Ok((state.kind, state.counters))
}

/// Sets an account's counters (its row is written when the memo is flushed) and adds the change
/// to the command's running totals.
fn write_counters(ctx: &Ctx, id: i64, before: &Counters, after: &Counters) {
    ctx.memo.change(id, |state| state.counters = *after);
    let mut delta = ctx.delta.get();
    let moved = |after: i64, before: i64| i128::from(after) - i128::from(before);
    delta.debits_pending += moved(after.debits_pending, before.debits_pending);
    delta.debits_posted += moved(after.debits_posted, before.debits_posted);
    delta.credits_pending += moved(after.credits_pending, before.credits_pending);
    delta.credits_posted += moved(after.credits_posted, before.credits_posted);
    ctx.delta.set(delta);
}

/// How a movement is applied: at once, or as a hold to be posted or voided later.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Posted,
    Pending,
}

pub struct Moved {
    pub transfer_id: i64,
    pub debit_after: Counters,
    pub credit_after: Counters,
}

/// Moves `amount` from one account to another through `ledger::rules`, and records the transfer.
pub fn move_money(
    conn: &Connection,
    ctx: &Ctx,
    debit_id: i64,
    credit_id: i64,
    amount: Amount,
    mode: Mode,
    e2e: &str,
) -> Applied<Moved> {
    let (debit_after, credit_after) =
        match rule_movement(conn, ctx, debit_id, credit_id, amount, mode)? {
            Ok(after) => after,
            Err(refusal) => return Ok(Err(refusal)),
        };
    let flags = if mode == Mode::Posted {
        "posted"
    } else {
        "pending"
    };
    ctx.hot
        .statement(
            "INSERT INTO transfers (e2e_id, debit_account_id, credit_account_id, amount, flags, clock) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?
        .borrow_mut()
        .execute(params![
        e2e,
        debit_id,
        credit_id,
        amount.cents(),
        flags,
        ctx.clock
    ])?;
    Ok(Ok(Moved {
        transfer_id: conn.last_insert_rowid(),
        debit_after,
        credit_after,
    }))
}

/// Changes both accounts' counters by a movement, through `ledger::rules`, and answers them as
/// they are after it; writes no row of its own (the memo writes the accounts').
fn rule_movement(
    conn: &Connection,
    ctx: &Ctx,
    debit_id: i64,
    credit_id: i64,
    amount: Amount,
    mode: Mode,
) -> Applied<(Counters, Counters)> {
    // Every movement in or out of the vault is cash, whichever command or bank asked for it.
    if (debit_id == ctx.vault || credit_id == ctx.vault)
        && amount.cents() > CASH_OPERATION_MAX_CENTS
    {
        return Ok(Err(Refusal::CashLimitExceeded));
    }
    let (debit_kind, debit_before) = counters(conn, ctx, debit_id)?;
    let (credit_kind, credit_before) = counters(conn, ctx, credit_id)?;
    let (mut debit_after, mut credit_after) = (debit_before, credit_before);
    let same = debit_id == credit_id;
    let debit = Side {
        counters: &mut debit_after,
        guarded: debit_kind.is_customer(),
    };
    let credit = Side {
        counters: &mut credit_after,
        guarded: credit_kind.is_customer(),
    };
    let ruled = match mode {
        Mode::Posted => rules::post(debit, credit, amount, same),
        Mode::Pending => rules::hold(debit, credit, amount, same).map(|_| ()),
    };
    if let Err(rejection) = ruled {
        return Ok(Err(rejection.into()));
    }
    write_counters(ctx, debit_id, &debit_before, &debit_after);
    write_counters(ctx, credit_id, &credit_before, &credit_after);
    Ok(Ok((debit_after, credit_after)))
}

/// A pending transfer that holds money for an interbank part until its decision.
pub struct Hold {
    pub id: i64,
    pub debit_id: i64,
    pub credit_id: i64,
    pub amount: Amount,
}

/// Posts or voids `hold`, which the caller knows to be unresolved (its part is not finished: the
/// part's vote and its holds' resolutions are written in one transaction). The database's unique
/// `pending_id` still refuses a second resolution.
pub fn resolve_hold(
    conn: &Connection,
    ctx: &Ctx,
    hold: &Hold,
    e2e: &str,
    post: bool,
) -> Applied<Moved> {
    let mut state = HoldState::Pending;
    let (_, debit_before) = counters(conn, ctx, hold.debit_id)?;
    let (_, credit_before) = counters(conn, ctx, hold.credit_id)?;
    let (mut debit_after, mut credit_after) = (debit_before, credit_before);
    let ruled = if post {
        rules::post_hold(&mut state, &mut debit_after, &mut credit_after, hold.amount)
    } else {
        rules::void_hold(&mut state, &mut debit_after, &mut credit_after, hold.amount)
    };
    if let Err(rejection) = ruled {
        return Ok(Err(rejection.into()));
    }
    write_counters(ctx, hold.debit_id, &debit_before, &debit_after);
    write_counters(ctx, hold.credit_id, &credit_before, &credit_after);
    let flags = if post { "post_pending" } else { "void_pending" };
    ctx.hot
        .statement(
            "INSERT INTO transfers (e2e_id, debit_account_id, credit_account_id, amount, flags, pending_id, clock)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?
        .borrow_mut()
        .execute(params![
        e2e,
        hold.debit_id,
        hold.credit_id,
        hold.amount.cents(),
        flags,
        hold.id,
        ctx.clock
    ])?;
    Ok(Ok(Moved {
        transfer_id: conn.last_insert_rowid(),
        debit_after,
        credit_after,
    }))
}

/// One statement line on a customer account.
pub struct EntryDraft<'a> {
    pub account_id: i64,
    pub transfer_id: i64,
    pub kind: &'a str,
    pub amount_cents: i64,
    pub balance_after_cents: i64,
    pub counterparty: String,
    pub description: &'a str,
    pub made_by: &'a str,
    pub e2e: &'a str,
}

pub fn insert_entry(
    conn: &Connection,
    ctx: &Ctx,
    draft: EntryDraft<'_>,
) -> rusqlite::Result<EntryRecord> {
    let clock = ctx.clock.clone();
    let prev = state(conn, ctx, draft.account_id)?.last_entry;
    ctx.hot
        .statement(
            "INSERT INTO entries (account_id, transfer_id, kind, amount, balance_after, counterparty, description, made_by, clock, at_ms, e2e_id, prev_entry)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
        )?
        .borrow_mut()
        .execute(params![
        draft.account_id,
        draft.transfer_id,
        draft.kind,
        draft.amount_cents,
        draft.balance_after_cents,
        draft.counterparty,
        draft.description,
        draft.made_by,
        clock,
        ctx.stamp.physical_ms as i64,
        draft.e2e,
        prev
    ])?;
    let id = conn.last_insert_rowid();
    ctx.memo
        .change(draft.account_id, |state| state.last_entry = Some(id));
    Ok(EntryRecord {
        id,
        kind: draft.kind.to_string(),
        amount_cents: draft.amount_cents,
        balance_after_cents: draft.balance_after_cents,
        counterparty: draft.counterparty,
        description: draft.description.to_string(),
        made_by: draft.made_by.to_string(),
        clock,
        at_ms: ctx.stamp.physical_ms,
        e2e_id: draft.e2e.to_string(),
    })
}

fn open_account(
    conn: &Connection,
    ctx: &Ctx,
    actor: CustomerId,
    kind: AccountKind,
    co_holders: &[String],
    opening_deposit: Amount,
    e2e: &EndToEndId,
) -> Applied<AccountRecord> {
    let owner = read::customer(conn, actor)?.expect("sessions belong to customers");
    let required = match kind {
        AccountKind::Individual | AccountKind::Joint => PartyKind::Individual,
        AccountKind::Company => PartyKind::Company,
        AccountKind::Vault | AccountKind::Settlement => {
            unreachable!("the API opens customer accounts only")
        }
    };
    if owner.kind != required {
        return Ok(Err(Refusal::HolderKind(format!(
            "a {} account is held by a {} customer",
            kind.as_str(),
            required.as_str()
        ))));
    }
    // Co-holders are invited, not added: each holds the account, and shows on it, only once
    // they accept (`AnswerInvitation`). Whether a name is a customer here, or an individual one,
    // is not said: an invitation to anyone else stays pending.
    let mut invitees: Vec<(&str, Option<CustomerId>)> = Vec::new();
    if kind == AccountKind::Joint {
        if co_holders.is_empty() || co_holders.len() >= JOINT_HOLDERS_MAX {
            return Ok(Err(Refusal::HolderKind(format!(
                "a joint account has between 2 and {JOINT_HOLDERS_MAX} holders"
            ))));
        }
        for (index, name) in co_holders.iter().enumerate() {
            if *name == owner.username {
                return Ok(Err(Refusal::HolderKind(
                    "you hold the account already; name the other holders".into(),
                )));
            }
            if co_holders[..index].contains(name) {
                return Ok(Err(Refusal::HolderKind(format!("{name} is listed twice"))));
            }
            let invitee = match read::customer_id_by_username(conn, name)? {
                Some(id)
                    if read::customer(conn, id)?.map(|c| c.kind) == Some(PartyKind::Individual) =>
                {
                    Some(id)
                }
                _ => None,
            };
            invitees.push((name, invitee));
        }
    } else if !co_holders.is_empty() {
        return Ok(Err(Refusal::HolderKind(
            "only joint accounts have co-holders".into(),
        )));
    }
    if opening_deposit.cents() < OPENING_DEPOSIT_MIN_CENTS {
        return Ok(Err(Refusal::OpeningDepositTooSmall));
    }
    let base: i64 = conn
        .prepare_cached("SELECT COALESCE(MAX(number), 100000) + 1 FROM accounts")?
        .query_row([], |row| row.get(0))?;
    AccountNumber::from_base(base as u64).expect("account numbers stay in range");
    conn.prepare_cached("INSERT INTO accounts (number, kind, clock) VALUES (?1, ?2, ?3)")?
        .execute(params![base, kind.as_str(), ctx.clock])?;
    let account_id = conn.last_insert_rowid();
    conn.prepare_cached(
        "INSERT INTO account_holders (account_id, customer_id, position) VALUES (?1, ?2, 0)",
    )?
    .execute(params![account_id, actor])?;
    for (name, invitee) in &invitees {
        conn.prepare_cached(
            "INSERT INTO invitations (account_id, inviter_id, username, invitee_id, status, clock)
             VALUES (?1, ?2, ?3, ?4, 'pending', ?5)",
        )?
        .execute(params![account_id, actor, name, invitee, ctx.clock])?;
    }
    let moved = match move_money(
        conn,
        ctx,
        ctx.vault,
        account_id,
        opening_deposit,
        Mode::Posted,
        e2e.as_str(),
    )? {
        Ok(moved) => moved,
        Err(refusal) => return Ok(Err(refusal)),
    };
    let entry = EntryDraft {
        account_id,
        transfer_id: moved.transfer_id,
        kind: "opening_deposit",
        amount_cents: opening_deposit.cents(),
        balance_after_cents: moved.credit_after.balance(),
        counterparty: "cash".into(),
        description: "opening deposit",
        made_by: &owner.username,
        e2e: e2e.as_str(),
    };
    insert_entry(conn, ctx, entry)?;
    // The answer is read from the account's row: write it first.
    ctx.memo.flush(ctx.hot)?;
    Ok(Ok(read::account_by_id(conn, ctx.bank, account_id)?))
}

fn answer_invitation(
    conn: &Connection,
    ctx: &Ctx,
    actor: CustomerId,
    invitation: i64,
    accept: bool,
) -> Applied<Outcome> {
    let account_id: Option<i64> = conn
        .prepare_cached(
            "SELECT account_id FROM invitations WHERE id = ?1 AND invitee_id = ?2 AND status = 'pending'",
        )?
        .query_row(params![invitation, actor], |row| row.get(0))
        .optional()?;
    let Some(account_id) = account_id else {
        return Ok(Err(Refusal::InvitationNotFound));
    };
    let status = if accept { "accepted" } else { "declined" };
    conn.prepare_cached("UPDATE invitations SET status = ?2 WHERE id = ?1")?
        .execute(params![invitation, status])?;
    if !accept {
        return Ok(Ok(Outcome::Done));
    }
    let (holders, position): (i64, i64) = conn
        .prepare_cached(
            "SELECT COUNT(*), COALESCE(MAX(position), -1) + 1 FROM account_holders WHERE account_id = ?1",
        )?
        .query_row(params![account_id], |row| Ok((row.get(0)?, row.get(1)?)))?;
    if holders as usize >= JOINT_HOLDERS_MAX {
        return Ok(Err(Refusal::HolderKind(format!(
            "the account already has {JOINT_HOLDERS_MAX} holders"
        ))));
    }
    conn.prepare_cached(
        "INSERT INTO account_holders (account_id, customer_id, position) VALUES (?1, ?2, ?3)",
    )?
    .execute(params![account_id, actor, position])?;
    // The writer's memo keeps each account's holders, and this account's have changed.
    ctx.memo.forget_facts();
    Ok(Ok(Outcome::Account(read::account_by_id(
        conn, ctx.bank, account_id,
    )?)))
}

fn add_pix_key(
    conn: &Connection,
    ctx: &Ctx,
    actor: CustomerId,
    number: AccountNumber,
    key: &PixKey,
) -> Applied<PixKeyRecord> {
    let Some((account_id, kind)) = held_account(conn, ctx, actor, number)? else {
        return Ok(Err(Refusal::AccountNotFound));
    };
    let owner = read::customer(conn, actor)?.expect("sessions belong to customers");
    if matches!(key.key_type(), PixKeyType::Cpf | PixKeyType::Cnpj)
        && key.as_str() != owner.document
    {
        return Ok(Err(Refusal::PixKeyNotYourDocument));
    }
    let limit = if kind == AccountKind::Company {
        PIX_KEYS_PER_ACCOUNT_COMPANY_MAX
    } else {
        PIX_KEYS_PER_ACCOUNT_INDIVIDUAL_MAX
    };
    let count: i64 = conn
        .prepare_cached("SELECT COUNT(*) FROM pix_keys WHERE account_id = ?1")?
        .query_row(params![account_id], |row| row.get(0))?;
    if count as usize >= limit {
        return Ok(Err(Refusal::PixKeyLimitReached(limit)));
    }
    if conn
        .prepare_cached("SELECT 1 FROM pix_keys WHERE key = ?1")?
        .exists(params![key.as_str()])?
    {
        return Ok(Err(Refusal::DuplicatePixKey));
    }
    conn.prepare_cached(
        "INSERT INTO pix_keys (key, type, account_id, owner_id, clock) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![
        key.as_str(),
        key.key_type().as_str(),
        account_id,
        actor,
        ctx.clock
    ])?;
    Ok(Ok(
        read::pix_key(conn, ctx.bank, key.as_str())?.expect("just inserted")
    ))
}

fn delete_pix_key(conn: &Connection, actor: CustomerId, key: &PixKey) -> Applied<()> {
    let deleted = conn
        .prepare_cached(
            "DELETE FROM pix_keys WHERE key = ?1
             AND account_id IN (SELECT account_id FROM account_holders WHERE customer_id = ?2)",
        )?
        .execute(params![key.as_str(), actor])?;
    Ok(if deleted == 1 {
        Ok(())
    } else {
        Err(Refusal::PixKeyNotFound)
    })
}

#[derive(Clone, Copy)]
enum Cash {
    Deposit,
    Withdrawal,
}

#[allow(clippy::too_many_arguments)]
fn cash(
    conn: &Connection,
    ctx: &Ctx,
    actor: CustomerId,
    number: AccountNumber,
    amount: Amount,
    description: &str,
    e2e: &EndToEndId,
    direction: Cash,
) -> Applied<EntryRecord> {
    let Some((account_id, _)) = held_account(conn, ctx, actor, number)? else {
        return Ok(Err(Refusal::AccountNotFound));
    };
    let (debit, credit) = match direction {
        Cash::Deposit => (ctx.vault, account_id),
        Cash::Withdrawal => (account_id, ctx.vault),
    };
    let moved = match move_money(conn, ctx, debit, credit, amount, Mode::Posted, e2e.as_str())? {
        Ok(moved) => moved,
        Err(refusal) => return Ok(Err(refusal)),
    };
    let (kind, signed, after) = match direction {
        Cash::Deposit => ("deposit", amount.cents(), moved.credit_after.balance()),
        Cash::Withdrawal => ("withdrawal", -amount.cents(), moved.debit_after.balance()),
    };
    let made_by = ctx.memo.username(conn, actor)?;
    let description = if description.is_empty() {
        kind
    } else {
        description
    };
    let draft = EntryDraft {
        account_id,
        transfer_id: moved.transfer_id,
        kind,
        amount_cents: signed,
        balance_after_cents: after,
        counterparty: "cash".into(),
        description,
        made_by: &made_by,
        e2e: e2e.as_str(),
    };
    Ok(Ok(insert_entry(conn, ctx, draft)?))
}

fn resolve_target(conn: &Connection, ctx: &Ctx, target: &Target) -> Applied<i64> {
    let found = match target {
        Target::Key(key) => conn
            .prepare_cached("SELECT account_id FROM pix_keys WHERE key = ?1")?
            .query_row(params![key.as_str()], |row| row.get(0))
            .optional()?
            .ok_or(Refusal::PixKeyNotFound),
        Target::Account(number) => {
            customer_account(conn, ctx, *number)?.ok_or(Refusal::AccountNotFound)
        }
    };
    Ok(found)
}

/// A customer's transfer between two accounts of this bank, as asked.
struct Asked<'a> {
    actor: CustomerId,
    from: AccountNumber,
    to: &'a Target,
    amount: Amount,
    description: &'a str,
    e2e: &'a EndToEndId,
}

/// The two ends of a local transfer and what the ledger decided about it.
struct Settled {
    from: Arc<AccountFacts>,
    to: Arc<AccountFacts>,
    /// The ledger's refusal (insufficient funds), or `None` if the transfer was posted.
    refused: Option<Refusal>,
}

impl Settled {
    /// The transfer's payment record: committed, or aborted with the ledger's refusal.
    fn record(&self, ctx: &Ctx, asked: &Asked) -> PaymentRecord {
        let (status, reason) = match &self.refused {
            None => (PaymentStatus::Committed, None),
            Some(refusal) => (PaymentStatus::Aborted, Some(refusal.code().to_string())),
        };
        PaymentRecord {
            e2e_id: asked.e2e.to_string(),
            status,
            reason,
            from: self.from.address.clone(),
            to: self.to.address.clone(),
            amount_cents: asked.amount.cents(),
            description: shown_description(asked.description).to_string(),
            clock: ctx.clock.clone(),
        }
    }
}

/// The description a statement shows for a transfer (local or between banks) given none.
pub fn shown_description(description: &str) -> &str {
    if description.is_empty() {
        "Pix"
    } else {
        description
    }
}

/// Posts a transfer between two customer accounts of this bank and writes both statement lines.
/// Everything is checked before anything is written, so a refusal writes nothing: an unknown
/// account or key is `Err`, a ledger refusal is `Ok` with `refused` set. Its payment record is
/// built only by a caller that answers with it (a batch or a package answers without).
fn local_transfer(conn: &Connection, ctx: &Ctx, asked: &Asked) -> Applied<Settled> {
    let Some(from) = ctx.memo.held(conn, ctx.bank, asked.actor, asked.from)? else {
        return Ok(Err(Refusal::AccountNotFound));
    };
    let to_id = match resolve_target(conn, ctx, asked.to)? {
        Ok(id) => id,
        Err(refusal) => return Ok(Err(refusal)),
    };
    let to = ctx.memo.account_by_id(conn, ctx.bank, to_id)?;
    // The entry below is the transfer's record: payer, payee, amount, id and clock.
    let (debit_after, credit_after) =
        match rule_movement(conn, ctx, from.id, to.id, asked.amount, Mode::Posted)? {
            Ok(after) => after,
            Err(refusal) => {
                return Ok(Ok(Settled {
                    from,
                    to,
                    refused: Some(refusal),
                }));
            }
        };
    let made_by = ctx.memo.username(conn, asked.actor)?;
    let payer = EntrySide {
        account_id: from.id,
        balance_after_cents: debit_after.balance(),
    };
    let payee = EntrySide {
        account_id: to.id,
        balance_after_cents: credit_after.balance(),
    };
    insert_transfer_entry(
        conn,
        ctx,
        asked.amount,
        [payer, payee],
        shown_description(asked.description),
        &made_by,
        asked.e2e.as_str(),
    )?;
    Ok(Ok(Settled {
        from,
        to,
        refused: None,
    }))
}

/// One side of a transfer's statement entry: whose statement and its balance after.
struct EntrySide {
    account_id: i64,
    balance_after_cents: i64,
}

/// The statement entry of a transfer between two customer accounts here, and its only record:
/// one row with the payer's side (`transfer_out`) and the payee's (`other_*`, `transfer_in`),
/// each linked to its account's previous entry, and no `transfers` row (schema migration 8).
/// Each side's counterparty is the other account, whose label is read with the statement
/// (schema migration 12).
fn insert_transfer_entry(
    conn: &Connection,
    ctx: &Ctx,
    amount: Amount,
    [payer, payee]: [EntrySide; 2],
    description: &str,
    made_by: &str,
    e2e: &str,
) -> rusqlite::Result<i64> {
    let payer_prev = state(conn, ctx, payer.account_id)?.last_entry;
    let payee_prev = state(conn, ctx, payee.account_id)?.last_entry;
    ctx.hot
        .statement(
            "INSERT INTO entries (account_id, kind, amount, balance_after, description, made_by, clock, at_ms, e2e_id, prev_entry,
                                  other_account_id, other_balance_after, other_prev_entry)
             VALUES (?1, 'transfer_out', ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
        )?
        .borrow_mut()
        .execute(params![
        payer.account_id,
        -amount.cents(),
        payer.balance_after_cents,
        description,
        made_by,
        ctx.clock,
        ctx.stamp.physical_ms as i64,
        e2e,
        payer_prev,
        payee.account_id,
        payee.balance_after_cents,
        payee_prev
    ])?;
    let id = conn.last_insert_rowid();
    for account in [payer.account_id, payee.account_id] {
        ctx.memo
            .change(account, |state| state.last_entry = Some(id));
    }
    Ok(id)
}

/// Stores a payment's record as JSON, linked to the accounts here whose holders may read it;
/// `started_by` is the customer who asked for it here, if it was asked here.
pub fn record_payment(
    ctx: &Ctx,
    e2e: &str,
    status: &PaymentStatus,
    outcome: &Outcome,
    accounts: &[i64],
    started_by: Option<CustomerId>,
) -> rusqlite::Result<()> {
    let body = serde_json::to_string(outcome).expect("outcomes serialise");
    ctx.hot
        .statement(
            "INSERT INTO payments (e2e_id, status, body, started_by) VALUES (?1, ?2, ?3, ?4)",
        )?
        .borrow_mut()
        .execute(params![e2e, status.as_str(), body, started_by])?;
    let link = ctx
        .hot
        .statement("INSERT OR IGNORE INTO payment_accounts (e2e_id, account_id) VALUES (?1, ?2)")?;
    for account in accounts {
        link.borrow_mut().execute(params![e2e, account])?;
    }
    Ok(())
}

/// What became of a customer's transfer between two accounts here.
enum Posted {
    Committed(Settled),
    /// Refused by the ledger for want of funds, and recorded as an aborted payment.
    Aborted(PaymentRecord),
}

/// A customer's transfer between two accounts here. One the ledger refuses (insufficient funds)
/// is still a payment: it is recorded as aborted with its reason, so `GET /transfers/{id}` can
/// tell its payer what happened. Refusals of the request itself (unknown account or key) record
/// and write nothing. A committed transfer's record is its entry (schema migration 9).
fn post(conn: &Connection, ctx: &Ctx, asked: &Asked) -> Applied<Posted> {
    let settled = match local_transfer(conn, ctx, asked)? {
        Ok(settled) => settled,
        Err(refusal) => return Ok(Err(refusal)),
    };
    match &settled.refused {
        None => Ok(Ok(Posted::Committed(settled))),
        Some(Refusal::Ledger(LedgerRefusal::InsufficientFunds)) => {
            let record = settled.record(ctx, asked);
            record_payment(
                ctx,
                asked.e2e.as_str(),
                &record.status,
                &Outcome::Payment(record.clone()),
                &[settled.from.id],
                None,
            )?;
            Ok(Ok(Posted::Aborted(record)))
        }
        Some(refusal) => Ok(Err(refusal.clone())),
    }
}

fn operation(
    conn: &Connection,
    ctx: &Ctx,
    actor: CustomerId,
    op: &Operation,
    e2e: &EndToEndId,
) -> Applied<Vec<i64>> {
    let touched = |conn: &Connection| -> rusqlite::Result<Vec<i64>> {
        let mut ids: Vec<i64> = held_account(conn, ctx, actor, op.account)?
            .map(|(id, _)| id)
            .into_iter()
            .collect();
        if let OperationKind::Transfer(target) = &op.kind {
            ids.extend(resolve_target(conn, ctx, target)?.ok());
        }
        Ok(ids)
    };
    let done = match &op.kind {
        OperationKind::Deposit => cash(
            conn,
            ctx,
            actor,
            op.account,
            op.amount,
            &op.description,
            e2e,
            Cash::Deposit,
        )?
        .map(|_| ()),
        OperationKind::Withdrawal => cash(
            conn,
            ctx,
            actor,
            op.account,
            op.amount,
            &op.description,
            e2e,
            Cash::Withdrawal,
        )?
        .map(|_| ()),
        OperationKind::Transfer(target) => local_transfer(
            conn,
            ctx,
            &Asked {
                actor,
                from: op.account,
                to: target,
                amount: op.amount,
                description: &op.description,
                e2e,
            },
        )?
        .and_then(|settled| settled.refused.map_or(Ok(()), Err)),
    };
    Ok(match done {
        Ok(()) => Ok(touched(conn)?),
        Err(refusal) => Err(refusal),
    })
}

/// Applies every operation in order; if any is refused, all are undone and each operation's
/// result says whether it was the one refused (and why) or undone because of another.
fn package(
    conn: &Connection,
    ctx: &Ctx,
    actor: CustomerId,
    operations: &[Operation],
    e2e: &EndToEndId,
) -> Applied<PackageRecord> {
    let mut results = Vec::with_capacity(operations.len());
    let mut accounts = Vec::new();
    ctx.memo.flush(ctx.hot)?;
    conn.execute_batch("SAVEPOINT package")?;
    for op in operations {
        match in_savepoint(ctx, || operation(conn, ctx, actor, op, e2e)) {
            Ok(Ok(ids)) => {
                accounts.extend(ids);
                results.push(OperationRecord {
                    status: OperationStatus::Committed,
                    reason: None,
                });
            }
            Ok(Err(refusal)) => results.push(OperationRecord {
                status: OperationStatus::Rejected,
                reason: Some(refusal.code().into()),
            }),
            Err(error) => {
                conn.execute_batch("ROLLBACK TO package; RELEASE package")?;
                ctx.memo.forget();
                return Err(error);
            }
        }
    }
    let committed = results
        .iter()
        .all(|r| r.status == OperationStatus::Committed);
    if committed {
        ctx.memo.flush(ctx.hot)?;
        conn.execute_batch("RELEASE package")?;
    } else {
        conn.execute_batch("ROLLBACK TO package; RELEASE package")?;
        ctx.memo.forget();
        for result in &mut results {
            if result.status == OperationStatus::Committed {
                *result = OperationRecord {
                    status: OperationStatus::Aborted,
                    reason: Some("package_aborted".into()),
                };
            }
        }
        // The payer can still look the package up: attach it to the accounts they named.
        accounts = operations
            .iter()
            .filter_map(|op| {
                held_account(conn, ctx, actor, op.account)
                    .ok()
                    .flatten()
                    .map(|(id, _)| id)
            })
            .collect();
    }
    let status = if committed {
        PaymentStatus::Committed
    } else {
        PaymentStatus::Aborted
    };
    let record = PackageRecord {
        e2e_id: e2e.to_string(),
        status: status.clone(),
        results,
        clock: ctx.clock.clone(),
        banks: Vec::new(),
    };
    record_payment(
        ctx,
        e2e.as_str(),
        &status,
        &Outcome::Package(record.clone()),
        &accounts,
        None,
    )?;
    Ok(Ok(record))
}
