//! Queries. They run on the writer's transaction when a command needs them, and on reader
//! connections for the read side of the API; they never write.

use crate::model::*;
use ledger::{AccountKind, AccountNumber, Document, PartyKind};
use rusqlite::{Connection, OptionalExtension, Row, params};

pub fn kind(text: &str) -> AccountKind {
    AccountKind::parse(text).expect("the schema checks account kinds")
}

fn customer_row(row: &Row<'_>) -> rusqlite::Result<CustomerRecord> {
    let kind: String = row.get(3)?;
    Ok(CustomerRecord {
        id: row.get(0)?,
        public_id: row.get(1)?,
        name: row.get(2)?,
        kind: if kind == "company" {
            PartyKind::Company
        } else {
            PartyKind::Individual
        },
        document: row.get(4)?,
        username: row.get(5)?,
        home_bank: row.get(6)?,
    })
}

const CUSTOMER_COLUMNS: &str =
    "c.id, c.public_id, c.name, c.kind, c.document, c.username, c.home_bank";

pub fn customer(conn: &Connection, id: CustomerId) -> rusqlite::Result<Option<CustomerRecord>> {
    conn.prepare_cached(&format!(
        "SELECT {CUSTOMER_COLUMNS} FROM customers c WHERE c.id = ?1"
    ))?
    .query_row(params![id], customer_row)
    .optional()
}

pub fn customer_by_document(
    conn: &Connection,
    document: &str,
) -> rusqlite::Result<Option<CustomerRecord>> {
    conn.prepare_cached(&format!(
        "SELECT {CUSTOMER_COLUMNS} FROM customers c WHERE c.document = ?1"
    ))?
    .query_row(params![document], customer_row)
    .optional()
}

pub fn customer_id_by_username(
    conn: &Connection,
    username: &str,
) -> rusqlite::Result<Option<CustomerId>> {
    conn.prepare_cached("SELECT id FROM customers WHERE username = ?1")?
        .query_row(params![username], |row| row.get(0))
        .optional()
}

pub fn login_record(conn: &Connection, username: &str) -> rusqlite::Result<Option<LoginRecord>> {
    conn.prepare_cached("SELECT id, password_hash FROM customers WHERE username = ?1")?
        .query_row(params![username], |row| {
            Ok(LoginRecord {
                customer: row.get(0)?,
                password_hash: row.get(1)?,
            })
        })
        .optional()
}

pub fn session(
    conn: &Connection,
    token_hash: &[u8; 32],
    now_ms: u64,
) -> rusqlite::Result<Option<SessionRecord>> {
    conn.prepare_cached(&format!(
        "SELECT {CUSTOMER_COLUMNS}, s.expires_at_ms FROM sessions s JOIN customers c ON c.id = s.customer_id
         WHERE s.token_hash = ?1 AND s.expires_at_ms > ?2"
    ))?
    .query_row(params![&token_hash[..], now_ms as i64], |row| {
        Ok(SessionRecord {
            customer: customer_row(row)?,
            expires_at_ms: row.get::<_, i64>(7)? as u64,
        })
    })
    .optional()
}

fn holders(conn: &Connection, account_id: i64) -> rusqlite::Result<Vec<HolderRecord>> {
    conn.prepare_cached(
        "SELECT c.username, c.name FROM account_holders h JOIN customers c ON c.id = h.customer_id
         WHERE h.account_id = ?1 ORDER BY h.position",
    )?
    .query_map(params![account_id], |row| {
        Ok(HolderRecord {
            username: row.get(0)?,
            name: row.get(1)?,
        })
    })?
    .collect()
}

pub fn account_by_id(conn: &Connection, bank: &str, id: i64) -> rusqlite::Result<AccountRecord> {
    let (number, kind_text, debits_pending, debits_posted, credits_posted): (i64, String, i64, i64, i64) = conn
        .prepare_cached("SELECT number, kind, debits_pending, debits_posted, credits_posted FROM accounts WHERE id = ?1")?
        .query_row(params![id], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?, row.get(4)?)))?;
    Ok(AccountRecord {
        bank: bank.to_string(),
        number: format_number(number),
        kind: kind(&kind_text),
        holders: holders(conn, id)?,
        balance_cents: credits_posted - debits_posted,
        available_cents: credits_posted - debits_posted - debits_pending,
    })
}

pub fn format_number(base: i64) -> String {
    AccountNumber::from_base(base as u64)
        .expect("stored numbers are valid")
        .to_string()
}

pub fn accounts_of(
    conn: &Connection,
    bank: &str,
    customer: CustomerId,
) -> rusqlite::Result<Vec<AccountRecord>> {
    let ids: Vec<i64> = conn
        .prepare_cached(
            "SELECT account_id FROM account_holders WHERE customer_id = ?1 ORDER BY account_id",
        )?
        .query_map(params![customer], |row| row.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    ids.into_iter()
        .map(|id| account_by_id(conn, bank, id))
        .collect()
}

fn held_account_id(
    conn: &Connection,
    viewer: CustomerId,
    number: AccountNumber,
) -> rusqlite::Result<Option<i64>> {
    conn.prepare_cached(
        "SELECT a.id FROM accounts a JOIN account_holders h ON h.account_id = a.id WHERE a.number = ?1 AND h.customer_id = ?2",
    )?
    .query_row(params![number.base() as i64, viewer], |row| row.get(0))
    .optional()
}

pub fn account(
    conn: &Connection,
    bank: &str,
    viewer: CustomerId,
    number: AccountNumber,
) -> rusqlite::Result<Option<AccountRecord>> {
    held_account_id(conn, viewer, number)?
        .map(|id| account_by_id(conn, bank, id))
        .transpose()
}

pub fn statement(
    conn: &Connection,
    bank: &str,
    viewer: CustomerId,
    number: AccountNumber,
    before: Option<i64>,
    limit: usize,
) -> rusqlite::Result<Option<Vec<EntryRecord>>> {
    let Some(account_id) = held_account_id(conn, viewer, number)? else {
        return Ok(None);
    };
    // The page starts at the account's newest entry, or the one before the cursor's entry; a
    // cursor that is not one of this account's entries has nothing after it.
    let first: Option<i64> = match before {
        None => conn
            .prepare_cached("SELECT last_entry FROM accounts WHERE id = ?1")?
            .query_row(params![account_id], |row| row.get(0))?,
        Some(cursor) => conn
            .prepare_cached(
                "SELECT CASE WHEN account_id = ?2 THEN prev_entry ELSE other_prev_entry END
                 FROM entries WHERE id = ?1 AND (account_id = ?2 OR other_account_id = ?2)",
            )?
            .query_row(params![cursor, account_id], |row| row.get(0))
            .optional()?
            .flatten(),
    };
    let mut entries = Vec::with_capacity(limit.min(1024));
    let mut labels = Labels::default();
    let mut next = first;
    // An entry of a transfer between two accounts here has a side for each: the payer's in the
    // first columns, the payee's in `other_*`. Its counterparties are the two accounts' labels.
    let mut statement = conn.prepare_cached(
        "SELECT id, kind, amount, balance_after, counterparty, description, made_by, clock, at_ms, e2e_id, prev_entry,
                account_id, other_balance_after, other_prev_entry, other_account_id
         FROM entries WHERE id = ?1",
    )?;
    while let Some(id) = next.filter(|_| entries.len() < limit) {
        // The counterparty as stored, or the account whose label it is.
        let (mut entry, counterparty, prev) = statement.query_row(params![id], |row| {
            let payer: i64 = row.get(11)?;
            let mut entry = EntryRecord {
                id: row.get(0)?,
                kind: row.get(1)?,
                amount_cents: row.get(2)?,
                balance_after_cents: row.get(3)?,
                counterparty: String::new(),
                description: row.get(5)?,
                made_by: row.get(6)?,
                clock: row.get(7)?,
                at_ms: row.get::<_, i64>(8)? as u64,
                e2e_id: row.get(9)?,
            };
            if payer == account_id {
                let counterparty = Counterparty::read(row.get(4)?, row.get(14)?)?;
                return Ok((entry, counterparty, row.get(10)?));
            }
            entry.kind = "transfer_in".into();
            entry.amount_cents = -entry.amount_cents;
            entry.balance_after_cents = row.get(12)?;
            Ok((entry, Counterparty::Account(payer), row.get(13)?))
        })?;
        entry.counterparty = match counterparty {
            Counterparty::Stored(label) => label,
            Counterparty::Account(other) => labels.of(conn, bank, other)?,
        };
        entries.push(entry);
        next = prev;
    }
    Ok(Some(entries))
}

/// A statement line's counterparty: the label stored with a one-sided entry, or the account here
/// at the other end of a two-sided one.
enum Counterparty {
    Stored(String),
    Account(i64),
}

impl Counterparty {
    fn read(stored: Option<String>, other: Option<i64>) -> rusqlite::Result<Counterparty> {
        match (stored, other) {
            (Some(label), _) => Ok(Counterparty::Stored(label)),
            (None, Some(other)) => Ok(Counterparty::Account(other)),
            // The schema allows a missing counterparty only on a two-sided entry.
            (None, None) => Err(rusqlite::Error::InvalidColumnType(
                4,
                "counterparty".into(),
                rusqlite::types::Type::Null,
            )),
        }
    }
}

/// The labels of the accounts a statement page deals with, each read once.
#[derive(Default)]
struct Labels(std::collections::HashMap<i64, String>);

impl Labels {
    fn of(&mut self, conn: &Connection, bank: &str, account_id: i64) -> rusqlite::Result<String> {
        if let Some(label) = self.0.get(&account_id) {
            return Ok(label.clone());
        }
        let label = label(conn, bank, account_id)?;
        self.0.insert(account_id, label.clone());
        Ok(label)
    }
}

/// `bank/number Name & Name`: how a customer account here is shown on the statement of an
/// account it paid or was paid by. Neither its number nor its holders ever change.
fn label(conn: &Connection, bank: &str, account_id: i64) -> rusqlite::Result<String> {
    let number: i64 = conn
        .prepare_cached("SELECT number FROM accounts WHERE id = ?1")?
        .query_row(params![account_id], |row| row.get(0))?;
    let names: Vec<String> = holders(conn, account_id)?
        .into_iter()
        .map(|holder| holder.name)
        .collect();
    Ok(format!(
        "{bank}/{} {}",
        format_number(number),
        names.join(" & ")
    ))
}

/// The record of a committed transfer between two accounts here, read from its entry.
pub fn local_payment(conn: &Connection, bank: &str, entry: i64) -> rusqlite::Result<PaymentRecord> {
    conn.prepare_cached(
        "SELECT e.e2e_id, e.amount, e.description, e.clock, a.number, b.number FROM entries e
         JOIN accounts a ON a.id = e.account_id JOIN accounts b ON b.id = e.other_account_id
         WHERE e.id = ?1",
    )?
    .query_row(params![entry], |row| {
        let address = |number: i64| AccountAddress {
            bank: bank.to_string(),
            number: format_number(number),
        };
        Ok(PaymentRecord {
            e2e_id: row.get(0)?,
            status: PaymentStatus::Committed,
            reason: None,
            from: address(row.get(4)?),
            to: address(row.get(5)?),
            amount_cents: -row.get::<_, i64>(1)?,
            description: row.get(2)?,
            clock: row.get(3)?,
        })
    })
}

/// A stored outcome: its JSON, or the entry of the local transfer its record is read from.
pub fn stored_outcome(
    conn: &Connection,
    bank: &str,
    body: Option<String>,
    entry: Option<i64>,
) -> rusqlite::Result<Result<Outcome, String>> {
    Ok(match (body, entry) {
        (Some(body), _) => serde_json::from_str(&body).map_err(|e| e.to_string()),
        (None, Some(entry)) => Ok(Outcome::Payment(local_payment(conn, bank, entry)?)),
        (None, None) => Err("neither an outcome nor an entry".into()),
    })
}

pub fn pix_key(conn: &Connection, bank: &str, key: &str) -> rusqlite::Result<Option<PixKeyRecord>> {
    conn.prepare_cached(
        "SELECT k.key, k.type, a.number, c.name, c.document FROM pix_keys k
         JOIN accounts a ON a.id = k.account_id JOIN customers c ON c.id = k.owner_id WHERE k.key = ?1",
    )?
    .query_row(params![key], |row| pix_key_row(row, bank))
    .optional()
}

fn pix_key_row(row: &Row<'_>, bank: &str) -> rusqlite::Result<PixKeyRecord> {
    let document: String = row.get(4)?;
    Ok(PixKeyRecord {
        key: row.get(0)?,
        key_type: row.get(1)?,
        bank: bank.to_string(),
        account_number: format_number(row.get(2)?),
        holder_name: row.get(3)?,
        document_masked: Document::parse(&document)
            .map(|d| d.masked())
            .unwrap_or_default(),
    })
}

pub fn pix_keys_of(
    conn: &Connection,
    bank: &str,
    customer: CustomerId,
) -> rusqlite::Result<Vec<PixKeyRecord>> {
    conn.prepare_cached(
        "SELECT k.key, k.type, a.number, c.name, c.document FROM pix_keys k
         JOIN accounts a ON a.id = k.account_id JOIN customers c ON c.id = k.owner_id
         WHERE k.account_id IN (SELECT account_id FROM account_holders WHERE customer_id = ?1)
         ORDER BY a.number, k.key",
    )?
    .query_map(params![customer], |row| pix_key_row(row, bank))?
    .collect()
}

pub fn invitations_of(
    conn: &Connection,
    bank: &str,
    customer: CustomerId,
) -> rusqlite::Result<Vec<InvitationRecord>> {
    conn.prepare_cached(
        "SELECT i.id, a.number, c.username, c.name, i.username, i.status, i.invitee_id IS ?1
         FROM invitations i JOIN accounts a ON a.id = i.account_id JOIN customers c ON c.id = i.inviter_id
         WHERE i.invitee_id = ?1 OR i.inviter_id = ?1 ORDER BY i.id",
    )?
    .query_map(params![customer], |row| {
        Ok(InvitationRecord {
            id: row.get(0)?,
            bank: bank.to_string(),
            account_number: format_number(row.get(1)?),
            inviter: HolderRecord {
                username: row.get(2)?,
                name: row.get(3)?,
            },
            username: row.get(4)?,
            status: row.get(5)?,
            received: row.get(6)?,
        })
    })?
    .collect()
}

pub fn payment(
    conn: &Connection,
    bank: &str,
    viewer: CustomerId,
    e2e: &str,
) -> rusqlite::Result<Option<Result<Outcome, String>>> {
    let found: Option<String> = conn
        .prepare_cached(
            "SELECT p.body FROM payments p WHERE p.e2e_id = ?1 AND (p.started_by = ?2
             OR EXISTS (SELECT 1 FROM payment_accounts pa JOIN account_holders h ON h.account_id = pa.account_id
                        WHERE pa.e2e_id = p.e2e_id AND h.customer_id = ?2))",
        )?
        .query_row(params![e2e, viewer], |row| row.get(0))
        .optional()?;
    if let Some(body) = found {
        return stored_outcome(conn, bank, Some(body), None).map(Some);
    }
    // A committed transfer between two accounts here is its entry alone.
    let entry: Option<i64> = conn
        .prepare_cached(
            "SELECT e.id FROM entries e WHERE e.e2e_id = ?1 AND e.other_account_id IS NOT NULL
             AND EXISTS (SELECT 1 FROM account_holders h WHERE h.customer_id = ?2
                         AND h.account_id IN (e.account_id, e.other_account_id))",
        )?
        .query_row(params![e2e, viewer], |row| row.get(0))
        .optional()?;
    entry
        .map(|entry| stored_outcome(conn, bank, None, Some(entry)))
        .transpose()
}

/// `SUM(column)` over `FROM …`, exact whatever the rows hold: SQLite's `SUM` of 64-bit integers
/// fails past `i64::MAX`, which a ledger's counters reach together long before any one of them
/// does. Each value is summed as its high and low 32 bits (neither sum can overflow below 2^31
/// rows), and the two are put together here as an `i128`.
fn wide_sums<const N: usize>(
    conn: &Connection,
    columns: [&str; N],
    from: &str,
) -> rusqlite::Result<[i128; N]> {
    let parts: Vec<String> = columns
        .iter()
        .map(|c| format!("COALESCE(SUM(({c}) >> 32), 0), COALESCE(SUM(({c}) & 4294967295), 0)"))
        .collect();
    conn.query_row(&format!("SELECT {} {from}", parts.join(", ")), [], |row| {
        let mut sums = [0i128; N];
        for (i, sum) in sums.iter_mut().enumerate() {
            let high: i64 = row.get(2 * i)?;
            let low: i64 = row.get(2 * i + 1)?;
            *sum = (i128::from(high) << 32) + i128::from(low);
        }
        Ok(sums)
    })
}

pub fn totals(conn: &Connection) -> rusqlite::Result<Totals> {
    let [
        debits_pending,
        debits_posted,
        credits_pending,
        credits_posted,
    ] = wide_sums(
        conn,
        [
            "debits_pending",
            "debits_posted",
            "credits_pending",
            "credits_posted",
        ],
        "FROM accounts",
    )?;
    Ok(Totals {
        debits_pending,
        debits_posted,
        credits_pending,
        credits_posted,
    })
}

/// Rows whose foreign keys name a row that does not exist (whether or not foreign keys are
/// enforced).
pub fn foreign_key_violations(conn: &Connection) -> rusqlite::Result<i64> {
    conn.query_row("SELECT COUNT(*) FROM pragma_foreign_key_check", [], |row| {
        row.get(0)
    })
}

/// Rows that refer to a row that does not exist: foreign keys, and idempotency records naming a
/// payment that is neither a `payments` row nor the entry of a transfer between two accounts
/// here.
pub fn broken_references(conn: &Connection) -> rusqlite::Result<i64> {
    conn.query_row(
        "SELECT (SELECT COUNT(*) FROM pragma_foreign_key_check)
              + (SELECT COUNT(*) FROM idempotency i WHERE i.payment IS NOT NULL
                 AND NOT EXISTS (SELECT 1 FROM payments p WHERE p.e2e_id = i.payment)
                 AND NOT EXISTS (SELECT 1 FROM entries e WHERE e.e2e_id = i.payment
                                 AND e.other_account_id IS NOT NULL))",
        [],
        |row| row.get(0),
    )
}

/// Each other bank's code and this bank's position with it (positive: it owes this bank).
pub fn settlement(conn: &Connection) -> rusqlite::Result<Vec<(String, i64)>> {
    conn.prepare_cached("SELECT peer_bank, debits_posted - credits_posted FROM accounts WHERE kind = 'settlement' ORDER BY peer_bank")?
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?
        .collect()
}

/// Every hold placed for another bank's transaction settles only with that bank (see
/// `interbank::third_bank_holds`).
fn third_bank_check(conn: &Connection) -> rusqlite::Result<CheckRecord> {
    let holds = super::interbank::third_bank_holds(conn)?;
    Ok(CheckRecord {
        name: "interbank_legs_settle_with_their_coordinator",
        ok: holds == 0,
        detail: format!(
            "{holds} holds of another bank's transaction touch a settlement account with a third bank"
        ),
    })
}

/// This bank's ledger totals and the result of every invariant that can be checked locally
/// (DESIGN §3: 1, 2, and the local half of 4; 3 needs the other banks, so the positions are
/// reported for the consortium audit to compare).
pub fn audit(conn: &Connection, clock: String) -> rusqlite::Result<AuditRecord> {
    let totals = totals(conn)?;
    let accounts: i64 = conn.query_row("SELECT COUNT(*) FROM accounts", [], |row| row.get(0))?;
    let [customer_balances] = wide_sums(
        conn,
        ["credits_posted - debits_posted"],
        "FROM accounts WHERE kind IN ('individual', 'company', 'joint')",
    )?;
    let (cash_in, cash_out): (i64, i64) = conn.query_row(
        "SELECT debits_posted, credits_posted FROM accounts WHERE kind = 'vault'",
        [],
        |row| Ok((row.get(0)?, row.get(1)?)),
    )?;
    let settlement = settlement(conn)?;
    let negative: i64 = conn.query_row(
        "SELECT COUNT(*) FROM accounts WHERE kind IN ('individual', 'company', 'joint')
         AND (credits_posted - debits_posted < 0 OR credits_posted - debits_posted - debits_pending < 0)",
        [],
        |row| row.get(0),
    )?;
    let [open_holds, open_holds_amount] = wide_sums(
        conn,
        ["1", "amount"],
        "FROM transfers t WHERE t.flags = 'pending'
         AND NOT EXISTS (SELECT 1 FROM transfers r WHERE r.pending_id = t.id)",
    )?;
    // An entry of a transfer between two accounts here has a side for each (payer and payee).
    let stale_statements: i64 = conn.query_row(
        "SELECT COUNT(*) FROM accounts a WHERE a.kind IN ('individual', 'company', 'joint')
         AND a.credits_posted - a.debits_posted <>
             COALESCE((SELECT CASE WHEN e.account_id = a.id THEN e.balance_after ELSE e.other_balance_after END
                       FROM entries e WHERE e.id = a.last_entry), 0)",
        [],
        |row| row.get(0),
    )?;
    // Every account's entries form one chain from its newest entry back to its first, each link
    // to an older entry of the same account, no entry the previous one of two of that account's:
    // what a statement follows.
    let broken_chains: i64 = conn.query_row(
        "WITH sides (id, account_id, prev) AS (
             SELECT id, account_id, prev_entry FROM entries
             UNION ALL
             SELECT id, other_account_id, other_prev_entry FROM entries WHERE other_account_id IS NOT NULL)
         SELECT
           (SELECT COUNT(*) FROM sides s JOIN entries p ON p.id = s.prev
            WHERE (p.account_id <> s.account_id AND p.other_account_id IS NOT s.account_id) OR p.id >= s.id)
         + (SELECT COUNT(*) FROM (SELECT 1 FROM sides WHERE prev IS NOT NULL
                                  GROUP BY account_id, prev HAVING COUNT(*) > 1))
         + (SELECT COUNT(*) FROM (SELECT account_id, MAX(id) AS newest, SUM(prev IS NULL) AS firsts
                                  FROM sides GROUP BY account_id) g
            JOIN accounts a ON a.id = g.account_id WHERE a.last_entry IS NOT g.newest OR g.firsts <> 1)
         + (SELECT COUNT(*) FROM accounts a WHERE a.last_entry IS NOT NULL
            AND NOT EXISTS (SELECT 1 FROM entries e WHERE e.id = a.last_entry
                            AND (e.account_id = a.id OR e.other_account_id = a.id)))",
        [],
        |row| row.get(0),
    )?;
    // The writer does not enforce foreign keys (it only refers to rows it has just read or
    // written): every reference is checked here instead.
    let dangling = broken_references(conn)?;
    let settlement_net: i128 = settlement
        .iter()
        .map(|(_, position)| i128::from(*position))
        .sum();
    let checks = vec![
        CheckRecord {
            name: "posted_debits_equal_posted_credits",
            ok: totals.debits_posted == totals.credits_posted,
            detail: format!(
                "debits {} / credits {}",
                totals.debits_posted, totals.credits_posted
            ),
        },
        CheckRecord {
            name: "pending_debits_equal_pending_credits",
            ok: totals.debits_pending == totals.credits_pending,
            detail: format!(
                "debits {} / credits {}",
                totals.debits_pending, totals.credits_pending
            ),
        },
        CheckRecord {
            name: "no_customer_account_negative",
            ok: negative == 0,
            detail: format!("{negative} customer accounts below zero (balance or available)"),
        },
        CheckRecord {
            name: "pending_counters_match_open_holds",
            ok: open_holds_amount == totals.debits_pending,
            detail: format!(
                "{open_holds} open holds of {open_holds_amount} centavos; pending debits {}",
                totals.debits_pending
            ),
        },
        CheckRecord {
            name: "customer_money_equals_cash_and_settlement",
            ok: customer_balances == i128::from(cash_in) - i128::from(cash_out) + settlement_net,
            detail: format!(
                "customers {customer_balances} = cash in {cash_in} - cash out {cash_out} + settlement {settlement_net}"
            ),
        },
        CheckRecord {
            name: "statements_match_balances",
            ok: stale_statements == 0,
            detail: format!(
                "{stale_statements} accounts whose last statement line differs from their balance"
            ),
        },
        CheckRecord {
            name: "statements_chain_every_entry",
            ok: broken_chains == 0,
            detail: format!("{broken_chains} broken links in the accounts' statement chains"),
        },
        CheckRecord {
            name: "every_reference_resolves",
            ok: dangling == 0,
            detail: format!("{dangling} rows refer to a row that does not exist"),
        },
        third_bank_check(conn)?,
    ];
    Ok(AuditRecord {
        accounts: accounts as u64,
        totals,
        customer_balances_cents: customer_balances,
        cash_in_cents: cash_in,
        cash_out_cents: cash_out,
        settlement,
        clock,
        checks,
    })
}
