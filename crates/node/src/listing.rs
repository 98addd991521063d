//! What this bank's ledger holds that the consortium's directory must hold too, and how it gets
//! there even when the directory cannot take it at once.
//!
//! - **The outbox.** An account opened here (or a joint account a co-holder accepts here) is
//!   committed to the ledger first and listed in the directory after (`AddAccount`). The ledger's
//!   own holder row is the durable record of what is owed: a listing the directory could not
//!   take (no majority) waits in memory and is tried again every [`RETRY_EVERY`] until it is
//!   taken, and at every start the ledger's holdings are compared with the directory and what is
//!   missing is queued again, so a restart loses nothing.
//! - **The migration of an older ledger.** A bank whose data folder has no
//!   [`REPORT_FILE`] yet (a ledger made before the directory existed) loads its customers (home
//!   here), their accounts (every holder) and its Pix keys into the directory, waiting for a
//!   majority as long as it takes. What the directory already gives to someone else (a document,
//!   a username or a key another bank registered) is a conflict: recorded in the report file
//!   (written before anything is changed here), in the log and in the security trail, shown by
//!   the audit (`bank audit`), never dropped silently. A local Pix key the directory gives to
//!   another bank is removed from this bank's copy (the report keeps it); a customer whose
//!   document or username conflicts is not loaded, nor are their accounts and keys, until the
//!   operator settles it. Every step is idempotent (a command already in effect answers
//!   `Unchanged`), so a crash midway and a restart finish it; once the report says `finished`,
//!   a later start does not load again.

use crate::state::AppState;
use directory::{Command, Conflict, DirectoryError};
use ledger::{Document, PixKey, PixKeyType};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use store::{CustomerId, DirectoryListing, ListedCustomer};

/// The migration's report, in the bank's data folder. Its presence says this ledger has been
/// loaded into the directory (see `directory::start`).
pub const REPORT_FILE: &str = "directory-migration.json";

/// How long between two tries of what the directory could not take.
pub const RETRY_EVERY: Duration = Duration::from_secs(2);

/// Listings waiting in memory at most; beyond, the ledger is read again once the queue drains
/// (every holding is in the ledger anyway).
pub const OUTBOX_PENDING_MAX: usize = 100_000;

/// Tries to write the finished report before the migration gives up on it for this run.
const REPORT_WRITES_MAX: u32 = 30;

/// Conflicts the audit's check names one by one; the report file has them all.
pub const CONFLICTS_SHOWN_MAX: usize = 20;

/// The name of the audit's check.
pub const AUDIT_CHECK: &str = "directory_migration";

/// The migration's durable report ([`REPORT_FILE`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    /// Every customer, account and key was tried and answered (loaded or in conflict).
    pub finished: bool,
    pub started_at: String,
    pub finished_at: Option<String>,
    /// Loaded (newly, or found already there).
    pub customers: u64,
    pub accounts: u64,
    pub pix_keys: u64,
    pub conflicts: Vec<ConflictRecord>,
}

/// One thing of this ledger the directory gives to someone else.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConflictRecord {
    /// `customer`, `account` or `pix_key`.
    pub kind: String,
    /// The username of the customer it concerns (the key's holder for a key).
    pub username: String,
    pub document: String,
    /// The account (for `account`) or the key as `type:value` (for `pix_key`).
    pub item: Option<String>,
    /// The directory's refusal (`duplicate_document`, ...), or `holder_not_loaded`.
    pub code: String,
    /// What this bank did about it.
    pub action: String,
}

impl ConflictRecord {
    fn same(&self, other: &ConflictRecord) -> bool {
        (&self.kind, &self.document, &self.item) == (&other.kind, &other.document, &other.item)
    }
}

/// The outbox and the migration's state, shared by the routes and the background task.
#[derive(Default)]
pub struct Listing {
    /// Keyed by the command's JSON text: the same listing waits once.
    pending: Mutex<BTreeMap<String, Command>>,
    overflowed: AtomicBool,
    wake: tokio::sync::Notify,
    /// The migration's report as it stands (`None` until the task has read the folder).
    report: Mutex<Option<Report>>,
    /// Conflicts already logged by this process (a resumed migration logs again what it finds,
    /// as the trail of a crashed process may have lost them).
    told: Mutex<Vec<ConflictRecord>>,
}

impl Listing {
    /// Queues directory writes to be tried until the directory takes them.
    pub fn push(&self, commands: Vec<Command>) {
        if commands.is_empty() {
            return;
        }
        {
            let mut pending = self.pending.lock().expect("outbox lock");
            for command in commands {
                if pending.len() >= OUTBOX_PENDING_MAX {
                    self.overflowed.store(true, Ordering::SeqCst);
                    break;
                }
                if let Ok(text) = serde_json::to_string(&command) {
                    pending.insert(text, command);
                }
            }
        }
        self.wake.notify_one();
    }

    /// Writes waiting for the directory.
    pub fn pending(&self) -> usize {
        self.pending.lock().expect("outbox lock").len()
    }

    /// The audit's check: passes once the migration finished without a conflict (listings
    /// waiting in the outbox are said, and do not fail it: they are on their way).
    pub fn check(&self) -> wire::Check {
        let waiting = match self.pending() {
            0 => String::new(),
            n => format!("; {n} account listings wait for the directory"),
        };
        let mut check = self.migration_check();
        check.detail.push_str(&waiting);
        check
    }

    fn migration_check(&self) -> wire::Check {
        let report = self.report.lock().expect("report lock").clone();
        let Some(report) = report else {
            return wire::Check {
                name: AUDIT_CHECK.to_owned(),
                ok: false,
                detail: "not started yet".to_owned(),
            };
        };
        let loaded = format!(
            "{} customers, {} accounts, {} Pix keys loaded",
            report.customers, report.accounts, report.pix_keys
        );
        if !report.finished {
            return wire::Check {
                name: AUDIT_CHECK.to_owned(),
                ok: false,
                detail: format!(
                    "in progress (waiting for a majority of the directory): {loaded} so far, {} conflicts",
                    report.conflicts.len()
                ),
            };
        }
        if report.conflicts.is_empty() {
            return wire::Check {
                name: AUDIT_CHECK.to_owned(),
                ok: true,
                detail: format!("finished: {loaded}, no conflict"),
            };
        }
        let shown: Vec<String> = report
            .conflicts
            .iter()
            .take(CONFLICTS_SHOWN_MAX)
            .map(|c| {
                format!(
                    "{} {}{} ({}): {}",
                    c.kind,
                    c.username,
                    c.item
                        .as_deref()
                        .map(|i| format!(" {i}"))
                        .unwrap_or_default(),
                    c.code,
                    c.action
                )
            })
            .collect();
        let more = report.conflicts.len().saturating_sub(CONFLICTS_SHOWN_MAX);
        wire::Check {
            name: AUDIT_CHECK.to_owned(),
            ok: false,
            detail: format!(
                "finished: {loaded}; {} conflicts for the operator to settle (all in the data folder's {REPORT_FILE}): {}{}",
                report.conflicts.len(),
                shown.join("; "),
                if more > 0 {
                    format!("; and {more} more")
                } else {
                    String::new()
                }
            ),
        }
    }
}

/// Reads the report in `data_dir`, if the folder has one.
pub fn read_report(data_dir: &Path) -> Result<Option<Report>, String> {
    let path = data_dir.join(REPORT_FILE);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| format!("{} does not parse: {e}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
    }
}

/// Writes the report durably: a temporary file, fsynced, renamed over the old one, and the
/// folder fsynced, so a crash leaves the old report or the new one.
fn write_report(data_dir: &Path, report: &Report) -> std::io::Result<()> {
    use std::io::Write;
    let path = data_dir.join(REPORT_FILE);
    let temporary = data_dir.join(format!("{REPORT_FILE}.tmp"));
    let bytes = serde_json::to_vec_pretty(report).map_err(std::io::Error::other)?;
    // It names customers and their documents: readable by this user only, as the ledger.
    crate::config::make_private_file(&temporary).map_err(std::io::Error::other)?;
    {
        let mut file = std::fs::File::create(&temporary)?;
        file.write_all(&bytes)?;
        file.sync_all()?;
    }
    std::fs::rename(&temporary, &path)?;
    std::fs::File::open(data_dir)?.sync_all()
}

/// Starts the background task: the migration if this folder has no finished report, else the
/// comparison of the ledger's holdings with the directory; then the outbox, until the bank stops.
/// A folder without a report whose ledger has no customer (a new bank) is finished at once,
/// before the bank serves.
pub async fn start(state: Arc<AppState>, data_dir: PathBuf) -> Result<(), String> {
    let mut earlier = read_report(&data_dir)?;
    if earlier.is_none() {
        let listing = state
            .store
            .directory_listing()
            .await
            .map_err(|e| format!("cannot read the ledger for the directory: {e}"))?;
        if listing.customers.is_empty() {
            let now = crate::routes::rfc3339(store::wall_ms());
            let report = Report {
                finished: true,
                started_at: now.clone(),
                finished_at: Some(now),
                ..Report::default()
            };
            write_report(&data_dir, &report)
                .map_err(|e| format!("cannot write the directory migration's report: {e}"))?;
            earlier = Some(report);
        }
    }
    *state.listing.report.lock().expect("report lock") = earlier.clone();
    tokio::spawn(async move {
        let mut stopped = state.interbank.stopped();
        let work = async {
            match earlier {
                Some(report) if report.finished => relist(&state).await,
                earlier => migrate(&state, &data_dir, earlier).await,
            }
            drain(&state).await;
        };
        tokio::select! {
            () = work => {}
            _ = stopped.wait_for(|stopped| *stopped) => {}
        }
    });
    Ok(())
}

/// Tries the outbox's writes until each is taken; forever (the task ends with the bank).
async fn drain(state: &AppState) {
    let listing = &state.listing;
    loop {
        let batch = std::mem::take(&mut *listing.pending.lock().expect("outbox lock"));
        if batch.is_empty() {
            if listing.overflowed.swap(false, Ordering::SeqCst) {
                relist(state).await;
                continue;
            }
            listing.wake.notified().await;
            continue;
        }
        let mut batch = batch.into_values();
        let mut failed = Vec::new();
        for command in batch.by_ref() {
            match state.interbank.directory.write(command.clone()).await {
                Ok(_) => {}
                Err(DirectoryError::Conflict(conflict)) => {
                    tracing::warn!(?command, %conflict, "the directory refuses a listing owed to it");
                }
                Err(error) => {
                    // The next would wait as long for the same answer: the round ends here.
                    tracing::debug!(%error, "listings wait for the directory");
                    failed.push(command);
                    break;
                }
            }
        }
        failed.extend(batch);
        if !failed.is_empty() {
            listing.push(failed);
            tokio::time::sleep(RETRY_EVERY).await;
        }
    }
}

/// Whether the directory records `customer` as this ledger does (same document, username and
/// home bank): only then are the accounts here listed as theirs.
fn same_person(directory: &directory::Directory, customer: &ListedCustomer) -> bool {
    let Ok(document) = Document::parse(&customer.document) else {
        return false;
    };
    matches!(
        directory.customer_by_document(&document),
        Ok(Some(known)) if known.username == customer.username
            && known.home_bank.as_str() == customer.home_bank
    )
}

/// Queues the listing of every holding here the directory does not show (an `AddAccount` lost
/// with a restart, or never taken).
async fn relist(state: &AppState) {
    let listing = match state.store.directory_listing().await {
        Ok(listing) => listing,
        Err(error) => {
            tracing::error!(%error, "cannot read the ledger's holdings for the directory");
            return;
        }
    };
    let directory = &state.interbank.directory;
    let customers: HashMap<CustomerId, &ListedCustomer> =
        listing.customers.iter().map(|c| (c.id, c)).collect();
    let mut known: HashMap<CustomerId, bool> = HashMap::new();
    let mut missing = Vec::new();
    for (holder, number) in &listing.holdings {
        let Some(customer) = customers.get(holder) else {
            continue;
        };
        if !*known
            .entry(*holder)
            .or_insert_with(|| same_person(directory, customer))
        {
            continue;
        }
        let Ok(document) = Document::parse(&customer.document) else {
            continue;
        };
        let listed = directory
            .accounts_of(&document)
            .map(|held| {
                held.iter()
                    .any(|a| a.bank == state.bank && a.account == *number)
            })
            .unwrap_or(false);
        if !listed {
            missing.push(Command::AddAccount {
                document,
                bank: state.bank,
                account: *number,
            });
        }
    }
    if !missing.is_empty() {
        tracing::info!(
            accounts = missing.len(),
            "accounts here the directory does not list yet; listing them"
        );
    }
    state.listing.push(missing);
}

/// The migration, until it has finished (see the module's doc).
async fn migrate(state: &AppState, data_dir: &Path, earlier: Option<Report>) {
    let mut report = earlier.unwrap_or_else(|| Report {
        started_at: crate::routes::rfc3339(store::wall_ms()),
        ..Report::default()
    });
    *state.listing.report.lock().expect("report lock") = Some(report.clone());
    let mut waiting_said = false;
    loop {
        match load(state, data_dir, &mut report).await {
            Ok(()) => break,
            Err(error) => {
                if !waiting_said {
                    tracing::warn!(%error, "the directory migration waits for the directory");
                    waiting_said = true;
                }
                tokio::time::sleep(RETRY_EVERY).await;
            }
        }
    }
    report.finished = true;
    report.finished_at = Some(crate::routes::rfc3339(store::wall_ms()));
    // Finished only once on disk: until then, a restart loads again (all `Unchanged`).
    for _ in 0..REPORT_WRITES_MAX {
        if save(state, data_dir, &report).is_ok() {
            break;
        }
        tokio::time::sleep(RETRY_EVERY).await;
    }
    tracing::info!(
        customers = report.customers,
        accounts = report.accounts,
        pix_keys = report.pix_keys,
        conflicts = report.conflicts.len(),
        "the ledger is loaded into the consortium's directory"
    );
}

/// Writes the report and shows it to the audit.
fn save(state: &AppState, data_dir: &Path, report: &Report) -> Result<(), String> {
    *state.listing.report.lock().expect("report lock") = Some(report.clone());
    write_report(data_dir, report).map_err(|error| {
        tracing::error!(%error, "cannot write the directory migration's report");
        format!("cannot write the directory migration's report: {error}")
    })
}

/// Records a conflict once in the report (in memory: the caller saves it before it changes
/// anything here, and at the end of each pass; one lost with a crash is found again), and in the
/// log and the security trail once per process.
fn conflict(state: &AppState, report: &mut Report, record: ConflictRecord) {
    if !report.conflicts.iter().any(|c| c.same(&record)) {
        report.conflicts.push(record.clone());
        *state.listing.report.lock().expect("report lock") = Some(report.clone());
    }
    {
        let mut told = state.listing.told.lock().expect("told lock");
        if told.iter().any(|c| c.same(&record)) {
            return;
        }
        told.push(record.clone());
    }
    tracing::warn!(
        kind = %record.kind,
        username = %record.username,
        item = ?record.item,
        code = %record.code,
        action = %record.action,
        "directory migration: a conflict with the consortium's directory"
    );
    let masked = Document::parse(&record.document)
        .map(|d| d.masked())
        .unwrap_or_default();
    state.trail.record(
        "directory_migration_conflict",
        None,
        Some(&record.username),
        &format!(
            "{} {masked}{} {}: {}",
            record.kind,
            record
                .item
                .as_deref()
                .map(|i| format!(" {i}"))
                .unwrap_or_default(),
            record.code,
            record.action
        ),
    );
}

/// One pass over the ledger; an error when the directory could not answer (the pass is run
/// again, from the start: what it already loaded answers `Unchanged`).
async fn load(state: &AppState, data_dir: &Path, report: &mut Report) -> Result<(), String> {
    let directory = &state.interbank.directory;
    let DirectoryListing {
        customers,
        holdings,
        pix_keys,
    } = state
        .store
        .directory_listing()
        .await
        .map_err(|e| e.to_string())?;
    if customers.is_empty() {
        return Ok(());
    }
    // What this bank's copy already holds is skipped; it must first have what the log has.
    crate::directory::leader_elected(std::slice::from_ref(directory), RETRY_EVERY).await;
    let (mut loaded_customers, mut loaded_accounts, mut loaded_keys) = (0, 0, 0);
    let mut loaded: HashSet<CustomerId> = HashSet::new();
    let by_id: HashMap<CustomerId, &ListedCustomer> = customers.iter().map(|c| (c.id, c)).collect();
    let failed = |error: DirectoryError| error.to_string();
    for customer in &customers {
        let Ok(document) = Document::parse(&customer.document) else {
            continue;
        };
        if customer.home_bank != state.bank.as_str() {
            // Taken in from the directory at a login here: their home bank loads them.
            if same_person(directory, customer) {
                loaded.insert(customer.id);
            }
            continue;
        }
        if same_person(directory, customer) {
            loaded.insert(customer.id);
            loaded_customers += 1;
            continue;
        }
        let command = Command::RegisterCustomer {
            document: document.clone(),
            name: customer.name.clone(),
            username: customer.username.clone(),
            password_hash: customer.password_hash.clone(),
            home_bank: state.bank,
        };
        match directory.write(command).await {
            Ok(_) => {
                loaded.insert(customer.id);
                loaded_customers += 1;
            }
            Err(DirectoryError::Conflict(refused)) => {
                let record = ConflictRecord {
                    kind: "customer".to_owned(),
                    username: customer.username.clone(),
                    document: customer.document.clone(),
                    item: None,
                    code: refused.code().to_owned(),
                    action: "not loaded, nor their accounts and keys: they cannot log in until the operator settles it".to_owned(),
                };
                conflict(state, report, record);
            }
            Err(DirectoryError::Invalid(field)) => {
                let record = ConflictRecord {
                    kind: "customer".to_owned(),
                    username: customer.username.clone(),
                    document: customer.document.clone(),
                    item: None,
                    code: "invalid_request".to_owned(),
                    action: format!("not loaded: `{field}` is too long for the directory"),
                };
                conflict(state, report, record);
            }
            Err(error) => return Err(failed(error)),
        }
    }
    save(state, data_dir, report)?;
    crate::interbank::fault::hit(crate::interbank::fault::Point::MigrationCustomersLoaded);
    for (holder, number) in &holdings {
        let Some(customer) = by_id.get(holder).filter(|_| loaded.contains(holder)) else {
            continue;
        };
        let Ok(document) = Document::parse(&customer.document) else {
            continue;
        };
        if directory
            .accounts_of(&document)
            .map_err(failed)?
            .iter()
            .any(|a| a.bank == state.bank && a.account == *number)
        {
            loaded_accounts += 1;
            continue;
        }
        let command = Command::AddAccount {
            document,
            bank: state.bank,
            account: *number,
        };
        match directory.write(command).await {
            Ok(_) => loaded_accounts += 1,
            Err(DirectoryError::Conflict(refused)) => {
                let record = ConflictRecord {
                    kind: "account".to_owned(),
                    username: customer.username.clone(),
                    document: customer.document.clone(),
                    item: Some(number.to_string()),
                    code: refused.code().to_owned(),
                    action: "not listed: usable only at this bank".to_owned(),
                };
                conflict(state, report, record);
            }
            Err(error) => return Err(failed(error)),
        }
    }
    for listed in &pix_keys {
        let Some(key) = PixKeyType::parse(&listed.key_type)
            .and_then(|kind| PixKey::parse_typed(kind, &listed.key).ok())
        else {
            continue;
        };
        let Some(owner) = by_id.get(&listed.owner) else {
            continue;
        };
        let item = Some(format!("{}:{}", key.key_type().as_str(), key.as_str()));
        let Ok(document) = Document::parse(&owner.document) else {
            continue;
        };
        if !loaded.contains(&listed.owner) {
            let record = ConflictRecord {
                kind: "pix_key".to_owned(),
                username: owner.username.clone(),
                document: owner.document.clone(),
                item,
                code: "holder_not_loaded".to_owned(),
                action: "kept here but not in the directory (not payable) until its holder's conflict is settled".to_owned(),
            };
            conflict(state, report, record);
            continue;
        }
        let entry = directory::PixEntry {
            key: key.clone(),
            bank: state.bank,
            account: listed.account,
            holder_name: owner.name.clone(),
            document: document.clone(),
        };
        if directory.pix_key(&key).map_err(failed)?.as_ref() == Some(&entry) {
            loaded_keys += 1;
            continue;
        }
        let command = Command::AddPixKey {
            key: key.clone(),
            bank: state.bank,
            account: listed.account,
            holder_name: owner.name.clone(),
            document,
        };
        match directory.write(command).await {
            Ok(_) => {
                // Its holder may have removed it since the ledger was read (the bank serves
                // meanwhile): then it leaves the directory again.
                if state
                    .store
                    .pix_key(&key)
                    .await
                    .map_err(|e| e.to_string())?
                    .is_none()
                {
                    let release = Command::RemovePixKey {
                        key: key.clone(),
                        bank: state.bank,
                    };
                    directory.write(release).await.map_err(failed)?;
                    continue;
                }
                loaded_keys += 1;
            }
            Err(DirectoryError::Conflict(refused)) => {
                let removed = refused == Conflict::DuplicatePixKey;
                let record = ConflictRecord {
                    kind: "pix_key".to_owned(),
                    username: owner.username.clone(),
                    document: owner.document.clone(),
                    item,
                    code: refused.code().to_owned(),
                    action: if removed {
                        "removed here: the directory gives it to another holder, who is paid through it at every bank".to_owned()
                    } else {
                        "kept here but not in the directory (not payable)".to_owned()
                    },
                };
                conflict(state, report, record);
                if removed {
                    // On disk first: the key leaves the ledger only once its record is kept.
                    save(state, data_dir, report)?;
                    remove_here(state, listed.owner, key).await?;
                }
            }
            Err(error) => return Err(failed(error)),
        }
    }
    report.customers = loaded_customers;
    report.accounts = loaded_accounts;
    report.pix_keys = loaded_keys;
    save(state, data_dir, report)
}

/// Deletes a key the directory gives to someone else from this bank's copy, as its holder would.
async fn remove_here(state: &AppState, owner: CustomerId, key: PixKey) -> Result<(), String> {
    let command = store::Command::DeletePixKey { actor: owner, key };
    state
        .execute(
            owner,
            &axum::http::HeaderMap::new(),
            &crate::extract::Fingerprint::of_text(""),
            command,
        )
        .await
        .map(drop)
        .map_err(|e| format!("removing a conflicting Pix key here: {}", e.code))
}
