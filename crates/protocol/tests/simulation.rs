//! A seeded simulation of three to five banks running the protocol over a network that drops,
//! duplicates, delays and reorders messages, while banks crash at any step (between any two
//! effects) and restart from what they had made durable. After the faults stop, every
//! transaction must end, the same way at every bank, with no hold left, money conserved and
//! settlement positions mirrored (DESIGN §3, invariants 1–4).
//!
//! `PROTOCOL_SEED=n` replays one seed; `PROTOCOL_SEEDS=n` sets how many run (default 2000).

use ledger::rules::{self, Counters, HoldState, Side};
use ledger::{AccountNumber, Amount, BankCode, EndToEndId, Hlc, Stamp};
use protocol::*;
use std::collections::{BTreeMap, BTreeSet, VecDeque};

type Part = Vec<Leg>;

const ACCOUNTS_PER_BANK: u64 = 3;
const OPENING_CENTS: i64 = 10_000;
const FAULTS_UNTIL_MS: u64 = 15_000;
const QUIET_LIMIT_MS: u64 = 200_000;
const TICK_MS: u64 = 100;

/// splitmix64: small, fast, and the same on every machine.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn chance(&mut self, per_thousand: u64) -> bool {
        self.below(1000) < per_thousand
    }
}

/// What a bank keeps on disk: it survives crashes.
#[derive(Default)]
struct Disk {
    accounts: BTreeMap<Endpoint, Counters>,
    holds: BTreeMap<TxnId, Vec<(Endpoint, Endpoint, Amount, HoldState)>>,
    /// Participant records: coordinator, vote, and the outcome once finished.
    votes: BTreeMap<TxnId, (BankCode, bool, Option<bool>)>,
    /// Coordinator records: decision, participants, completed.
    decisions: BTreeMap<TxnId, (bool, Vec<BankCode>, bool)>,
    last_stamp: Stamp,
}

enum Prepared {
    Voted(bool, Option<String>),
    AlreadyFinished,
}

impl Disk {
    fn guarded(endpoint: &Endpoint) -> bool {
        matches!(endpoint, Endpoint::Account(_))
    }

    /// Holds every leg or none, and records the vote in the same step.
    fn prepare(&mut self, txn: &TxnId, coordinator: BankCode, part: &Part) -> Prepared {
        if let Some((_, yes, finished)) = self.votes.get(txn) {
            return if finished.is_some() {
                Prepared::AlreadyFinished
            } else {
                Prepared::Voted(*yes, None)
            };
        }
        let mut trial = self.accounts.clone();
        let mut holds = Vec::new();
        for leg in part {
            let mut debit = trial
                .get(&leg.from)
                .copied()
                .expect("legs name known endpoints");
            let mut credit = trial
                .get(&leg.to)
                .copied()
                .expect("legs name known endpoints");
            let result = rules::hold(
                Side {
                    counters: &mut debit,
                    guarded: Self::guarded(&leg.from),
                },
                Side {
                    counters: &mut credit,
                    guarded: Self::guarded(&leg.to),
                },
                leg.amount,
                leg.from == leg.to,
            );
            if let Err(rejection) = result {
                self.votes.insert(txn.clone(), (coordinator, false, None));
                return Prepared::Voted(false, Some(rejection.code().to_string()));
            }
            trial.insert(leg.from.clone(), debit);
            trial.insert(leg.to.clone(), credit);
            holds.push((
                leg.from.clone(),
                leg.to.clone(),
                leg.amount,
                HoldState::Pending,
            ));
        }
        self.accounts = trial;
        self.holds.insert(txn.clone(), holds);
        self.votes.insert(txn.clone(), (coordinator, true, None));
        Prepared::Voted(true, None)
    }

    fn finish(&mut self, txn: &TxnId, commit: bool) {
        match self.votes.get(txn).copied() {
            Some((_, _, Some(done))) => assert_eq!(done, commit, "{txn}: finished both ways"),
            Some((coordinator, yes, None)) => {
                assert!(
                    yes || !commit,
                    "{txn}: committed although this bank voted no"
                );
                for (from, to, amount, state) in self.holds.get_mut(txn).into_iter().flatten() {
                    let mut debit = self.accounts[from];
                    let mut credit = self.accounts[to];
                    let resolved = if commit {
                        rules::post_hold(state, &mut debit, &mut credit, *amount)
                    } else {
                        rules::void_hold(state, &mut debit, &mut credit, *amount)
                    };
                    resolved.expect("a hold resolves exactly once");
                    self.accounts.insert(from.clone(), debit);
                    self.accounts.insert(to.clone(), credit);
                }
                self.votes
                    .insert(txn.clone(), (coordinator, yes, Some(commit)));
            }
            None => {
                assert!(!commit, "{txn}: commit reached a bank that never voted");
                let me = BankCode::parse("00000000").unwrap();
                self.votes.insert(txn.clone(), (me, false, Some(false)));
            }
        }
    }

    /// Keeps the first decision recorded for a transaction and returns it.
    fn record_decision(&mut self, txn: &TxnId, commit: bool, participants: Vec<BankCode>) -> bool {
        self.decisions
            .entry(txn.clone())
            .or_insert((commit, participants, false))
            .0
    }
}

struct Bank {
    code: BankCode,
    up_at: Option<u64>,
    coordinator: Coordinator<Part>,
    participant: Participant<Part>,
    clock: Hlc,
    disk: Disk,
}

struct Packet {
    at: u64,
    seq: u64,
    from: BankCode,
    to: BankCode,
    stamp: Stamp,
    message: Message<Part>,
}

struct Sim {
    rng: Rng,
    now: u64,
    seq: u64,
    timing: Timing,
    banks: Vec<Bank>,
    net: Vec<Packet>,
    faults: bool,
    /// What each coordinator told its customer.
    told: BTreeMap<TxnId, bool>,
    begun: BTreeSet<TxnId>,
    serial: u64,
}

impl Sim {
    fn new(seed: u64) -> Sim {
        let mut rng = Rng(seed);
        let count = 3 + rng.below(3) as usize;
        let codes: Vec<BankCode> = (0..count)
            .map(|i| BankCode::parse(&format!("{}000000{}", i + 1, i + 1)).unwrap())
            .collect();
        let timing = Timing {
            vote_timeout_ms: 2_000 + rng.below(3_000),
            retry_ms: 200 + rng.below(400),
            query_after_ms: 1_000 + rng.below(2_000),
        };
        let banks = codes
            .iter()
            .map(|&code| {
                let mut disk = Disk::default();
                for base in 1..=ACCOUNTS_PER_BANK {
                    disk.accounts.insert(
                        Endpoint::Account(AccountNumber::from_base(base).unwrap()),
                        Counters {
                            credits_posted: OPENING_CENTS,
                            ..Counters::default()
                        },
                    );
                }
                disk.accounts.insert(
                    Endpoint::Vault,
                    Counters {
                        debits_posted: OPENING_CENTS * ACCOUNTS_PER_BANK as i64,
                        ..Counters::default()
                    },
                );
                for &peer in codes.iter().filter(|&&p| p != code) {
                    disk.accounts
                        .insert(Endpoint::Settlement(peer), Counters::default());
                }
                Bank {
                    code,
                    up_at: Some(0),
                    coordinator: Coordinator::new(code, timing),
                    participant: Participant::new(code, timing),
                    clock: Hlc::default(),
                    disk,
                }
            })
            .collect();
        Sim {
            rng,
            now: 0,
            seq: 0,
            timing,
            banks,
            net: Vec::new(),
            faults: true,
            told: BTreeMap::new(),
            begun: BTreeSet::new(),
            serial: 0,
        }
    }

    fn index(&self, code: BankCode) -> usize {
        self.banks.iter().position(|b| b.code == code).unwrap()
    }

    fn send(&mut self, from: usize, to: BankCode, message: Message<Part>) {
        let stamp = self.banks[from].clock.tick(self.now);
        let copies = if self.faults && self.rng.chance(100) {
            0
        } else if self.faults && self.rng.chance(80) {
            2
        } else {
            1
        };
        for _ in 0..copies {
            let delay = 1 + self.rng.below(if self.faults { 400 } else { 50 });
            self.seq += 1;
            self.net.push(Packet {
                at: self.now + delay,
                seq: self.seq,
                from: self.banks[from].code,
                to,
                stamp,
                message: message.clone(),
            });
        }
    }

    fn crash(&mut self, index: usize) {
        let bank = &mut self.banks[index];
        bank.up_at = None;
        // Volatile state is gone; the disk stays.
        bank.coordinator = Coordinator::new(bank.code, self.timing);
        bank.participant = Participant::new(bank.code, self.timing);
    }

    fn restart(&mut self, index: usize) {
        let now = self.now;
        let bank = &mut self.banks[index];
        bank.up_at = Some(now);
        bank.clock = Hlc::starting_after(bank.disk.last_stamp);
        for (txn, (commit, participants, completed)) in &bank.disk.decisions {
            if !completed {
                bank.coordinator
                    .restore(txn.clone(), *commit, participants.clone(), now);
            }
        }
        for (txn, (coordinator, yes, finished)) in &bank.disk.votes {
            if finished.is_none() {
                bank.participant
                    .restore(txn.clone(), *coordinator, *yes, now);
            }
        }
    }

    /// Carries out a bank's outputs in order; with faults on, the bank may crash between any two.
    fn run(&mut self, index: usize, outputs: Vec<Output<Part>>) {
        let mut queue: VecDeque<Output<Part>> = outputs.into();
        while let Some(output) = queue.pop_front() {
            if self.faults && self.rng.chance(3) {
                self.crash(index);
                return;
            }
            let now = self.now;
            match output {
                Output::Send { to, message } => self.send(index, to, message),
                Output::RecordDecision {
                    txn,
                    commit,
                    participants,
                } => {
                    let kept = self.banks[index]
                        .disk
                        .record_decision(&txn, commit, participants);
                    assert_eq!(
                        kept, commit,
                        "{txn}: a coordinator decided against its own durable decision"
                    );
                }
                Output::Decided { txn, commit, .. } => {
                    let earlier = self.told.insert(txn.clone(), commit);
                    assert!(
                        earlier.is_none_or(|e| e == commit),
                        "{txn}: the customer was told both outcomes"
                    );
                }
                Output::Completed { txn } => {
                    self.banks[index]
                        .disk
                        .decisions
                        .get_mut(&txn)
                        .expect("completed after recording")
                        .2 = true;
                }
                Output::Prepare {
                    txn,
                    coordinator,
                    part,
                } => {
                    let bank = &mut self.banks[index];
                    let more = match bank.disk.prepare(&txn, coordinator, &part) {
                        Prepared::Voted(yes, reason) => {
                            bank.participant.prepared(txn, yes, reason, now)
                        }
                        Prepared::AlreadyFinished => bank.participant.finished(txn),
                    };
                    queue.extend(more);
                }
                Output::Finish { txn, commit } => {
                    let bank = &mut self.banks[index];
                    bank.disk.finish(&txn, commit);
                    queue.extend(bank.participant.finished(txn));
                }
            }
        }
        let bank = &mut self.banks[index];
        bank.disk.last_stamp = bank.clock.last();
    }

    fn deliver(&mut self, packet: Packet) {
        let index = self.index(packet.to);
        if self.banks[index].up_at.is_none() {
            return;
        }
        let now = self.now;
        let bank = &mut self.banks[index];
        let seen = bank
            .clock
            .observe(packet.stamp, now, 30_000)
            .expect("the simulated banks share one wall clock");
        assert!(
            seen > packet.stamp,
            "the receiver's clock moves past the sender's"
        );
        let outputs = match &packet.message {
            Message::Prepare { .. } | Message::Decide { .. } => {
                bank.participant
                    .on_message(packet.from, packet.message, now)
            }
            _ => {
                let txn = packet.message.txn().clone();
                if let Some((commit, _, _)) = bank
                    .disk
                    .decisions
                    .get(&txn)
                    .filter(|_| !bank.coordinator.knows(&txn))
                {
                    bank.coordinator
                        .restore(txn, *commit, vec![packet.from], now);
                }
                bank.coordinator
                    .on_message(packet.from, packet.message, now)
            }
        };
        self.run(index, outputs);
    }

    fn begin(&mut self) {
        let index = self.rng.below(self.banks.len() as u64) as usize;
        if self.banks[index].up_at.is_none() {
            return;
        }
        let codes: Vec<BankCode> = self.banks.iter().map(|b| b.code).collect();
        let mut movements = Vec::new();
        for _ in 0..1 + self.rng.below(3) {
            let account = |rng: &mut Rng| {
                Endpoint::Account(
                    AccountNumber::from_base(1 + rng.below(ACCOUNTS_PER_BANK)).unwrap(),
                )
            };
            let from_bank = if self.rng.chance(700) {
                codes[index]
            } else {
                codes[self.rng.below(codes.len() as u64) as usize]
            };
            let to_bank = codes[self.rng.below(codes.len() as u64) as usize];
            let (from, to) = (account(&mut self.rng), account(&mut self.rng));
            if from_bank == to_bank && from == to {
                continue;
            }
            let amount = Amount::from_cents(1 + self.rng.below(6_000) as i64).unwrap();
            movements.push(Movement {
                from: (from_bank, from),
                to: (to_bank, to),
                amount,
                memo: Memo::default(),
            });
        }
        if movements.is_empty() {
            return;
        }
        self.serial += 1;
        let (mut random, mut rest) = ([0u8; 11], self.serial);
        for byte in random.iter_mut().rev() {
            *byte = (rest % 36) as u8;
            rest /= 36;
        }
        let txn = EndToEndId::new(codes[index], "202611230000", random);
        self.begun.insert(txn.clone());
        let now = self.now;
        let outputs = self.banks[index]
            .coordinator
            .begin(txn, plan(codes[index], &movements), now);
        self.run(index, outputs);
    }

    fn quiet(&self) -> bool {
        self.net.is_empty()
            && self.banks.iter().all(|b| {
                b.up_at.is_some() && b.coordinator.open() == 0 && b.participant.open() == 0
            })
    }

    fn step(&mut self) {
        let next_tick = (self.now / TICK_MS + 1) * TICK_MS;
        let next_packet = self.net.iter().map(|p| (p.at, p.seq)).min();
        match next_packet {
            Some((at, seq)) if at <= next_tick => {
                self.now = at;
                let position = self.net.iter().position(|p| p.seq == seq).unwrap();
                let packet = self.net.swap_remove(position);
                self.deliver(packet);
            }
            _ => {
                self.now = next_tick;
                for index in 0..self.banks.len() {
                    match self.banks[index].up_at {
                        None if !self.faults || self.rng.chance(150) => self.restart(index),
                        None => {}
                        Some(_) => {
                            if self.faults && self.rng.chance(4) {
                                self.crash(index);
                                continue;
                            }
                            let now = self.now;
                            let bank = &mut self.banks[index];
                            let mut outputs = bank.coordinator.tick(now);
                            outputs.extend(bank.participant.tick(now));
                            self.run(index, outputs);
                        }
                    }
                }
                if self.faults && self.rng.chance(300) {
                    self.begin();
                }
            }
        }
    }

    fn check(&self, seed: u64) {
        let mut customers = 0i64;
        for bank in &self.banks {
            let (mut debits, mut credits, mut pending) = (0i64, 0i64, 0i64);
            for (endpoint, counters) in &bank.disk.accounts {
                debits += counters.debits_posted;
                credits += counters.credits_posted;
                pending += counters.debits_pending + counters.credits_pending;
                if let Endpoint::Account(_) = endpoint {
                    assert!(
                        counters.available() >= 0,
                        "seed {seed}: a customer went below zero"
                    );
                    customers += counters.balance();
                }
            }
            assert_eq!(
                debits, credits,
                "seed {seed}: bank {} is out of balance",
                bank.code
            );
            assert_eq!(
                pending, 0,
                "seed {seed}: bank {} still holds money",
                bank.code
            );
            for other in &self.banks {
                if other.code != bank.code {
                    let mine = bank.disk.accounts[&Endpoint::Settlement(other.code)];
                    let theirs = other.disk.accounts[&Endpoint::Settlement(bank.code)];
                    assert_eq!(
                        mine.debits_posted - mine.credits_posted,
                        -(theirs.debits_posted - theirs.credits_posted),
                        "seed {seed}: settlement {} / {}",
                        bank.code,
                        other.code
                    );
                }
            }
        }
        assert_eq!(
            customers,
            OPENING_CENTS * ACCOUNTS_PER_BANK as i64 * self.banks.len() as i64,
            "seed {seed}: money was created or lost"
        );
        for txn in &self.begun {
            let outcomes: BTreeSet<bool> = self
                .banks
                .iter()
                .filter_map(|b| b.disk.votes.get(txn))
                .filter_map(|(_, _, done)| *done)
                .collect();
            assert!(
                outcomes.len() <= 1,
                "seed {seed}: {txn} committed at one bank and aborted at another"
            );
            let unfinished = self
                .banks
                .iter()
                .filter_map(|b| b.disk.votes.get(txn))
                .any(|(_, _, done)| done.is_none());
            assert!(
                !unfinished,
                "seed {seed}: {txn} never finished at some bank"
            );
            let committed = outcomes.contains(&true);
            let coordinator = &self.banks[self.index(txn.bank())];
            if committed {
                assert_eq!(
                    coordinator.disk.decisions.get(txn).map(|d| d.0),
                    Some(true),
                    "seed {seed}: {txn} committed without a durable decision"
                );
            }
            if let Some(told) = self.told.get(txn) {
                assert_eq!(
                    *told, committed,
                    "seed {seed}: {txn}: the customer was told otherwise"
                );
            }
        }
    }
}

fn run_seed(seed: u64) -> (usize, usize) {
    let mut sim = Sim::new(seed);
    while sim.now < FAULTS_UNTIL_MS {
        sim.step();
    }
    sim.faults = false;
    let deadline = sim.now + QUIET_LIMIT_MS;
    while !sim.quiet() {
        assert!(
            sim.now < deadline,
            "seed {seed}: transactions still open {} ms after the faults stopped",
            QUIET_LIMIT_MS
        );
        sim.step();
    }
    sim.check(seed);
    let committed = sim.told.values().filter(|c| **c).count();
    (sim.begun.len(), committed)
}

#[test]
fn every_transaction_ends_the_same_way_everywhere() {
    let seeds: Vec<u64> = match std::env::var("PROTOCOL_SEED") {
        Ok(one) => vec![one.parse().expect("PROTOCOL_SEED is a number")],
        Err(_) => (0..std::env::var("PROTOCOL_SEEDS")
            .ok()
            .and_then(|n| n.parse().ok())
            .unwrap_or(2000))
            .collect(),
    };
    let (mut begun, mut committed) = (0, 0);
    for seed in seeds.iter().copied() {
        let result = std::panic::catch_unwind(|| run_seed(seed));
        match result {
            Ok((b, c)) => {
                begun += b;
                committed += c;
            }
            Err(panic) => {
                eprintln!(
                    "simulation failed on seed {seed}; replay it with PROTOCOL_SEED={seed} cargo test -p protocol --test simulation"
                );
                std::panic::resume_unwind(panic);
            }
        }
    }
    eprintln!(
        "{} seeds: {begun} transactions, {committed} committed",
        seeds.len()
    );
    assert!(
        committed > 0 && committed < begun,
        "the workload both commits and aborts"
    );
}
