//! What every rule shares: the command's context, savepoints, and the movements of money
//! through `ledger::rules` (posted, held, a hold posted or voided) with their statement lines
//! and payment records. The local and interbank rules build on these; nothing here calls them.

use super::memo::{AccountState, Memo};
use crate::model::*;
use crate::tx::{Hold, LedgerTx, NewEntry, NewTransfer, RowId, Savepoint, TransferFlags};
use ledger::rules::{self, Counters, HoldState, Side};
use ledger::{AccountKind, AccountNumber, Amount, Stamp};
use std::cell::Cell;

/// A database result holding a business result.
pub type Applied<T, E> = Result<Result<T, Refusal>, E>;

/// What a command needs besides the database: who we are, the bank's internal accounts, the
/// command's clock stamp, the running sum of counter changes (asserted balanced), and what the
/// writer remembers.
pub struct Ctx<'w> {
    pub bank: &'w str,
    pub vault: RowId,
    pub stamp: Stamp,
    /// `stamp` as written in every row the command writes (formatted once per command).
    pub clock: String,
    pub delta: Cell<Totals>,
    pub memo: &'w Memo,
}

/// Runs `f` inside a savepoint: kept if it succeeded, rolled back if it was refused or failed.
/// The memo's changes are written before the savepoint opens and before it is released, so a
/// rollback to it undoes exactly what `f` did.
pub fn in_savepoint<T: LedgerTx, R>(
    tx: &mut T,
    ctx: &Ctx,
    f: impl FnOnce(&mut T) -> Applied<R, T::Error>,
) -> Applied<R, T::Error> {
    ctx.memo.flush(tx)?;
    tx.savepoint(Savepoint::Step)?;
    let result = f(tx);
    if let Ok(Ok(_)) = &result {
        ctx.memo.flush(tx)?;
        tx.release(Savepoint::Step)?;
    } else {
        tx.rollback_to(Savepoint::Step)?;
        ctx.memo.forget();
    }
    result
}

/// Runs `f` inside a savepoint only when `needed`: a step that checks everything before it writes
/// spares the database the savepoint's journal (SQLite: a copy of every page it is about to
/// change).
pub fn in_savepoint_if<T: LedgerTx, R>(
    needed: bool,
    tx: &mut T,
    ctx: &Ctx,
    f: impl FnOnce(&mut T) -> Applied<R, T::Error>,
) -> Applied<R, T::Error> {
    if needed {
        in_savepoint(tx, ctx, f)
    } else {
        f(tx)
    }
}

/// The id and kind of the customer account with this number, if `actor` holds it.
pub fn held_account<T: LedgerTx>(
    tx: &mut T,
    ctx: &Ctx,
    actor: CustomerId,
    number: AccountNumber,
) -> Result<Option<(RowId, AccountKind)>, T::Error> {
    Ok(ctx
        .memo
        .held(tx, ctx.bank, actor, number)?
        .map(|facts| (facts.id, facts.kind)))
}

pub fn customer_account<T: LedgerTx>(
    tx: &mut T,
    ctx: &Ctx,
    number: AccountNumber,
) -> Result<Option<RowId>, T::Error> {
    Ok(ctx
        .memo
        .account(tx, ctx.bank, number)?
        .map(|facts| facts.id))
}

/// An account's counters and newest statement entry, from the memo or else from its row.
pub fn state<T: LedgerTx>(tx: &mut T, ctx: &Ctx, id: RowId) -> Result<AccountState, T::Error> {
    if let Some(known) = ctx.memo.state(id) {
        return Ok(known);
    }
    let row = tx.account_row(id)?;
    let read = AccountState::read(row.kind, row.counters, row.last_entry);
    ctx.memo.remember(id, read);
    Ok(read)
}

fn counters<T: LedgerTx>(
    tx: &mut T,
    ctx: &Ctx,
    id: RowId,
) -> Result<(AccountKind, Counters), T::Error> {
    let state = state(tx, ctx, id)?;
    Ok((state.kind, state.counters))
}

/// Sets an account's counters (its row is written when the memo is flushed) and adds the change
/// to the command's running totals.
fn write_counters(ctx: &Ctx, id: RowId, before: &Counters, after: &Counters) {
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
    pub transfer_id: RowId,
    pub debit_after: Counters,
    pub credit_after: Counters,
}

/// Moves `amount` from one account to another through `ledger::rules`, and records the transfer.
pub fn move_money<T: LedgerTx>(
    tx: &mut T,
    ctx: &Ctx,
    debit_id: RowId,
    credit_id: RowId,
    amount: Amount,
    mode: Mode,
    e2e: &str,
) -> Applied<Moved, T::Error> {
    let (debit_after, credit_after) =
        match rule_movement(tx, ctx, debit_id, credit_id, amount, mode)? {
            Ok(after) => after,
            Err(refusal) => return Ok(Err(refusal)),
        };
    let flags = if mode == Mode::Posted {
        TransferFlags::Posted
    } else {
        TransferFlags::Pending
    };
    let transfer_id = tx.insert_transfer(&NewTransfer {
        e2e,
        debit: debit_id,
        credit: credit_id,
        amount_cents: amount.cents(),
        flags,
        pending_id: None,
        clock: &ctx.clock,
    })?;
    Ok(Ok(Moved {
        transfer_id,
        debit_after,
        credit_after,
    }))
}

/// Changes both accounts' counters by a movement, through `ledger::rules`, and answers them as
/// they are after it; writes no row of its own (the memo writes the accounts').
pub fn rule_movement<T: LedgerTx>(
    tx: &mut T,
    ctx: &Ctx,
    debit_id: RowId,
    credit_id: RowId,
    amount: Amount,
    mode: Mode,
) -> Applied<(Counters, Counters), T::Error> {
    // Every movement in or out of the vault is cash, whichever command or bank asked for it.
    if (debit_id == ctx.vault || credit_id == ctx.vault)
        && amount.cents() > CASH_OPERATION_MAX_CENTS
    {
        return Ok(Err(Refusal::CashLimitExceeded));
    }
    let (debit_kind, debit_before) = counters(tx, ctx, debit_id)?;
    let (credit_kind, credit_before) = counters(tx, ctx, credit_id)?;
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

/// Posts or voids `hold`, which the caller knows to be unresolved (its part is not finished: the
/// part's vote and its holds' resolutions are written in one transaction). The database's unique
/// `pending_id` still refuses a second resolution.
pub fn resolve_hold<T: LedgerTx>(
    tx: &mut T,
    ctx: &Ctx,
    hold: &Hold,
    e2e: &str,
    post: bool,
) -> Applied<Moved, T::Error> {
    let mut state = HoldState::Pending;
    let (_, debit_before) = counters(tx, ctx, hold.debit_id)?;
    let (_, credit_before) = counters(tx, ctx, hold.credit_id)?;
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
    let flags = if post {
        TransferFlags::PostPending
    } else {
        TransferFlags::VoidPending
    };
    let transfer_id = tx.insert_transfer(&NewTransfer {
        e2e,
        debit: hold.debit_id,
        credit: hold.credit_id,
        amount_cents: hold.amount.cents(),
        flags,
        pending_id: Some(hold.id),
        clock: &ctx.clock,
    })?;
    Ok(Ok(Moved {
        transfer_id,
        debit_after,
        credit_after,
    }))
}

/// One statement line on a customer account.
pub struct EntryDraft<'a> {
    pub account_id: RowId,
    pub transfer_id: RowId,
    pub kind: &'a str,
    pub amount_cents: i64,
    pub balance_after_cents: i64,
    pub counterparty: String,
    pub description: &'a str,
    pub made_by: &'a str,
    pub e2e: &'a str,
}

pub fn insert_entry<T: LedgerTx>(
    tx: &mut T,
    ctx: &Ctx,
    draft: EntryDraft<'_>,
) -> Result<EntryRecord, T::Error> {
    let prev = state(tx, ctx, draft.account_id)?.last_entry;
    let id = tx.insert_entry(&NewEntry {
        account_id: draft.account_id,
        transfer_id: draft.transfer_id,
        kind: draft.kind,
        amount_cents: draft.amount_cents,
        balance_after_cents: draft.balance_after_cents,
        counterparty: &draft.counterparty,
        description: draft.description,
        made_by: draft.made_by,
        clock: &ctx.clock,
        at_ms: ctx.stamp.physical_ms as i64,
        e2e: draft.e2e,
        prev_entry: prev,
    })?;
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
        clock: ctx.clock.clone(),
        at_ms: ctx.stamp.physical_ms,
        e2e_id: draft.e2e.to_string(),
    })
}

/// Stores a payment's record as JSON, linked to the accounts here whose holders may read it;
/// `started_by` is the customer who asked for it here, if it was asked here.
pub fn record_payment<T: LedgerTx>(
    tx: &mut T,
    e2e: &str,
    status: &PaymentStatus,
    outcome: &Outcome,
    accounts: &[RowId],
    started_by: Option<CustomerId>,
) -> Result<(), T::Error> {
    let body = serde_json::to_string(outcome).expect("outcomes serialise");
    tx.insert_payment(e2e, status, &body, started_by)?;
    for account in accounts {
        tx.link_payment(e2e, *account)?;
    }
    Ok(())
}

/// The description a statement shows for a transfer (local or between banks) given none.
pub fn shown_description(description: &str) -> &str {
    if description.is_empty() {
        "Pix"
    } else {
        description
    }
}
