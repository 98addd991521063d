//! Reads of the interbank protocol's durable state: the work a restarted node must finish, a
//! decision recorded here, and the audit's check of holds with a third bank. (Its writes are
//! rules: `crate::rules::interbank`.)

use crate::model::*;
use ledger::{BankCode, EndToEndId};
use rusqlite::{Connection, OptionalExtension, params};

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
