//! The durable side of the interbank protocol: a participant's holds and vote, made in one
//! step; its commit or abort, exactly once; the coordinator's decision, first one wins.

use super::ctx::{
    Applied, Ctx, EntryDraft, Mode, customer_account, held_account, in_savepoint_if, insert_entry,
    move_money, record_payment, resolve_hold, shown_description,
};
use crate::model::*;
use crate::tx::{Hold, LedgerTx, NewVote, RowId};
use ledger::{AccountNumber, BankCode, EndToEndId};
use protocol::{Endpoint, Leg, LegRefusal};

fn endpoint_id<T: LedgerTx>(
    tx: &mut T,
    ctx: &Ctx,
    endpoint: &Endpoint,
) -> Result<Option<RowId>, T::Error> {
    match endpoint {
        Endpoint::Account(number) => customer_account(tx, ctx, *number),
        Endpoint::Settlement(bank) => ctx.memo.settlement(tx, *bank),
        Endpoint::Vault => Ok(Some(ctx.vault)),
    }
}

/// The accounts a payment touches here, so their holders can look it up.
fn touched_accounts<T: LedgerTx>(
    tx: &mut T,
    ctx: &Ctx,
    legs: &[Leg],
) -> Result<Vec<RowId>, T::Error> {
    let mut ids = Vec::new();
    for leg in legs {
        for endpoint in [&leg.from, &leg.to] {
            if let (Endpoint::Account(_), Some(id)) = (endpoint, endpoint_id(tx, ctx, endpoint)?) {
                ids.push(id);
            }
        }
    }
    Ok(ids)
}

pub fn prepare<T: LedgerTx>(
    tx: &mut T,
    ctx: &Ctx,
    e2e: &EndToEndId,
    coordinator: BankCode,
    legs: &[Leg],
    payment: Option<&PaymentRecord>,
) -> Applied<Outcome, T::Error> {
    let known = tx
        .vote(e2e.as_str())?
        .map(|vote| (vote.yes, vote.reason, vote.finished));
    if let Some((yes, reason, finished)) = known {
        return Ok(Ok(if finished.is_some() {
            Outcome::AlreadyFinished
        } else {
            Outcome::Vote { yes, reason }
        }));
    }
    let (yes, reason) = hold_and_vote(tx, ctx, e2e, coordinator, legs)?;
    // The recipient can follow the payment while the banks decide.
    if let (true, Some(payment)) = (yes, payment) {
        let mut pending = payment.clone();
        pending.status = PaymentStatus::Pending;
        let outcome = Outcome::Payment(pending);
        let touched = touched_accounts(tx, ctx, legs)?;
        record_payment(
            tx,
            e2e.as_str(),
            &PaymentStatus::Pending,
            &outcome,
            &touched,
            None,
        )?;
    }
    Ok(Ok(Outcome::Vote { yes, reason }))
}

/// Holds every leg, or none (a refused leg undoes those before it), and records the vote: yes,
/// or no with the refused leg and its code (`bank/leg/code`).
fn hold_and_vote<T: LedgerTx>(
    tx: &mut T,
    ctx: &Ctx,
    e2e: &EndToEndId,
    coordinator: BankCode,
    legs: &[Leg],
) -> Result<(bool, Option<String>), T::Error> {
    // Another bank's part settles only with that bank: a settlement account with a third bank
    // is, for this transaction, no account at all (the node refuses such a part before it gets
    // here; this keeps the store's own promise too).
    let me = BankCode::parse(ctx.bank).expect("the bank's own code is valid");
    let third_bank = |end: &Endpoint| matches!(end, Endpoint::Settlement(bank) if coordinator != me && *bank != coordinator);
    // One leg refuses before it writes; with several, a refused one undoes those before it.
    let mut refusal = None;
    let held = in_savepoint_if(legs.len() > 1, tx, ctx, |tx| {
        for (index, leg) in legs.iter().enumerate() {
            if third_bank(&leg.from) || third_bank(&leg.to) {
                refusal = Some(index);
                return Ok(Err(Refusal::AccountNotFound));
            }
            let (Some(from), Some(to)) = (
                endpoint_id(tx, ctx, &leg.from)?,
                endpoint_id(tx, ctx, &leg.to)?,
            ) else {
                refusal = Some(index);
                return Ok(Err(Refusal::AccountNotFound));
            };
            if let Err(refused) =
                move_money(tx, ctx, from, to, leg.amount, Mode::Pending, e2e.as_str())?
            {
                refusal = Some(index);
                return Ok(Err(refused));
            }
        }
        Ok(Ok(()))
    })?;
    let refusal = match held {
        Ok(()) => None,
        Err(refused) => Some((refusal.expect("a refusal names its leg"), refused)),
    };
    let reason = refusal.map(|(leg, refused)| {
        LegRefusal {
            bank: me,
            leg,
            code: refused.code().to_string(),
        }
        .to_string()
    });
    let yes = reason.is_none();
    let legs_json = serde_json::to_string(legs).expect("legs serialise");
    // The vote keeps no copy of the payment: its pending record, written beside it by the caller,
    // is what `finish` settles.
    tx.insert_vote(&NewVote {
        e2e: e2e.as_str(),
        coordinator: Some(coordinator.as_str()),
        yes,
        reason: reason.as_deref(),
        legs: &legs_json,
        finished: None,
        clock: &ctx.clock,
    })?;
    Ok((yes, reason))
}

fn entry_kind(other: &Endpoint, outgoing: bool) -> &'static str {
    match (other, outgoing) {
        (Endpoint::Vault, false) => "deposit",
        (Endpoint::Vault, true) => "withdrawal",
        (_, false) => "transfer_in",
        (_, true) => "transfer_out",
    }
}

/// Posts (commit) or voids this bank's part, exactly once. With `settle`, also gives the
/// customer's record of the payment here, pending since the prepare, its final status (a
/// decision settles its own record before it finishes its own part, and says so with `false`).
pub fn finish<T: LedgerTx>(
    tx: &mut T,
    ctx: &Ctx,
    e2e: &EndToEndId,
    commit: bool,
    settle: bool,
) -> Applied<Outcome, T::Error> {
    // `finished`: whether the part committed here, once it finished.
    let known = tx
        .vote(e2e.as_str())?
        .map(|vote| (vote.yes, vote.legs, vote.finished));
    let Some((yes, legs_json, done)) = known else {
        // Never prepared here (its prepare was lost or is late): remember the abort.
        if commit {
            tracing::error!(%e2e, "a commit arrived for a transaction this bank never voted on; not obeyed");
            return Ok(Err(Refusal::Ledger(LedgerRefusal::HoldAlreadyResolved)));
        }
        tx.insert_vote(&NewVote {
            e2e: e2e.as_str(),
            coordinator: None,
            yes: false,
            reason: None,
            legs: "[]",
            finished: Some(false),
            clock: &ctx.clock,
        })?;
        return Ok(Ok(Outcome::Done));
    };
    if let Some(done) = done {
        if done != commit {
            // Two decisions for one transaction: a protocol bug, loud so it cannot hide.
            let word = |commit| if commit { "commit" } else { "abort" };
            tracing::error!(%e2e, stored = word(done), arrived = word(commit), "a decision contradicts how this transaction finished here");
        }
        return Ok(Ok(Outcome::Done));
    }
    if commit && !yes {
        tracing::error!(%e2e, "a commit arrived for a transaction this bank voted against; not obeyed");
        return Ok(Err(Refusal::Ledger(LedgerRefusal::HoldAlreadyResolved)));
    }
    let legs: Vec<Leg> = serde_json::from_str(&legs_json).expect("stored legs parse");
    let holds = tx.holds(e2e.as_str())?;
    assert!(
        !yes || holds.len() == legs.len(),
        "{e2e}: a yes vote holds every leg"
    );
    // One hold refuses before it writes; with several, a refused one undoes those before it.
    let resolved = in_savepoint_if(holds.len() > 1, tx, ctx, |tx| {
        resolve_holds(tx, ctx, e2e, &holds, &legs, commit)
    })?;
    if let Err(refusal) = resolved {
        return Ok(Err(refusal));
    }
    tx.finish_vote(e2e.as_str(), commit)?;
    // The recipient's record of the payment, pending since the prepare (already linked to the
    // accounts it touches here), takes its final status. The coordinator's own record was
    // settled by its decision, before any part finished; a pending package here is one of
    // those, which only its decision settles.
    if settle && let Some(Outcome::Payment(mut payment)) = pending_payment(tx, e2e)? {
        payment.status = decided_status(commit);
        settle_pending(tx, e2e, &Outcome::Payment(payment))?;
    }
    Ok(Ok(Outcome::Done))
}

fn decided_status(commit: bool) -> PaymentStatus {
    if commit {
        PaymentStatus::Committed
    } else {
        PaymentStatus::Aborted
    }
}

/// The customer's payment or package recorded here that still waits on a decision.
fn pending_payment<T: LedgerTx>(tx: &mut T, e2e: &EndToEndId) -> Result<Option<Outcome>, T::Error> {
    let body = tx.pending_payment(e2e.as_str())?;
    Ok(body.map(|body| serde_json::from_str(&body).expect("stored payments parse")))
}

/// Writes a pending payment's (or package's) final state; answers it as JSON.
fn settle_pending<T: LedgerTx>(
    tx: &mut T,
    e2e: &EndToEndId,
    settled: &Outcome,
) -> Result<String, T::Error> {
    let status = match settled {
        Outcome::Payment(payment) => &payment.status,
        Outcome::Package(package) => &package.status,
        other => unreachable!("a payment is a transfer or a package, not {other:?}"),
    };
    let body = serde_json::to_string(settled).expect("outcomes serialise");
    tx.update_payment(e2e.as_str(), status, &body)?;
    Ok(body)
}

/// Posts or voids each hold of a finished part, with its statement lines when posted.
fn resolve_holds<T: LedgerTx>(
    tx: &mut T,
    ctx: &Ctx,
    e2e: &EndToEndId,
    holds: &[Hold],
    legs: &[Leg],
    commit: bool,
) -> Applied<(), T::Error> {
    for (hold, leg) in holds.iter().zip(legs) {
        let moved = match resolve_hold(tx, ctx, hold, e2e.as_str(), commit)? {
            Ok(moved) => moved,
            Err(refusal) => return Ok(Err(refusal)),
        };
        if !commit {
            continue;
        }
        let (from_id, to_id) = (
            endpoint_id(tx, ctx, &leg.from)?,
            endpoint_id(tx, ctx, &leg.to)?,
        );
        for (account_id, endpoint, other, outgoing, after, counterparty) in [
            (
                from_id,
                &leg.from,
                &leg.to,
                true,
                moved.debit_after.balance(),
                &leg.memo.to_label,
            ),
            (
                to_id,
                &leg.to,
                &leg.from,
                false,
                moved.credit_after.balance(),
                &leg.memo.from_label,
            ),
        ] {
            let (Some(account_id), Endpoint::Account(_)) = (account_id, endpoint) else {
                continue;
            };
            let signed = if outgoing {
                -leg.amount.cents()
            } else {
                leg.amount.cents()
            };
            let counterparty = if matches!(other, Endpoint::Vault) {
                "cash".to_string()
            } else {
                counterparty.clone()
            };
            let draft = EntryDraft {
                account_id,
                transfer_id: moved.transfer_id,
                kind: entry_kind(other, outgoing),
                amount_cents: signed,
                balance_after_cents: after,
                counterparty,
                description: shown_description(&leg.memo.description),
                // Who asked is shown on the payer's side only: another bank's usernames stay there.
                made_by: if outgoing || !matches!(other, Endpoint::Settlement(_)) {
                    &leg.memo.made_by
                } else {
                    ""
                },
                e2e: e2e.as_str(),
            };
            insert_entry(tx, ctx, draft)?;
        }
    }
    Ok(Ok(()))
}

/// Records the decision (the first one stands) and, with `finish_here`, finishes this bank's own
/// part by it in the same transaction.
pub fn record_decision<T: LedgerTx>(
    tx: &mut T,
    ctx: &Ctx,
    e2e: &EndToEndId,
    commit: bool,
    participants: &[BankCode],
    reason: Option<&str>,
    finish_here: bool,
) -> Applied<Outcome, T::Error> {
    let (stands, settled) = decide(tx, ctx, e2e, commit, participants, reason)?;
    let finished_here = finish_here
        && match finish(tx, ctx, e2e, stands, false)? {
            Ok(_) => true,
            Err(refusal) => {
                tracing::error!(%e2e, %refusal, "this bank's part did not obey its own decision");
                false
            }
        };
    Ok(Ok(Outcome::Decision {
        commit: stands,
        finished_here,
        settled: settled.map(Box::new),
    }))
}

/// The decision that stands: the one recorded before, or `commit`, recorded now with the
/// payment's outcome (returned beside it when there is a payment here to settle).
fn decide<T: LedgerTx>(
    tx: &mut T,
    ctx: &Ctx,
    e2e: &EndToEndId,
    commit: bool,
    participants: &[BankCode],
    reason: Option<&str>,
) -> Result<(bool, Option<Outcome>), T::Error> {
    let stored = tx.decision(e2e.as_str())?;
    if let Some(first) = stored {
        return Ok((first, None));
    }
    let participants_json = serde_json::to_string(participants).expect("codes serialise");
    tx.insert_decision(e2e.as_str(), commit, &participants_json, &ctx.clock)?;
    // The customer's payment or package, and any idempotency record waiting on it, take the
    // outcome now.
    if let Some(pending) = pending_payment(tx, e2e)? {
        let status = decided_status(commit);
        let reason = reason.unwrap_or(protocol::reasons::REFUSED);
        let settled = match pending {
            Outcome::Payment(mut payment) => {
                payment.status = status;
                payment.reason = (!commit).then(|| LegRefusal::code_of(reason).to_string());
                Outcome::Payment(payment)
            }
            Outcome::Package(mut package) => {
                package.status = status;
                package.results = package_results(&package, commit, reason);
                Outcome::Package(package)
            }
            other => unreachable!("a pending payment is a transfer or a package, not {other:?}"),
        };
        let json = settle_pending(tx, e2e, &settled)?;
        tx.settle_idempotency(e2e.as_str(), &json)?;
        return Ok((commit, Some(settled)));
    }
    Ok((commit, None))
}

/// Each operation's result once a package between banks is decided: all committed, or the one a
/// bank refused with its code and the others aborted with it.
fn package_results(package: &PackageRecord, commit: bool, reason: &str) -> Vec<OperationRecord> {
    let refused = LegRefusal::parse(reason)
        .and_then(|r| Some((package.operation_of(r.bank, r.leg)?, r.code)));
    (0..package.banks.len())
        .map(|index| match (&refused, commit) {
            (_, true) => OperationRecord {
                status: OperationStatus::Committed,
                reason: None,
            },
            (Some((at, code)), false) if *at == index => OperationRecord {
                status: OperationStatus::Rejected,
                reason: Some(code.clone()),
            },
            (Some(_), false) => OperationRecord {
                status: OperationStatus::Aborted,
                reason: Some("package_aborted".into()),
            },
            (None, false) => OperationRecord {
                status: OperationStatus::Aborted,
                reason: Some(LegRefusal::code_of(reason).to_string()),
            },
        })
        .collect()
}

pub fn complete_decisions<T: LedgerTx>(
    tx: &mut T,
    e2es: &[EndToEndId],
) -> Applied<Outcome, T::Error> {
    for e2e in e2es {
        tx.complete_decision(e2e.as_str())?;
    }
    Ok(Ok(Outcome::Done))
}

pub fn begin_payment<T: LedgerTx>(
    tx: &mut T,
    ctx: &Ctx,
    actor: CustomerId,
    from: AccountNumber,
    payment: &PaymentRecord,
    legs: &[Leg],
) -> Applied<Outcome, T::Error> {
    let Some((from_id, _)) = held_account(tx, ctx, actor, from)? else {
        return Ok(Err(Refusal::AccountNotFound));
    };
    let e2e = EndToEndId::parse(&payment.e2e_id).expect("payments carry valid ids");
    let me = BankCode::parse(ctx.bank).expect("the bank's own code is valid");
    let (yes, reason) = hold_and_vote(tx, ctx, &e2e, me, legs)?;
    // Refused here (e.g. insufficient funds), the payment is aborted already, as a local
    // transfer's would be; the decision that follows the no vote finds nothing left to settle.
    let mut record = payment.clone();
    if !yes {
        record.status = PaymentStatus::Aborted;
        record.reason = reason.map(|reason| LegRefusal::code_of(&reason).to_string());
    }
    let status = record.status.clone();
    let stored = Outcome::Payment(record);
    record_payment(tx, e2e.as_str(), &status, &stored, &[from_id], Some(actor))?;
    Ok(Ok(match stored {
        Outcome::Payment(record) if yes => Outcome::Pending(record),
        refused => refused,
    }))
}

pub fn begin_package<T: LedgerTx>(
    tx: &mut T,
    ctx: &Ctx,
    actor: CustomerId,
    accounts: &[AccountNumber],
    package: &PackageRecord,
) -> Applied<Outcome, T::Error> {
    let mut ids = Vec::with_capacity(accounts.len());
    for number in accounts {
        let Some((id, _)) = held_account(tx, ctx, actor, *number)? else {
            return Ok(Err(Refusal::AccountNotFound));
        };
        ids.push(id);
    }
    let outcome = Outcome::Package(package.clone());
    record_payment(
        tx,
        &package.e2e_id,
        &PaymentStatus::Pending,
        &outcome,
        &ids,
        Some(actor),
    )?;
    Ok(Ok(outcome))
}
