//! The durable side of the interbank protocol: a participant's holds and vote, made in one
//! step; its commit or abort, exactly once; the coordinator's decision, first one wins.

use super::apply::{
    Applied, Ctx, EntryDraft, Hold, Mode, customer_account, held_account, in_savepoint_if,
    insert_entry, move_money, record_payment, resolve_hold, shown_description,
};
use crate::model::*;
use ledger::{AccountNumber, Amount, BankCode, EndToEndId};
use protocol::{Endpoint, Leg, LegRefusal};
use rusqlite::{Connection, OptionalExtension, params};

fn endpoint_id(conn: &Connection, ctx: &Ctx, endpoint: &Endpoint) -> rusqlite::Result<Option<i64>> {
    match endpoint {
        Endpoint::Account(number) => customer_account(conn, ctx, *number),
        Endpoint::Settlement(bank) => ctx.memo.settlement(conn, *bank),
        Endpoint::Vault => Ok(Some(ctx.vault)),
    }
}

/// The accounts a payment touches here, so their holders can look it up.
fn touched_accounts(conn: &Connection, ctx: &Ctx, legs: &[Leg]) -> rusqlite::Result<Vec<i64>> {
    let mut ids = Vec::new();
    for leg in legs {
        for endpoint in [&leg.from, &leg.to] {
            if let (Endpoint::Account(_), Some(id)) = (endpoint, endpoint_id(conn, ctx, endpoint)?)
            {
                ids.push(id);
            }
        }
    }
    Ok(ids)
}

pub fn prepare(
    conn: &Connection,
    ctx: &Ctx,
    e2e: &EndToEndId,
    coordinator: BankCode,
    legs: &[Leg],
    payment: Option<&PaymentRecord>,
) -> Applied<Outcome> {
    let known: Option<(bool, Option<String>, Option<bool>)> = ctx
        .hot
        .statement("SELECT yes, reason, finished FROM interbank_votes WHERE e2e_id = ?1")?
        .borrow_mut()
        .query_row(params![e2e.as_str()], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?))
        })
        .optional()?;
    if let Some((yes, reason, finished)) = known {
        return Ok(Ok(if finished.is_some() {
            Outcome::AlreadyFinished
        } else {
            Outcome::Vote { yes, reason }
        }));
    }
    let (yes, reason) = hold_and_vote(conn, ctx, e2e, coordinator, legs)?;
    // The recipient can follow the payment while the banks decide.
    if let (true, Some(payment)) = (yes, payment) {
        let mut pending = payment.clone();
        pending.status = PaymentStatus::Pending;
        let outcome = Outcome::Payment(pending);
        record_payment(
            ctx,
            e2e.as_str(),
            &PaymentStatus::Pending,
            &outcome,
            &touched_accounts(conn, ctx, legs)?,
            None,
        )?;
    }
    Ok(Ok(Outcome::Vote { yes, reason }))
}

/// Holds every leg, or none (a refused leg undoes those before it), and records the vote: yes,
/// or no with the refused leg and its code (`bank/leg/code`).
fn hold_and_vote(
    conn: &Connection,
    ctx: &Ctx,
    e2e: &EndToEndId,
    coordinator: BankCode,
    legs: &[Leg],
) -> rusqlite::Result<(bool, Option<String>)> {
    // Another bank's part settles only with that bank: a settlement account with a third bank
    // is, for this transaction, no account at all (the node refuses such a part before it gets
    // here; this keeps the store's own promise too).
    let me = BankCode::parse(ctx.bank).expect("the bank's own code is valid");
    let third_bank = |end: &Endpoint| matches!(end, Endpoint::Settlement(bank) if coordinator != me && *bank != coordinator);
    // One leg refuses before it writes; with several, a refused one undoes those before it.
    let mut refusal = None;
    let held = in_savepoint_if(legs.len() > 1, ctx, || {
        for (index, leg) in legs.iter().enumerate() {
            if third_bank(&leg.from) || third_bank(&leg.to) {
                refusal = Some(index);
                return Ok(Err(Refusal::AccountNotFound));
            }
            let (Some(from), Some(to)) = (
                endpoint_id(conn, ctx, &leg.from)?,
                endpoint_id(conn, ctx, &leg.to)?,
            ) else {
                refusal = Some(index);
                return Ok(Err(Refusal::AccountNotFound));
            };
            if let Err(refused) =
                move_money(conn, ctx, from, to, leg.amount, Mode::Pending, e2e.as_str())?
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
    ctx.hot.statement("INSERT INTO interbank_votes (e2e_id, coordinator, yes, reason, legs, clock) VALUES (?1, ?2, ?3, ?4, ?5, ?6)")?
        .borrow_mut()
        .execute(params![e2e.as_str(), coordinator.as_str(), yes, reason, legs_json, ctx.clock])?;
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
pub fn finish(
    conn: &Connection,
    ctx: &Ctx,
    e2e: &EndToEndId,
    commit: bool,
    settle: bool,
) -> Applied<Outcome> {
    // `finished`: whether the part committed here, once it finished.
    let known: Option<(bool, String, Option<bool>)> = ctx
        .hot
        .statement("SELECT yes, legs, finished FROM interbank_votes WHERE e2e_id = ?1")?
        .borrow_mut()
        .query_row(params![e2e.as_str()], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?))
        })
        .optional()?;
    let Some((yes, legs_json, done)) = known else {
        // Never prepared here (its prepare was lost or is late): remember the abort.
        if commit {
            tracing::error!(%e2e, "a commit arrived for a transaction this bank never voted on; not obeyed");
            return Ok(Err(Refusal::Ledger(LedgerRefusal::HoldAlreadyResolved)));
        }
        ctx.hot.statement("INSERT INTO interbank_votes (e2e_id, yes, legs, finished, clock) VALUES (?1, 0, '[]', 0, ?2)")?
            .borrow_mut()
            .execute(params![e2e.as_str(), ctx.clock])?;
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
    let holds = ctx.hot.statement(
        "SELECT id, debit_account_id, credit_account_id, amount FROM transfers
         WHERE e2e_id = ?1 AND flags = 'pending' ORDER BY id",
    )?;
    let holds: Vec<Hold> = holds
        .borrow_mut()
        .query_map(params![e2e.as_str()], |row| {
            Ok(Hold {
                id: row.get(0)?,
                debit_id: row.get(1)?,
                credit_id: row.get(2)?,
                amount: Amount::from_cents(row.get(3)?).expect("stored amounts are positive"),
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    assert!(
        !yes || holds.len() == legs.len(),
        "{e2e}: a yes vote holds every leg"
    );
    // One hold refuses before it writes; with several, a refused one undoes those before it.
    let resolved = in_savepoint_if(holds.len() > 1, ctx, || {
        resolve_holds(conn, ctx, e2e, &holds, &legs, commit)
    })?;
    if let Err(refusal) = resolved {
        return Ok(Err(refusal));
    }
    ctx.hot
        .statement("UPDATE interbank_votes SET finished = ?2 WHERE e2e_id = ?1")?
        .borrow_mut()
        .execute(params![e2e.as_str(), commit])?;
    // The recipient's record of the payment, pending since the prepare (already linked to the
    // accounts it touches here), takes its final status. The coordinator's own record was
    // settled by its decision, before any part finished; a pending package here is one of
    // those, which only its decision settles.
    if settle && let Some(Outcome::Payment(mut payment)) = pending_payment(ctx, e2e)? {
        payment.status = decided_status(commit);
        settle_pending(ctx, e2e, &Outcome::Payment(payment))?;
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
fn pending_payment(ctx: &Ctx, e2e: &EndToEndId) -> rusqlite::Result<Option<Outcome>> {
    let body: Option<String> = ctx
        .hot
        .statement("SELECT body FROM payments WHERE e2e_id = ?1 AND status = 'pending'")?
        .borrow_mut()
        .query_row(params![e2e.as_str()], |row| row.get(0))
        .optional()?;
    Ok(body.map(|body| serde_json::from_str(&body).expect("stored payments parse")))
}

/// Writes a pending payment's (or package's) final state; answers it as JSON.
fn settle_pending(ctx: &Ctx, e2e: &EndToEndId, settled: &Outcome) -> rusqlite::Result<String> {
    let status = match settled {
        Outcome::Payment(payment) => &payment.status,
        Outcome::Package(package) => &package.status,
        other => unreachable!("a payment is a transfer or a package, not {other:?}"),
    };
    let body = serde_json::to_string(settled).expect("outcomes serialise");
    ctx.hot
        .statement("UPDATE payments SET status = ?2, body = ?3 WHERE e2e_id = ?1")?
        .borrow_mut()
        .execute(params![e2e.as_str(), status.as_str(), body])?;
    Ok(body)
}

/// Posts or voids each hold of a finished part, with its statement lines when posted.
fn resolve_holds(
    conn: &Connection,
    ctx: &Ctx,
    e2e: &EndToEndId,
    holds: &[Hold],
    legs: &[Leg],
    commit: bool,
) -> Applied<()> {
    for (hold, leg) in holds.iter().zip(legs) {
        let moved = match resolve_hold(conn, ctx, hold, e2e.as_str(), commit)? {
            Ok(moved) => moved,
            Err(refusal) => return Ok(Err(refusal)),
        };
        if !commit {
            continue;
        }
        let (from_id, to_id) = (
            endpoint_id(conn, ctx, &leg.from)?,
            endpoint_id(conn, ctx, &leg.to)?,
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
            insert_entry(conn, ctx, draft)?;
        }
    }
    Ok(Ok(()))
}

/// Records the decision (the first one stands) and, with `finish_here`, finishes this bank's own
/// part by it in the same transaction.
pub fn record_decision(
    conn: &Connection,
    ctx: &Ctx,
    e2e: &EndToEndId,
    commit: bool,
    participants: &[BankCode],
    reason: Option<&str>,
    finish_here: bool,
) -> Applied<Outcome> {
    let (stands, settled) = decide(ctx, e2e, commit, participants, reason)?;
    let finished_here = finish_here
        && match finish(conn, ctx, e2e, stands, false)? {
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
fn decide(
    ctx: &Ctx,
    e2e: &EndToEndId,
    commit: bool,
    participants: &[BankCode],
    reason: Option<&str>,
) -> rusqlite::Result<(bool, Option<Outcome>)> {
    let stored: Option<bool> = ctx
        .hot
        .statement("SELECT commit_flag FROM interbank_decisions WHERE e2e_id = ?1")?
        .borrow_mut()
        .query_row(params![e2e.as_str()], |row| row.get(0))
        .optional()?;
    if let Some(first) = stored {
        return Ok((first, None));
    }
    let participants_json = serde_json::to_string(participants).expect("codes serialise");
    ctx.hot.statement("INSERT INTO interbank_decisions (e2e_id, commit_flag, participants, clock) VALUES (?1, ?2, ?3, ?4)")?
        .borrow_mut()
        .execute(params![e2e.as_str(), commit, participants_json, ctx.clock])?;
    // The customer's payment or package, and any idempotency record waiting on it, take the
    // outcome now.
    if let Some(pending) = pending_payment(ctx, e2e)? {
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
        let json = settle_pending(ctx, e2e, &settled)?;
        ctx.hot
            .statement(
                "UPDATE idempotency SET outcome = ?2, pending_e2e = NULL WHERE pending_e2e = ?1",
            )?
            .borrow_mut()
            .execute(params![e2e.as_str(), json])?;
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

pub fn complete_decisions(ctx: &Ctx, e2es: &[EndToEndId]) -> Applied<Outcome> {
    let complete = ctx
        .hot
        .statement("UPDATE interbank_decisions SET completed = 1 WHERE e2e_id = ?1")?;
    for e2e in e2es {
        complete.borrow_mut().execute(params![e2e.as_str()])?;
    }
    Ok(Ok(Outcome::Done))
}

pub fn begin_payment(
    conn: &Connection,
    ctx: &Ctx,
    actor: CustomerId,
    from: AccountNumber,
    payment: &PaymentRecord,
    legs: &[Leg],
) -> Applied<Outcome> {
    let Some((from_id, _)) = held_account(conn, ctx, actor, from)? else {
        return Ok(Err(Refusal::AccountNotFound));
    };
    let e2e = EndToEndId::parse(&payment.e2e_id).expect("payments carry valid ids");
    let me = BankCode::parse(ctx.bank).expect("the bank's own code is valid");
    let (yes, reason) = hold_and_vote(conn, ctx, &e2e, me, legs)?;
    // Refused here (e.g. insufficient funds), the payment is aborted already, as a local
    // transfer's would be; the decision that follows the no vote finds nothing left to settle.
    let mut record = payment.clone();
    if !yes {
        record.status = PaymentStatus::Aborted;
        record.reason = reason.map(|reason| LegRefusal::code_of(&reason).to_string());
    }
    let status = record.status.clone();
    let stored = Outcome::Payment(record);
    record_payment(ctx, e2e.as_str(), &status, &stored, &[from_id], Some(actor))?;
    Ok(Ok(match stored {
        Outcome::Payment(record) if yes => Outcome::Pending(record),
        refused => refused,
    }))
}

pub fn begin_package(
    conn: &Connection,
    ctx: &Ctx,
    actor: CustomerId,
    accounts: &[AccountNumber],
    package: &PackageRecord,
) -> Applied<Outcome> {
    let mut ids = Vec::with_capacity(accounts.len());
    for number in accounts {
        let Some((id, _)) = held_account(conn, ctx, actor, *number)? else {
            return Ok(Err(Refusal::AccountNotFound));
        };
        ids.push(id);
    }
    let outcome = Outcome::Package(package.clone());
    record_payment(
        ctx,
        &package.e2e_id,
        &PaymentStatus::Pending,
        &outcome,
        &ids,
        Some(actor),
    )?;
    Ok(Ok(outcome))
}

/// What a restarted node must finish: its unfinished votes, and its decisions not yet
/// acknowledged by every participant.
pub fn open_work(conn: &Connection) -> rusqlite::Result<OpenInterbank> {
    let votes = conn
        .prepare("SELECT e2e_id, coordinator, yes FROM interbank_votes WHERE finished IS NULL")?
        .query_map([], |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, Option<String>>(1)?,
                row.get::<_, bool>(2)?,
            ))
        })?
        .filter_map(|row| match row {
            Ok((e2e, Some(coordinator), yes)) => Some(Ok((
                EndToEndId::parse(&e2e)?,
                BankCode::parse(&coordinator)?,
                yes,
            ))),
            Ok(_) => None,
            Err(e) => Some(Err(e)),
        })
        .collect::<rusqlite::Result<_>>()?;
    let decisions = conn
        .prepare(
            "SELECT e2e_id, commit_flag, participants FROM interbank_decisions WHERE completed = 0",
        )?
        .query_map([], |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, bool>(1)?,
                row.get::<_, String>(2)?,
            ))
        })?
        .filter_map(|row| match row {
            Ok((e2e, commit, participants)) => Some(Ok((
                EndToEndId::parse(&e2e)?,
                commit,
                serde_json::from_str(&participants).ok()?,
            ))),
            Err(e) => Some(Err(e)),
        })
        .collect::<rusqlite::Result<_>>()?;
    let undecided = conn
        .prepare(
            "SELECT e2e_id, body FROM payments WHERE status = 'pending' AND started_by IS NOT NULL AND e2e_id NOT IN (SELECT e2e_id FROM interbank_decisions)",
        )?
        .query_map([], |row| Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?)))?
        .map(|row| {
            let (e2e, body) = row?;
            let banks: Vec<BankCode> = match serde_json::from_str::<Outcome>(&body) {
                Ok(Outcome::Payment(payment)) => [&payment.from.bank, &payment.to.bank]
                    .into_iter()
                    .filter_map(|code| BankCode::parse(code))
                    .collect::<std::collections::BTreeSet<_>>()
                    .into_iter()
                    .collect(),
                Ok(Outcome::Package(package)) => package.participants(),
                _ => return Ok(None),
            };
            Ok(EndToEndId::parse(&e2e).map(|e2e| (e2e, banks)))
        })
        .filter_map(Result::transpose)
        .collect::<rusqlite::Result<_>>()?;
    Ok(OpenInterbank {
        votes,
        decisions,
        undecided,
    })
}

/// A decision recorded here, complete or not, and the banks it was recorded for (for a
/// participant asking about an old transaction: only they are told).
pub fn decision(conn: &Connection, e2e: &str) -> rusqlite::Result<Option<(bool, Vec<BankCode>)>> {
    conn.prepare_cached(
        "SELECT commit_flag, participants FROM interbank_decisions WHERE e2e_id = ?1",
    )?
    .query_row(params![e2e], |row| {
        let participants: String = row.get(1)?;
        Ok((
            row.get(0)?,
            serde_json::from_str(&participants).unwrap_or_default(),
        ))
    })
    .optional()
}

/// Holds this bank placed for another bank's transaction that touch a settlement account with
/// a third bank (not that transaction's coordinator): money booked here as owed by, or to, a bank
/// that never signed for it. A participant takes settlement legs only with the coordinator (the
/// node refuses any other), so every such hold is a forgery that got through, or older data.
/// (Resolutions post or void a hold between the same accounts, so the holds are enough.)
pub fn third_bank_holds(conn: &Connection) -> rusqlite::Result<i64> {
    conn.query_row(
        "SELECT COUNT(*) FROM interbank_votes v
         JOIN transfers t ON t.e2e_id = v.e2e_id AND t.flags = 'pending'
         JOIN accounts a ON a.id IN (t.debit_account_id, t.credit_account_id)
         WHERE a.kind = 'settlement' AND a.peer_bank <> v.coordinator
           AND EXISTS (SELECT 1 FROM accounts c WHERE c.kind = 'settlement' AND c.peer_bank = v.coordinator)",
        [],
        |row| row.get(0),
    )
}
