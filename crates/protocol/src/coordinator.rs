//! The coordinator's side: send prepares, collect votes, decide, make the decision durable
//! before telling anyone, resend it until every participant has acknowledged.

use crate::{Message, Output, Timing, TxnId};
use ledger::BankCode;
use std::collections::{BTreeMap, BTreeSet};

#[derive(Debug, Clone)]
struct Txn<P> {
    participants: BTreeSet<BankCode>,
    /// Each participant's part, while prepares may still need resending (empty once restored).
    parts: BTreeMap<BankCode, P>,
    votes: BTreeMap<BankCode, bool>,
    decision: Option<bool>,
    acks: BTreeSet<BankCode>,
    started_ms: u64,
    sent_ms: u64,
}

#[derive(Debug, Clone)]
pub struct Coordinator<P> {
    me: BankCode,
    timing: Timing,
    txns: BTreeMap<TxnId, Txn<P>>,
    /// How many of `txns` are still collecting votes (no decision yet).
    undecided: usize,
}

impl<P: Clone> Coordinator<P> {
    pub fn new(me: BankCode, timing: Timing) -> Coordinator<P> {
        Coordinator {
            me,
            timing,
            txns: BTreeMap::new(),
            undecided: 0,
        }
    }

    pub fn me(&self) -> BankCode {
        self.me
    }

    /// Transactions not yet completed (for metrics and tests).
    pub fn open(&self) -> usize {
        self.txns.len()
    }

    /// Transactions still collecting votes: each will produce a decision to record.
    pub fn undecided(&self) -> usize {
        self.undecided
    }

    pub fn knows(&self, txn: &TxnId) -> bool {
        self.txns.contains_key(txn)
    }

    /// Reloads a durable decision whose participants have not all acknowledged (after a restart,
    /// or when a participant asks about a transaction this coordinator had put away). The
    /// decision is resent on the next tick.
    pub fn restore(
        &mut self,
        txn: TxnId,
        commit: bool,
        unacknowledged: Vec<BankCode>,
        now_ms: u64,
    ) {
        let restored = Txn {
            participants: unacknowledged.into_iter().collect(),
            parts: BTreeMap::new(),
            votes: BTreeMap::new(),
            decision: Some(commit),
            acks: BTreeSet::new(),
            started_ms: now_ms,
            sent_ms: 0,
        };
        if let Some(replaced) = self.txns.insert(txn, restored)
            && replaced.decision.is_none()
        {
            self.undecided -= 1;
        }
    }

    /// Starts a transaction: one prepare to each participant (this bank included, if it has a
    /// part). `parts` must not be empty.
    pub fn begin(
        &mut self,
        txn: TxnId,
        parts: BTreeMap<BankCode, P>,
        now_ms: u64,
    ) -> Vec<Output<P>> {
        assert!(
            !parts.is_empty(),
            "a transaction has at least one participant"
        );
        if self.txns.contains_key(&txn) {
            return Vec::new();
        }
        let out = parts
            .iter()
            .map(|(bank, part)| Output::Send {
                to: *bank,
                message: Message::Prepare {
                    txn: txn.clone(),
                    part: part.clone(),
                },
            })
            .collect();
        let participants = parts.keys().copied().collect();
        self.txns.insert(
            txn,
            Txn {
                participants,
                parts,
                votes: BTreeMap::new(),
                decision: None,
                acks: BTreeSet::new(),
                started_ms: now_ms,
                sent_ms: now_ms,
            },
        );
        self.undecided += 1;
        out
    }

    /// Decides abort now, if nothing is decided yet (e.g. a participant is known to be down).
    pub fn abort(&mut self, txn: &TxnId, reason: &str, now_ms: u64) -> Vec<Output<P>> {
        match self.txns.get(txn) {
            Some(t) if t.decision.is_none() => {
                self.decide(txn.clone(), false, Some(reason.to_string()), now_ms)
            }
            _ => Vec::new(),
        }
    }

    fn decide(
        &mut self,
        id: TxnId,
        commit: bool,
        reason: Option<String>,
        now_ms: u64,
    ) -> Vec<Output<P>> {
        let txn = self
            .txns
            .get_mut(&id)
            .expect("deciding a known transaction");
        if txn.decision.is_none() {
            self.undecided -= 1;
        }
        txn.decision = Some(commit);
        txn.sent_ms = now_ms;
        let participants: Vec<BankCode> = txn.participants.iter().copied().collect();
        let mut out = vec![Output::RecordDecision {
            txn: id.clone(),
            commit,
            participants: participants.clone(),
        }];
        out.extend(participants.iter().map(|bank| Output::Send {
            to: *bank,
            message: Message::Decide {
                txn: id.clone(),
                commit,
            },
        }));
        out.push(Output::Decided {
            txn: id,
            commit,
            reason,
        });
        out
    }

    pub fn on_message(
        &mut self,
        from: BankCode,
        message: Message<P>,
        now_ms: u64,
    ) -> Vec<Output<P>> {
        match message {
            Message::Vote { txn, yes, reason } => self.on_vote(from, txn, yes, reason, now_ms),
            Message::Ack { txn } => self.on_ack(from, txn),
            Message::Query { txn } => self.on_query(from, txn, now_ms),
            Message::Prepare { .. } | Message::Decide { .. } => Vec::new(),
        }
    }

    fn on_vote(
        &mut self,
        from: BankCode,
        id: TxnId,
        yes: bool,
        reason: Option<String>,
        now_ms: u64,
    ) -> Vec<Output<P>> {
        let Some(txn) = self.txns.get_mut(&id) else {
            return Vec::new();
        };
        if txn.decision.is_some() || !txn.participants.contains(&from) {
            return Vec::new();
        }
        txn.votes.insert(from, yes);
        if !yes {
            let reason = reason.unwrap_or_else(|| crate::reasons::REFUSED.to_string());
            return self.decide(id, false, Some(reason), now_ms);
        }
        if txn.votes.len() == txn.participants.len() {
            return self.decide(id, true, None, now_ms);
        }
        Vec::new()
    }

    fn on_ack(&mut self, from: BankCode, id: TxnId) -> Vec<Output<P>> {
        let Some(txn) = self.txns.get_mut(&id) else {
            return Vec::new();
        };
        if txn.decision.is_none() {
            return Vec::new();
        }
        txn.acks.insert(from);
        if txn.participants.iter().all(|bank| txn.acks.contains(bank)) {
            self.txns.remove(&id);
            return vec![Output::Completed { txn: id }];
        }
        Vec::new()
    }

    /// A participant asks for the outcome. Known decision: resend it. Undecided: decide abort
    /// now. Unknown here: presumed abort, made durable before it is answered. (A caller whose
    /// store may hold a decision this machine has put away restores it first.) A bank that is
    /// not a participant of a known transaction is told nothing and changes nothing.
    fn on_query(&mut self, from: BankCode, id: TxnId, now_ms: u64) -> Vec<Output<P>> {
        if self
            .txns
            .get(&id)
            .is_some_and(|t| !t.participants.contains(&from))
        {
            return Vec::new();
        }
        match self.txns.get(&id).map(|t| t.decision) {
            Some(Some(commit)) => vec![Output::Send {
                to: from,
                message: Message::Decide { txn: id, commit },
            }],
            Some(None) => self.decide(id, false, Some(crate::reasons::TIMEOUT.into()), now_ms),
            None => vec![
                Output::RecordDecision {
                    txn: id.clone(),
                    commit: false,
                    participants: vec![from],
                },
                Output::Send {
                    to: from,
                    message: Message::Decide {
                        txn: id,
                        commit: false,
                    },
                },
            ],
        }
    }

    /// Time passes: undecided transactions past the vote timeout are aborted; unanswered
    /// prepares and decisions are resent.
    pub fn tick(&mut self, now_ms: u64) -> Vec<Output<P>> {
        let mut out = Vec::new();
        let mut timed_out = Vec::new();
        for (id, txn) in self.txns.iter_mut() {
            if txn.decision.is_none()
                && now_ms.saturating_sub(txn.started_ms) >= self.timing.vote_timeout_ms
            {
                timed_out.push(id.clone());
                continue;
            }
            if now_ms.saturating_sub(txn.sent_ms) < self.timing.retry_ms {
                continue;
            }
            txn.sent_ms = now_ms;
            match txn.decision {
                None => {
                    for (bank, part) in &txn.parts {
                        if !txn.votes.contains_key(bank) {
                            out.push(Output::Send {
                                to: *bank,
                                message: Message::Prepare {
                                    txn: id.clone(),
                                    part: part.clone(),
                                },
                            });
                        }
                    }
                }
                Some(commit) => {
                    for bank in &txn.participants {
                        if !txn.acks.contains(bank) {
                            out.push(Output::Send {
                                to: *bank,
                                message: Message::Decide {
                                    txn: id.clone(),
                                    commit,
                                },
                            });
                        }
                    }
                }
            }
        }
        for id in timed_out {
            out.extend(self.decide(id, false, Some(crate::reasons::TIMEOUT.into()), now_ms));
        }
        out
    }
}

impl<P: Clone> Coordinator<P> {
    /// A decision this coordinator made was overruled by an earlier one recorded elsewhere (the
    /// consortium's log, where a participant in doubt may force an abort first): it now holds
    /// and resends `commit` instead, to every participant again. `false` if the transaction is
    /// not open here (then [`Coordinator::restore`] it).
    pub fn overrule(&mut self, txn: &TxnId, commit: bool) -> bool {
        match self.txns.get_mut(txn) {
            Some(open) => {
                if open.decision.is_none() {
                    self.undecided -= 1;
                }
                open.decision = Some(commit);
                open.acks.clear();
                open.sent_ms = 0;
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ledger::EndToEndId;

    fn bank(code: &str) -> BankCode {
        BankCode::parse(code).unwrap()
    }

    /// `undecided` counts the transactions still collecting votes, whichever way each leaves
    /// that state (the decider waits on it).
    #[test]
    fn undecided_counts_the_transactions_still_collecting_votes() {
        let (a, b) = (bank("10000001"), bank("20000002"));
        let mut coordinator = Coordinator::new(a, Timing::default());
        let txn = |n| EndToEndId::sequenced(a, "202612070000", n);
        for n in 1..=4 {
            coordinator.begin(txn(n), BTreeMap::from([(a, ()), (b, ())]), 0);
        }
        coordinator.begin(txn(1), BTreeMap::from([(a, ())]), 0);
        assert_eq!(
            coordinator.undecided(),
            4,
            "a second begin is no new transaction"
        );
        let vote = |n, yes| Message::Vote {
            txn: txn(n),
            yes,
            reason: None,
        };
        coordinator.on_message(b, vote(1, false), 1);
        coordinator.on_message(b, vote(1, true), 1);
        assert_eq!(coordinator.undecided(), 3, "refused by a vote, once");
        coordinator.on_message(a, vote(2, true), 1);
        assert_eq!(coordinator.undecided(), 3, "one vote of two");
        coordinator.on_message(b, vote(2, true), 1);
        assert_eq!(coordinator.undecided(), 2, "every vote in");
        coordinator.abort(&txn(3), "test", 1);
        assert_eq!(coordinator.undecided(), 1, "aborted");
        coordinator.restore(txn(4), false, vec![b], 1);
        assert_eq!(
            coordinator.undecided(),
            0,
            "replaced by a restored decision"
        );
        coordinator.on_message(b, Message::Query { txn: txn(9) }, 1);
        let late = Timing::default().vote_timeout_ms + 10;
        coordinator.begin(txn(5), BTreeMap::from([(a, ()), (b, ())]), 0);
        coordinator.tick(late);
        assert_eq!(coordinator.undecided(), 0, "timed out");
    }

    /// A bank outside a transaction that asks about it is told nothing and changes nothing: it
    /// used to get the decision, and its query about an undecided transaction aborted it.
    #[test]
    fn a_query_from_outside_a_transaction_changes_and_tells_nothing() {
        let (a, b, c) = (bank("10000001"), bank("20000002"), bank("30000003"));
        let mut coordinator = Coordinator::new(a, Timing::default());
        let txn = EndToEndId::sequenced(a, "202612060000", 1);
        coordinator.begin(txn.clone(), BTreeMap::from([(a, ()), (b, ())]), 0);
        let query = || Message::Query { txn: txn.clone() };
        assert_eq!(coordinator.on_message(c, query(), 10), Vec::new());
        for voter in [a, b] {
            let vote = Message::Vote {
                txn: txn.clone(),
                yes: true,
                reason: None,
            };
            coordinator.on_message(voter, vote, 20);
        }
        assert_eq!(coordinator.on_message(c, query(), 30), Vec::new());
        assert_eq!(
            coordinator.on_message(b, query(), 40),
            vec![Output::Send {
                to: b,
                message: Message::Decide {
                    txn: txn.clone(),
                    commit: true
                }
            }],
            "a participant is told the decision"
        );
    }
}
