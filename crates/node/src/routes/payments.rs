//! Money between accounts: transfers by Pix key or account, packages of operations that commit
//! all together or not at all, and looking a payment up by its end-to-end id.

use super::{ApiPath, amount, body_account, description, destination, outcome_body, respond};
use crate::error::ApiError;
use crate::extract::{ApiJson, Caller, Fingerprint};
use crate::interbank::fault::{self, Point};
use crate::interbank::{Decided, Part};
use crate::state::AppState;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use ledger::{AccountNumber, Amount, BankCode, EndToEndId, PixKey};
use protocol::{Endpoint, Memo, Movement};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use store::{
    AccountAddress, Command, CustomerRecord, Executed, Operation, OperationKind, Outcome,
    PACKAGE_OPERATIONS_MAX, PaymentRecord, PaymentStatus,
};
use tokio::sync::oneshot;

/// How long a customer's request waits for an interbank decision before it answers 202 pending
/// (the payment then finishes on its own; `GET /transfers/{id}` follows it).
const DECISION_WAIT: Duration = Duration::from_secs(8);

#[utoipa::path(post, path = "/api/v1/transfers", tag = "payments", security(("bearer" = [])), request_body = wire::TransferRequest,
    params(("Idempotency-Key" = Option<String>, Header)),
    responses((status = 201, description = "committed, or aborted with a reason such as insufficient_funds", body = wire::Transfer),
              (status = 404, description = "account_not_found, pix_key_not_found", body = wire::Problem),
              (status = 422, description = "invalid_amount, same_account, invalid_destination, unknown_bank", body = wire::Problem)))]
pub async fn transfer(
    State(state): State<Arc<AppState>>,
    Caller(customer): Caller,
    headers: HeaderMap,
    body: ApiJson<wire::TransferRequest>,
) -> Result<Response, ApiError> {
    let request = body.value;
    let fingerprint = body.fingerprint;
    if BankCode::parse(&request.from.bank)
        .is_some_and(|b| b != state.bank && state.interbank.link(b).is_some())
    {
        return transfer_elsewhere(&state, &customer, &headers, &fingerprint, request).await;
    }
    let from = body_account(&state, "from", &request.from)?;
    let amount = amount("amount", &request.amount)?;
    let description = description(request.description)?;
    if let Some(recipient) = elsewhere(&state, &request.to).await? {
        let payment = Payment {
            from,
            recipient,
            amount,
            description,
        };
        return interbank_transfer(&state, &customer, &headers, &fingerprint, payment).await;
    }
    let to = destination(&state, "to", &request.to)?;
    let command = Command::Transfer {
        actor: customer.id,
        from,
        to,
        amount,
        description,
        e2e: state.new_e2e(),
    };
    let executed = state
        .execute(customer.id, &headers, &fingerprint, command)
        .await?;
    Ok(respond(executed))
}

#[utoipa::path(get, path = "/api/v1/transfers/{id}", tag = "payments", security(("bearer" = [])),
    params(("id" = String, Path, description = "the end-to-end id")),
    responses((status = 200, description = "a transfer (or a package, by its id) with its status", body = wire::Transfer),
              (status = 404, description = "transfer_not_found", body = wire::Problem)))]
pub async fn get_transfer(
    State(state): State<Arc<AppState>>,
    Caller(customer): Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, ApiError> {
    let not_found = || {
        ApiError::not_found(
            "transfer_not_found",
            "no such transfer among your accounts'",
        )
    };
    let e2e = EndToEndId::parse(&id).ok_or_else(not_found)?;
    let outcome = state
        .store
        .payment(customer.id, &e2e)
        .await?
        .ok_or_else(not_found)?;
    outcome_body(&outcome)
}

#[utoipa::path(post, path = "/api/v1/packages", tag = "payments", security(("bearer" = [])), request_body = wire::PackageRequest,
    params(("Idempotency-Key" = Option<String>, Header)),
    responses((status = 201, description = "committed, or aborted with each operation's result", body = wire::Package),
              (status = 422, description = "a malformed operation (its index is in the detail), package_empty, package_too_large", body = wire::Problem)))]
pub async fn package(
    State(state): State<Arc<AppState>>,
    Caller(customer): Caller,
    headers: HeaderMap,
    body: ApiJson<wire::PackageRequest>,
) -> Result<Response, ApiError> {
    let requests = body.value.operations;
    if requests.is_empty() {
        return Err(ApiError::unprocessable(
            "package_empty",
            "a package has at least one operation",
        ));
    }
    if requests.len() > PACKAGE_OPERATIONS_MAX {
        return Err(ApiError::unprocessable(
            "package_too_large",
            format!("a package has at most {PACKAGE_OPERATIONS_MAX} operations"),
        ));
    }
    let fingerprint = body.fingerprint;
    let recipients = recipients_elsewhere(&state, &requests).await?;
    let names_other_bank = requests.iter().any(|op| {
        BankCode::parse(&op.account.bank)
            .is_some_and(|bank| bank != state.bank && state.interbank.link(bank).is_some())
    });
    if names_other_bank || recipients.iter().any(Option::is_some) {
        return interbank_package(
            &state,
            &customer,
            &headers,
            &fingerprint,
            &requests,
            recipients,
        )
        .await;
    }
    let mut operations = Vec::with_capacity(requests.len());
    for (index, op) in requests.into_iter().enumerate() {
        let field = format!("operations[{index}]");
        let kind = match operation_type(&field, &op)? {
            OperationType::Deposit => OperationKind::Deposit,
            OperationType::Withdrawal => OperationKind::Withdrawal,
            OperationType::Transfer(to) => {
                OperationKind::Transfer(destination(&state, &format!("{field}.to"), to)?)
            }
        };
        operations.push(Operation {
            kind,
            account: body_account(&state, &format!("{field}.account"), &op.account)?,
            amount: amount(&format!("{field}.amount"), &op.amount)?,
            description: description(op.description)?,
        });
    }
    let command = Command::Package {
        actor: customer.id,
        operations,
        e2e: state.new_e2e(),
    };
    let executed = state
        .execute(customer.id, &headers, &fingerprint, command)
        .await?;
    Ok(respond(executed))
}

/// What an operation of a package does, by its `type`; a transfer with its destination.
enum OperationType<'a> {
    Deposit,
    Withdrawal,
    Transfer(&'a wire::Destination),
}

fn operation_type<'a>(
    field: &str,
    op: &'a wire::OperationRequest,
) -> Result<OperationType<'a>, ApiError> {
    match (op.kind.as_str(), &op.to) {
        ("deposit", None) => Ok(OperationType::Deposit),
        ("withdrawal", None) => Ok(OperationType::Withdrawal),
        ("transfer", Some(to)) => Ok(OperationType::Transfer(to)),
        ("transfer", None) => Err(ApiError::unprocessable(
            "invalid_destination",
            format!("`{field}.to` is required for a transfer"),
        )),
        ("deposit" | "withdrawal", Some(_)) => Err(ApiError::unprocessable(
            "invalid_operation",
            format!("`{field}.to` is only for transfers"),
        )),
        _ => Err(ApiError::unprocessable(
            "invalid_operation",
            format!("`{field}.type` is deposit, withdrawal or transfer"),
        )),
    }
}

/// A recipient at another bank of the consortium.
#[derive(Clone)]
struct Recipient {
    bank: BankCode,
    number: AccountNumber,
    holder_name: Option<String>,
}

struct Payment {
    from: AccountNumber,
    recipient: Recipient,
    amount: Amount,
    description: String,
}

/// The recipient when it is at another bank: an account named by `{bank, number}` there, or a
/// Pix key this bank does not hold and another bank does. `None` for this bank's own accounts
/// and keys (and for malformed destinations, which the local path refuses).
async fn elsewhere(
    state: &AppState,
    to: &wire::Destination,
) -> Result<Option<Recipient>, ApiError> {
    match (&to.pix_key, &to.bank, &to.number) {
        (None, Some(bank), Some(number)) => {
            let Some(bank) = BankCode::parse(bank).filter(|b| *b != state.bank) else {
                return Ok(None);
            };
            if state.interbank.link(bank).is_none() {
                return Ok(None);
            }
            let number = AccountNumber::parse(number).ok_or_else(|| {
                ApiError::unprocessable(
                    "invalid_account_number",
                    "`to.number` is an account number with its check digit, like 100001-2",
                )
            })?;
            Ok(Some(Recipient {
                bank,
                number,
                holder_name: None,
            }))
        }
        (Some(key), None, None) => {
            let Ok(key) = PixKey::parse_any(key) else {
                return Ok(None);
            };
            // Resolved from this bank's copy of the directory: one answer at every bank.
            let found = crate::directory::pix_key(&state.interbank.directory, &key)
                .await
                .map_err(crate::directory::problem)?;
            Ok(found
                .filter(|entry| entry.bank != state.bank)
                .map(|entry| Recipient {
                    bank: entry.bank,
                    number: entry.account,
                    holder_name: Some(entry.holder_name),
                }))
        }
        _ => Ok(None),
    }
}

/// Fails fast, leaving nothing behind, when the bank a payment needs is not answering.
fn require_available(state: &AppState, bank: BankCode) -> Result<(), ApiError> {
    let link = state.interbank.link(bank).ok_or_else(|| {
        ApiError::unprocessable(
            "unknown_bank",
            format!("bank {bank} is not in this bank's consortium"),
        )
    })?;
    if !link.health().reachable() {
        return Err(crate::interbank::unavailable(
            state,
            bank,
            "down or never heard from",
        ));
    }
    Ok(())
}

/// A payment to another bank. The other bank is asked to prepare its part at once, while one
/// write here records the payment (tied to the request's Idempotency-Key) and holds the payer's
/// money; the answer carries the decision, or 202 pending if it is slow. A bank that hears of the
/// payment before that write is durable is safe either way: if this bank stops first, it has no
/// record of the payment, and a bank asking about it is told abort (presumed abort, DESIGN §4).
async fn interbank_transfer(
    state: &AppState,
    customer: &CustomerRecord,
    headers: &HeaderMap,
    fingerprint: &Fingerprint,
    payment: Payment,
) -> Result<Response, ApiError> {
    let Payment {
        from,
        recipient,
        amount,
        description,
    } = payment;
    require_available(state, recipient.bank)?;
    let e2e = state.new_e2e();
    let record = PaymentRecord {
        e2e_id: e2e.to_string(),
        status: PaymentStatus::Pending,
        reason: None,
        from: AccountAddress {
            bank: state.bank.to_string(),
            number: from.to_string(),
        },
        to: AccountAddress {
            bank: recipient.bank.to_string(),
            number: recipient.number.to_string(),
        },
        amount_cents: amount.cents(),
        description: description.clone(),
        clock: state.clock.tick().to_string(),
    };
    let memo = Memo {
        description,
        made_by: customer.username.clone(),
        from_label: label(&customer.name, state.bank, from),
        to_label: label(
            recipient.holder_name.as_deref().unwrap_or(""),
            recipient.bank,
            recipient.number,
        ),
    };
    let movement = Movement {
        from: (state.bank, Endpoint::Account(from)),
        to: (recipient.bank, Endpoint::Account(recipient.number)),
        amount,
        memo,
    };
    let parts: BTreeMap<BankCode, Part> = protocol::plan(state.bank, &[movement])
        .into_iter()
        .map(|(bank, legs)| {
            let payment = (bank != state.bank).then(|| record.clone());
            (
                bank,
                Part {
                    legs,
                    payment,
                    on_behalf_of: None,
                },
            )
        })
        .collect();
    let legs = parts
        .get(&state.bank)
        .map(|own| own.legs.clone())
        .unwrap_or_default();
    let command = Command::BeginPayment {
        actor: customer.id,
        from,
        payment: record.clone(),
        legs,
    };
    // Queued before the engine hears of the payment, so the store applies it before anything
    // the engine writes for it (the decision among them).
    let begin = state.submit(customer.id, headers, fingerprint, command)?;
    let decided = state.interbank.begin(e2e.clone(), parts, true).await;
    let executed = begin.await;
    // This bank's vote: yes when its part is held; no when it was refused (the payment is
    // recorded aborted), or when this request began nothing (a replay, an error).
    let (yes, reason) = match &executed {
        Ok(Executed {
            replayed: false,
            outcome: Outcome::Pending(_),
        }) => (true, None),
        Ok(Executed {
            replayed: false,
            outcome: Outcome::Payment(refused),
        }) => (false, refused.reason.clone()),
        _ => (false, Some("not_begun".to_string())),
    };
    state.interbank.prepared(e2e.clone(), yes, reason).await;
    let executed = executed?;
    if !yes {
        return Ok(respond(executed));
    }
    fault::hit(Point::AfterBegin);
    decided_answer(state, customer, e2e, decided, Outcome::Pending(record)).await
}

/// For each operation, its recipient when it pays another bank (looked up once: a Pix key may
/// need a question to every other bank).
async fn recipients_elsewhere(
    state: &AppState,
    requests: &[wire::OperationRequest],
) -> Result<Vec<Option<Recipient>>, ApiError> {
    let mut recipients = Vec::with_capacity(requests.len());
    for op in requests {
        recipients.push(match &op.to {
            Some(to) => elsewhere(state, to).await?,
            None => None,
        });
    }
    Ok(recipients)
}

/// An account named in a package between banks: at this bank or another of the consortium.
fn any_account(
    state: &AppState,
    field: &str,
    account: &wire::AccountRef,
) -> Result<(BankCode, AccountNumber), ApiError> {
    let bank = BankCode::parse(&account.bank).ok_or_else(|| {
        ApiError::unprocessable(
            "invalid_bank",
            format!("`{field}.bank` is a bank's 8-digit code"),
        )
    })?;
    if bank != state.bank && state.interbank.link(bank).is_none() {
        return Err(ApiError::unprocessable(
            "unknown_bank",
            format!("`{field}.bank`: bank {bank} is not in this bank's consortium"),
        ));
    }
    let number = AccountNumber::parse(&account.number).ok_or_else(|| {
        ApiError::unprocessable(
            "invalid_account_number",
            format!("`{field}.number` is an account number with its check digit, like 100001-2"),
        )
    })?;
    Ok((bank, number))
}

/// Where a transfer goes, at this bank or another, with the holder's name when known.
async fn any_destination(
    state: &AppState,
    field: &str,
    to: &wire::Destination,
) -> Result<Recipient, ApiError> {
    match elsewhere(state, to).await? {
        Some(recipient) => Ok(recipient),
        None => destination_here(state, field, to).await,
    }
}

/// A destination at this bank (a key held here is resolved to its account).
async fn destination_here(
    state: &AppState,
    field: &str,
    to: &wire::Destination,
) -> Result<Recipient, ApiError> {
    match destination(state, field, to)? {
        store::Target::Account(number) => Ok(Recipient {
            bank: state.bank,
            number,
            holder_name: None,
        }),
        store::Target::Key(key) => {
            let record = state.store.pix_key(&key).await?.ok_or_else(|| {
                ApiError::not_found(
                    "pix_key_not_found",
                    format!("`{field}.pix_key`: no such Pix key in the consortium"),
                )
            })?;
            let number = AccountNumber::parse(&record.account_number)
                .ok_or_else(|| ApiError::internal("a stored key names a bad account"))?;
            Ok(Recipient {
                bank: state.bank,
                number,
                holder_name: Some(record.holder_name),
            })
        }
    }
}

/// How a statement names an account: its holder (when known), bank and number.
fn label(name: &str, bank: BankCode, number: AccountNumber) -> String {
    if name.is_empty() {
        format!("{bank}/{number}")
    } else {
        format!("{name} · {bank}/{number}")
    }
}

/// A package over several banks: every operation becomes a movement, the movements become each
/// bank's part, and the atomic commit makes them all happen or none. Accounts at other banks are
/// operated on the customer's behalf: their bank checks the customer holds them.
async fn interbank_package(
    state: &AppState,
    customer: &CustomerRecord,
    headers: &HeaderMap,
    fingerprint: &Fingerprint,
    requests: &[wire::OperationRequest],
    mut recipients: Vec<Option<Recipient>>,
) -> Result<Response, ApiError> {
    let mut movements = Vec::with_capacity(requests.len());
    let mut banks = Vec::with_capacity(requests.len());
    let mut own_accounts = Vec::new();
    for (index, op) in requests.iter().enumerate() {
        let field = format!("operations[{index}]");
        let (bank, number) = any_account(state, &format!("{field}.account"), &op.account)?;
        let amount = amount(&format!("{field}.amount"), &op.amount)?;
        let mut memo = Memo {
            description: description(op.description.clone())?,
            made_by: customer.username.clone(),
            from_label: label(&customer.name, bank, number),
            to_label: label(&customer.name, bank, number),
        };
        let account = (bank, Endpoint::Account(number));
        let (from, to) = match operation_type(&field, op)? {
            OperationType::Deposit => ((bank, Endpoint::Vault), account),
            OperationType::Withdrawal => (account, (bank, Endpoint::Vault)),
            OperationType::Transfer(to) => {
                let recipient = match recipients[index].take() {
                    Some(known) => known,
                    None => destination_here(state, &format!("{field}.to"), to).await?,
                };
                memo.to_label = label(
                    recipient.holder_name.as_deref().unwrap_or(""),
                    recipient.bank,
                    recipient.number,
                );
                (
                    account,
                    (recipient.bank, Endpoint::Account(recipient.number)),
                )
            }
        };
        if bank == state.bank {
            own_accounts.push(number);
        }
        let movement = Movement {
            from,
            to,
            amount,
            memo,
        };
        // The banks with a leg of it, as `plan` gives them legs (a movement between two other
        // banks goes through this one), so a bank's refused leg names its operation.
        banks.push(protocol::touched(state.bank, &movement));
        movements.push(movement);
    }
    let e2e = state.new_e2e();
    let pending = store::OperationRecord {
        status: store::OperationStatus::Pending,
        reason: None,
    };
    let record = store::PackageRecord {
        e2e_id: e2e.to_string(),
        status: PaymentStatus::Pending,
        results: vec![pending; requests.len()],
        clock: state.clock.tick().to_string(),
        banks,
    };
    for bank in record.participants() {
        if bank != state.bank {
            require_available(state, bank)?;
        }
    }
    own_accounts.sort();
    own_accounts.dedup();
    let command = Command::BeginPackage {
        actor: customer.id,
        accounts: own_accounts,
        package: record.clone(),
    };
    let executed = state
        .execute(customer.id, headers, fingerprint, command)
        .await?;
    let begun =
        matches!(&executed.outcome, Outcome::Package(p) if p.status == PaymentStatus::Pending);
    if executed.replayed || !begun {
        return Ok(respond(executed));
    }
    fault::hit(Point::AfterBegin);
    let parts: BTreeMap<BankCode, Part> = protocol::plan(state.bank, &movements)
        .into_iter()
        .map(|(bank, legs)| {
            let part = Part {
                legs,
                payment: None,
                on_behalf_of: (bank != state.bank).then(|| customer.document.clone()),
            };
            (bank, part)
        })
        .collect();
    let decided = state.interbank.begin(e2e.clone(), parts, false).await;
    decided_answer(state, customer, e2e, decided, Outcome::Package(record)).await
}

/// Waits for the atomic commit `decided` answers and answers with its outcome: 201 once decided,
/// 202 with the pending record if the decision is slow (it still finishes; `GET /transfers/{id}`
/// follows it).
async fn decided_answer(
    state: &AppState,
    customer: &CustomerRecord,
    e2e: EndToEndId,
    decided: Option<oneshot::Receiver<Decided>>,
    pending: Outcome,
) -> Result<Response, ApiError> {
    let mut settled = None;
    if let Some(decided) = decided
        && let Ok(Ok(decided)) = tokio::time::timeout(DECISION_WAIT, decided).await
    {
        settled = decided.settled;
    }
    // The decision's own write settled the payment: that is its stored record. Otherwise (an
    // earlier decision stood, or none came in time) the store says where it is.
    let outcome = match settled {
        Some(outcome) => outcome,
        None => state
            .store
            .payment(customer.id, &e2e)
            .await?
            .unwrap_or(pending),
    };
    let mut response = outcome_body(&outcome)?;
    if response.status() == StatusCode::OK {
        *response.status_mut() = StatusCode::CREATED;
    }
    Ok(response)
}

/// Most transfers in one bulk request.
pub const BATCH_TRANSFERS_MAX: usize = 8_189;
/// Longest caller id of a transfer in a batch.
pub const BATCH_ID_LEN_MAX: usize = 64;

#[utoipa::path(post, path = "/api/v1/transfers/batch", tag = "payments", security(("bearer" = [])), request_body = wire::BatchRequest,
    params(("Idempotency-Key" = Option<String>, Header)),
    responses((status = 201, description = "one result per transfer, in order: committed, aborted (by the ledger, e.g. insufficient_funds) or rejected (an invalid transfer, with its code); each independent of the others", body = wire::BatchResponse),
              (status = 422, description = "batch_empty, batch_too_large, invalid_batch_id, duplicate_batch_id", body = wire::Problem)))]
pub async fn batch(
    State(state): State<Arc<AppState>>,
    Caller(customer): Caller,
    headers: HeaderMap,
    body: ApiJson<wire::BatchRequest>,
) -> Result<Response, ApiError> {
    let requests = body.value.transfers;
    if requests.is_empty() {
        return Err(ApiError::unprocessable(
            "batch_empty",
            "a batch has at least one transfer",
        ));
    }
    if requests.len() > BATCH_TRANSFERS_MAX {
        return Err(ApiError::unprocessable(
            "batch_too_large",
            format!("a batch has at most {BATCH_TRANSFERS_MAX} transfers"),
        ));
    }
    let mut seen = std::collections::HashSet::with_capacity(requests.len());
    for (index, transfer) in requests.iter().enumerate() {
        let id = &transfer.id;
        if id.is_empty() || id.len() > BATCH_ID_LEN_MAX || !id.bytes().all(|b| b.is_ascii_graphic())
        {
            return Err(ApiError::unprocessable(
                "invalid_batch_id",
                format!(
                    "`transfers[{index}].id` is 1 to {BATCH_ID_LEN_MAX} visible ASCII characters"
                ),
            ));
        }
        if !seen.insert(id.as_str()) {
            return Err(ApiError::unprocessable(
                "duplicate_batch_id",
                format!("`transfers[{index}].id` {id:?} appears twice in the batch"),
            ));
        }
    }
    let e2es = state.new_e2es(requests.len());
    let transfers = requests
        .into_iter()
        .zip(e2es)
        .map(|(request, e2e)| store::BatchEntry {
            transfer: batch_item(&state, &request, e2e).map_err(|error| error.code.to_string()),
            id: request.id,
        })
        .collect();
    let fingerprint = body.fingerprint;
    let command = Command::TransferBatch {
        actor: customer.id,
        transfers,
    };
    let executed = state
        .execute(customer.id, &headers, &fingerprint, command)
        .await?;
    Ok(respond(executed))
}

/// One transfer of a batch, validated on its own: an invalid one is rejected with its code and
/// does not stop the others. Batches stay inside this bank. Only the code reaches the caller (the
/// transfer is named by its id), so the fields are named without their index. `e2e` is the id
/// its position in the batch was given.
fn batch_item(
    state: &AppState,
    request: &wire::BatchTransfer,
    e2e: EndToEndId,
) -> Result<store::BatchItem, ApiError> {
    let from = body_account(state, "from", &request.from)?;
    if let Some(bank) = request.to.bank.as_deref().and_then(BankCode::parse)
        && bank != state.bank
        && state.interbank.link(bank).is_some()
    {
        return Err(ApiError::unprocessable(
            "interbank_not_supported",
            "batches stay inside one bank; pay other banks with POST /api/v1/transfers",
        ));
    }
    Ok(store::BatchItem {
        from,
        to: destination(state, "to", &request.to)?,
        amount: amount("amount", &request.amount)?,
        description: description(request.description.clone())?,
        e2e,
    })
}

/// One operation on an account at another bank, run there on the customer's behalf as a
/// one-operation package. `Ok(Err(answer))` when that answer is to be passed on as it is (a
/// problem before anything started, or 202 while the banks decide); otherwise the decided package
/// and whether it was a replay.
async fn one_operation_elsewhere(
    state: &AppState,
    customer: &CustomerRecord,
    headers: &HeaderMap,
    fingerprint: &Fingerprint,
    op: wire::OperationRequest,
    recipient: Option<Recipient>,
) -> Result<Result<(wire::Package, Option<axum::http::HeaderValue>), Response>, ApiError> {
    let ops = std::slice::from_ref(&op);
    let response =
        interbank_package(state, customer, headers, fingerprint, ops, vec![recipient]).await?;
    if response.status() != StatusCode::CREATED {
        return Ok(Err(response));
    }
    let replayed = response.headers().get("idempotent-replayed").cloned();
    let bytes = axum::body::to_bytes(response.into_body(), crate::BODY_BYTES_MAX)
        .await
        .map_err(|e| ApiError::internal(format!("reading a package answer: {e}")))?;
    let package: wire::Package = serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::internal(format!("a package answer: {e}")))?;
    Ok(Ok((package, replayed)))
}

/// The refusal of a one-operation package, as the local endpoint would have answered it.
fn refusal_of(package: &wire::Package, bank: BankCode) -> ApiError {
    let code = package
        .results
        .first()
        .and_then(|r| r.reason.clone())
        .unwrap_or_default();
    match code.as_str() {
        "insufficient_funds" => {
            ApiError::unprocessable("insufficient_funds", "the account does not hold that much")
        }
        "account_not_found" => ApiError::account_not_found(),
        _ => ApiError::unprocessable("refused", format!("bank {bank} refused it ({code})")),
    }
}

fn created(body: impl serde::Serialize, replayed: Option<axum::http::HeaderValue>) -> Response {
    let mut response = (StatusCode::CREATED, axum::Json(body)).into_response();
    if let Some(replayed) = replayed {
        response
            .headers_mut()
            .insert("idempotent-replayed", replayed);
    }
    response
}

/// How long a deposit or withdrawal at another bank waits for that bank to post it.
const ENTRY_POLLS_MAX: usize = 40;
const ENTRY_POLL_EVERY: Duration = Duration::from_millis(50);

/// A deposit or withdrawal on the caller's account at another bank, answered as a local one is:
/// the statement entry it made there, or the refusal as a problem (202 with the package if the
/// other bank has not posted it within about 2 s of the decision).
pub async fn cash_elsewhere(
    state: &AppState,
    customer: &CustomerRecord,
    headers: &HeaderMap,
    fingerprint: &Fingerprint,
    op: wire::OperationRequest,
) -> Result<Response, ApiError> {
    let (bank, number) = any_account(state, "account", &op.account)?;
    let (package, replayed) =
        match one_operation_elsewhere(state, customer, headers, fingerprint, op, None).await? {
            Ok(decided) => decided,
            Err(answer) => return Ok(answer),
        };
    if package.status != "committed" {
        return Err(refusal_of(&package, bank));
    }
    // Committed means decided; the other bank posts it as soon as the decision reaches it.
    for _ in 0..ENTRY_POLLS_MAX {
        let page: wire::Statement = super::accounts::forwarded(
            state,
            customer,
            bank,
            &format!("/accounts/{number}/statement?limit=100"),
        )
        .await?;
        if let Some(entry) = page.entries.into_iter().find(|e| e.e2e_id == package.id) {
            return Ok(created(entry, replayed));
        }
        tokio::time::sleep(ENTRY_POLL_EVERY).await;
    }
    Ok((StatusCode::ACCEPTED, axum::Json(package)).into_response())
}

/// A transfer out of the caller's account at another bank, answered as a local transfer is:
/// committed, or aborted with the reason (insufficient_funds); an unknown account is a 404.
async fn transfer_elsewhere(
    state: &AppState,
    customer: &CustomerRecord,
    headers: &HeaderMap,
    fingerprint: &Fingerprint,
    request: wire::TransferRequest,
) -> Result<Response, ApiError> {
    let (bank, _) = any_account(state, "from", &request.from)?;
    let recipient = any_destination(state, "to", &request.to).await?;
    let amount = amount("amount", &request.amount)?;
    let description = description(request.description.clone())?;
    let op = wire::OperationRequest {
        kind: "transfer".into(),
        account: request.from.clone(),
        amount: request.amount,
        to: Some(request.to),
        description: request.description,
    };
    let (package, replayed) = match one_operation_elsewhere(
        state,
        customer,
        headers,
        fingerprint,
        op,
        Some(recipient.clone()),
    )
    .await?
    {
        Ok(decided) => decided,
        Err(answer) => return Ok(answer),
    };
    let reason = package.results.first().and_then(|r| r.reason.clone());
    if package.status != "committed" && reason.as_deref() != Some("insufficient_funds") {
        return Err(refusal_of(&package, bank));
    }
    let transfer = wire::Transfer {
        id: package.id,
        status: package.status,
        reason: reason.filter(|r| r == "insufficient_funds"),
        from: request.from,
        to: wire::AccountRef {
            bank: recipient.bank.to_string(),
            number: recipient.number.to_string(),
        },
        amount: ledger::amount::format_cents(amount.cents()),
        description,
        clock: package.clock,
    };
    Ok(created(transfer, replayed))
}
