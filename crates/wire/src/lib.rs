//! The JSON shapes of the public API (`/api/v1`), shared by `bankd`, the terminal client and the
//! tests. Amounts are decimal strings with two places; ids and numbers are strings. Requests keep
//! raw strings so the node can parse each field at the edge and name the one that is wrong.
//!
//! Architecture invariant: this crate holds data shapes only, with no behaviour and no I/O.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// An RFC 9457 problem, answered with `application/problem+json`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Problem {
    /// A URI naming the problem type (`about:blank` style, one per code).
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// A stable machine code, e.g. `insufficient_funds`.
    pub code: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RegisterCustomer {
    pub name: String,
    /// CPF or CNPJ, bare or formatted; CNPJ may be alphanumeric.
    pub document: String,
    pub username: String,
    pub password: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Customer {
    pub id: String,
    pub name: String,
    /// `individual` or `company`, from the document.
    pub kind: String,
    pub username: String,
    pub home_bank: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Session {
    pub token: String,
    /// RFC 3339, UTC.
    pub expires_at: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Me {
    #[serde(flatten)]
    pub customer: Customer,
    pub accounts: Vec<Account>,
    /// Accounts the consortium's directory lists for this person at banks that are not
    /// answering now (their balances unknown until they are back).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unavailable: Vec<AccountRef>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct OpenAccount {
    /// `individual`, `company` or `joint`.
    pub kind: String,
    /// Usernames of the other holders (joint accounts only).
    #[serde(default)]
    pub co_holders: Vec<String>,
    /// At least `"50.00"`.
    pub opening_deposit: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct Holder {
    pub username: String,
    pub name: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Account {
    pub bank: String,
    pub number: String,
    pub kind: String,
    pub holders: Vec<Holder>,
    pub balance: String,
    pub available: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct AccountRef {
    pub bank: String,
    pub number: String,
}

/// Where money goes: a Pix key, or a bank and account number.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct Destination {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pix_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bank: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub number: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct MoneyRequest {
    pub amount: String,
    #[serde(default)]
    pub description: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct StatementEntry {
    pub id: String,
    /// `opening_deposit`, `deposit`, `withdrawal`, `transfer_in` or `transfer_out`.
    pub kind: String,
    /// Signed: negative for money leaving the account.
    pub amount: String,
    pub balance_after: String,
    pub counterparty: String,
    pub description: String,
    /// Username of the holder who made it (useful on joint accounts).
    pub made_by: String,
    /// The bank's hybrid logical clock when it was recorded.
    pub clock: String,
    /// RFC 3339, UTC.
    pub at: String,
    pub e2e_id: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Statement {
    pub entries: Vec<StatementEntry>,
    /// Pass as `cursor` for the next (older) page; null on the last page.
    pub next_cursor: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AddPixKey {
    pub account: AccountRef,
    /// `cpf`, `cnpj`, `email`, `phone` or `random`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The key; omitted for `random`, which the bank generates.
    #[serde(default)]
    pub value: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PixKey {
    pub key: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub bank: String,
    pub holder_name: String,
    pub document_masked: String,
    /// Shown only to the account's holders.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<AccountRef>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PixKeys {
    pub keys: Vec<PixKey>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TransferRequest {
    pub from: AccountRef,
    pub to: Destination,
    pub amount: String,
    #[serde(default)]
    pub description: Option<String>,
}

/// One transfer of a bulk request, named by the caller's own id.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct BatchTransfer {
    /// The caller's id for this transfer: 1 to 64 visible characters, unique in the batch.
    pub id: String,
    pub from: AccountRef,
    pub to: Destination,
    pub amount: String,
    #[serde(default)]
    pub description: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct BatchRequest {
    pub transfers: Vec<BatchTransfer>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct BatchResult {
    /// The caller's id.
    pub id: String,
    /// `committed`, `aborted` (the ledger refused it, e.g. insufficient_funds; recorded as a
    /// payment) or `rejected` (the request for it was invalid; nothing recorded).
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The end-to-end id of a committed or aborted transfer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub e2e_id: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct BatchResponse {
    /// One result per transfer, in the request's order.
    pub results: Vec<BatchResult>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Transfer {
    /// The Pix end-to-end id.
    pub id: String,
    /// `committed` or `aborted`.
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub from: AccountRef,
    pub to: AccountRef,
    pub amount: String,
    pub description: String,
    pub clock: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct OperationRequest {
    /// `deposit`, `withdrawal` or `transfer`.
    #[serde(rename = "type")]
    pub kind: String,
    pub account: AccountRef,
    pub amount: String,
    /// Transfers only.
    #[serde(default)]
    pub to: Option<Destination>,
    #[serde(default)]
    pub description: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PackageRequest {
    pub operations: Vec<OperationRequest>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct OperationResult {
    pub index: usize,
    /// `committed`, `rejected` (this operation failed) or `aborted` (another one did).
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Package {
    pub id: String,
    /// `committed` or `aborted`.
    pub status: String,
    pub results: Vec<OperationResult>,
    pub clock: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct LedgerTotals {
    pub debits_pending: String,
    pub debits_posted: String,
    pub credits_pending: String,
    pub credits_posted: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SettlementPosition {
    pub bank: String,
    /// Positive: the other bank owes this one.
    pub position: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Check {
    pub name: String,
    pub ok: bool,
    pub detail: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Audit {
    pub bank: String,
    pub clock: String,
    pub accounts: u64,
    pub totals: LedgerTotals,
    /// Sum of customer balances.
    pub customer_balances: String,
    /// Cash taken in (opening deposits included) and paid out, from the vault's counters.
    pub cash_in: String,
    pub cash_out: String,
    pub settlement: Vec<SettlementPosition>,
    pub checks: Vec<Check>,
    pub ok: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Health {
    pub status: String,
    pub bank: String,
    pub name: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct BankStatus {
    pub code: String,
    pub name: String,
    pub url: String,
    /// `up`, `suspect` (silent for 2 s, or not heard from yet) or `down` (silent for 5 s).
    pub status: String,
    /// RFC 3339, when the status last changed.
    pub since: Option<String>,
    /// The last heartbeat's round trip, in milliseconds; null for this bank and before the first.
    pub rtt_ms: Option<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ConsortiumView {
    /// This bank's code.
    pub bank: String,
    pub banks: Vec<BankStatus>,
    /// This bank's settlement position with each other bank: only for the bank's operator
    /// (absent for anyone else).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settlement: Option<Vec<SettlementPosition>>,
    /// This bank's member of the consortium's directory, as it sees the Raft group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub directory: Option<DirectoryStatus>,
}

/// The directory's Raft group as one bank's member sees it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DirectoryStatus {
    /// The code of the bank this member follows (or is), when it knows one.
    pub leader: Option<String>,
    pub term: u64,
    /// The last log entry applied to this bank's copy.
    pub last_applied: Option<u64>,
}
