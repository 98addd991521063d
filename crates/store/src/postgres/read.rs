//! Queries, as `sqlite/read.rs` has them, over PostgreSQL's blocking client: they run inside the
//! writer's transaction when a command needs them, and on a reader's connection for the read
//! side of the API; they never write. A reader runs all of one read's queries in one
//! `REPEATABLE READ` transaction, so it sees one committed state (ARCHITECTURE.md, invariants).

use crate::model::*;
use ledger::{AccountKind, AccountNumber, BankCode, Document, EndToEndId, PartyKind};
use postgres::{GenericClient, Row};

type Result<T> = std::result::Result<T, postgres::Error>;

pub fn kind(text: &str) -> AccountKind {
    AccountKind::parse(text).unwrap_or(AccountKind::Vault)
}

fn customer_row(row: &Row) -> CustomerRecord {
    let kind: String = row.get(3);
    CustomerRecord {
        id: row.get(0),
        public_id: row.get(1),
        name: row.get(2),
        kind: if kind == "company" {
            PartyKind::Company
        } else {
            PartyKind::Individual
        },
        document: row.get(4),
        username: row.get(5),
        home_bank: row.get(6),
    }
}

const CUSTOMER_COLUMNS: &str =
    "c.id, c.public_id, c.name, c.kind, c.document, c.username, c.home_bank";

pub fn customer(conn: &mut impl GenericClient, id: CustomerId) -> Result<Option<CustomerRecord>> {
    Ok(conn
        .query_opt(
            &format!("SELECT {CUSTOMER_COLUMNS} FROM customers c WHERE c.id = $1"),
            &[&id],
        )?
        .map(|row| customer_row(&row)))
}

pub fn customer_by_document(
    conn: &mut impl GenericClient,
    document: &str,
) -> Result<Option<CustomerRecord>> {
    Ok(conn
        .query_opt(
            &format!("SELECT {CUSTOMER_COLUMNS} FROM customers c WHERE c.document = $1"),
            &[&document],
        )?
        .map(|row| customer_row(&row)))
}

pub fn customer_id_by_username(
    conn: &mut impl GenericClient,
    username: &str,
) -> Result<Option<CustomerId>> {
    Ok(conn
        .query_opt("SELECT id FROM customers WHERE username = $1", &[&username])?
        .map(|row| row.get(0)))
}

pub fn login_record(conn: &mut impl GenericClient, username: &str) -> Result<Option<LoginRecord>> {
    Ok(conn
        .query_opt(
            "SELECT id, password_hash FROM customers WHERE username = $1",
            &[&username],
        )?
        .map(|row| LoginRecord {
            customer: row.get(0),
            password_hash: row.get(1),
        }))
}

pub fn session(
    conn: &mut impl GenericClient,
    token_hash: &[u8; 32],
    now_ms: u64,
) -> Result<Option<SessionRecord>> {
    let now_ms = i64::try_from(now_ms).unwrap_or(i64::MAX);
    Ok(conn
        .query_opt(
            &format!(
                "SELECT {CUSTOMER_COLUMNS}, s.expires_at_ms FROM sessions s JOIN customers c ON c.id = s.customer_id
                 WHERE s.token_hash = $1 AND s.expires_at_ms > $2"
            ),
            &[&&token_hash[..], &now_ms],
        )?
        .map(|row| SessionRecord {
            customer: customer_row(&row),
            expires_at_ms: u64::try_from(row.get::<_, i64>(7)).unwrap_or(0),
        }))
}

fn holders(conn: &mut impl GenericClient, account_id: i64) -> Result<Vec<HolderRecord>> {
    Ok(conn
        .query(
            "SELECT c.username, c.name FROM account_holders h JOIN customers c ON c.id = h.customer_id
             WHERE h.account_id = $1 ORDER BY h.position",
            &[&account_id],
        )?
        .iter()
        .map(|row| HolderRecord {
            username: row.get(0),
            name: row.get(1),
        })
        .collect())
}

pub fn account_by_id(conn: &mut impl GenericClient, bank: &str, id: i64) -> Result<AccountRecord> {
    let row = conn.query_one(
        "SELECT number, kind, debits_pending, debits_posted, credits_posted FROM accounts WHERE id = $1",
        &[&id],
    )?;
    let number: Option<i64> = row.get(0);
    let kind_text: String = row.get(1);
    let (debits_pending, debits_posted, credits_posted): (i64, i64, i64) =
        (row.get(2), row.get(3), row.get(4));
    Ok(AccountRecord {
        bank: bank.to_string(),
        number: format_number(number.unwrap_or(0)),
        kind: kind(&kind_text),
        holders: holders(conn, id)?,
        balance_cents: credits_posted - debits_posted,
        available_cents: credits_posted - debits_posted - debits_pending,
    })
}

pub fn format_number(base: i64) -> String {
    AccountNumber::from_base(u64::try_from(base).unwrap_or(0))
        .map(|n| n.to_string())
        .unwrap_or_default()
}

pub fn accounts_of(
    conn: &mut impl GenericClient,
    bank: &str,
    customer: CustomerId,
) -> Result<Vec<AccountRecord>> {
    let ids: Vec<i64> = conn
        .query(
            "SELECT account_id FROM account_holders WHERE customer_id = $1 ORDER BY account_id",
            &[&customer],
        )?
        .iter()
        .map(|row| row.get(0))
        .collect();
    ids.into_iter()
        .map(|id| account_by_id(conn, bank, id))
        .collect()
}

fn held_account_id(
    conn: &mut impl GenericClient,
    viewer: CustomerId,
    number: AccountNumber,
) -> Result<Option<i64>> {
    let base = i64::try_from(number.base()).unwrap_or(i64::MAX);
    Ok(conn
        .query_opt(
            "SELECT a.id FROM accounts a JOIN account_holders h ON h.account_id = a.id WHERE a.number = $1 AND h.customer_id = $2",
            &[&base, &viewer],
        )?
        .map(|row| row.get(0)))
}

pub fn account(
    conn: &mut impl GenericClient,
    bank: &str,
    viewer: CustomerId,
    number: AccountNumber,
) -> Result<Option<AccountRecord>> {
    held_account_id(conn, viewer, number)?
        .map(|id| account_by_id(conn, bank, id))
        .transpose()
}

pub fn statement(
    conn: &mut impl GenericClient,
    bank: &str,
    viewer: CustomerId,
    number: AccountNumber,
    before: Option<i64>,
    limit: usize,
) -> Result<Option<Vec<EntryRecord>>> {
    let Some(account_id) = held_account_id(conn, viewer, number)? else {
        return Ok(None);
    };
    // The page starts at the account's newest entry, or the one before the cursor's entry; a
    // cursor that is not one of this account's entries has nothing after it.
    let first: Option<i64> = match before {
        None => conn
            .query_one(
                "SELECT last_entry FROM accounts WHERE id = $1",
                &[&account_id],
            )?
            .get(0),
        Some(cursor) => conn
            .query_opt(
                "SELECT CASE WHEN account_id = $2 THEN prev_entry ELSE other_prev_entry END
                 FROM entries WHERE id = $1 AND (account_id = $2 OR other_account_id = $2)",
                &[&cursor, &account_id],
            )?
            .and_then(|row| row.get(0)),
    };
    let mut entries = Vec::with_capacity(limit.min(1024));
    let mut labels = std::collections::HashMap::<i64, String>::new();
    let mut next = first;
    while let Some(id) = next.filter(|_| entries.len() < limit) {
        let row = conn.query_one(
            "SELECT id, kind, amount, balance_after, counterparty, description, made_by, clock, at_ms, e2e_id, prev_entry,
                    account_id, other_balance_after, other_counterparty, other_prev_entry, other_account_id
             FROM entries WHERE id = $1",
            &[&id],
        )?;
        let payer: i64 = row.get(11);
        let mut entry = EntryRecord {
            id: row.get(0),
            kind: row.get(1),
            amount_cents: row.get(2),
            balance_after_cents: row.get(3),
            counterparty: String::new(),
            description: row.get(5),
            made_by: row.get(6),
            clock: row.get(7),
            at_ms: u64::try_from(row.get::<_, i64>(8)).unwrap_or(0),
            e2e_id: row.get(9),
        };
        // The counterparty as stored, or the account whose label it is.
        let (stored, other, prev): (Option<String>, Option<i64>, Option<i64>) =
            if payer == account_id {
                (row.get(4), row.get(15), row.get(10))
            } else {
                entry.kind = "transfer_in".into();
                entry.amount_cents = -entry.amount_cents;
                entry.balance_after_cents = row.get::<_, Option<i64>>(12).unwrap_or(0);
                (row.get(13), Some(payer), row.get(14))
            };
        entry.counterparty = match (stored, other) {
            (Some(label), _) => label,
            (None, Some(other)) => match labels.get(&other) {
                Some(label) => label.clone(),
                None => {
                    let label = label(conn, bank, other)?;
                    labels.insert(other, label.clone());
                    label
                }
            },
            (None, None) => String::new(),
        };
        entries.push(entry);
        next = prev;
    }
    Ok(Some(entries))
}

/// `bank/number Name & Name`: how a customer account here is shown on the statement of an
/// account it paid or was paid by.
fn label(conn: &mut impl GenericClient, bank: &str, account_id: i64) -> Result<String> {
    let number: Option<i64> = conn
        .query_one("SELECT number FROM accounts WHERE id = $1", &[&account_id])?
        .get(0);
    let names: Vec<String> = holders(conn, account_id)?
        .into_iter()
        .map(|holder| holder.name)
        .collect();
    Ok(format!(
        "{bank}/{} {}",
        format_number(number.unwrap_or(0)),
        names.join(" & ")
    ))
}

/// The record of a committed transfer between two accounts here, read from its entry.
pub fn local_payment(
    conn: &mut impl GenericClient,
    bank: &str,
    entry: i64,
) -> Result<PaymentRecord> {
    let row = conn.query_one(
        "SELECT e.e2e_id, e.amount, e.description, e.clock, a.number, b.number FROM entries e
         JOIN accounts a ON a.id = e.account_id JOIN accounts b ON b.id = e.other_account_id
         WHERE e.id = $1",
        &[&entry],
    )?;
    let address = |number: Option<i64>| AccountAddress {
        bank: bank.to_string(),
        number: format_number(number.unwrap_or(0)),
    };
    Ok(PaymentRecord {
        e2e_id: row.get(0),
        status: PaymentStatus::Committed,
        reason: None,
        from: address(row.get(4)),
        to: address(row.get(5)),
        amount_cents: -row.get::<_, i64>(1),
        description: row.get(2),
        clock: row.get(3),
    })
}

/// A stored outcome: its JSON, or the entry its record is read from.
pub fn stored_outcome(
    conn: &mut impl GenericClient,
    bank: &str,
    body: Option<String>,
    entry: Option<i64>,
) -> Result<std::result::Result<Outcome, String>> {
    Ok(match (body, entry) {
        (Some(body), _) => serde_json::from_str(&body).map_err(|e| e.to_string()),
        (None, Some(entry)) => Ok(Outcome::Payment(local_payment(conn, bank, entry)?)),
        (None, None) => Err("neither an outcome nor an entry".into()),
    })
}

const PIX_KEY_COLUMNS: &str = "SELECT k.key, k.type, a.number, c.name, c.document FROM pix_keys k
     JOIN accounts a ON a.id = k.account_id JOIN customers c ON c.id = k.owner_id";

pub fn pix_key(
    conn: &mut impl GenericClient,
    bank: &str,
    key: &str,
) -> Result<Option<PixKeyRecord>> {
    Ok(conn
        .query_opt(&format!("{PIX_KEY_COLUMNS} WHERE k.key = $1"), &[&key])?
        .map(|row| pix_key_row(&row, bank)))
}

fn pix_key_row(row: &Row, bank: &str) -> PixKeyRecord {
    let document: String = row.get(4);
    PixKeyRecord {
        key: row.get(0),
        key_type: row.get(1),
        bank: bank.to_string(),
        account_number: format_number(row.get::<_, Option<i64>>(2).unwrap_or(0)),
        holder_name: row.get(3),
        document_masked: Document::parse(&document)
            .map(|d| d.masked())
            .unwrap_or_default(),
    }
}

pub fn pix_keys_of(
    conn: &mut impl GenericClient,
    bank: &str,
    customer: CustomerId,
) -> Result<Vec<PixKeyRecord>> {
    Ok(conn
        .query(
            &format!(
                "{PIX_KEY_COLUMNS}
                 WHERE k.account_id IN (SELECT account_id FROM account_holders WHERE customer_id = $1)
                 ORDER BY a.number, k.key"
            ),
            &[&customer],
        )?
        .iter()
        .map(|row| pix_key_row(row, bank))
        .collect())
}

pub fn invitations_of(
    conn: &mut impl GenericClient,
    bank: &str,
    customer: CustomerId,
) -> Result<Vec<InvitationRecord>> {
    Ok(conn
        .query(
            "SELECT i.id, a.number, c.username, c.name, i.username, i.status,
                    i.invitee_id IS NOT DISTINCT FROM $1
             FROM invitations i JOIN accounts a ON a.id = i.account_id JOIN customers c ON c.id = i.inviter_id
             WHERE i.invitee_id = $1 OR i.inviter_id = $1 ORDER BY i.id",
            &[&customer],
        )?
        .iter()
        .map(|row| InvitationRecord {
            id: row.get(0),
            bank: bank.to_string(),
            account_number: format_number(row.get::<_, Option<i64>>(1).unwrap_or(0)),
            inviter: HolderRecord {
                username: row.get(2),
                name: row.get(3),
            },
            username: row.get(4),
            status: row.get(5),
            received: row.get(6),
        })
        .collect())
}

pub fn payment(
    conn: &mut impl GenericClient,
    bank: &str,
    viewer: CustomerId,
    e2e: &str,
) -> Result<Option<std::result::Result<Outcome, String>>> {
    let found = conn.query_opt(
        "SELECT p.body, p.entry FROM payments p WHERE p.e2e_id = $1 AND (p.started_by = $2
         OR EXISTS (SELECT 1 FROM payment_accounts pa JOIN account_holders h ON h.account_id = pa.account_id
                    WHERE pa.e2e_id = p.e2e_id AND h.customer_id = $2)
         OR EXISTS (SELECT 1 FROM entries e JOIN account_holders h ON h.account_id = e.account_id
                    WHERE e.id = p.entry AND h.customer_id = $2)
         OR EXISTS (SELECT 1 FROM entries e JOIN account_holders h ON h.account_id = e.other_account_id
                    WHERE e.id = p.entry AND h.customer_id = $2))",
        &[&e2e, &viewer],
    )?;
    if let Some(row) = found {
        return stored_outcome(conn, bank, row.get(0), row.get(1)).map(Some);
    }
    // A committed transfer between two accounts here is its entry alone.
    let entry: Option<i64> = conn
        .query_opt(
            "SELECT e.id FROM entries e WHERE e.e2e_id = $1 AND e.other_account_id IS NOT NULL
             AND EXISTS (SELECT 1 FROM account_holders h WHERE h.customer_id = $2
                         AND (h.account_id = e.account_id OR h.account_id = e.other_account_id))",
            &[&e2e, &viewer],
        )?
        .map(|row| row.get(0));
    entry
        .map(|entry| stored_outcome(conn, bank, None, Some(entry)))
        .transpose()
}

/// `SUM(expression)` over `FROM …`, exact: PostgreSQL sums BIGINTs as NUMERIC, read here as text.
fn wide_sums<const N: usize>(
    conn: &mut impl GenericClient,
    columns: [&str; N],
    from: &str,
) -> Result<[i128; N]> {
    let parts: Vec<String> = columns
        .iter()
        .map(|c| format!("COALESCE(SUM(({c})::NUMERIC), 0)::TEXT"))
        .collect();
    let row = conn.query_one(&format!("SELECT {} {from}", parts.join(", ")), &[])?;
    let mut sums = [0i128; N];
    for (i, sum) in sums.iter_mut().enumerate() {
        *sum = row.get::<_, String>(i).parse().unwrap_or(i128::MAX);
    }
    Ok(sums)
}

pub fn totals(conn: &mut impl GenericClient) -> Result<Totals> {
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

/// Idempotency records naming a payment that is neither a `payments` row nor the entry of a
/// transfer between two accounts here (every other reference is a foreign key PostgreSQL
/// enforces).
pub fn broken_references(conn: &mut impl GenericClient) -> Result<i64> {
    Ok(conn
        .query_one(
            "SELECT COUNT(*) FROM idempotency i WHERE i.payment IS NOT NULL
             AND NOT EXISTS (SELECT 1 FROM payments p WHERE p.e2e_id = i.payment)
             AND NOT EXISTS (SELECT 1 FROM entries e WHERE e.e2e_id = i.payment
                             AND e.other_account_id IS NOT NULL)",
            &[],
        )?
        .get(0))
}

/// Each other bank's code and this bank's position with it (positive: it owes this bank).
pub fn settlement(conn: &mut impl GenericClient) -> Result<Vec<(String, i64)>> {
    Ok(conn
        .query(
            "SELECT peer_bank, debits_posted - credits_posted FROM accounts WHERE kind = 'settlement' ORDER BY peer_bank",
            &[],
        )?
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect())
}

/// Holds of another bank's transaction that touch a settlement account with a third bank (see
/// `sqlite/interbank.rs`, `third_bank_holds`).
fn third_bank_holds(conn: &mut impl GenericClient) -> Result<i64> {
    Ok(conn
        .query_one(
            "SELECT COUNT(*) FROM interbank_votes v
             JOIN transfers t ON t.e2e_id = v.e2e_id AND t.flags = 'pending'
             JOIN accounts a ON a.id = t.debit_account_id OR a.id = t.credit_account_id
             WHERE a.kind = 'settlement' AND a.peer_bank <> v.coordinator
               AND EXISTS (SELECT 1 FROM accounts c WHERE c.kind = 'settlement' AND c.peer_bank = v.coordinator)",
            &[],
        )?
        .get(0))
}

/// This bank's ledger totals and every invariant that can be checked locally, as
/// `sqlite/read.rs` checks them.
pub fn audit(conn: &mut impl GenericClient, clock: String) -> Result<AuditRecord> {
    let totals = totals(conn)?;
    let accounts: i64 = conn.query_one("SELECT COUNT(*) FROM accounts", &[])?.get(0);
    let [customer_balances] = wide_sums(
        conn,
        ["credits_posted - debits_posted"],
        "FROM accounts WHERE kind = 'individual' OR kind = 'company' OR kind = 'joint'",
    )?;
    let row = conn.query_one(
        "SELECT debits_posted, credits_posted FROM accounts WHERE kind = 'vault'",
        &[],
    )?;
    let (cash_in, cash_out): (i64, i64) = (row.get(0), row.get(1));
    let settlement = settlement(conn)?;
    let negative: i64 = conn
        .query_one(
            "SELECT COUNT(*) FROM accounts WHERE (kind = 'individual' OR kind = 'company' OR kind = 'joint')
             AND (credits_posted - debits_posted < 0 OR credits_posted - debits_posted - debits_pending < 0)",
            &[],
        )?
        .get(0);
    let [open_holds, open_holds_amount] = wide_sums(
        conn,
        ["1", "amount"],
        "FROM transfers t WHERE t.flags = 'pending'
         AND NOT EXISTS (SELECT 1 FROM transfers r WHERE r.pending_id = t.id)",
    )?;
    let stale_statements: i64 = conn
        .query_one(
            "SELECT COUNT(*) FROM accounts a WHERE (a.kind = 'individual' OR a.kind = 'company' OR a.kind = 'joint')
             AND a.credits_posted - a.debits_posted <>
                 COALESCE((SELECT CASE WHEN e.account_id = a.id THEN e.balance_after ELSE e.other_balance_after END
                           FROM entries e WHERE e.id = a.last_entry), 0)",
            &[],
        )?
        .get(0);
    let broken_chains: i64 = conn
        .query_one(
            "WITH sides (id, account_id, prev) AS (
                 SELECT id, account_id, prev_entry FROM entries
                 UNION ALL
                 SELECT id, other_account_id, other_prev_entry FROM entries WHERE other_account_id IS NOT NULL)
             SELECT
               (SELECT COUNT(*) FROM sides s JOIN entries p ON p.id = s.prev
                WHERE (p.account_id <> s.account_id AND p.other_account_id IS DISTINCT FROM s.account_id) OR p.id >= s.id)
             + (SELECT COUNT(*) FROM (SELECT 1 FROM sides WHERE prev IS NOT NULL
                                      GROUP BY account_id, prev HAVING COUNT(*) > 1) d)
             + (SELECT COUNT(*) FROM (SELECT account_id, MAX(id) AS newest,
                                             SUM(CASE WHEN prev IS NULL THEN 1 ELSE 0 END) AS firsts
                                      FROM sides GROUP BY account_id) g
                JOIN accounts a ON a.id = g.account_id WHERE a.last_entry IS DISTINCT FROM g.newest OR g.firsts <> 1)
             + (SELECT COUNT(*) FROM accounts a WHERE a.last_entry IS NOT NULL
                AND NOT EXISTS (SELECT 1 FROM entries e WHERE e.id = a.last_entry
                                AND (e.account_id = a.id OR e.other_account_id = a.id)))",
            &[],
        )?
        .get(0);
    let dangling = broken_references(conn)?;
    let third_bank = third_bank_holds(conn)?;
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
        CheckRecord {
            name: "interbank_legs_settle_with_their_coordinator",
            ok: third_bank == 0,
            detail: format!(
                "{third_bank} holds of another bank's transaction touch a settlement account with a third bank"
            ),
        },
    ];
    Ok(AuditRecord {
        accounts: u64::try_from(accounts).unwrap_or(0),
        totals,
        customer_balances_cents: customer_balances,
        cash_in_cents: cash_in,
        cash_out_cents: cash_out,
        settlement,
        clock,
        checks,
    })
}

/// What a restarted node must finish (see `sqlite/interbank.rs`, `open_work`).
pub fn open_work(conn: &mut impl GenericClient) -> Result<OpenInterbank> {
    let votes = conn
        .query(
            "SELECT e2e_id, coordinator, yes FROM interbank_votes WHERE finished IS NULL",
            &[],
        )?
        .iter()
        .filter_map(|row| {
            let e2e: String = row.get(0);
            let coordinator: Option<String> = row.get(1);
            Some((
                EndToEndId::parse(&e2e)?,
                BankCode::parse(&coordinator?)?,
                row.get::<_, bool>(2),
            ))
        })
        .collect();
    let decisions = conn
        .query(
            "SELECT e2e_id, commit_flag, participants FROM interbank_decisions WHERE NOT completed",
            &[],
        )?
        .iter()
        .filter_map(|row| {
            let e2e: String = row.get(0);
            let participants: String = row.get(2);
            Some((
                EndToEndId::parse(&e2e)?,
                row.get::<_, bool>(1),
                serde_json::from_str(&participants).ok()?,
            ))
        })
        .collect();
    let undecided = conn
        .query(
            "SELECT e2e_id, body FROM payments WHERE status = 'pending' AND started_by IS NOT NULL
             AND NOT EXISTS (SELECT 1 FROM interbank_decisions d WHERE d.e2e_id = payments.e2e_id)",
            &[],
        )?
        .iter()
        .filter_map(|row| {
            let e2e: String = row.get(0);
            let body: Option<String> = row.get(1);
            let banks: Vec<BankCode> = match serde_json::from_str::<Outcome>(&body?) {
                Ok(Outcome::Payment(payment)) => [&payment.from.bank, &payment.to.bank]
                    .into_iter()
                    .filter_map(|code| BankCode::parse(code))
                    .collect::<std::collections::BTreeSet<_>>()
                    .into_iter()
                    .collect(),
                Ok(Outcome::Package(package)) => package.participants(),
                _ => return None,
            };
            Some((EndToEndId::parse(&e2e)?, banks))
        })
        .collect();
    Ok(OpenInterbank {
        votes,
        decisions,
        undecided,
    })
}

/// A decision recorded here, and the banks it was recorded for.
pub fn decision(conn: &mut impl GenericClient, e2e: &str) -> Result<Option<(bool, Vec<BankCode>)>> {
    Ok(conn
        .query_opt(
            "SELECT commit_flag, participants FROM interbank_decisions WHERE e2e_id = $1",
            &[&e2e],
        )?
        .map(|row| {
            let participants: String = row.get(1);
            (
                row.get(0),
                serde_json::from_str(&participants).unwrap_or_default(),
            )
        }))
}

/// Whether a customer with this document holds the account.
pub fn held_by_document(
    conn: &mut impl GenericClient,
    number: AccountNumber,
    document: &str,
) -> Result<bool> {
    let base = i64::try_from(number.base()).unwrap_or(i64::MAX);
    Ok(conn
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM accounts a JOIN account_holders h ON h.account_id = a.id
                            JOIN customers c ON c.id = h.customer_id
                            WHERE a.number = $1 AND c.document = $2)",
            &[&base, &document],
        )?
        .get(0))
}

/// Every customer, holding and Pix key here, for loading the ledger into the directory (as
/// `sqlite::read::directory_listing`). Account numbers are written by this store only, from
/// valid bases; a row whose number would not parse is left out rather than failing the listing.
pub fn directory_listing(conn: &mut impl GenericClient) -> Result<DirectoryListing> {
    let number = |base: i64| u64::try_from(base).ok().and_then(AccountNumber::from_base);
    let customers = conn
        .query(
            "SELECT id, document, name, username, password_hash, home_bank FROM customers ORDER BY id",
            &[],
        )?
        .iter()
        .map(|row| ListedCustomer {
            id: row.get(0),
            document: row.get(1),
            name: row.get(2),
            username: row.get(3),
            password_hash: row.get(4),
            home_bank: row.get(5),
        })
        .collect();
    let holdings = conn
        .query(
            "SELECT h.customer_id, a.number FROM account_holders h
             JOIN accounts a ON a.id = h.account_id WHERE a.number IS NOT NULL
             ORDER BY h.customer_id, a.number",
            &[],
        )?
        .iter()
        .filter_map(|row| Some((row.get(0), number(row.get(1))?)))
        .collect();
    let pix_keys = conn
        .query(
            "SELECT k.key, k.type, a.number, k.owner_id FROM pix_keys k
             JOIN accounts a ON a.id = k.account_id ORDER BY k.key",
            &[],
        )?
        .iter()
        .filter_map(|row| {
            Some(ListedPixKey {
                key: row.get(0),
                key_type: row.get(1),
                account: number(row.get(2))?,
                owner: row.get(3),
            })
        })
        .collect();
    Ok(DirectoryListing {
        customers,
        holdings,
        pix_keys,
    })
}
