//! The pure ledger's cost, for comparison with what the store adds around it:
//! `cargo bench -p ledger`. A batch is the bulk endpoint's largest (8,189 transfers).

use divan::{Bencher, black_box};
use ledger::Amount;
use ledger::rules::{self, Counters, Side};

fn main() {
    divan::main();
}

const BATCH: usize = 8_189;

/// `(from, to, cents)` for a batch over `accounts` accounts, spread without a random source.
fn batch(accounts: usize) -> Vec<(usize, usize, Amount)> {
    (0..BATCH)
        .map(|i| {
            let from = (i * 7_919) % accounts;
            let to = (from + 1 + i % (accounts - 1)) % accounts;
            (from, to, Amount::from_cents(1 + (i as i64 % 100)).unwrap())
        })
        .collect()
}

fn funded(accounts: usize) -> Vec<Counters> {
    vec![
        Counters {
            credits_posted: 1_000_000_000,
            ..Counters::default()
        };
        accounts
    ]
}

/// Two distinct counters of the slice, mutably.
fn pair(counters: &mut [Counters], a: usize, b: usize) -> (&mut Counters, &mut Counters) {
    if a < b {
        let (left, right) = counters.split_at_mut(b);
        (&mut left[a], &mut right[0])
    } else {
        let (left, right) = counters.split_at_mut(a);
        (&mut right[0], &mut left[b])
    }
}

/// A customer account's side of a transfer: it may not be overdrawn.
fn guarded(counters: &mut Counters) -> Side<'_> {
    Side {
        counters,
        guarded: true,
    }
}

/// Posting a whole batch of transfers between customer accounts.
#[divan::bench(args = [1_000, 1_000_000], counter = divan::counter::ItemsCount::new(BATCH))]
fn post_batch(bencher: Bencher, accounts: usize) {
    let transfers = batch(accounts);
    bencher
        .with_inputs(|| funded(accounts))
        .bench_local_refs(|counters| {
            for &(from, to, amount) in &transfers {
                let (debit, credit) = pair(counters, from, to);
                black_box(rules::post(guarded(debit), guarded(credit), amount, false)).unwrap();
            }
        });
}

/// Holding then posting every transfer of a batch, as an interbank participant does.
#[divan::bench(args = [1_000], counter = divan::counter::ItemsCount::new(BATCH))]
fn hold_then_post_batch(bencher: Bencher, accounts: usize) {
    let transfers = batch(accounts);
    bencher
        .with_inputs(|| funded(accounts))
        .bench_local_refs(|counters| {
            for &(from, to, amount) in &transfers {
                let (debit, credit) = pair(counters, from, to);
                let mut state =
                    rules::hold(guarded(&mut *debit), guarded(&mut *credit), amount, false)
                        .unwrap();
                rules::post_hold(&mut state, debit, credit, amount).unwrap();
            }
        });
}

/// Reading a batch's amounts from the wire's decimal strings.
#[divan::bench(counter = divan::counter::ItemsCount::new(BATCH))]
fn parse_amounts(bencher: Bencher) {
    let texts: Vec<String> = (0..BATCH)
        .map(|i| format!("{}.{:02}", 1 + i % 10_000, i % 100))
        .collect();
    bencher.bench_local(|| {
        for text in &texts {
            black_box(Amount::parse(black_box(text))).unwrap();
        }
    });
}
