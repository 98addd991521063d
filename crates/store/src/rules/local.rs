//! The rules of commands that stay inside this bank: customers and their accounts, Pix keys,
//! cash, transfers between two accounts here, and packages of them.

use super::ctx::*;
use super::memo::AccountFacts;
use crate::model::*;
use crate::tx::{EntrySide, LedgerTx, NewCustomer, NewTransferEntry, RowId, Savepoint};
use ledger::{AccountKind, AccountNumber, Amount, EndToEndId, PartyKind, PixKey, PixKeyType};
use std::sync::Arc;

#[allow(clippy::too_many_arguments)]
pub(super) fn register<T: LedgerTx>(
    tx: &mut T,
    ctx: &Ctx,
    public_id: &str,
    name: &str,
    document: &ledger::Document,
    username: &str,
    password_hash: &str,
    home_bank: &str,
) -> Applied<CustomerRecord, T::Error> {
    // One writer runs at a time, so these checks cannot race; the unique constraints back them.
    if tx.document_registered(document.as_str())? {
        return Ok(Err(Refusal::DuplicateDocument));
    }
    if tx.customer_id_by_username(username)?.is_some() {
        return Ok(Err(Refusal::DuplicateUsername));
    }
    let id = tx.insert_customer(&NewCustomer {
        public_id,
        name,
        document,
        username,
        password_hash,
        home_bank,
        clock: &ctx.clock,
    })?;
    Ok(Ok(tx.customer(id)?.expect("just inserted")))
}

pub(super) fn open_account<T: LedgerTx>(
    tx: &mut T,
    ctx: &Ctx,
    actor: CustomerId,
    kind: AccountKind,
    co_holders: &[String],
    opening_deposit: Amount,
    e2e: &EndToEndId,
) -> Applied<AccountRecord, T::Error> {
    let owner = tx.customer(actor)?.expect("sessions belong to customers");
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
            let invitee = match tx.customer_id_by_username(name)? {
                Some(id) if tx.customer(id)?.map(|c| c.kind) == Some(PartyKind::Individual) => {
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
    let base = tx.next_account_number()?;
    AccountNumber::from_base(base).expect("account numbers stay in range");
    let account_id = tx.insert_account(base, kind, &ctx.clock)?;
    tx.insert_holder(account_id, actor, 0)?;
    for (name, invitee) in &invitees {
        tx.insert_invitation(account_id, actor, name, *invitee, &ctx.clock)?;
    }
    let moved = match move_money(
        tx,
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
    insert_entry(tx, ctx, entry)?;
    // The answer is read from the account's row: write it first.
    ctx.memo.flush(tx)?;
    Ok(Ok(tx.account_record(ctx.bank, account_id)?))
}

pub(super) fn answer_invitation<T: LedgerTx>(
    tx: &mut T,
    ctx: &Ctx,
    actor: CustomerId,
    invitation: i64,
    accept: bool,
) -> Applied<Outcome, T::Error> {
    let account_id = tx.pending_invitation(invitation, actor)?;
    let Some(account_id) = account_id else {
        return Ok(Err(Refusal::InvitationNotFound));
    };
    let status = if accept { "accepted" } else { "declined" };
    tx.set_invitation_status(invitation, status)?;
    if !accept {
        return Ok(Ok(Outcome::Done));
    }
    let (holders, position) = tx.holder_count(account_id)?;
    if holders >= JOINT_HOLDERS_MAX {
        return Ok(Err(Refusal::HolderKind(format!(
            "the account already has {JOINT_HOLDERS_MAX} holders"
        ))));
    }
    tx.insert_holder(account_id, actor, position)?;
    // The writer's memo keeps each account's holders, and this account's have changed.
    ctx.memo.forget_facts();
    Ok(Ok(Outcome::Account(
        tx.account_record(ctx.bank, account_id)?,
    )))
}

pub(super) fn add_pix_key<T: LedgerTx>(
    tx: &mut T,
    ctx: &Ctx,
    actor: CustomerId,
    number: AccountNumber,
    key: &PixKey,
) -> Applied<PixKeyRecord, T::Error> {
    let Some((account_id, kind)) = held_account(tx, ctx, actor, number)? else {
        return Ok(Err(Refusal::AccountNotFound));
    };
    let owner = tx.customer(actor)?.expect("sessions belong to customers");
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
    let count = tx.pix_key_count(account_id)?;
    if count >= limit {
        return Ok(Err(Refusal::PixKeyLimitReached(limit)));
    }
    if tx.pix_key_account(key.as_str())?.is_some() {
        return Ok(Err(Refusal::DuplicatePixKey));
    }
    tx.insert_pix_key(key, account_id, actor, &ctx.clock)?;
    Ok(Ok(tx
        .pix_key_record(ctx.bank, key.as_str())?
        .expect("just inserted")))
}

pub(super) fn delete_pix_key<T: LedgerTx>(
    tx: &mut T,
    actor: CustomerId,
    key: &PixKey,
) -> Applied<(), T::Error> {
    Ok(if tx.delete_held_pix_key(key.as_str(), actor)? {
        Ok(())
    } else {
        Err(Refusal::PixKeyNotFound)
    })
}

#[derive(Clone, Copy)]
pub(super) enum Cash {
    Deposit,
    Withdrawal,
}

#[allow(clippy::too_many_arguments)]
pub(super) fn cash<T: LedgerTx>(
    tx: &mut T,
    ctx: &Ctx,
    actor: CustomerId,
    number: AccountNumber,
    amount: Amount,
    description: &str,
    e2e: &EndToEndId,
    direction: Cash,
) -> Applied<EntryRecord, T::Error> {
    let Some((account_id, _)) = held_account(tx, ctx, actor, number)? else {
        return Ok(Err(Refusal::AccountNotFound));
    };
    let (debit, credit) = match direction {
        Cash::Deposit => (ctx.vault, account_id),
        Cash::Withdrawal => (account_id, ctx.vault),
    };
    let moved = match move_money(tx, ctx, debit, credit, amount, Mode::Posted, e2e.as_str())? {
        Ok(moved) => moved,
        Err(refusal) => return Ok(Err(refusal)),
    };
    let (kind, signed, after) = match direction {
        Cash::Deposit => ("deposit", amount.cents(), moved.credit_after.balance()),
        Cash::Withdrawal => ("withdrawal", -amount.cents(), moved.debit_after.balance()),
    };
    let made_by = ctx.memo.username(tx, actor)?;
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
    Ok(Ok(insert_entry(tx, ctx, draft)?))
}

fn resolve_target<T: LedgerTx>(tx: &mut T, ctx: &Ctx, target: &Target) -> Applied<i64, T::Error> {
    let found = match target {
        Target::Key(key) => tx
            .pix_key_account(key.as_str())?
            .ok_or(Refusal::PixKeyNotFound),
        Target::Account(number) => {
            customer_account(tx, ctx, *number)?.ok_or(Refusal::AccountNotFound)
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

/// Posts a transfer between two customer accounts of this bank and writes both statement lines.
/// Everything is checked before anything is written, so a refusal writes nothing: an unknown
/// account or key is `Err`, a ledger refusal is `Ok` with `refused` set. Its payment record is
/// built only by a caller that answers with it (a batch or a package answers without).
fn local_transfer<T: LedgerTx>(tx: &mut T, ctx: &Ctx, asked: &Asked) -> Applied<Settled, T::Error> {
    let Some(from) = ctx.memo.held(tx, ctx.bank, asked.actor, asked.from)? else {
        return Ok(Err(Refusal::AccountNotFound));
    };
    let to_id = match resolve_target(tx, ctx, asked.to)? {
        Ok(id) => id,
        Err(refusal) => return Ok(Err(refusal)),
    };
    let to = ctx.memo.account_by_id(tx, ctx.bank, to_id)?;
    // The entry below is the transfer's record: payer, payee, amount, id and clock.
    let (debit_after, credit_after) =
        match rule_movement(tx, ctx, from.id, to.id, asked.amount, Mode::Posted)? {
            Ok(after) => after,
            Err(refusal) => {
                return Ok(Ok(Settled {
                    from,
                    to,
                    refused: Some(refusal),
                }));
            }
        };
    let made_by = ctx.memo.username(tx, asked.actor)?;
    let payer = (from.id, debit_after.balance());
    let payee = (to.id, credit_after.balance());
    insert_transfer_entry(
        tx,
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

/// The statement entry of a transfer between two customer accounts here, and its only record:
/// one row with the payer's side (`transfer_out`) and the payee's (`other_*`, `transfer_in`),
/// each linked to its account's previous entry, and no `transfers` row. Each side's
/// counterparty is the other account, whose label is read with the statement. Each side is an
/// account id and its balance after.
fn insert_transfer_entry<T: LedgerTx>(
    tx: &mut T,
    ctx: &Ctx,
    amount: Amount,
    [payer, payee]: [(RowId, i64); 2],
    description: &str,
    made_by: &str,
    e2e: &str,
) -> Result<RowId, T::Error> {
    let side = |tx: &mut T, (account_id, balance_after_cents): (RowId, i64)| {
        Ok(EntrySide {
            account_id,
            balance_after_cents,
            prev_entry: state(tx, ctx, account_id)?.last_entry,
        })
    };
    let payer = side(tx, payer)?;
    let payee = side(tx, payee)?;
    let id = tx.insert_transfer_entry(&NewTransferEntry {
        payer,
        payee,
        amount_cents: amount.cents(),
        description,
        made_by,
        clock: &ctx.clock,
        at_ms: ctx.stamp.physical_ms as i64,
        e2e,
    })?;
    for account in [payer.account_id, payee.account_id] {
        ctx.memo
            .change(account, |state| state.last_entry = Some(id));
    }
    Ok(id)
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
/// and write nothing. A committed transfer's record is its entry.
fn post<T: LedgerTx>(tx: &mut T, ctx: &Ctx, asked: &Asked) -> Applied<Posted, T::Error> {
    let settled = match local_transfer(tx, ctx, asked)? {
        Ok(settled) => settled,
        Err(refusal) => return Ok(Err(refusal)),
    };
    match &settled.refused {
        None => Ok(Ok(Posted::Committed(settled))),
        Some(Refusal::Ledger(LedgerRefusal::InsufficientFunds)) => {
            let record = settled.record(ctx, asked);
            record_payment(
                tx,
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

fn operation<T: LedgerTx>(
    tx: &mut T,
    ctx: &Ctx,
    actor: CustomerId,
    op: &Operation,
    e2e: &EndToEndId,
) -> Applied<Vec<RowId>, T::Error> {
    let touched = |tx: &mut T| -> Result<Vec<RowId>, T::Error> {
        let mut ids: Vec<i64> = held_account(tx, ctx, actor, op.account)?
            .map(|(id, _)| id)
            .into_iter()
            .collect();
        if let OperationKind::Transfer(target) = &op.kind {
            ids.extend(resolve_target(tx, ctx, target)?.ok());
        }
        Ok(ids)
    };
    let done = match &op.kind {
        OperationKind::Deposit => cash(
            tx,
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
            tx,
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
            tx,
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
        Ok(()) => Ok(touched(tx)?),
        Err(refusal) => Err(refusal),
    })
}

/// Applies every operation in order; if any is refused, all are undone and each operation's
/// result says whether it was the one refused (and why) or undone because of another.
pub(super) fn package<T: LedgerTx>(
    tx: &mut T,
    ctx: &Ctx,
    actor: CustomerId,
    operations: &[Operation],
    e2e: &EndToEndId,
) -> Applied<PackageRecord, T::Error> {
    let mut results = Vec::with_capacity(operations.len());
    let mut accounts = Vec::new();
    ctx.memo.flush(tx)?;
    tx.savepoint(Savepoint::Package)?;
    for op in operations {
        match in_savepoint(tx, ctx, |tx| operation(tx, ctx, actor, op, e2e)) {
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
                tx.rollback_to(Savepoint::Package)?;
                ctx.memo.forget();
                return Err(error);
            }
        }
    }
    let committed = results
        .iter()
        .all(|r| r.status == OperationStatus::Committed);
    if committed {
        ctx.memo.flush(tx)?;
        tx.release(Savepoint::Package)?;
    } else {
        tx.rollback_to(Savepoint::Package)?;
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
                held_account(tx, ctx, actor, op.account)
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
        tx,
        e2e.as_str(),
        &status,
        &Outcome::Package(record.clone()),
        &accounts,
        None,
    )?;
    Ok(Ok(record))
}

/// A customer's transfer between two accounts here, answered with its payment record.
#[allow(clippy::too_many_arguments)]
pub(super) fn transfer<T: LedgerTx>(
    tx: &mut T,
    ctx: &Ctx,
    actor: CustomerId,
    from: AccountNumber,
    to: &Target,
    amount: Amount,
    description: &str,
    e2e: &EndToEndId,
) -> Applied<Outcome, T::Error> {
    let asked = Asked {
        actor,
        from,
        to,
        amount,
        description,
        e2e,
    };
    Ok(post(tx, ctx, &asked)?.map(|posted| match posted {
        Posted::Committed(settled) => Outcome::Payment(settled.record(ctx, &asked)),
        Posted::Aborted(record) => Outcome::Payment(record),
    }))
}

/// A batch of transfers, each applied (or refused) on its own.
pub(super) fn transfer_batch<T: LedgerTx>(
    tx: &mut T,
    ctx: &Ctx,
    actor: CustomerId,
    transfers: &[BatchEntry],
) -> Applied<Outcome, T::Error> {
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
            actor,
            from: item.from,
            to: &item.to,
            amount: item.amount,
            description: &item.description,
            e2e: &item.e2e,
        };
        let done = post(tx, ctx, &asked)?;
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
