//! The load itself: `--clients` tasks, each with one request in flight, each keeping its own
//! tally (an HDR histogram per kind of request, counts by outcome and by error code) so that
//! nothing is shared on the hot path but a few atomic counters for the progress bar and the
//! stop conditions. Tallies are merged once, at the end.

use super::setup::{Bank, random_u64};
use crate::args::{BenchArgs, Pool, Workload};
use client::{Client, ClientError, Lane};
use hdrhistogram::Histogram;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

/// Latencies are recorded in microseconds, from 1 µs to this, with 3 significant digits.
const LATENCY_US_MAX: u64 = 120_000_000;
/// How often the progress bar is redrawn and the stop conditions looked at.
const TICK: Duration = Duration::from_millis(100);
/// Transfers move R$ 0,01 to this many centavos.
const TRANSFER_CENTS_MAX: u64 = 100;

/// The kinds of request, as named in the report.
pub const INTRA: &str = "intra";
pub const INTERBANK: &str = "interbank";
pub const PACKAGE: &str = "package";
pub const BATCH: &str = "batch";

/// What the clients saw while measuring.
#[derive(Debug)]
pub struct Tally {
    /// Per kind of request: its latencies (µs).
    pub latency_us: BTreeMap<&'static str, Histogram<u64>>,
    pub committed: u64,
    /// Payments the banks answered but did not commit, by reason (e.g. insufficient_funds).
    pub aborted: BTreeMap<String, u64>,
    /// Bulk items refused as invalid, by reason.
    pub rejected: BTreeMap<String, u64>,
    /// Interbank payments still deciding when answered (202).
    pub pending: u64,
    /// Requests that failed, by problem code (`unavailable` when there was no answer).
    pub errors: BTreeMap<String, u64>,
}

impl Tally {
    fn new() -> Tally {
        Tally {
            latency_us: BTreeMap::new(),
            committed: 0,
            aborted: BTreeMap::new(),
            rejected: BTreeMap::new(),
            pending: 0,
            errors: BTreeMap::new(),
        }
    }

    fn latency(&mut self, kind: &'static str, elapsed: Duration) {
        let us = u64::try_from(elapsed.as_micros())
            .unwrap_or(u64::MAX)
            .clamp(1, LATENCY_US_MAX);
        self.latency_us
            .entry(kind)
            .or_insert_with(new_histogram)
            .record(us)
            .expect("the value is clamped into the histogram's range");
    }

    fn merge(&mut self, other: Tally) {
        for (kind, histogram) in other.latency_us {
            self.latency_us
                .entry(kind)
                .or_insert_with(new_histogram)
                .add(histogram)
                .expect("histograms of the same bounds add");
        }
        self.committed += other.committed;
        self.pending += other.pending;
        for (mine, theirs) in [
            (&mut self.aborted, other.aborted),
            (&mut self.rejected, other.rejected),
            (&mut self.errors, other.errors),
        ] {
            for (code, n) in theirs {
                *mine.entry(code).or_default() += n;
            }
        }
    }

    /// Requests made, of every kind.
    pub fn requests(&self) -> u64 {
        self.latency_us.values().map(Histogram::len).sum()
    }

    /// Every latency together.
    pub fn all_latencies(&self) -> Histogram<u64> {
        let mut all = new_histogram();
        for histogram in self.latency_us.values() {
            all.add(histogram)
                .expect("histograms of the same bounds add");
        }
        all
    }

    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }

    /// Transfers the banks decided on: committed, aborted, rejected and pending.
    pub fn transfers(&self) -> u64 {
        self.committed
            + self.pending
            + self.aborted.values().sum::<u64>()
            + self.rejected.values().sum::<u64>()
    }
}

fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, LATENCY_US_MAX, 3).expect("valid histogram bounds")
}

/// The measured part of a run.
pub struct Measured {
    pub tally: Tally,
    pub elapsed: Duration,
}

/// Shared by the clients: when to measure and when to stop.
struct Control {
    measuring: AtomicBool,
    stop: AtomicBool,
    /// Measured operations started, for --count.
    issued: AtomicU64,
    count: Option<u64>,
    /// Measured requests and transfers finished, for the progress bar.
    done_requests: AtomicU64,
    done_transfers: AtomicU64,
}

/// A small fast generator (xorshift64*); each client has its own.
struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn amount(&mut self) -> String {
        let cents = 1 + self.next() % TRANSFER_CENTS_MAX;
        format!("{}.{:02}", cents / 100, cents % 100)
    }
}

/// How a bench client reaches its bank (`--pool`).
enum Http {
    Lane(Lane),
    Pooled(Client),
}

impl Http {
    /// `POST /api/v1/{path}`: the answer's value, or the error.
    async fn post<T: DeserializeOwned>(
        &mut self,
        path: &str,
        body: &impl Serialize,
    ) -> Result<T, ClientError> {
        match self {
            Http::Lane(lane) => lane.post(path, body).await,
            Http::Pooled(client) => {
                let segments: Vec<&str> = path.split('/').collect();
                client
                    .post_to(&segments, body)
                    .await
                    .map(|reply| reply.value)
            }
        }
    }
}

/// What one client works with: its bank, its customer's session, and every bank's accounts.
struct Worker {
    workload: Workload,
    batch_size: usize,
    bank: usize,
    http: Http,
    from: Vec<wire::AccountRef>,
    banks: Arc<Vec<Vec<wire::AccountRef>>>,
    random: Random,
}

pub async fn run(args: &BenchArgs, banks: &[Bank], show_progress: bool) -> Measured {
    let control = Arc::new(Control {
        measuring: AtomicBool::new(false),
        stop: AtomicBool::new(false),
        issued: AtomicU64::new(0),
        count: args.count,
        done_requests: AtomicU64::new(0),
        done_transfers: AtomicU64::new(0),
    });
    let destinations: Arc<Vec<Vec<wire::AccountRef>>> =
        Arc::new(banks.iter().map(|b| b.accounts.clone()).collect());
    let shared: Vec<Client> = banks
        .iter()
        .map(|b| Client::with_trust(&b.url, &b.trust).expect("the URL worked during set-up"))
        .collect();
    let mut workers = tokio::task::JoinSet::new();
    for i in 0..args.clients as usize {
        let bank = i % banks.len();
        let customer = &banks[bank].customers[(i / banks.len()) % banks[bank].customers.len()];
        let client = match args.pool {
            Pool::Shared | Pool::Lane => shared[bank].clone(),
            Pool::PerClient => Client::with_trust(&banks[bank].url, &banks[bank].trust)
                .expect("the URL worked during set-up"),
        }
        .with_token(customer.token.clone());
        let http = match args.pool {
            Pool::Lane => Http::Lane(Lane::new(&client).expect("the URL worked during set-up")),
            Pool::Shared | Pool::PerClient => Http::Pooled(client),
        };
        let worker = Worker {
            workload: args.workload,
            batch_size: args.batch_size as usize,
            bank,
            http,
            from: customer.accounts.clone(),
            banks: Arc::clone(&destinations),
            random: Random(random_u64() | 1),
        };
        workers.spawn(worker.run(Arc::clone(&control)));
    }

    tokio::time::sleep(args.warmup).await;
    control.measuring.store(true, Relaxed);
    let started = Instant::now();
    let progress = progress_bar(args, show_progress);
    loop {
        tokio::time::sleep(TICK).await;
        let elapsed = started.elapsed();
        let requests = control.done_requests.load(Relaxed);
        let transfers = control.done_transfers.load(Relaxed);
        match args.count {
            Some(_) => progress.set_position(requests),
            None => progress.set_position(elapsed.as_millis() as u64),
        }
        progress.set_message(format!(
            "{transfers} transfers, {:.0}/s",
            transfers as f64 / elapsed.as_secs_f64()
        ));
        let count_reached = args
            .count
            .is_some_and(|count| control.issued.load(Relaxed) >= count);
        if elapsed >= args.duration || count_reached {
            break;
        }
    }
    control.stop.store(true, Relaxed);
    let mut tally = Tally::new();
    while let Some(joined) = workers.join_next().await {
        tally.merge(joined.expect("a bench client does not panic"));
    }
    let elapsed = started.elapsed();
    progress.finish_and_clear();
    Measured { tally, elapsed }
}

fn progress_bar(args: &BenchArgs, show: bool) -> indicatif::ProgressBar {
    if !show {
        return indicatif::ProgressBar::hidden();
    }
    let (length, template) = match args.count {
        Some(count) => (count, "{bar:40} {pos}/{len} requests  {msg}"),
        None => (
            args.duration.as_millis() as u64,
            "{bar:40} {elapsed}/{duration}  {msg}",
        ),
    };
    let bar = indicatif::ProgressBar::new(length);
    if let Ok(style) = indicatif::ProgressStyle::with_template(template) {
        bar.set_style(style);
    }
    bar
}

impl Worker {
    async fn run(mut self, control: Arc<Control>) -> Tally {
        let mut tally = Tally::new();
        while !control.stop.load(Relaxed) {
            let measuring = control.measuring.load(Relaxed);
            if measuring
                && let Some(count) = control.count
                && control.issued.fetch_add(1, Relaxed) >= count
            {
                break;
            }
            let mut scratch = Tally::new();
            let target = if measuring { &mut tally } else { &mut scratch };
            let before = target.transfers();
            let started = Instant::now();
            let kind = self.one(target).await;
            target.latency(kind, started.elapsed());
            if measuring {
                let transfers = tally.transfers() - before;
                control.done_requests.fetch_add(1, Relaxed);
                control.done_transfers.fetch_add(transfers, Relaxed);
            }
        }
        tally
    }

    /// One request of the workload; answers its kind, with its outcome counted in `tally`.
    async fn one(&mut self, tally: &mut Tally) -> &'static str {
        let kind = match self.workload {
            Workload::Intra => INTRA,
            Workload::Interbank => INTERBANK,
            Workload::Bulk => BATCH,
            Workload::Mixed => match self.random.below(100) {
                0..80 => INTRA,
                80..95 if self.banks.len() > 1 => INTERBANK,
                80..95 => INTRA,
                _ => PACKAGE,
            },
        };
        match kind {
            INTRA | INTERBANK => {
                let from = self.pick_from();
                let body = wire::TransferRequest {
                    to: self.pick_to(kind == INTERBANK, &from),
                    from,
                    amount: self.random.amount(),
                    description: None,
                };
                match self.http.post::<wire::Transfer>("transfers", &body).await {
                    Ok(transfer) => count_status(tally, &transfer.status, transfer.reason, 1),
                    Err(error) => count_error(tally, &error),
                }
            }
            PACKAGE => {
                let from = self.pick_from();
                let operations = [false, self.banks.len() > 1]
                    .into_iter()
                    .map(|elsewhere| wire::OperationRequest {
                        kind: "transfer".into(),
                        account: from.clone(),
                        amount: self.random.amount(),
                        to: Some(self.pick_to(elsewhere, &from)),
                        description: None,
                    })
                    .collect();
                let body = wire::PackageRequest { operations };
                match self.http.post::<wire::Package>("packages", &body).await {
                    Ok(package) => count_status(tally, &package.status, None, 2),
                    Err(error) => count_error(tally, &error),
                }
            }
            _ => {
                let transfers = (0..self.batch_size)
                    .map(|i| {
                        let from = self.pick_from();
                        wire::BatchTransfer {
                            id: i.to_string(),
                            to: self.pick_to(false, &from),
                            from,
                            amount: self.random.amount(),
                            description: None,
                        }
                    })
                    .collect();
                let body = wire::BatchRequest { transfers };
                match self
                    .http
                    .post::<wire::BatchResponse>("transfers/batch", &body)
                    .await
                {
                    Ok(answer) => {
                        for result in answer.results {
                            count_status(tally, &result.status, result.reason, 1);
                        }
                    }
                    Err(error) => count_error(tally, &error),
                }
            }
        }
        kind
    }

    fn pick_from(&mut self) -> wire::AccountRef {
        self.from[self.random.below(self.from.len())].clone()
    }

    /// A random account: at this client's bank but not `from`, or at another bank.
    fn pick_to(&mut self, elsewhere: bool, from: &wire::AccountRef) -> wire::Destination {
        let bank = if elsewhere {
            (self.bank + 1 + self.random.below(self.banks.len() - 1)) % self.banks.len()
        } else {
            self.bank
        };
        let accounts = &self.banks[bank];
        let to = loop {
            let to = &accounts[self.random.below(accounts.len())];
            if to.number != from.number || to.bank != from.bank {
                break to;
            }
        };
        wire::Destination {
            pix_key: None,
            bank: Some(to.bank.clone()),
            number: Some(to.number.clone()),
        }
    }
}

/// A payment's answer: `committed`, `pending`, `rejected` (bulk) or `aborted`, for `transfers`
/// transfers.
fn count_status(tally: &mut Tally, status: &str, reason: Option<String>, transfers: u64) {
    let reason = || reason.unwrap_or_else(|| "unknown".into());
    match status {
        "committed" => tally.committed += transfers,
        "pending" => tally.pending += transfers,
        "rejected" => *tally.rejected.entry(reason()).or_default() += transfers,
        _ => *tally.aborted.entry(reason()).or_default() += transfers,
    }
}

fn count_error(tally: &mut Tally, error: &ClientError) {
    let code = match error {
        ClientError::Problem { problem, .. } => problem.code.clone(),
        ClientError::Unavailable { .. } => "unavailable".into(),
        ClientError::Unexpected { status, .. } => format!("unexpected_{status}"),
        ClientError::InvalidUrl { .. } => "invalid_url".into(),
    };
    *tally.errors.entry(code).or_default() += 1;
}
