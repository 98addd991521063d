//! Turning a payment into each bank's part: movements between accounts anywhere in the
//! consortium become legs inside each bank, and money that crosses banks goes through the
//! settlement accounts, so that every bank's books balance on their own (DESIGN §3 invariant 3).

use ledger::{AccountNumber, Amount, BankCode};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One side of a leg inside a bank.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Endpoint {
    /// A customer account of this bank.
    Account(AccountNumber),
    /// This bank's settlement account with another bank.
    Settlement(BankCode),
    /// This bank's cash.
    Vault,
}

/// What the statement lines of a leg say.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Memo {
    pub description: String,
    /// Username of the customer who asked for it.
    pub made_by: String,
    /// How the paying side is shown to the receiving side, and the other way round.
    pub from_label: String,
    pub to_label: String,
}

/// A movement inside one bank: debit `from`, credit `to`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Leg {
    pub from: Endpoint,
    pub to: Endpoint,
    pub amount: Amount,
    pub memo: Memo,
}

/// A movement anywhere in the consortium.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Movement {
    pub from: (BankCode, Endpoint),
    pub to: (BankCode, Endpoint),
    pub amount: Amount,
    pub memo: Memo,
}

/// The banks a movement touches when `coordinator` coordinates it, in the order [`plan`] gives
/// them legs: its two banks, and the coordinator between them when it is neither.
pub fn touched(coordinator: BankCode, movement: &Movement) -> Vec<BankCode> {
    let (from_bank, to_bank) = (movement.from.0, movement.to.0);
    if from_bank == to_bank {
        vec![from_bank]
    } else if from_bank == coordinator || to_bank == coordinator {
        vec![from_bank, to_bank]
    } else {
        vec![from_bank, coordinator, to_bank]
    }
}

/// Each touched bank's legs when `coordinator` coordinates the movements. A movement between two
/// banks becomes two legs: the paying bank credits its settlement account with the receiving
/// bank (it owes it), and the receiving bank debits its settlement account with the paying bank
/// (it is owed). A movement between two banks that are not the coordinator goes through it (three
/// legs: payer → coordinator → payee), because a bank takes a leg through a settlement account
/// only from the bank at the other end of it, the one that signs the part: a settlement leg with
/// a third bank would book a debt that bank never agreed to.
pub fn plan(coordinator: BankCode, movements: &[Movement]) -> BTreeMap<BankCode, Vec<Leg>> {
    let mut parts: BTreeMap<BankCode, Vec<Leg>> = BTreeMap::new();
    for movement in movements {
        let (from_bank, to_bank) = (movement.from.0, movement.to.0);
        let leg = |from: Endpoint, to: Endpoint| Leg {
            from,
            to,
            amount: movement.amount,
            memo: movement.memo.clone(),
        };
        if from_bank == to_bank {
            parts
                .entry(from_bank)
                .or_default()
                .push(leg(movement.from.1.clone(), movement.to.1.clone()));
        } else if from_bank != coordinator && to_bank != coordinator {
            parts.entry(from_bank).or_default().push(leg(
                movement.from.1.clone(),
                Endpoint::Settlement(coordinator),
            ));
            parts.entry(coordinator).or_default().push(leg(
                Endpoint::Settlement(from_bank),
                Endpoint::Settlement(to_bank),
            ));
            parts.entry(to_bank).or_default().push(leg(
                Endpoint::Settlement(coordinator),
                movement.to.1.clone(),
            ));
        } else {
            parts
                .entry(from_bank)
                .or_default()
                .push(leg(movement.from.1.clone(), Endpoint::Settlement(to_bank)));
            parts
                .entry(to_bank)
                .or_default()
                .push(leg(Endpoint::Settlement(from_bank), movement.to.1.clone()));
        }
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bank(code: &str) -> BankCode {
        BankCode::parse(code).unwrap()
    }

    fn account(base: u64) -> Endpoint {
        Endpoint::Account(AccountNumber::from_base(base).unwrap())
    }

    #[test]
    fn crossing_banks_goes_through_settlement() {
        let (a, b) = (bank("10000001"), bank("20000002"));
        let amount = Amount::from_cents(500).unwrap();
        let memo = Memo::default();
        let parts = plan(
            a,
            &[
                Movement {
                    from: (a, account(100001)),
                    to: (b, account(100001)),
                    amount,
                    memo: memo.clone(),
                },
                Movement {
                    from: (b, Endpoint::Vault),
                    to: (b, account(100002)),
                    amount,
                    memo: memo.clone(),
                },
            ],
        );
        assert_eq!(parts.len(), 2);
        assert_eq!(
            parts[&a],
            vec![Leg {
                from: account(100001),
                to: Endpoint::Settlement(b),
                amount,
                memo: memo.clone()
            }]
        );
        assert_eq!(
            parts[&b],
            vec![
                Leg {
                    from: Endpoint::Settlement(a),
                    to: account(100001),
                    amount,
                    memo: memo.clone()
                },
                Leg {
                    from: Endpoint::Vault,
                    to: account(100002),
                    amount,
                    memo
                },
            ]
        );
    }

    #[test]
    fn a_movement_between_two_other_banks_goes_through_the_coordinator() {
        let (a, b, c) = (bank("10000001"), bank("20000002"), bank("30000003"));
        let amount = Amount::from_cents(700).unwrap();
        let movement = Movement {
            from: (c, account(100001)),
            to: (b, account(100002)),
            amount,
            memo: Memo::default(),
        };
        let parts = plan(a, std::slice::from_ref(&movement));
        let leg = |from, to| Leg {
            from,
            to,
            amount,
            memo: Memo::default(),
        };
        assert_eq!(
            parts[&c],
            vec![leg(account(100001), Endpoint::Settlement(a))]
        );
        assert_eq!(
            parts[&a],
            vec![leg(Endpoint::Settlement(c), Endpoint::Settlement(b))]
        );
        assert_eq!(
            parts[&b],
            vec![leg(Endpoint::Settlement(a), account(100002))]
        );
        assert_eq!(touched(a, &movement), vec![c, a, b]);
        // Every settlement leg at a bank other than the coordinator is with the coordinator.
        for (bank, legs) in &parts {
            if *bank != a {
                for leg in legs {
                    for end in [&leg.from, &leg.to] {
                        if let Endpoint::Settlement(with) = end {
                            assert_eq!(*with, a);
                        }
                    }
                }
            }
        }
    }
}
