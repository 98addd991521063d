//! The one task that owns this bank's protocol state machines, and the effects it starts.
//!
//! Ordering rule (from `protocol::Output`): within one list of outputs, every durable write is
//! finished before any later message is sent. Lists whose effects need the store run in their own
//! task, so many transactions' writes meet in the store's group commit.

use super::decisions::Decider;
use super::fault::{self, Point};
use super::peers::{PeerLink, Status};
use super::{Decided, Part};
use ledger::BankCode;
use protocol::{Coordinator, Endpoint, LegRefusal, Message, Output, Participant, Timing, TxnId};
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;
use store::{Command, Executed, Outcome, Request, Store, StoreError, wall_ms};
use tokio::sync::{mpsc, oneshot, watch};

/// How often time is fed to the state machines (retries, timeouts, queries).
const TICK: Duration = Duration::from_millis(100);

#[allow(clippy::large_enum_variant)] // Events pass through a channel; boxing buys nothing.
pub enum Event {
    /// A customer's payment this bank coordinates. With `caller_prepares`, the caller carries
    /// out this bank's own prepare (in the write that records the payment) and reports it as
    /// `Prepared`; the other banks are asked at once.
    Begin {
        txn: TxnId,
        parts: BTreeMap<BankCode, Part>,
        done: oneshot::Sender<Decided>,
        caller_prepares: bool,
    },
    /// A message from a bank (this one included).
    Inbound {
        from: BankCode,
        message: Message<Part>,
    },
    /// The participant's prepare is durable (or was refused, or had finished before).
    Prepared {
        txn: TxnId,
        yes: bool,
        reason: Option<String>,
        finished_before: bool,
    },
    /// The participant's commit or abort is durable.
    Finished { txn: TxnId },
    /// A bank asks about a transaction that neither memory nor the store has a decision for.
    QueryUnknown { from: BankCode, txn: TxnId },
    /// Coordinator: the log, then the store, hold the decision that stands for `txn`;
    /// `overruled` when it is not the one this bank proposed (a participant forced an abort
    /// first).
    Recorded {
        txn: TxnId,
        commit: bool,
        participants: Vec<BankCode>,
        overruled: bool,
    },
    /// Coordinator, after a restart: a payment it began but never decided is now decided in the
    /// log and the store.
    Restored {
        txn: TxnId,
        commit: bool,
        participants: Vec<BankCode>,
    },
    /// Participant: what the log says of a transaction in doubt (`None`: nothing yet).
    FromLog {
        txn: TxnId,
        coordinator: BankCode,
        commit: Option<bool>,
    },
    /// This process has just taken the bank's duties (`crate::duties`) from another process of
    /// the bank: finish what the store says is unfinished and this engine does not hold.
    TakeOver,
}

pub struct Engine {
    me: BankCode,
    coordinator: Coordinator<Part>,
    participant: Participant<Part>,
    waiters: HashMap<TxnId, oneshot::Sender<Decided>>,
    /// Transactions every participant acknowledged, marked complete in the store together at the
    /// next tick (one write for many; a crash before it only makes the decisions be resent).
    completed: Vec<TxnId>,
    /// Decisions proposed to the log and not yet recorded: nobody is told them before.
    deciding: HashSet<TxnId>,
    /// Votes in doubt whose decision is being looked up in (or forced through) the log.
    resolving: HashSet<TxnId>,
    effects: Arc<Effects>,
}

/// What effect tasks need: the store, the engine's inbox, the outboxes.
struct Effects {
    me: BankCode,
    store: Arc<dyn Store>,
    events: mpsc::Sender<Event>,
    links: BTreeMap<BankCode, Arc<PeerLink>>,
    /// Says who holds an account another bank's part touches on a customer's behalf, and
    /// which decision the log holds for a vote in doubt.
    directory: directory::Directory,
    /// Records decisions in the directory's log, batched.
    decider: Decider,
}

impl Engine {
    /// An engine holding every transaction the store says is unfinished: decisions not yet
    /// acknowledged are resent, votes without a decision ask their coordinator (or the log), and
    /// payments this bank began but never decided are aborted through the log (presumed abort; a
    /// commit the log took before the crash stands and is obeyed instead).
    ///
    /// Without the bank's duties (`holds_duties` false: another process of the bank holds them)
    /// it starts empty: the holder finishes what is open, and this engine does when it takes the
    /// duties over ([`Event::TakeOver`]).
    pub async fn recover(
        me: BankCode,
        store: Arc<dyn Store>,
        events: mpsc::Sender<Event>,
        links: BTreeMap<BankCode, Arc<PeerLink>>,
        directory: directory::Directory,
        holds_duties: bool,
    ) -> Result<Engine, String> {
        let timing = Timing::default();
        let mut engine = Engine {
            me,
            coordinator: Coordinator::new(me, timing),
            participant: Participant::new(me, timing),
            waiters: HashMap::new(),
            completed: Vec::new(),
            deciding: HashSet::new(),
            resolving: HashSet::new(),
            effects: Arc::new(Effects {
                me,
                store,
                events,
                links,
                decider: Decider::start(directory.clone()),
                directory,
            }),
        };
        if holds_duties {
            engine.finish_open_work().await?;
        }
        Ok(engine)
    }

    /// Takes in every transaction the store says is unfinished that this engine does not hold
    /// already: decisions not yet acknowledged are resent, votes without a decision ask their
    /// coordinator, and payments this bank began but never decided are aborted now.
    async fn finish_open_work(&mut self) -> Result<(), String> {
        let store = self.effects.store.clone();
        // Read before the store's open work: a transaction in the log then and not open in the
        // store after has finished (see `forget_finished`).
        let in_the_log = self.effects.directory.decided_by(&self.me);
        let coordinator = &mut self.coordinator;
        let participant = &mut self.participant;
        let open = store
            .open_interbank()
            .await
            .map_err(|e| format!("cannot read unfinished interbank work: {e}"))?;
        match in_the_log {
            Ok(in_the_log) => forget_finished(&self.effects.decider, in_the_log, &open),
            Err(error) => {
                tracing::warn!(%error, "cannot read the log's decisions; finished ones stay there");
            }
        }
        let now = wall_ms();
        let mine = |txn: &TxnId, coordinator: &Coordinator<Part>| coordinator.knows(txn);
        let mut undecided = 0;
        for (txn, participants) in open.undecided {
            if mine(&txn, coordinator) {
                continue;
            }
            // Decided through the log: a commit it took before the crash stands.
            undecided += 1;
            tokio::spawn(self.effects.clone().decide_after_restart(txn, participants));
        }
        for (txn, commit, participants) in open.decisions {
            if !mine(&txn, coordinator) {
                coordinator.restore(txn, commit, participants, now);
            }
        }
        for (txn, from, yes) in open.votes {
            // A vote this engine holds goes on where it is (a restore would reset its timers).
            if !participant.knows(&txn) {
                participant.restore(txn, from, yes, now);
            }
        }
        if coordinator.open() + participant.open() + undecided > 0 {
            tracing::info!(
                coordinating = coordinator.open(),
                undecided,
                participating = participant.open(),
                "finishing interbank transactions left open"
            );
        }
        Ok(())
    }

    pub async fn run(mut self, mut events: mpsc::Receiver<Event>, mut stop: watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                event = events.recv() => match event {
                    Some(Event::TakeOver) => {
                        if let Err(error) = self.finish_open_work().await {
                            tracing::error!(%error, "could not take over the interbank work left open");
                        }
                    }
                    Some(event) => self.handle(event),
                    None => return,
                },
                _ = tick.tick() => {
                    let now = wall_ms();
                    let mut out = self.coordinator.tick(now);
                    let asking = self.participant.tick(now);
                    self.in_doubt(&asking);
                    out.extend(asking);
                    let out = self.hold_back_undecided(out);
                    self.dispatch(out, HashSet::new());
                    self.effects.decider.collecting(self.coordinator.undecided());
                    if !self.completed.is_empty() {
                        let e2es = std::mem::take(&mut self.completed);
                        tokio::spawn(self.effects.clone().complete(e2es));
                    }
                }
                _ = stop.changed() => {
                    let e2es = std::mem::take(&mut self.completed);
                    self.effects.clone().complete(e2es).await;
                    return;
                }
            }
        }
    }

    fn handle(&mut self, event: Event) {
        let mut queue = VecDeque::from([event]);
        while let Some(event) = queue.pop_front() {
            let now = wall_ms();
            let out = match event {
                Event::Begin {
                    txn,
                    parts,
                    done,
                    caller_prepares,
                } => {
                    self.waiters.insert(txn.clone(), done);
                    let out = self.coordinator.begin(txn, parts, now);
                    if caller_prepares {
                        self.own_prepare_left_to_caller(out, now)
                    } else {
                        out
                    }
                }
                Event::Inbound { from, message } => match message {
                    // A decision comes from the bank that made the transaction's id (its
                    // coordinator): from anyone else it could record an abort here ahead of the
                    // real prepare.
                    Message::Decide { ref txn, .. } if txn.bank() != from => {
                        tracing::warn!(%txn, bank = %from, "a decision from a bank that did not make the transaction; ignored");
                        Vec::new()
                    }
                    Message::Prepare { .. } | Message::Decide { .. } => {
                        self.participant.on_message(from, message, now)
                    }
                    // Only transactions this bank made are its to answer for: a query about
                    // another bank's id must not record a presumed abort under it here.
                    Message::Query { txn } if txn.bank() != self.me => {
                        tracing::warn!(%txn, bank = %from, "a query about a transaction this bank did not make; not answered");
                        Vec::new()
                    }
                    Message::Query { txn } if !self.coordinator.knows(&txn) => {
                        tokio::spawn(self.effects.clone().answer_query(from, txn));
                        Vec::new()
                    }
                    _ => self.coordinator.on_message(from, message, now),
                },
                Event::QueryUnknown { from, txn } => {
                    self.coordinator
                        .on_message(from, Message::Query { txn }, now)
                }
                // Handled by `run`, which may wait for the store.
                Event::TakeOver => Vec::new(),
                Event::Prepared {
                    txn,
                    yes,
                    reason,
                    finished_before,
                } => {
                    if finished_before {
                        self.participant.finished(txn)
                    } else {
                        self.participant.prepared(txn, yes, reason, now)
                    }
                }
                Event::Finished { txn } => self.participant.finished(txn),
                Event::Recorded {
                    txn,
                    commit,
                    participants,
                    overruled,
                } => {
                    self.deciding.remove(&txn);
                    if overruled && !self.coordinator.overrule(&txn, commit) {
                        self.coordinator.restore(txn, commit, participants, now);
                    }
                    Vec::new()
                }
                Event::Restored {
                    txn,
                    commit,
                    participants,
                } => {
                    self.coordinator.restore(txn, commit, participants, now);
                    Vec::new()
                }
                Event::FromLog {
                    txn,
                    coordinator,
                    commit,
                } => {
                    self.resolving.remove(&txn);
                    match commit {
                        Some(commit) => self.participant.on_message(
                            coordinator,
                            Message::Decide { txn, commit },
                            now,
                        ),
                        None => Vec::new(),
                    }
                }
            };
            let out = self.hold_back_undecided(out);
            let (out, finish_here) = self.finish_own_part_with_decision(out, now);
            // Messages to this bank itself are handled at once, without a round trip — unless the
            // list makes something durable first: then they wait for it like any other message.
            // (A coordinator's own participant must not post before the decision is durable: a
            // crash in between would restart with no decision, abort, and void the other banks'
            // holds while this one had posted.)
            let durable = out.iter().any(|o| !matches!(o, Output::Send { .. }));
            let (own, out): (Vec<_>, Vec<_>) = if durable {
                (Vec::new(), out)
            } else {
                out.into_iter()
                    .partition(|o| matches!(o, Output::Send { to, .. } if *to == self.me))
            };
            self.dispatch(out, finish_here);
            for output in own {
                if let Output::Send { message, .. } = output {
                    queue.push_back(Event::Inbound {
                        from: self.me,
                        message,
                    });
                }
            }
        }
        self.effects
            .decider
            .collecting(self.coordinator.undecided());
    }

    /// A decision is told to nobody (a participant's query, a resend) until the log and the store
    /// hold it: a list that proposes one is carried out in order (record, then tell), and any
    /// other list's `Decide` for a transaction still being recorded is dropped (it is resent, or
    /// asked for again, once recorded).
    fn hold_back_undecided(&mut self, out: Vec<Output<Part>>) -> Vec<Output<Part>> {
        let recording: HashSet<TxnId> = out
            .iter()
            .filter_map(|o| match o {
                Output::RecordDecision { txn, .. } => Some(txn.clone()),
                _ => None,
            })
            .collect();
        if self.deciding.is_empty() && recording.is_empty() {
            return out;
        }
        self.deciding.extend(recording.iter().cloned());
        out.into_iter()
            .filter(|o| match o {
                Output::Send {
                    message: Message::Decide { txn, .. },
                    ..
                } => recording.contains(txn) || !self.deciding.contains(txn),
                _ => true,
            })
            .collect()
    }

    /// Votes in doubt (the participant queries their coordinator): this bank's replica of the
    /// log is read for the decision, and when the coordinator is not answering (suspect or
    /// down) an abort is proposed to the log; whatever the log holds is then obeyed
    /// (`Event::FromLog`). The query still goes to the coordinator too.
    fn in_doubt(&mut self, asking: &[Output<Part>]) {
        for output in asking {
            let Output::Send {
                to,
                message: Message::Query { txn },
            } = output
            else {
                continue;
            };
            if *to == self.me || self.resolving.contains(txn) {
                continue;
            }
            let force = self
                .effects
                .links
                .get(to)
                .is_none_or(|link| link.health().status != Status::Up);
            self.resolving.insert(txn.clone());
            tokio::spawn(
                self.effects
                    .clone()
                    .settle_in_doubt(txn.clone(), *to, force),
            );
        }
    }

    /// The prepare this bank sends itself reaches its participant now, which waits for it as
    /// for any prepare; the effect it asks for is left to the caller, who reports it durable
    /// with `Event::Prepared`.
    fn own_prepare_left_to_caller(
        &mut self,
        out: Vec<Output<Part>>,
        now: u64,
    ) -> Vec<Output<Part>> {
        let mut rest = Vec::with_capacity(out.len());
        for output in out {
            match output {
                Output::Send {
                    to,
                    message: message @ Message::Prepare { .. },
                } if to == self.me => rest.extend(
                    self.participant
                        .on_message(self.me, message, now)
                        .into_iter()
                        .filter(|o| !matches!(o, Output::Prepare { .. })),
                ),
                other => rest.push(other),
            }
        }
        rest
    }

    /// A decision this bank records and must obey itself is one durable write: the decision's own
    /// participant is told now, and the transactions whose own part it finishes are answered
    /// beside the list, for their decision's write to finish that part too
    /// (`RecordDecision { finish_here }`) instead of a second write once the first is durable.
    fn finish_own_part_with_decision(
        &mut self,
        out: Vec<Output<Part>>,
        now: u64,
    ) -> (Vec<Output<Part>>, HashSet<TxnId>) {
        let mut finish_here = HashSet::new();
        if !out
            .iter()
            .any(|o| matches!(o, Output::RecordDecision { .. }))
        {
            return (out, finish_here);
        }
        let mut merged = Vec::with_capacity(out.len());
        for output in out {
            match output {
                Output::Send {
                    to,
                    message: message @ Message::Decide { .. },
                } if to == self.me
                    && merged.iter().any(
                        |o| matches!(o, Output::RecordDecision { txn, .. } if txn == message.txn()),
                    ) =>
                {
                    // A participant that cannot finish yet (still preparing) answers nothing;
                    // the decision is resent to it like to any other bank.
                    for answer in self.participant.on_message(self.me, message, now) {
                        match answer {
                            Output::Finish { txn, .. } => {
                                finish_here.insert(txn);
                            }
                            other => merged.push(other),
                        }
                    }
                }
                other => merged.push(other),
            }
        }
        (merged, finish_here)
    }

    /// Gathers completions, sends lists of messages only, and hands a list with durable writes
    /// (and the transactions whose decision also finishes this bank's part) to its own task.
    fn dispatch(&mut self, out: Vec<Output<Part>>, finish_here: HashSet<TxnId>) {
        let mut rest = Vec::with_capacity(out.len());
        for output in out {
            match output {
                Output::Completed { txn } => self.completed.push(txn),
                other => rest.push(other),
            }
        }
        let out = rest;
        if out.is_empty() {
            return;
        }
        if out.iter().all(|o| matches!(o, Output::Send { .. })) {
            for output in out {
                if let Output::Send { to, message } = output {
                    self.effects.send(to, message);
                }
            }
            return;
        }
        let waiters = out
            .iter()
            .filter_map(|o| match o {
                Output::Decided { txn, .. } => self.waiters.remove(txn).map(|w| (txn.clone(), w)),
                _ => None,
            })
            .collect();
        tokio::spawn(self.effects.clone().carry_out(out, waiters, finish_here));
    }
}

/// Has the log forget what it still holds of transactions this bank coordinated that are no
/// longer open in the store: finished at every bank, their forget lost when the bank stopped
/// (it is sent with the next entry, not written anywhere). `in_the_log` must have been read
/// before `open`: a transaction in the log by then was begun before, so if the store no longer
/// has it open it has completed.
fn forget_finished(decider: &Decider, in_the_log: Vec<TxnId>, open: &store::OpenInterbank) {
    let open: HashSet<&TxnId> = open
        .undecided
        .iter()
        .map(|(txn, _)| txn)
        .chain(open.decisions.iter().map(|(txn, _, _)| txn))
        .collect();
    let finished: Vec<TxnId> = in_the_log
        .into_iter()
        .filter(|txn| !open.contains(txn))
        .collect();
    if !finished.is_empty() {
        tracing::info!(
            finished = finished.len(),
            "the log still holds decisions of finished transactions; forgetting them"
        );
        // The decider cuts them into entries of at most `DECISIONS_PER_ENTRY_MAX`.
        decider.forget(finished);
    }
}

impl Effects {
    fn send(&self, to: BankCode, message: Message<Part>) {
        if to == self.me {
            if self
                .events
                .try_send(Event::Inbound { from: to, message })
                .is_err()
            {
                tracing::warn!(
                    "engine inbox full; a message to this bank is dropped (it is resent)"
                );
            }
        } else if let Some(link) = self.links.get(&to) {
            link.send(message);
        } else {
            tracing::error!(bank = %to, "a message for a bank outside the consortium");
        }
    }

    /// Runs a command, waiting out a full store queue. `None` when the store is shutting down, or
    /// when the database refused the command's data (a constraint; logged): that changed
    /// nothing, and it is what another bank asked for that is at fault, not this bank's disk.
    async fn execute(&self, command: Command) -> Option<Executed> {
        match self.try_execute(command).await {
            Ok(executed) => Some(executed),
            Err(error) => {
                if let Some(error) = error {
                    tracing::warn!(%error, "the database refused an interbank write; it is not obeyed");
                }
                None
            }
        }
    }

    /// [`Effects::execute`], telling a refused write (`Err(Some(error))`, a constraint) from a
    /// store shutting down (`Err(None)`). Any other failure to write stops the node.
    async fn try_execute(&self, command: Command) -> Result<Executed, Option<StoreError>> {
        let mut backoff = Duration::from_millis(5);
        loop {
            let request = Request {
                command: command.clone(),
                idempotency: None,
            };
            match self.store.execute(request).await {
                Ok(executed) => return Ok(executed),
                Err(StoreError::Overloaded) => {
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                }
                Err(StoreError::Closed) => return Err(None),
                Err(error) if error.is_constraint() => return Err(Some(error)),
                Err(error) => {
                    // The protocol's promises rest on durable writes: stop rather than go on.
                    tracing::error!(%error, "a durable interbank write failed; stopping the bank");
                    eprintln!("bankd: a durable interbank write failed ({error}); stopping");
                    std::process::exit(70);
                }
            }
        }
    }

    /// Carries out one list in order. `finish_here`: transactions whose decision's write also
    /// finishes this bank's own part.
    async fn carry_out(
        self: Arc<Self>,
        out: Vec<Output<Part>>,
        mut waiters: Vec<(TxnId, oneshot::Sender<Decided>)>,
        finish_here: HashSet<TxnId>,
    ) {
        let reasons: HashMap<TxnId, Option<String>> = out
            .iter()
            .filter_map(|o| match o {
                Output::Decided { txn, reason, .. } => Some((txn.clone(), reason.clone())),
                _ => None,
            })
            .collect();
        // The decision that stands, when the store already held an earlier one.
        let mut stands: HashMap<TxnId, bool> = HashMap::new();
        // The customer's payment as each decision's write settled it.
        let mut settled: HashMap<TxnId, Outcome> = HashMap::new();
        for output in out {
            match output {
                Output::Send { to, mut message } => {
                    if let Message::Decide { txn, commit } = &mut message
                        && let Some(first) = stands.get(txn)
                    {
                        *commit = *first;
                    }
                    self.send(to, message);
                }
                Output::RecordDecision {
                    txn,
                    commit: proposed,
                    participants,
                } => {
                    // Final only once the log holds it: the log's first decision for the
                    // transaction is the one recorded and told (a participant in doubt may
                    // have forced an abort there first).
                    fault::hit(Point::BeforeLogDecision);
                    let Some(commit) = self.decider.decide(txn.clone(), proposed).await else {
                        return;
                    };
                    fault::hit(Point::AfterLogDecision);
                    let reason = if commit == proposed {
                        reasons.get(&txn).cloned().flatten()
                    } else {
                        tracing::warn!(%txn, commit, "the log holds another decision; it stands");
                        (!commit).then(|| protocol::reasons::TIMEOUT.to_owned())
                    };
                    let command = Command::RecordDecision {
                        e2e: txn.clone(),
                        commit,
                        participants: participants.clone(),
                        reason,
                        finish_here: finish_here.contains(&txn),
                    };
                    let Some(executed) = self.execute(command).await else {
                        return;
                    };
                    let Outcome::Decision {
                        commit: first,
                        finished_here,
                        settled: payment,
                    } = executed.outcome
                    else {
                        tracing::error!(%txn, outcome = ?executed.outcome, "unexpected outcome of a decision");
                        continue;
                    };
                    if first != commit {
                        tracing::warn!(%txn, first, "an earlier decision stands");
                    }
                    stands.insert(txn.clone(), first);
                    if let Some(payment) = payment {
                        settled.insert(txn.clone(), *payment);
                    }
                    let recorded = Event::Recorded {
                        txn: txn.clone(),
                        commit: first,
                        participants,
                        overruled: first != proposed,
                    };
                    let _ = self.events.send(recorded).await;
                    fault::hit(Point::AfterDecision);
                    if finished_here {
                        fault::hit(Point::AfterFinish);
                        let _ = self.events.send(Event::Finished { txn }).await;
                    }
                }
                Output::Decided {
                    txn,
                    commit,
                    reason,
                } => {
                    let stood = stands.get(&txn).copied().unwrap_or(commit);
                    let reason = if stood == commit {
                        reason
                    } else {
                        (!stood).then(|| protocol::reasons::TIMEOUT.to_owned())
                    };
                    let commit = stood;
                    if let Some(at) = waiters.iter().position(|(t, _)| *t == txn) {
                        let (_, waiter) = waiters.swap_remove(at);
                        let _ = waiter.send(Decided {
                            commit,
                            reason,
                            settled: settled.remove(&txn),
                        });
                    }
                }
                Output::Completed { txn } => {
                    unreachable!("{txn}: completions are gathered by the engine, not carried out")
                }
                Output::Prepare {
                    txn,
                    coordinator,
                    part,
                } => {
                    let Some(event) = self.prepare(txn, coordinator, part).await else {
                        return;
                    };
                    let _ = self.events.send(event).await;
                }
                Output::Finish { txn, commit } => {
                    let command = Command::Finish {
                        e2e: txn.clone(),
                        commit,
                    };
                    let Some(executed) = self.execute(command).await else {
                        return;
                    };
                    if let Outcome::Refused(refusal) = executed.outcome {
                        tracing::error!(%txn, %refusal, "a decision was not obeyed; it is not acknowledged");
                        continue;
                    }
                    fault::hit(Point::AfterFinish);
                    let _ = self.events.send(Event::Finished { txn }).await;
                }
            }
        }
    }

    /// A payment this bank began but never decided before it restarted: abort is proposed to the
    /// log (nobody can have committed it unless the log says so), and the decision that stands
    /// there is recorded here and resent to its participants.
    async fn decide_after_restart(self: Arc<Self>, txn: TxnId, participants: Vec<BankCode>) {
        let Some(commit) = self.decider.decide(txn.clone(), false).await else {
            return;
        };
        let command = Command::RecordDecision {
            e2e: txn.clone(),
            commit,
            participants: participants.clone(),
            reason: (!commit).then(|| "bank_restarted".to_owned()),
            finish_here: false,
        };
        let Some(executed) = self.execute(command).await else {
            return;
        };
        let commit = match executed.outcome {
            Outcome::Decision { commit, .. } => commit,
            _ => commit,
        };
        let _ = self
            .events
            .send(Event::Restored {
                txn,
                commit,
                participants,
            })
            .await;
    }

    /// A vote in doubt: the decision this bank's replica of the log holds, or, with `force`
    /// (the coordinator is not answering), the one the log holds after an abort is proposed.
    async fn settle_in_doubt(self: Arc<Self>, txn: TxnId, coordinator: BankCode, force: bool) {
        let known = match self.directory.decision(&txn) {
            Ok(known) => known,
            Err(error) => {
                tracing::warn!(%txn, %error, "cannot read the log's decisions; asking again later");
                None
            }
        };
        let commit = match known {
            Some(commit) => Some(commit),
            None if force => {
                tracing::info!(%txn, bank = %coordinator, "a vote in doubt and its coordinator silent: proposing abort to the log");
                self.decider.decide(txn.clone(), false).await
            }
            None => None,
        };
        if let Some(commit) = commit {
            tracing::info!(%txn, commit, "a vote in doubt settled from the log");
        }
        let _ = self
            .events
            .send(Event::FromLog {
                txn,
                coordinator,
                commit,
            })
            .await;
    }

    /// Marks transactions every participant acknowledged as complete.
    async fn complete(self: Arc<Self>, e2es: Vec<TxnId>) {
        if !e2es.is_empty()
            && self
                .execute(Command::CompleteDecisions { e2es: e2es.clone() })
                .await
                .is_some()
        {
            // Nobody asks the log about these again: every participant has finished.
            self.decider.forget(e2es);
        }
    }

    /// Holds the part durably and says how this bank votes. A part the database refuses (say,
    /// under an end-to-end id already used here) is a no vote like any other refusal.
    async fn prepare(&self, txn: TxnId, coordinator: BankCode, part: Part) -> Option<Event> {
        if let Some((leg, code)) = self.refusal(&txn, coordinator, &part).await {
            tracing::warn!(%txn, bank = %coordinator, leg, code, "refused a part another bank sent");
            let reason = LegRefusal {
                bank: self.me,
                leg,
                code: code.into(),
            };
            return Some(Event::Prepared {
                txn,
                yes: false,
                reason: Some(reason.to_string()),
                finished_before: false,
            });
        }
        let command = Command::Prepare {
            e2e: txn.clone(),
            coordinator,
            legs: part.legs,
            payment: part.payment,
        };
        let executed = match self.try_execute(command).await {
            Ok(executed) => executed,
            Err(None) => return None,
            Err(Some(error)) => {
                tracing::warn!(%txn, bank = %coordinator, %error, "the database refused a part; voting no");
                let reason = LegRefusal {
                    bank: self.me,
                    leg: 0,
                    code: "not_allowed".into(),
                };
                return Some(Event::Prepared {
                    txn,
                    yes: false,
                    reason: Some(reason.to_string()),
                    finished_before: false,
                });
            }
        };
        fault::hit(Point::AfterPrepare);
        Some(match executed.outcome {
            Outcome::Vote { yes, reason } => Event::Prepared {
                txn,
                yes,
                reason,
                finished_before: false,
            },
            Outcome::AlreadyFinished => Event::Prepared {
                txn,
                yes: false,
                reason: None,
                finished_before: true,
            },
            Outcome::Refused(refusal) => Event::Prepared {
                txn,
                yes: false,
                reason: Some(
                    LegRefusal {
                        bank: self.me,
                        leg: 0,
                        code: refusal.code().into(),
                    }
                    .to_string(),
                ),
                finished_before: false,
            },
            other => {
                tracing::error!(%txn, ?other, "unexpected outcome of a prepare");
                Event::Prepared {
                    txn,
                    yes: false,
                    reason: Some("internal_error".into()),
                    finished_before: false,
                }
            }
        })
    }

    /// What another bank may ask of this one: to credit a customer account out of a settlement
    /// account (a payment arriving); anything touching a customer's money otherwise (a debit, a
    /// cash deposit) only on behalf of a customer holding that account here. Parts from this
    /// bank's own coordinator were authorised when the customer asked.
    ///
    /// The only settlement account a part may touch is the one with its coordinator, the bank
    /// that signed it: a leg through the settlement account with a third bank would book money
    /// here as owed by (or to) a bank that never agreed (payments between two other banks go
    /// through the coordinator, `protocol::plan`). And the transaction's id must be one the
    /// coordinator made (its ISPB, characters 1..9): another bank's ids are not its to use.
    async fn refusal(
        &self,
        txn: &TxnId,
        coordinator: BankCode,
        part: &Part,
    ) -> Option<(usize, &'static str)> {
        if coordinator == self.me {
            return None;
        }
        if part.legs.is_empty() || txn.bank() != coordinator {
            return Some((0, "not_allowed"));
        }
        for (index, leg) in part.legs.iter().enumerate() {
            let third_bank = [&leg.from, &leg.to]
                .into_iter()
                .any(|end| matches!(end, Endpoint::Settlement(bank) if *bank != coordinator));
            if third_bank {
                return Some((index, "not_allowed"));
            }
            let holder_needed = match (&leg.from, &leg.to) {
                (Endpoint::Settlement(_), Endpoint::Account(_)) => None,
                (Endpoint::Account(number), _) | (Endpoint::Vault, Endpoint::Account(number)) => {
                    Some(*number)
                }
                _ => return Some((index, "not_allowed")),
            };
            if let Some(number) = holder_needed {
                let Some(document) = &part.on_behalf_of else {
                    return Some((index, "not_allowed"));
                };
                // The directory, not only this bank's rows, must list that person as a holder:
                // a bank cannot vouch for someone the consortium does not know as the holder.
                match crate::directory::holds(&self.directory, document, self.me, number) {
                    Ok(true) => {}
                    Ok(false) => return Some((index, "account_not_found")),
                    Err(error) => {
                        tracing::warn!(%error, "cannot read the directory; voting no");
                        return Some((index, "bank_busy"));
                    }
                }
                match self.store.held_by_document(number, document).await {
                    Ok(true) => {}
                    Ok(false) => return Some((index, "account_not_found")),
                    Err(error) => {
                        tracing::warn!(%error, "cannot check an account's holder; voting no");
                        return Some((index, "bank_busy"));
                    }
                }
            }
        }
        None
    }

    /// A bank asks about a transaction the coordinator has put away: the store's decision if it
    /// has one (told only to the banks it was recorded for), otherwise presumed abort (recorded
    /// by the coordinator before it answers).
    async fn answer_query(self: Arc<Self>, from: BankCode, txn: TxnId) {
        match self.store.decision(&txn).await {
            Ok(Some((commit, participants))) => {
                if participants.contains(&from) {
                    self.send(from, Message::Decide { txn, commit });
                } else {
                    tracing::warn!(%txn, bank = %from, "a bank asked about a transaction it is not part of; not answered");
                }
            }
            Ok(None) => {
                let _ = self.events.send(Event::QueryUnknown { from, txn }).await;
            }
            Err(error) => {
                tracing::warn!(%txn, %error, "cannot read a decision; the query will come again")
            }
        }
    }
}
