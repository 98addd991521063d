//! The bank's rules, apart from any database: [`apply`] runs one command against one open
//! transaction ([`LedgerTx`]), reading and writing rows through it. Every function here answers
//! `Ok(Ok(_))` when it did its work, `Ok(Err(refusal))` when the business rules said no (and it
//! wrote nothing that is kept), and `Err(_)` only for database failures. Counters change only
//! through `ledger::rules`.
//!
//! `ctx.rs` holds what the rules share (the command's context, savepoints, movements of money,
//! statement lines, payment records) and `memo.rs` the writer's account cache; `local.rs` and
//! `interbank.rs` build on them, and this module dispatches to both: no module imports one
//! that imports it.

mod ctx;
mod interbank;
mod local;
pub mod memo;

pub use ctx::{Applied, Ctx, in_savepoint};

use crate::model::*;
use crate::tx::LedgerTx;

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

pub fn apply<T: LedgerTx>(tx: &mut T, ctx: &Ctx, command: &Command) -> Applied<Outcome, T::Error> {
    match command {
        Command::RegisterCustomer {
            public_id,
            name,
            document,
            username,
            password_hash,
        } => local::register(
            tx,
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
        } => local::register(
            tx,
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
            tx.insert_session(token_hash, *customer, *expires_at_ms as i64)?;
            Ok(Ok(Outcome::Done))
        }
        Command::DeleteSession { token_hash } => {
            tx.delete_session(token_hash)?;
            Ok(Ok(Outcome::Done))
        }
        Command::OpenAccount {
            actor,
            kind,
            co_holders,
            opening_deposit,
            e2e,
        } => local::open_account(tx, ctx, *actor, *kind, co_holders, *opening_deposit, e2e)
            .map(|r| r.map(Outcome::Account)),
        Command::AddPixKey {
            actor,
            account,
            key,
        } => local::add_pix_key(tx, ctx, *actor, *account, key).map(|r| r.map(Outcome::PixKey)),
        Command::DeletePixKey { actor, key } => {
            local::delete_pix_key(tx, *actor, key).map(|r| r.map(|()| Outcome::Done))
        }
        Command::Deposit {
            actor,
            account,
            amount,
            description,
            e2e,
        }
        | Command::Withdraw {
            actor,
            account,
            amount,
            description,
            e2e,
        } => {
            let kind = if matches!(command, Command::Deposit { .. }) {
                local::Cash::Deposit
            } else {
                local::Cash::Withdrawal
            };
            local::cash(tx, ctx, *actor, *account, *amount, description, e2e, kind)
                .map(|r| r.map(Outcome::Entry))
        }
        Command::Transfer {
            actor,
            from,
            to,
            amount,
            description,
            e2e,
        } => local::transfer(tx, ctx, *actor, *from, to, *amount, description, e2e),
        Command::Package {
            actor,
            operations,
            e2e,
        } => local::package(tx, ctx, *actor, operations, e2e).map(|r| r.map(Outcome::Package)),
        Command::TransferBatch { actor, transfers } => {
            local::transfer_batch(tx, ctx, *actor, transfers)
        }
        Command::Prepare {
            e2e,
            coordinator,
            legs,
            payment,
        } => interbank::prepare(tx, ctx, e2e, *coordinator, legs, payment.as_ref()),
        Command::Finish { e2e, commit } => interbank::finish(tx, ctx, e2e, *commit, true),
        Command::RecordDecision {
            e2e,
            commit,
            participants,
            reason,
            finish_here,
        } => interbank::record_decision(
            tx,
            ctx,
            e2e,
            *commit,
            participants,
            reason.as_deref(),
            *finish_here,
        ),
        Command::CompleteDecisions { e2es } => interbank::complete_decisions(tx, e2es),
        Command::BeginPayment {
            actor,
            from,
            payment,
            legs,
        } => interbank::begin_payment(tx, ctx, *actor, *from, payment, legs),
        Command::BeginPackage {
            actor,
            accounts,
            package,
        } => interbank::begin_package(tx, ctx, *actor, accounts, package),
        Command::AnswerInvitation {
            actor,
            invitation,
            accept,
        } => local::answer_invitation(tx, ctx, *actor, *invitation, *accept),
        Command::PurgeSessions { now_ms } => {
            tx.purge_sessions(i64::try_from(*now_ms).unwrap_or(i64::MAX))?;
            Ok(Ok(Outcome::Done))
        }
    }
}
