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
    #[schema(minimum = 400, maximum = 599)]
    pub status: u16,
    pub detail: String,
    /// A stable machine code, e.g. `insufficient_funds`.
    #[schema(pattern = "^[a-z][a-z0-9_]*$")]
    pub code: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RegisterCustomer {
    #[schema(min_length = 1, max_length = 120)]
    pub name: String,
    /// CPF or CNPJ, bare or formatted; CNPJ may be alphanumeric.
    #[schema(pattern = "^[0-9A-Za-z./-]+$", min_length = 11, max_length = 18)]
    pub document: String,
    #[schema(
        pattern = "^[A-Za-z0-9][A-Za-z0-9._-]{2,31}$",
        min_length = 3,
        max_length = 32
    )]
    pub username: String,
    #[schema(min_length = 8, max_length = 128)]
    pub password: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Customer {
    pub id: String,
    #[schema(max_length = 120)]
    pub name: String,
    /// `individual` or `company`, from the document.
    #[schema(value_type = CustomerKind)]
    pub kind: String,
    #[schema(pattern = "^[A-Za-z0-9][A-Za-z0-9._-]{2,31}$")]
    pub username: String,
    #[schema(pattern = "^[0-9]{8}$")]
    pub home_bank: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Credentials {
    #[schema(min_length = 1, max_length = 255)]
    pub username: String,
    #[schema(min_length = 1, max_length = 255)]
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
    #[schema(value_type = AccountKind)]
    pub kind: String,
    /// Usernames of the other holders (joint accounts only).
    #[serde(default)]
    #[schema(max_items = 4, value_type = Vec<Username>)]
    pub co_holders: Vec<String>,
    /// At least `"50.00"`.
    #[schema(pattern = "^[0-9]{1,12}\\.[0-9]{2}$")]
    pub opening_deposit: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct Holder {
    #[schema(pattern = "^[A-Za-z0-9][A-Za-z0-9._-]{2,31}$")]
    pub username: String,
    pub name: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Account {
    #[schema(pattern = "^[0-9]{8}$")]
    pub bank: String,
    #[schema(pattern = "^[0-9]{1,10}-?[0-9]$")]
    pub number: String,
    #[schema(value_type = AccountKind)]
    pub kind: String,
    #[schema(min_items = 1, max_items = 5)]
    pub holders: Vec<Holder>,
    #[schema(pattern = "^-?[0-9]+\\.[0-9]{2}$")]
    pub balance: String,
    #[schema(pattern = "^-?[0-9]+\\.[0-9]{2}$")]
    pub available: String,
}

/// An invitation to hold a joint account: its opener names co-holders, and each holds it (and
/// shows on it) only once they accept.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct Invitation {
    pub id: String,
    pub account: AccountRef,
    /// Who invited.
    pub from: Holder,
    /// The username invited, as the inviter wrote it.
    pub to: String,
    /// `pending`, `accepted` or `declined`. An invitation to a username that is not an
    /// individual customer here stays `pending`: the inviter is not told who is a customer.
    pub status: String,
}

/// One event of a bank's security trail (`GET /api/v1/audit/events`, operator only).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct SecurityEvent {
    /// When, RFC 3339 UTC.
    pub at: String,
    /// `login`, `login_failed`, `login_throttled`, `logout`, `registration_refused`,
    /// `registration_throttled`, `lookup_throttled`, `session_refused` (a bearer token naming
    /// no live session), `operator_call`, `operator_refused`,
    /// `interbank_request`, `interbank_refused`.
    pub kind: String,
    /// The client's address (a bank's, for interbank requests).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
    /// Whom it concerns: a username, a bank's code, or `operator`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    /// What was asked, or why it was refused.
    pub detail: String,
}

/// The newest events of the trail, oldest first, and how many were dropped since the bank
/// started because they came faster than they could be written.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct SecurityEvents {
    pub events: Vec<SecurityEvent>,
    pub dropped: u64,
}

/// The invitations a customer received (to accept or decline) and sent.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct Invitations {
    pub received: Vec<Invitation>,
    pub sent: Vec<Invitation>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct AccountRef {
    #[schema(pattern = "^[0-9]{8}$")]
    pub bank: String,
    #[schema(pattern = "^[0-9]{1,10}-?[0-9]$")]
    pub number: String,
}

/// Where money goes: a Pix key, or a bank and account number.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct Destination {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(min_length = 1, max_length = 77)]
    pub pix_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(pattern = "^[0-9]{8}$")]
    pub bank: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(pattern = "^[0-9]{1,10}-?[0-9]$")]
    pub number: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct MoneyRequest {
    #[schema(pattern = "^[0-9]{1,12}\\.[0-9]{2}$")]
    pub amount: String,
    #[serde(default)]
    #[schema(max_length = 140)]
    pub description: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct StatementEntry {
    #[schema(pattern = "^[0-9]+$")]
    pub id: String,
    /// `opening_deposit`, `deposit`, `withdrawal`, `transfer_in` or `transfer_out`.
    #[schema(value_type = EntryKind)]
    pub kind: String,
    /// Signed: negative for money leaving the account.
    #[schema(pattern = "^-?[0-9]+\\.[0-9]{2}$")]
    pub amount: String,
    #[schema(pattern = "^-?[0-9]+\\.[0-9]{2}$")]
    pub balance_after: String,
    pub counterparty: String,
    #[schema(max_length = 140)]
    pub description: String,
    /// Username of the holder who made it (useful on joint accounts).
    pub made_by: String,
    /// The bank's hybrid logical clock when it was recorded.
    #[schema(pattern = "^[0-9]+\\.[0-9]+$")]
    pub clock: String,
    /// RFC 3339, UTC.
    pub at: String,
    #[schema(pattern = "^E[0-9]{20}[0-9A-Z]{11}$")]
    pub e2e_id: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Statement {
    #[schema(max_items = 100)]
    pub entries: Vec<StatementEntry>,
    /// Pass as `cursor` for the next (older) page; null on the last page.
    #[schema(pattern = "^[0-9]+$")]
    pub next_cursor: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AddPixKey {
    pub account: AccountRef,
    /// `cpf`, `cnpj`, `email`, `phone` or `random`.
    #[serde(rename = "type")]
    #[schema(value_type = PixKeyType)]
    pub kind: String,
    /// The key; omitted for `random`, which the bank generates.
    #[serde(default)]
    #[schema(min_length = 1, max_length = 77)]
    pub value: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PixKey {
    #[schema(max_length = 77)]
    pub key: String,
    #[serde(rename = "type")]
    #[schema(value_type = PixKeyType)]
    pub kind: String,
    #[schema(pattern = "^[0-9]{8}$")]
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
    #[schema(pattern = "^[0-9]{1,12}\\.[0-9]{2}$")]
    pub amount: String,
    #[serde(default)]
    #[schema(max_length = 140)]
    pub description: Option<String>,
}

/// One transfer of a bulk request, named by the caller's own id.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct BatchTransfer {
    /// The caller's id for this transfer: 1 to 64 visible characters, unique in the batch.
    #[schema(pattern = "^[!-~]{1,64}$", min_length = 1, max_length = 64)]
    pub id: String,
    pub from: AccountRef,
    pub to: Destination,
    #[schema(pattern = "^[0-9]{1,12}\\.[0-9]{2}$")]
    pub amount: String,
    #[serde(default)]
    #[schema(max_length = 140)]
    pub description: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct BatchRequest {
    #[schema(min_items = 1, max_items = 8189)]
    pub transfers: Vec<BatchTransfer>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct BatchResult {
    /// The caller's id.
    pub id: String,
    /// `committed`, `aborted` (the ledger refused it, e.g. insufficient_funds; recorded as a
    /// payment) or `rejected` (the request for it was invalid; nothing recorded).
    #[schema(value_type = BatchStatus)]
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The end-to-end id of a committed or aborted transfer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(pattern = "^E[0-9]{20}[0-9A-Z]{11}$")]
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
    #[schema(pattern = "^E[0-9]{20}[0-9A-Z]{11}$")]
    pub id: String,
    /// `committed` or `aborted`.
    #[schema(value_type = PaymentStatus)]
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub from: AccountRef,
    pub to: AccountRef,
    #[schema(pattern = "^[0-9]{1,12}\\.[0-9]{2}$")]
    pub amount: String,
    #[schema(max_length = 140)]
    pub description: String,
    #[schema(pattern = "^[0-9]+\\.[0-9]+$")]
    pub clock: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct OperationRequest {
    /// `deposit`, `withdrawal` or `transfer`.
    #[serde(rename = "type")]
    #[schema(value_type = OperationType)]
    pub kind: String,
    pub account: AccountRef,
    #[schema(pattern = "^[0-9]{1,12}\\.[0-9]{2}$")]
    pub amount: String,
    /// Transfers only.
    #[serde(default)]
    pub to: Option<Destination>,
    #[serde(default)]
    #[schema(max_length = 140)]
    pub description: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PackageRequest {
    #[schema(min_items = 1, max_items = 100)]
    pub operations: Vec<OperationRequest>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct OperationResult {
    #[schema(minimum = 0, maximum = 99)]
    pub index: usize,
    /// `committed`, `rejected` (this operation failed) or `aborted` (another one did).
    #[schema(value_type = OperationStatus)]
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Package {
    #[schema(pattern = "^E[0-9]{20}[0-9A-Z]{11}$")]
    pub id: String,
    /// `committed` or `aborted`.
    #[schema(value_type = PaymentStatus)]
    pub status: String,
    pub results: Vec<OperationResult>,
    #[schema(pattern = "^[0-9]+\\.[0-9]+$")]
    pub clock: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct LedgerTotals {
    #[schema(pattern = "^-?[0-9]+\\.[0-9]{2}$")]
    pub debits_pending: String,
    #[schema(pattern = "^-?[0-9]+\\.[0-9]{2}$")]
    pub debits_posted: String,
    #[schema(pattern = "^-?[0-9]+\\.[0-9]{2}$")]
    pub credits_pending: String,
    #[schema(pattern = "^-?[0-9]+\\.[0-9]{2}$")]
    pub credits_posted: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SettlementPosition {
    #[schema(pattern = "^[0-9]{8}$")]
    pub bank: String,
    /// Positive: the other bank owes this one.
    #[schema(pattern = "^-?[0-9]+\\.[0-9]{2}$")]
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
    #[schema(pattern = "^[0-9]{8}$")]
    pub bank: String,
    #[schema(pattern = "^[0-9]+\\.[0-9]+$")]
    pub clock: String,
    pub accounts: u64,
    pub totals: LedgerTotals,
    /// Sum of customer balances.
    #[schema(pattern = "^-?[0-9]+\\.[0-9]{2}$")]
    pub customer_balances: String,
    /// Cash taken in (opening deposits included) and paid out, from the vault's counters.
    #[schema(pattern = "^-?[0-9]+\\.[0-9]{2}$")]
    pub cash_in: String,
    #[schema(pattern = "^-?[0-9]+\\.[0-9]{2}$")]
    pub cash_out: String,
    pub settlement: Vec<SettlementPosition>,
    pub checks: Vec<Check>,
    pub ok: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Health {
    #[schema(value_type = HealthStatus)]
    pub status: String,
    #[schema(pattern = "^[0-9]{8}$")]
    pub bank: String,
    pub name: String,
    /// Whether this process holds its bank's duties (finishing interbank work left open): always
    /// for a bank of one process; one of several `bankd` sharing a PostgreSQL ledger at a time.
    #[serde(default)]
    pub duties: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct BankStatus {
    #[schema(pattern = "^[0-9]{8}$")]
    pub code: String,
    pub name: String,
    pub url: String,
    /// `up`, `suspect` (silent for 2 s, or not heard from yet) or `down` (silent for 5 s).
    #[schema(value_type = PeerStatus)]
    pub status: String,
    /// RFC 3339, when the status last changed.
    pub since: Option<String>,
    /// The last heartbeat's round trip, in milliseconds; null for this bank and before the first.
    pub rtt_ms: Option<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ConsortiumView {
    /// This bank's code.
    #[schema(pattern = "^[0-9]{8}$")]
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

// The values string fields take, for the OpenAPI document only (`#[schema(value_type = …)]`):
// the fields stay strings, so the node parses each at the edge and names the one that is wrong.

/// A customer account's kind.
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
pub enum AccountKind {
    Individual,
    Company,
    Joint,
}

/// A customer's kind, from their document (CPF or CNPJ).
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
pub enum CustomerKind {
    Individual,
    Company,
}

/// A Pix key's type.
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
pub enum PixKeyType {
    Cpf,
    Cnpj,
    Email,
    Phone,
    Random,
}

/// A package operation's type.
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
pub enum OperationType {
    Deposit,
    Withdrawal,
    Transfer,
}

/// A statement entry's kind.
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
pub enum EntryKind {
    OpeningDeposit,
    Deposit,
    Withdrawal,
    TransferIn,
    TransferOut,
}

/// A transfer's or a package's status: `pending` only while a bank it needs has not answered
/// (202).
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
pub enum PaymentStatus {
    Pending,
    Committed,
    Aborted,
}

/// A package operation's status.
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
pub enum OperationStatus {
    Pending,
    Committed,
    Rejected,
    Aborted,
}

/// A bulk transfer's status.
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
pub enum BatchStatus {
    Committed,
    Aborted,
    Rejected,
}

/// Another bank's status as this one sees it.
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
pub enum PeerStatus {
    Up,
    Suspect,
    Down,
}

/// The health answer's status.
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
pub enum HealthStatus {
    Ok,
}

/// A username: 3 to 32 letters, digits, `.`, `_` or `-`, starting with a letter or digit (kept
/// in lower case).
#[derive(ToSchema)]
#[schema(value_type = String, pattern = "^[A-Za-z0-9][A-Za-z0-9._-]{2,31}$")]
pub struct Username(pub String);
