//! The double-entry rules, after TigerBeetle: every account has four counters and every
//! movement is a transfer that debits one account and credits another by the same amount, either
//! posted at once or held as pending and later posted or voided, exactly once.
//!
//! These functions are the only place the counters change; the stores call them inside their
//! database transactions, so the rules are written once whatever the storage.

use crate::amount::Amount;

/// An account's four counters, in centavos. All start at zero and only the rules below move them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counters {
    pub debits_pending: i64,
    pub debits_posted: i64,
    pub credits_pending: i64,
    pub credits_posted: i64,
}

/// Why the ledger refused a movement, ordered by precedence: the first that applies is reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum Rejection {
    #[error("a transfer must move money between two different accounts")]
    SameAccount,
    #[error("the hold was already posted")]
    HoldAlreadyPosted,
    #[error("the hold was already voided")]
    HoldAlreadyVoided,
    #[error("the account's available balance is not enough")]
    InsufficientFunds,
    #[error("the account's counters would overflow")]
    Overflow,
}

impl Rejection {
    pub fn code(self) -> &'static str {
        match self {
            Rejection::SameAccount => "same_account",
            Rejection::HoldAlreadyPosted => "hold_already_posted",
            Rejection::HoldAlreadyVoided => "hold_already_voided",
            Rejection::InsufficientFunds => "insufficient_funds",
            Rejection::Overflow => "amount_too_large",
        }
    }
}

/// Where a hold stands. It starts pending and is resolved once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HoldState {
    Pending,
    Posted,
    Voided,
}

impl Counters {
    /// What a customer owns: posted credits less posted debits.
    pub fn balance(&self) -> i64 {
        self.credits_posted - self.debits_posted
    }

    /// What a customer may spend: the balance less what is held for outgoing payments.
    pub fn available(&self) -> i64 {
        self.balance() - self.debits_pending
    }

    fn add(counter: i64, amount: Amount) -> Result<i64, Rejection> {
        counter
            .checked_add(amount.cents())
            .ok_or(Rejection::Overflow)
    }

    /// The counters after `cents` more posted debits (`debit`) or posted credits. Posted counters
    /// only grow, so traffic alone would take one past `i64::MAX` (money going round between two
    /// accounts, or through the vault or a settlement account, a hundred thousand times at the
    /// largest amount): one that would first *nets* the account's posted counters, taking the
    /// smaller of the two off both. That keeps the account's balance, and it keeps
    /// Σ debits = Σ credits, since both sums lose the same amount. Only a balance beyond
    /// `i64::MAX` centavos, which no account can hold, is refused.
    fn posting(mut self, debit: bool, cents: i64) -> Result<Counters, Rejection> {
        let counter = if debit {
            self.debits_posted
        } else {
            self.credits_posted
        };
        if counter.checked_add(cents).is_none() {
            let netted = self.debits_posted.min(self.credits_posted);
            self.debits_posted -= netted;
            self.credits_posted -= netted;
        }
        let counter = if debit {
            &mut self.debits_posted
        } else {
            &mut self.credits_posted
        };
        *counter = counter.checked_add(cents).ok_or(Rejection::Overflow)?;
        Ok(self)
    }

    fn ensure_can_debit(&self, guarded: bool, amount: Amount) -> Result<(), Rejection> {
        if guarded && self.available() < amount.cents() {
            return Err(Rejection::InsufficientFunds);
        }
        Ok(())
    }
}

/// One side of a transfer: an account's counters, and whether it may never go below zero
/// (customer accounts) or may (the vault and settlement accounts).
pub struct Side<'a> {
    pub counters: &'a mut Counters,
    pub guarded: bool,
}

/// Moves `amount` from `debit` to `credit` at once. `same_account` is the caller's identity
/// check, since the two sides are separate borrows.
pub fn post(
    debit: Side<'_>,
    credit: Side<'_>,
    amount: Amount,
    same_account: bool,
) -> Result<(), Rejection> {
    if same_account {
        return Err(Rejection::SameAccount);
    }
    debit.counters.ensure_can_debit(debit.guarded, amount)?;
    let debited = debit.counters.posting(true, amount.cents())?;
    let credited = credit.counters.posting(false, amount.cents())?;
    *debit.counters = debited;
    *credit.counters = credited;
    Ok(())
}

/// Holds `amount`: the debit side cannot spend it any more, the credit side cannot spend it yet.
pub fn hold(
    debit: Side<'_>,
    credit: Side<'_>,
    amount: Amount,
    same_account: bool,
) -> Result<HoldState, Rejection> {
    if same_account {
        return Err(Rejection::SameAccount);
    }
    debit.counters.ensure_can_debit(debit.guarded, amount)?;
    let debits_pending = Counters::add(debit.counters.debits_pending, amount)?;
    let credits_pending = Counters::add(credit.counters.credits_pending, amount)?;
    debit.counters.debits_pending = debits_pending;
    credit.counters.credits_pending = credits_pending;
    Ok(HoldState::Pending)
}

/// Whether a hold can still be resolved: only a pending one can, once.
fn still_pending(state: HoldState) -> Result<(), Rejection> {
    match state {
        HoldState::Pending => Ok(()),
        HoldState::Posted => Err(Rejection::HoldAlreadyPosted),
        HoldState::Voided => Err(Rejection::HoldAlreadyVoided),
    }
}

fn resolve(state: &mut HoldState, to: HoldState) -> Result<(), Rejection> {
    still_pending(*state)?;
    *state = to;
    Ok(())
}

/// Posts a pending hold of `amount`: it leaves the pending counters and joins the posted ones.
pub fn post_hold(
    state: &mut HoldState,
    debit: &mut Counters,
    credit: &mut Counters,
    amount: Amount,
) -> Result<(), Rejection> {
    still_pending(*state)?;
    let cents = amount.cents();
    assert!(
        debit.debits_pending >= cents && credit.credits_pending >= cents,
        "a pending hold is counted on both sides"
    );
    // Checked before anything changes, so a refusal leaves the hold and both accounts as they
    // were.
    let mut debited = debit.posting(true, cents)?;
    let mut credited = credit.posting(false, cents)?;
    *state = HoldState::Posted;
    debited.debits_pending -= cents;
    credited.credits_pending -= cents;
    *debit = debited;
    *credit = credited;
    Ok(())
}

/// Voids a pending hold of `amount`: both sides return to where they were before it.
pub fn void_hold(
    state: &mut HoldState,
    debit: &mut Counters,
    credit: &mut Counters,
    amount: Amount,
) -> Result<(), Rejection> {
    resolve(state, HoldState::Voided)?;
    let cents = amount.cents();
    assert!(
        debit.debits_pending >= cents && credit.credits_pending >= cents,
        "a pending hold is counted on both sides"
    );
    debit.debits_pending -= cents;
    credit.credits_pending -= cents;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cents(c: i64) -> Amount {
        Amount::from_cents(c).unwrap()
    }

    fn guarded(counters: &mut Counters) -> Side<'_> {
        Side {
            counters,
            guarded: true,
        }
    }

    fn open(counters: &mut Counters) -> Side<'_> {
        Side {
            counters,
            guarded: false,
        }
    }

    #[test]
    fn posting_moves_money_and_guards_customers() {
        let (mut vault, mut ana, mut beto) = (
            Counters::default(),
            Counters::default(),
            Counters::default(),
        );
        post(open(&mut vault), guarded(&mut ana), cents(5_000), false).unwrap();
        assert_eq!(ana.balance(), 5_000);
        assert_eq!(
            vault.balance(),
            -5_000,
            "the vault may go below zero: it is the cash side"
        );
        assert_eq!(
            post(guarded(&mut ana), guarded(&mut beto), cents(5_001), false),
            Err(Rejection::InsufficientFunds)
        );
        assert_eq!(ana.balance(), 5_000, "a refusal changes nothing");
        post(guarded(&mut ana), guarded(&mut beto), cents(5_000), false).unwrap();
        assert_eq!((ana.balance(), beto.balance()), (0, 5_000));
        assert_eq!(
            post(guarded(&mut beto), guarded(&mut ana), cents(1), true),
            Err(Rejection::SameAccount)
        );
    }

    #[test]
    fn holds_resolve_exactly_once() {
        let (mut ana, mut beto) = (
            Counters {
                credits_posted: 1_000,
                ..Counters::default()
            },
            Counters::default(),
        );
        let mut first = hold(guarded(&mut ana), guarded(&mut beto), cents(700), false).unwrap();
        assert_eq!(
            (ana.balance(), ana.available(), beto.available()),
            (1_000, 300, 0)
        );
        assert_eq!(
            hold(guarded(&mut ana), guarded(&mut beto), cents(301), false),
            Err(Rejection::InsufficientFunds)
        );
        post_hold(&mut first, &mut ana, &mut beto, cents(700)).unwrap();
        assert_eq!(
            (ana.balance(), ana.available(), beto.balance()),
            (300, 300, 700)
        );
        assert_eq!(
            post_hold(&mut first, &mut ana, &mut beto, cents(700)),
            Err(Rejection::HoldAlreadyPosted)
        );
        assert_eq!(
            void_hold(&mut first, &mut ana, &mut beto, cents(700)),
            Err(Rejection::HoldAlreadyPosted)
        );

        let mut second = hold(guarded(&mut ana), guarded(&mut beto), cents(300), false).unwrap();
        void_hold(&mut second, &mut ana, &mut beto, cents(300)).unwrap();
        assert_eq!(
            void_hold(&mut second, &mut ana, &mut beto, cents(300)),
            Err(Rejection::HoldAlreadyVoided)
        );
        assert_eq!(
            (ana.available(), beto.balance(), beto.credits_pending),
            (300, 700, 0)
        );
    }

    #[test]
    fn overflow_is_refused_without_change() {
        // A balance beyond i64::MAX is the one thing no netting can make room for.
        let mut full = Counters {
            credits_posted: i64::MAX - 1,
            ..Counters::default()
        };
        let mut vault = Counters::default();
        let before = full;
        assert_eq!(
            post(open(&mut vault), guarded(&mut full), cents(2), false),
            Err(Rejection::Overflow)
        );
        assert_eq!((full, vault), (before, Counters::default()));
    }

    /// Money going round and round makes posted counters grow without the balances growing:
    /// a counter about to pass i64::MAX nets its account's posted counters instead, keeping the
    /// balance and the ledger's Σ debits = Σ credits.
    #[test]
    fn posted_counters_net_instead_of_overflowing() {
        let largest = cents(99_999_999_999_999);
        let mut ana = Counters {
            debits_posted: i64::MAX - 50,
            credits_posted: i64::MAX - 40,
            ..Counters::default()
        };
        let mut beto = Counters {
            debits_posted: 1_000,
            credits_posted: i64::MAX - 10,
            ..Counters::default()
        };
        let sums = |a: &Counters, b: &Counters| {
            (
                i128::from(a.debits_posted) + i128::from(b.debits_posted),
                i128::from(a.credits_posted) + i128::from(b.credits_posted),
            )
        };
        let (debits, credits) = sums(&ana, &beto);
        let balances = (ana.balance(), beto.balance());
        // Ana cannot pay the largest amount (her balance is 10 centavos); Beto pays her, and
        // both of their counters would pass i64::MAX.
        post(guarded(&mut beto), guarded(&mut ana), largest, false).unwrap();
        assert_eq!(
            (ana.balance(), beto.balance()),
            (balances.0 + largest.cents(), balances.1 - largest.cents())
        );
        assert_eq!(
            (ana.debits_posted, ana.credits_posted),
            (0, 10 + largest.cents())
        );
        assert_eq!(beto.debits_posted, 1_000 + largest.cents());
        let (debits_after, credits_after) = sums(&ana, &beto);
        assert_eq!(
            debits - debits_after,
            credits - credits_after,
            "both sums lose the same amount"
        );

        // The same through a hold: a posted hold nets as a posting does.
        let mut vault = Counters {
            debits_posted: i64::MAX - 500,
            credits_posted: i64::MAX - 50,
            ..Counters::default()
        };
        let mut held = hold(guarded(&mut ana), open(&mut vault), cents(100), false).unwrap();
        post_hold(&mut held, &mut ana, &mut vault, cents(100)).unwrap();
        assert_eq!((vault.debits_posted, vault.credits_posted), (0, 450 + 100));
    }

    #[test]
    fn a_refused_post_of_a_hold_leaves_the_hold_pending() {
        let mut full = Counters {
            credits_posted: i64::MAX - 1,
            ..Counters::default()
        };
        let mut vault = Counters {
            credits_posted: 1_000,
            ..Counters::default()
        };
        let mut held = hold(open(&mut vault), guarded(&mut full), cents(2), false).unwrap();
        let before = (full, vault);
        assert_eq!(
            post_hold(&mut held, &mut vault, &mut full, cents(2)),
            Err(Rejection::Overflow)
        );
        assert_eq!(
            (held, full, vault),
            (HoldState::Pending, before.0, before.1)
        );
        void_hold(&mut held, &mut vault, &mut full, cents(2)).unwrap();
    }
}
