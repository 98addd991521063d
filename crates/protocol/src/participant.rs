//! The participant's side: hold its part durably and vote, then post or void the holds when the
//! decision arrives and acknowledge it; ask the coordinator when a decision is slow to come.
//!
//! Finished transactions are forgotten here at once: the durable record the caller keeps makes
//! every later duplicate harmless (a late prepare holds nothing, a late decision is acknowledged).

use crate::{Message, Output, Timing, TxnId};
use ledger::BankCode;
use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// The prepare effect is being carried out.
    Preparing,
    /// Voted; holding the money if `yes`.
    Voted { yes: bool },
    /// The finish effect is being carried out.
    Finishing,
}

#[derive(Debug, Clone)]
struct Txn {
    coordinator: BankCode,
    state: State,
    reason: Option<String>,
    since_ms: u64,
    queried_ms: u64,
}

#[derive(Debug, Clone)]
pub struct Participant<P> {
    me: BankCode,
    timing: Timing,
    txns: BTreeMap<TxnId, Txn>,
    _part: std::marker::PhantomData<P>,
}

impl<P: Clone> Participant<P> {
    pub fn new(me: BankCode, timing: Timing) -> Participant<P> {
        Participant {
            me,
            timing,
            txns: BTreeMap::new(),
            _part: std::marker::PhantomData,
        }
    }

    pub fn me(&self) -> BankCode {
        self.me
    }

    /// Transactions voted on and not finished (for metrics and tests).
    pub fn open(&self) -> usize {
        self.txns.len()
    }

    /// Whether this participant holds the transaction (voting, or waiting for its decision).
    pub fn knows(&self, txn: &TxnId) -> bool {
        self.txns.contains_key(txn)
    }

    /// Reloads a durable vote whose transaction has not finished (after a restart).
    pub fn restore(&mut self, txn: TxnId, coordinator: BankCode, yes: bool, now_ms: u64) {
        self.txns.insert(
            txn,
            Txn {
                coordinator,
                state: State::Voted { yes },
                reason: None,
                since_ms: now_ms,
                queried_ms: now_ms,
            },
        );
    }

    pub fn on_message(
        &mut self,
        from: BankCode,
        message: Message<P>,
        now_ms: u64,
    ) -> Vec<Output<P>> {
        match message {
            Message::Prepare { txn, part } => self.on_prepare(from, txn, part, now_ms),
            Message::Decide { txn, commit } => self.on_decide(from, txn, commit),
            Message::Vote { .. } | Message::Ack { .. } | Message::Query { .. } => Vec::new(),
        }
    }

    fn on_prepare(&mut self, from: BankCode, id: TxnId, part: P, now_ms: u64) -> Vec<Output<P>> {
        match self.txns.get(&id) {
            None => {
                self.txns.insert(
                    id.clone(),
                    Txn {
                        coordinator: from,
                        state: State::Preparing,
                        reason: None,
                        since_ms: now_ms,
                        queried_ms: now_ms,
                    },
                );
                vec![Output::Prepare {
                    txn: id,
                    coordinator: from,
                    part,
                }]
            }
            Some(txn) if txn.coordinator != from => Vec::new(),
            Some(Txn {
                state: State::Voted { yes },
                reason,
                coordinator,
                ..
            }) => {
                vec![Output::Send {
                    to: *coordinator,
                    message: Message::Vote {
                        txn: id,
                        yes: *yes,
                        reason: reason.clone(),
                    },
                }]
            }
            Some(_) => Vec::new(),
        }
    }

    /// The prepare effect is durable: vote.
    pub fn prepared(
        &mut self,
        id: TxnId,
        yes: bool,
        reason: Option<String>,
        now_ms: u64,
    ) -> Vec<Output<P>> {
        let Some(txn) = self.txns.get_mut(&id) else {
            return Vec::new();
        };
        txn.state = State::Voted { yes };
        txn.reason = reason.clone();
        txn.since_ms = now_ms;
        txn.queried_ms = now_ms;
        vec![Output::Send {
            to: txn.coordinator,
            message: Message::Vote {
                txn: id,
                yes,
                reason,
            },
        }]
    }

    fn on_decide(&mut self, from: BankCode, id: TxnId, commit: bool) -> Vec<Output<P>> {
        match self.txns.get_mut(&id) {
            Some(txn) if txn.coordinator != from => Vec::new(),
            // A commit for a transaction this bank refused would be a coordinator's bug or a
            // forgery: it is not obeyed.
            Some(Txn {
                state: State::Voted { yes: false },
                ..
            }) if commit => Vec::new(),
            Some(txn) if matches!(txn.state, State::Voted { .. }) => {
                txn.state = State::Finishing;
                vec![Output::Finish { txn: id, commit }]
            }
            Some(_) => Vec::new(),
            // Finished and forgotten, or never prepared (its prepare was lost): the durable
            // record tells which; finishing again is harmless, and an abort recorded now keeps a
            // late prepare from holding anything.
            None => {
                self.txns.insert(
                    id.clone(),
                    Txn {
                        coordinator: from,
                        state: State::Finishing,
                        reason: None,
                        since_ms: 0,
                        queried_ms: 0,
                    },
                );
                vec![Output::Finish { txn: id, commit }]
            }
        }
    }

    /// The finish effect is durable (or the transaction had finished before): acknowledge.
    pub fn finished(&mut self, id: TxnId) -> Vec<Output<P>> {
        match self.txns.remove(&id) {
            Some(txn) => vec![Output::Send {
                to: txn.coordinator,
                message: Message::Ack { txn: id },
            }],
            None => Vec::new(),
        }
    }

    /// Time passes: a vote left without a decision asks the coordinator, now and then.
    pub fn tick(&mut self, now_ms: u64) -> Vec<Output<P>> {
        let mut out = Vec::new();
        for (id, txn) in self.txns.iter_mut() {
            // A no voter asks too: a coordinator that lost the transaction then presumes abort and
            // tells it, so its record finishes as well.
            let waiting = matches!(txn.state, State::Voted { .. });
            if waiting
                && now_ms.saturating_sub(txn.since_ms) >= self.timing.query_after_ms
                && now_ms.saturating_sub(txn.queried_ms) >= self.timing.retry_ms
            {
                txn.queried_ms = now_ms;
                out.push(Output::Send {
                    to: txn.coordinator,
                    message: Message::Query { txn: id.clone() },
                });
            }
        }
        out
    }
}
