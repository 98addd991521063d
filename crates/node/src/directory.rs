//! The consortium's directory (crate `directory`, DESIGN §5) inside `bankd`: its file beside the
//! ledger, its Raft messages over the signed interbank HTTP (`POST /interbank/v1/directory`),
//! and what the routes ask of it: customers and usernames unique across the consortium, Pix keys
//! resolved from this bank's own replica, and who holds which account anywhere.
//!
//! The directory is the only source of a person's identity: a bank never vouches for a document
//! the directory does not list as the holder of the account a request touches.

use crate::config::Config;
use crate::duties::Duties;
use crate::error::ApiError;
use crate::interbank::Shared;
use crate::interbank::peers::{self, PeerLink};
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use directory::Settings;
use directory::{
    Conflict, Directory, DirectoryError, Message, NodeId, Reply, Transport, TransportError, node_id,
};
use ledger::{AccountNumber, BankCode, Document, PixKey};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use store::SharedClock;
use store::postgres::duty::{Lease, held_now};
use tokio::sync::watch;

/// Where a bank's directory takes the Raft messages (and forwarded writes) of the others.
pub const DIRECTORY_PATH: &str = "/interbank/v1/directory";

/// Where the process running the bank's member takes the writes of the bank's other processes
/// (fronts of the directory, sharing its file), authorized by the bank's operator token.
pub const SIBLING_PATH: &str = "/internal/v1/directory";

/// Carries directory messages to the other banks as signed `POST`s, with a client of its own
/// (Raft's heartbeats then never wait behind the protocol's envelopes); and, at a front,
/// messages for this bank's own member to the process that runs it.
struct HttpTransport {
    shared: Arc<Shared>,
    links: BTreeMap<NodeId, Arc<PeerLink>>,
    me: NodeId,
    duties: Arc<Duties>,
    operator_token: String,
}

impl HttpTransport {
    /// Sends `message` to the process of this bank that runs its member.
    async fn to_sibling(&self, message: &Message) -> Result<Reply, String> {
        let address = self
            .duties
            .holder_address()
            .ok_or("no process of this bank holds its duties now")?;
        let response = self
            .shared
            .http
            .post(format!("{address}{SIBLING_PATH}"))
            .bearer_auth(&self.operator_token)
            .json(message)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if !response.status().is_success() {
            return Err(format!("{address} answered {}", response.status()));
        }
        response
            .json()
            .await
            .map_err(|e| format!("a bad reply: {e}"))
    }
}

#[async_trait::async_trait]
impl Transport for HttpTransport {
    async fn call(&self, target: NodeId, message: Message) -> Result<Reply, TransportError> {
        let failed = |reason: String| TransportError { target, reason };
        if target == self.me {
            return self.to_sibling(&message).await.map_err(failed);
        }
        let link = self
            .links
            .get(&target)
            .ok_or_else(|| failed("not in the consortium file".to_owned()))?;
        let body = serde_json::to_vec(&message).map_err(|e| failed(e.to_string()))?;
        let response = peers::post(&self.shared, link, DIRECTORY_PATH, body)
            .await
            .map_err(failed)?;
        let bytes = response.bytes().await.map_err(|e| failed(e.to_string()))?;
        serde_json::from_slice(&bytes).map_err(|e| failed(format!("a bad reply: {e}")))
    }
}

/// Opens this bank's member of the directory at `config.directory_file` (`<data>/directory.db`
/// unless set) and starts it, in a group of every bank the consortium file lists (this one alone
/// when it lists none, or with `directory_alone`). Several processes of a bank on one
/// PostgreSQL ledger share the file: the one holding the bank's `duties` runs the member, the
/// others are fronts of it, and the member moves with the duties (`follow_duties`). A ledger
/// without a directory file is one made before the directory existed: it starts, and
/// `listing` loads it into the directory. Refuses a data folder whose
/// ledger was loaded into a directory (it has the migration's report) but lost its directory
/// file: a member that forgot its votes and log could let two leaders commit different entries.
pub async fn start(
    config: &Config,
    clock: Arc<SharedClock>,
    duties: &Arc<Duties>,
) -> Result<Directory, String> {
    let path = config.directory_file.clone();
    let ledger = config.data_dir.join("ledger.db");
    let report = config.data_dir.join(crate::listing::REPORT_FILE);
    if ledger.exists() && !path.exists() && report.exists() {
        return Err(format!(
            "{} has a ledger that was in the directory but no {}: a bank that lost its directory must not rejoin the consortium on its own (restore the file, or start from an empty folder)",
            config.data_dir.display(),
            directory::FILE_NAME
        ));
    }
    // Over https, other banks are checked against the consortium's CA, as the interbank
    // client does.
    let http = crate::tls::peer_client(config.peer_ca.as_deref(), |builder| {
        builder.tcp_nodelay(true)
    })
    .map_err(|e| format!("the directory's client: {e}"))?;
    let shared = Arc::new(Shared {
        me: config.bank,
        key: config.key.clone(),
        clock,
        http,
    });
    let mut links = BTreeMap::new();
    let mut members = vec![node_id(&config.bank)];
    for peer in &config.peers {
        let code = BankCode::parse(&peer.code)
            .ok_or_else(|| format!("bank code {:?} is not 8 digits", peer.code))?;
        if code == config.bank || config.directory_alone {
            continue;
        }
        // The link's outbox is never used: only `peers::post` goes through it.
        let (link, _outbox) = PeerLink::new(code, peer.name.clone(), peer.urls());
        links.insert(node_id(&code), link);
        members.push(node_id(&code));
    }
    let me = node_id(&config.bank);
    let transport = Arc::new(HttpTransport {
        shared,
        links,
        me,
        duties: duties.clone(),
        operator_token: config.operator_token.clone(),
    });
    // A front reads the file the member writes: the bank's processes must share one.
    if !duties.held()
        && let Some(theirs) = duties.holder_directory()
        && theirs != path.display().to_string()
    {
        return Err(format!(
            "the bankd holding bank {}'s duties runs its directory on {theirs}, and this one was given {}: every bankd of a bank on one database shares one directory file (directory_file or BANKD_DIRECTORY_FILE), on one machine",
            config.bank,
            path.display()
        ));
    }
    let failed =
        |e: DirectoryError| format!("cannot start the directory at {}: {e}", path.display());
    let directory =
        Directory::front(me, members, &path, transport, Settings::default()).map_err(failed)?;
    if duties.held() {
        directory.run_member().await.map_err(failed)?;
    }
    if let Some(changes) = duties.changes() {
        tokio::spawn(follow_duties(directory.clone(), changes));
    }
    Ok(directory)
}

/// Runs the bank's member in this process while it holds the bank's duties, and stops it when
/// it loses them (another process then runs it on the same file).
async fn follow_duties(directory: Directory, mut changes: watch::Receiver<Lease>) {
    loop {
        let held = held_now(*changes.borrow_and_update());
        if held && !directory.is_member() {
            match directory.run_member().await {
                Ok(()) => tracing::info!("this process runs the bank's member of the directory"),
                // Tried again at the lease's next renewal.
                Err(error) => {
                    tracing::warn!(%error, "cannot run the bank's member of the directory")
                }
            }
        } else if !held && directory.is_member() {
            directory.shutdown().await;
            tracing::warn!("this process no longer runs the bank's member of the directory");
        }
        if changes.changed().await.is_err() {
            directory.shutdown().await;
            return;
        }
    }
}

/// `POST /internal/v1/directory`: a write (or decisions) from another process of this bank, a
/// front of the directory, for the member this process runs; the bank's operator token
/// authorizes it. Raft's own messages come only from other banks, signed.
pub async fn receive_sibling(
    State(state): State<Arc<AppState>>,
    _operator: crate::extract::Operator,
    body: axum::body::Bytes,
) -> Result<Json<Reply>, ApiError> {
    let message: Message = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request(
            "invalid_directory_message",
            format!("not a directory message: {e}"),
        )
    })?;
    if !matches!(message, Message::Write(_) | Message::Decide { .. }) {
        return Err(ApiError::bad_request(
            "invalid_directory_message",
            "another process of the bank sends only writes and decisions",
        ));
    }
    Ok(Json(state.interbank.directory.handle(message).await))
}

/// `POST /interbank/v1/directory`: a Raft message (or a forwarded write) from another bank's
/// directory, signed by that bank; answered with the directory's reply.
pub async fn receive(
    State(state): State<Arc<AppState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<Json<Reply>, ApiError> {
    let (from, body) =
        crate::routes::interbank::verified_body(&state, &method, &uri, &headers, body).await?;
    let message: Message = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request(
            "invalid_directory_message",
            format!("not a directory message: {e}"),
        )
    })?;
    state
        .interbank
        .directory
        .handle_from(node_id(&from), message)
        .await
        .map(Json)
        .map_err(|forged| {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "forged_directory_message",
                forged.to_string(),
            )
        })
}

/// Waits until every one of `directories` follows the same leader, at most `limit`: banks started
/// together (the demo, `bank bench`) take registrations only once their group has elected one.
pub async fn leader_elected(directories: &[Directory], limit: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let leaders: Vec<Option<NodeId>> = directories.iter().map(Directory::leader).collect();
        if leaders.first().is_some_and(Option::is_some) && leaders.windows(2).all(|w| w[0] == w[1])
        {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The directory's leader, term and last applied entry, for `/api/v1/consortium` (at a front,
/// as the member last stored them in the shared file; none known if it cannot be read).
pub fn status(directory: &Directory) -> wire::DirectoryStatus {
    let standing = directory.standing().unwrap_or_default();
    wire::DirectoryStatus {
        // A member id is the bank's 8-digit code as a number.
        leader: standing.leader.map(|id| format!("{id:08}")),
        term: standing.term,
        last_applied: standing.last_applied,
    }
}

/// Longest a lookup that misses waits for this bank's copy to apply entries it already holds.
const CATCH_UP_WAIT: Duration = Duration::from_millis(500);

/// A Pix key as this bank's copy of the directory has it. On a miss, a key registered a moment
/// ago may already be in this bank's log but not yet known committed here (the leader says so in
/// its next message, within a heartbeat): what the log holds is waited for, briefly.
pub async fn pix_key(
    directory: &Directory,
    key: &PixKey,
) -> Result<Option<directory::PixEntry>, DirectoryError> {
    if let Some(found) = directory.pix_key(key)? {
        return Ok(Some(found));
    }
    caught_up(directory).await;
    directory.pix_key(key)
}

/// Waits (at most [`CATCH_UP_WAIT`]) until this bank's copy has applied every entry its log
/// already holds; at once when it has.
async fn caught_up(directory: &Directory) {
    let appended = directory.metrics().last_log_index;
    let deadline = tokio::time::Instant::now() + CATCH_UP_WAIT;
    while directory
        .metrics()
        .last_applied
        .map(|applied| applied.index)
        < appended
        && tokio::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The problem a customer gets for a directory's refusal: a conflict is 409 with its code (a key
/// of another bank is simply not found), no majority is 503 `directory_unavailable`.
pub fn problem(error: DirectoryError) -> ApiError {
    match error {
        DirectoryError::Unavailable => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "directory_unavailable",
            "this bank cannot reach a majority of the consortium's banks to record this; nothing was registered, try again later",
        )
        .with_retry_after(2),
        DirectoryError::Conflict(Conflict::PixKeyNotYours) => {
            ApiError::not_found("pix_key_not_found", "no such Pix key")
        }
        DirectoryError::Conflict(conflict) => {
            ApiError::new(StatusCode::CONFLICT, conflict.code(), conflict.to_string())
        }
        DirectoryError::Invalid(field) => ApiError::unprocessable(
            "invalid_request",
            format!("`{field}` is too long for the consortium's directory"),
        ),
        DirectoryError::Storage(error) => ApiError::internal(format!("directory: {error}")),
    }
}

/// Whether the directory lists the customer with this document (as another bank vouches for it,
/// or as this bank's session knows it) as a holder of `number` at `bank`.
pub fn holds(
    directory: &Directory,
    document: &str,
    bank: BankCode,
    number: AccountNumber,
) -> Result<bool, DirectoryError> {
    let Ok(document) = Document::parse(document) else {
        return Ok(false);
    };
    Ok(directory
        .accounts_of(&document)?
        .iter()
        .any(|held| held.bank == bank && held.account == number))
}

/// The accounts the directory lists for the person with `document` at the other banks, read
/// at each of those banks at once on their behalf; the ones of a bank that cannot answer come
/// back apart, as unavailable.
pub async fn accounts_elsewhere(
    state: &Arc<AppState>,
    document: &str,
) -> Result<(Vec<wire::Account>, Vec<wire::AccountRef>), ApiError> {
    let Ok(parsed) = Document::parse(document) else {
        return Ok((Vec::new(), Vec::new()));
    };
    caught_up(&state.interbank.directory).await;
    let listed = state
        .interbank
        .directory
        .accounts_of(&parsed)
        .map_err(problem)?;
    let mut by_bank: BTreeMap<BankCode, Vec<AccountNumber>> = BTreeMap::new();
    for held in listed.into_iter().filter(|held| held.bank != state.bank) {
        by_bank.entry(held.bank).or_default().push(held.account);
    }
    let mut asking = tokio::task::JoinSet::new();
    for (bank, numbers) in by_bank {
        let (state, document) = (state.clone(), document.to_owned());
        asking.spawn(async move {
            let path = format!("{}/{document}/accounts", crate::interbank::CUSTOMERS_PATH);
            let answer = state
                .interbank
                .forward_get::<Vec<wire::Account>>(bank, &path)
                .await;
            (bank, numbers, answer)
        });
    }
    let (mut found, mut unavailable) = (Vec::new(), Vec::new());
    while let Some(answer) = asking.join_next().await {
        let Ok((bank, numbers, answer)) = answer else {
            continue;
        };
        match answer {
            Ok(accounts) => found.extend(
                accounts
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|a| a.bank == bank.as_str()),
            ),
            Err(_) => unavailable.extend(numbers.into_iter().map(|number| wire::AccountRef {
                bank: bank.to_string(),
                number: number.to_string(),
            })),
        }
    }
    found.sort_by(|a, b| (&a.bank, &a.number).cmp(&(&b.bank, &b.number)));
    unavailable.sort_by(|a, b| (&a.bank, &a.number).cmp(&(&b.bank, &b.number)));
    Ok((found, unavailable))
}

/// Lists holders of an account here in the directory (`AddAccount`, one per holder; already
/// listed answers `Unchanged`, so a replayed opening lists nothing twice): tried at once, and
/// what the directory cannot take now goes to the outbox (`listing`), tried again until it is
/// taken (the ledger's holder row is its durable record: a restart queues it again).
pub async fn list_account(state: &AppState, holders: &[String], number: AccountNumber) {
    let directory = &state.interbank.directory;
    let mut waiting = Vec::new();
    for username in holders {
        let command = match directory.customer_by_username(username) {
            Ok(Some(customer)) => directory::Command::AddAccount {
                document: customer.document,
                bank: state.bank,
                account: number,
            },
            Ok(None) => {
                tracing::warn!(username, "an account holder the directory does not know");
                continue;
            }
            Err(error) => {
                tracing::warn!(%error, "cannot read the directory");
                continue;
            }
        };
        match directory.write(command.clone()).await {
            Ok(_) => {}
            Err(DirectoryError::Conflict(conflict)) => {
                tracing::warn!(%conflict, %number, "the directory refuses an account's listing");
            }
            Err(error) => {
                tracing::warn!(%error, %number, "listing an account in the directory failed; it waits in the outbox");
                waiting.push(command);
            }
        }
    }
    state.listing.push(waiting);
}
