//! The cases every backend must pass, through the `Store` boundary only: commands in, outcomes
//! and reads out, and the audit clean at the end of each.

use crate::{Harness, Opened};
use ledger::{AccountKind, AccountNumber, Amount, BankCode, Document, EndToEndId, PixKey};
use protocol::{Endpoint, Leg};
use std::sync::Arc;
use store::*;

fn me() -> BankCode {
    BankCode::parse("10000001").unwrap()
}

fn peer() -> BankCode {
    BankCode::parse("20000002").unwrap()
}

fn e2e(serial: u64) -> EndToEndId {
    EndToEndId::sequenced(me(), "202612070000", serial)
}

fn peer_e2e(serial: u64) -> EndToEndId {
    EndToEndId::sequenced(peer(), "202612070000", serial)
}

fn cents(value: i64) -> Amount {
    Amount::from_cents(value).unwrap()
}

/// A valid CPF from a nine-digit base (the two check digits computed).
fn cpf(base: u64) -> Document {
    let digits: Vec<u32> = format!("{:09}", base % 1_000_000_000)
        .chars()
        .map(|c| c.to_digit(10).unwrap())
        .collect();
    let check = |digits: &[u32]| {
        let weight = digits.len() as u32 + 1;
        let sum: u32 = digits
            .iter()
            .enumerate()
            .map(|(i, d)| d * (weight - i as u32))
            .sum();
        let rest = sum * 10 % 11;
        if rest == 10 { 0 } else { rest }
    };
    let mut all = digits.clone();
    all.push(check(&all));
    all.push(check(&all));
    let text: String = all
        .iter()
        .map(|d| char::from_digit(*d, 10).unwrap())
        .collect();
    Document::parse(&text).unwrap()
}

struct Bank {
    store: Arc<dyn Store>,
    _keep: Opened,
}

async fn bank(harness: &impl Harness) -> Bank {
    let opened = harness.open(me(), &[peer()]).await;
    Bank {
        store: opened.store.clone(),
        _keep: opened,
    }
}

impl Bank {
    async fn run(&self, command: Command) -> Outcome {
        self.store
            .execute(Request {
                command,
                idempotency: None,
            })
            .await
            .unwrap()
            .outcome
    }

    async fn customer(&self, username: &str, document: u64) -> CustomerRecord {
        match self.run(register(username, cpf(document))).await {
            Outcome::Customer(customer) => customer,
            other => panic!("{other:?}"),
        }
    }

    /// An individual account for `actor` opened with `opening` cents.
    async fn account(&self, actor: CustomerId, opening: i64, serial: u64) -> AccountNumber {
        let outcome = self
            .run(Command::OpenAccount {
                actor,
                kind: AccountKind::Individual,
                co_holders: vec![],
                opening_deposit: cents(opening),
                e2e: e2e(serial),
            })
            .await;
        match outcome {
            Outcome::Account(account) => AccountNumber::parse(&account.number).unwrap(),
            other => panic!("{other:?}"),
        }
    }

    /// Balance and available balance of an account, as its holder reads them.
    async fn balances(&self, viewer: CustomerId, number: AccountNumber) -> (i64, i64) {
        let account = self.store.account(viewer, number).await.unwrap().unwrap();
        (account.balance_cents, account.available_cents)
    }

    async fn audit_passes(&self) {
        let audit = self.store.audit().await.unwrap();
        assert!(audit.ok(), "{audit:?}");
    }
}

fn register(username: &str, document: Document) -> Command {
    Command::RegisterCustomer {
        public_id: format!("pub-{username}"),
        name: format!("Name of {username}"),
        document,
        username: username.into(),
        password_hash: "not-a-real-hash".into(),
    }
}

fn refused(outcome: &Outcome) -> &'static str {
    match outcome {
        Outcome::Refused(refusal) => refusal.code(),
        other => panic!("not refused: {other:?}"),
    }
}

fn transfer(
    actor: CustomerId,
    from: AccountNumber,
    to: Target,
    amount: i64,
    serial: u64,
) -> Command {
    Command::Transfer {
        actor,
        from,
        to,
        amount: cents(amount),
        description: "rent".into(),
        e2e: e2e(serial),
    }
}

pub async fn customers_are_unique_and_sessions_expire(harness: &impl Harness) {
    let bank = bank(harness).await;
    let ana = bank.customer("ana", 1).await;
    assert_eq!(ana.username, "ana");
    assert_eq!(ana.home_bank, me().to_string());
    assert_eq!(
        refused(&bank.run(register("other", cpf(1))).await),
        "duplicate_document"
    );
    assert_eq!(
        refused(&bank.run(register("ana", cpf(2))).await),
        "duplicate_username"
    );
    let adopted = bank
        .run(Command::AdoptCustomer {
            public_id: "pub-bia".into(),
            name: "Bia".into(),
            document: cpf(3),
            username: "bia".into(),
            password_hash: "h".into(),
            home_bank: peer(),
        })
        .await;
    let Outcome::Customer(bia) = adopted else {
        panic!("{adopted:?}")
    };
    assert_eq!(bia.home_bank, peer().to_string());
    assert_eq!(
        bank.store.customer(ana.id).await.unwrap(),
        Some(ana.clone())
    );
    assert_eq!(
        bank.store
            .customer_by_document(cpf(3).as_str())
            .await
            .unwrap(),
        Some(bia.clone())
    );
    let login = bank.store.login_record("ana").await.unwrap().unwrap();
    assert_eq!(login.customer, ana.id);
    assert!(bank.store.login_record("nobody").await.unwrap().is_none());

    let (live, old) = ([1u8; 32], [2u8; 32]);
    for (token_hash, expires_at_ms) in [(live, 10_000), (old, 1_000)] {
        let done = bank
            .run(Command::CreateSession {
                customer: ana.id,
                token_hash,
                expires_at_ms,
            })
            .await;
        assert_eq!(done, Outcome::Done);
    }
    let session = bank.store.session(live, 5_000).await.unwrap().unwrap();
    assert_eq!(
        (session.customer.id, session.expires_at_ms),
        (ana.id, 10_000)
    );
    assert!(
        bank.store.session(old, 5_000).await.unwrap().is_none(),
        "expired"
    );
    bank.run(Command::PurgeSessions { now_ms: 5_000 }).await;
    assert!(
        bank.store.session(old, 500).await.unwrap().is_none(),
        "purged"
    );
    assert!(
        bank.store.session(live, 500).await.unwrap().is_some(),
        "kept"
    );
    bank.run(Command::DeleteSession { token_hash: live }).await;
    assert!(
        bank.store.session(live, 500).await.unwrap().is_none(),
        "deleted"
    );
    bank.audit_passes().await;
}

pub async fn accounts_open_with_a_deposit_and_show_in_statements(harness: &impl Harness) {
    let bank = bank(harness).await;
    let ana = bank.customer("ana", 1).await;
    let bia = bank.customer("bia", 2).await;
    let too_small = bank
        .run(Command::OpenAccount {
            actor: ana.id,
            kind: AccountKind::Individual,
            co_holders: vec![],
            opening_deposit: cents(OPENING_DEPOSIT_MIN_CENTS - 1),
            e2e: e2e(1),
        })
        .await;
    assert_eq!(refused(&too_small), "opening_deposit_too_small");
    let company = bank
        .run(Command::OpenAccount {
            actor: ana.id,
            kind: AccountKind::Company,
            co_holders: vec![],
            opening_deposit: cents(OPENING_DEPOSIT_MIN_CENTS),
            e2e: e2e(2),
        })
        .await;
    assert_eq!(refused(&company), "holder_kind_mismatch");
    let first = bank.account(ana.id, 7_000, 3).await;
    let second = bank.account(ana.id, 5_000, 4).await;
    assert_ne!(first, second);
    let accounts = bank.store.accounts_of(ana.id).await.unwrap();
    assert_eq!(accounts.len(), 2);
    assert_eq!(bank.balances(ana.id, first).await, (7_000, 7_000));
    assert!(
        bank.store.account(bia.id, first).await.unwrap().is_none(),
        "only holders see an account"
    );
    let statement = bank
        .store
        .statement(ana.id, first, None, 10)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(statement.len(), 1);
    assert_eq!(
        (statement[0].kind.as_str(), statement[0].amount_cents),
        ("opening_deposit", 7_000)
    );
    assert!(
        bank.store
            .statement(bia.id, first, None, 10)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        bank.store
            .held_by_document(first, cpf(1).as_str())
            .await
            .unwrap()
    );
    assert!(
        !bank
            .store
            .held_by_document(first, cpf(2).as_str())
            .await
            .unwrap()
    );
    bank.audit_passes().await;
}

pub async fn cash_moves_within_its_limits(harness: &impl Harness) {
    let bank = bank(harness).await;
    let ana = bank.customer("ana", 1).await;
    let bia = bank.customer("bia", 2).await;
    let account = bank.account(ana.id, 5_000, 1).await;
    let cash = |actor, amount, withdraw: bool, serial| {
        let (amount, description, e2e) = (cents(amount), String::new(), e2e(serial));
        if withdraw {
            Command::Withdraw {
                actor,
                account,
                amount,
                description,
                e2e,
            }
        } else {
            Command::Deposit {
                actor,
                account,
                amount,
                description,
                e2e,
            }
        }
    };
    let deposited = bank.run(cash(ana.id, 2_500, false, 2)).await;
    let Outcome::Entry(entry) = deposited else {
        panic!("{deposited:?}")
    };
    assert_eq!(
        (entry.kind.as_str(), entry.balance_after_cents),
        ("deposit", 7_500)
    );
    let withdrawn = bank.run(cash(ana.id, 500, true, 3)).await;
    assert!(matches!(withdrawn, Outcome::Entry(ref e) if e.balance_after_cents == 7_000));
    assert_eq!(
        refused(&bank.run(cash(ana.id, 7_001, true, 4)).await),
        "insufficient_funds"
    );
    assert_eq!(
        refused(
            &bank
                .run(cash(ana.id, CASH_OPERATION_MAX_CENTS + 1, false, 5))
                .await
        ),
        "cash_limit_exceeded"
    );
    assert_eq!(
        refused(&bank.run(cash(bia.id, 100, false, 6)).await),
        "account_not_found",
        "only a holder moves cash"
    );
    assert_eq!(bank.balances(ana.id, account).await, (7_000, 7_000));
    let audit = bank.store.audit().await.unwrap();
    assert_eq!((audit.cash_in_cents, audit.cash_out_cents), (7_500, 500));
    bank.audit_passes().await;
}

pub async fn local_transfers_commit_or_abort_with_a_record(harness: &impl Harness) {
    let bank = bank(harness).await;
    let ana = bank.customer("ana", 1).await;
    let bia = bank.customer("bia", 2).await;
    let from = bank.account(ana.id, 10_000, 1).await;
    let to = bank.account(bia.id, 5_000, 2).await;
    let key = PixKey::parse_any("bia@example.com").unwrap();
    bank.run(Command::AddPixKey {
        actor: bia.id,
        account: to,
        key: key.clone(),
    })
    .await;

    let paid = bank
        .run(transfer(ana.id, from, Target::Account(to), 3_000, 3))
        .await;
    let Outcome::Payment(payment) = &paid else {
        panic!("{paid:?}")
    };
    assert_eq!(payment.status, PaymentStatus::Committed);
    assert_eq!(payment.to.number, to.to_string());
    let by_key = bank
        .run(transfer(ana.id, from, Target::Key(key), 1_000, 4))
        .await;
    assert!(matches!(by_key, Outcome::Payment(ref p) if p.status == PaymentStatus::Committed));
    assert_eq!(bank.balances(ana.id, from).await, (6_000, 6_000));
    assert_eq!(bank.balances(bia.id, to).await, (9_000, 9_000));
    // Both holders read the payment; its statement lines are on both sides.
    for viewer in [ana.id, bia.id] {
        assert_eq!(
            bank.store.payment(viewer, &e2e(3)).await.unwrap().as_ref(),
            Some(&paid)
        );
    }
    let theirs = bank
        .store
        .statement(bia.id, to, None, 10)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        theirs
            .iter()
            .map(|e| (e.kind.as_str(), e.amount_cents))
            .collect::<Vec<_>>(),
        vec![
            ("transfer_in", 1_000),
            ("transfer_in", 3_000),
            ("opening_deposit", 5_000)
        ]
    );

    // Refused by the ledger: an aborted payment, recorded for its payer; nothing moves.
    let aborted = bank
        .run(transfer(ana.id, from, Target::Account(to), 6_001, 5))
        .await;
    let Outcome::Payment(record) = &aborted else {
        panic!("{aborted:?}")
    };
    assert_eq!(
        (&record.status, record.reason.as_deref()),
        (&PaymentStatus::Aborted, Some("insufficient_funds"))
    );
    assert_eq!(
        bank.store.payment(ana.id, &e2e(5)).await.unwrap().as_ref(),
        Some(&aborted)
    );
    // Refused as asked: nothing recorded.
    let unknown = AccountNumber::from_base(999_999).unwrap();
    assert_eq!(
        refused(
            &bank
                .run(transfer(ana.id, from, Target::Account(unknown), 1, 6))
                .await
        ),
        "account_not_found"
    );
    assert_eq!(
        refused(
            &bank
                .run(transfer(bia.id, from, Target::Account(to), 1, 7))
                .await
        ),
        "account_not_found",
        "only a holder pays from an account"
    );
    assert_eq!(
        refused(
            &bank
                .run(transfer(ana.id, from, Target::Account(from), 1, 8))
                .await
        ),
        "same_account"
    );
    assert!(bank.store.payment(ana.id, &e2e(6)).await.unwrap().is_none());
    assert_eq!(bank.balances(ana.id, from).await, (6_000, 6_000));
    bank.audit_passes().await;
}

pub async fn a_retry_answers_the_first_outcome(harness: &impl Harness) {
    let bank = bank(harness).await;
    let ana = bank.customer("ana", 1).await;
    let bia = bank.customer("bia", 2).await;
    let from = bank.account(ana.id, 10_000, 1).await;
    let to = bank.account(bia.id, 5_000, 2).await;
    let keyed = |serial, key: &str, fingerprint: u8| Request {
        command: transfer(ana.id, from, Target::Account(to), 1_000, serial),
        idempotency: Some(Idempotency {
            scope: ana.id,
            key: key.into(),
            fingerprint: [fingerprint; 32],
        }),
    };
    let first = bank.store.execute(keyed(3, "k1", 1)).await.unwrap();
    assert!(!first.replayed);
    // The node gives a retry a new end-to-end id: the first payment answers, once.
    let again = bank.store.execute(keyed(4, "k1", 1)).await.unwrap();
    assert!(again.replayed);
    assert_eq!(again.outcome, first.outcome);
    assert_eq!(
        bank.balances(ana.id, from).await,
        (9_000, 9_000),
        "paid once"
    );
    let reused = bank.store.execute(keyed(5, "k1", 2)).await;
    assert!(
        matches!(reused, Err(StoreError::IdempotencyKeyReused)),
        "{reused:?}"
    );
    // Another customer's key of the same name is theirs.
    let theirs = Request {
        command: transfer(bia.id, to, Target::Account(from), 500, 6),
        idempotency: Some(Idempotency {
            scope: bia.id,
            key: "k1".into(),
            fingerprint: [1; 32],
        }),
    };
    assert!(!bank.store.execute(theirs).await.unwrap().replayed);
    // A refusal is an outcome too, and is answered again.
    let refusal = |serial| Request {
        command: transfer(ana.id, from, Target::Account(from), 1, serial),
        idempotency: Some(Idempotency {
            scope: ana.id,
            key: "k2".into(),
            fingerprint: [3; 32],
        }),
    };
    let first = bank.store.execute(refusal(7)).await.unwrap();
    assert_eq!(refused(&first.outcome), "same_account");
    let again = bank.store.execute(refusal(8)).await.unwrap();
    assert!(again.replayed);
    assert_eq!(again.outcome, first.outcome);
    bank.audit_passes().await;
}

pub async fn pix_keys_follow_their_rules(harness: &impl Harness) {
    let bank = bank(harness).await;
    let ana = bank.customer("ana", 1).await;
    let bia = bank.customer("bia", 2).await;
    let account = bank.account(ana.id, 5_000, 1).await;
    let add = |actor, key: &str| Command::AddPixKey {
        actor,
        account,
        key: PixKey::parse_any(key).unwrap(),
    };
    let added = bank.run(add(ana.id, cpf(1).as_str())).await;
    let Outcome::PixKey(record) = &added else {
        panic!("{added:?}")
    };
    assert_eq!(record.account_number, account.to_string());
    assert_eq!(
        refused(&bank.run(add(ana.id, cpf(2).as_str())).await),
        "pix_key_not_your_document"
    );
    assert_eq!(
        refused(&bank.run(add(bia.id, "bia@example.com")).await),
        "account_not_found"
    );
    for n in 1..PIX_KEYS_PER_ACCOUNT_INDIVIDUAL_MAX {
        let done = bank.run(add(ana.id, &format!("ana{n}@example.com"))).await;
        assert!(matches!(done, Outcome::PixKey(_)), "{done:?}");
    }
    assert_eq!(
        refused(&bank.run(add(ana.id, "one-more@example.com")).await),
        "pix_key_limit_reached"
    );
    assert_eq!(
        refused(&bank.run(add(ana.id, "ana1@example.com")).await),
        "pix_key_limit_reached"
    );
    assert_eq!(
        bank.store.pix_keys_of(ana.id).await.unwrap().len(),
        PIX_KEYS_PER_ACCOUNT_INDIVIDUAL_MAX
    );
    let key = PixKey::parse_any("ana1@example.com").unwrap();
    assert!(bank.store.pix_key(&key).await.unwrap().is_some());
    let delete = |actor| Command::DeletePixKey {
        actor,
        key: key.clone(),
    };
    assert_eq!(
        refused(&bank.run(delete(bia.id)).await),
        "pix_key_not_found"
    );
    assert_eq!(bank.run(delete(ana.id)).await, Outcome::Done);
    assert_eq!(
        refused(&bank.run(delete(ana.id)).await),
        "pix_key_not_found"
    );
    assert!(bank.store.pix_key(&key).await.unwrap().is_none());
    // Another account's holder cannot take a key in use.
    let hers = bank.account(bia.id, 5_000, 2).await;
    let taken = bank
        .run(Command::AddPixKey {
            actor: bia.id,
            account: hers,
            key: PixKey::parse_any("ana2@example.com").unwrap(),
        })
        .await;
    assert_eq!(refused(&taken), "duplicate_pix_key");
    bank.audit_passes().await;
}

pub async fn a_package_commits_whole_or_not_at_all(harness: &impl Harness) {
    let bank = bank(harness).await;
    let ana = bank.customer("ana", 1).await;
    let bia = bank.customer("bia", 2).await;
    let a = bank.account(ana.id, 5_000, 1).await;
    let b = bank.account(bia.id, 5_000, 2).await;
    let op = |kind, amount| Operation {
        kind,
        account: a,
        amount: cents(amount),
        description: String::new(),
    };
    let package = |operations, serial| Command::Package {
        actor: ana.id,
        operations,
        e2e: e2e(serial),
    };
    let done = bank
        .run(package(
            vec![
                op(OperationKind::Deposit, 1_000),
                op(OperationKind::Transfer(Target::Account(b)), 5_500),
                op(OperationKind::Withdrawal, 500),
            ],
            3,
        ))
        .await;
    let Outcome::Package(record) = &done else {
        panic!("{done:?}")
    };
    assert_eq!(record.status, PaymentStatus::Committed);
    assert_eq!(bank.balances(ana.id, a).await, (0, 0));
    assert_eq!(bank.balances(bia.id, b).await, (10_500, 10_500));
    // The second operation is refused: the first is undone with it, the third never counts.
    let aborted = bank
        .run(package(
            vec![
                op(OperationKind::Deposit, 1_000),
                op(OperationKind::Withdrawal, 2_000),
                op(OperationKind::Deposit, 1_000),
            ],
            4,
        ))
        .await;
    let Outcome::Package(record) = &aborted else {
        panic!("{aborted:?}")
    };
    assert_eq!(record.status, PaymentStatus::Aborted);
    let results: Vec<_> = record
        .results
        .iter()
        .map(|r| (r.status.clone(), r.reason.as_deref()))
        .collect();
    assert_eq!(
        results[0],
        (OperationStatus::Aborted, Some("package_aborted"))
    );
    assert_eq!(
        results[1],
        (OperationStatus::Rejected, Some("insufficient_funds"))
    );
    assert_eq!(bank.balances(ana.id, a).await, (0, 0), "nothing kept");
    assert_eq!(
        bank.store.payment(ana.id, &e2e(4)).await.unwrap().as_ref(),
        Some(&aborted),
        "the payer can look the package up"
    );
    bank.audit_passes().await;
}

pub async fn a_batch_answers_each_transfer(harness: &impl Harness) {
    let bank = bank(harness).await;
    let ana = bank.customer("ana", 1).await;
    let bia = bank.customer("bia", 2).await;
    let a = bank.account(ana.id, 5_000, 1).await;
    let b = bank.account(bia.id, 5_000, 2).await;
    let item = |amount, serial| {
        Ok(BatchItem {
            from: a,
            to: Target::Account(b),
            amount: cents(amount),
            description: String::new(),
            e2e: e2e(serial),
        })
    };
    let batch = Command::TransferBatch {
        actor: ana.id,
        transfers: vec![
            BatchEntry {
                id: "one".into(),
                transfer: item(3_000, 10),
            },
            BatchEntry {
                id: "two".into(),
                transfer: item(3_000, 11),
            },
            BatchEntry {
                id: "three".into(),
                transfer: Err("invalid_amount".into()),
            },
            BatchEntry {
                id: "four".into(),
                transfer: item(2_000, 13),
            },
        ],
    };
    let outcome = bank.run(batch).await;
    let Outcome::Batch(records) = outcome else {
        panic!("{outcome:?}")
    };
    let seen: Vec<_> = records
        .iter()
        .map(|r| (r.id.as_str(), r.status.as_str(), r.reason.as_deref()))
        .collect();
    assert_eq!(
        seen,
        vec![
            ("one", "committed", None),
            ("two", "aborted", Some("insufficient_funds")),
            ("three", "rejected", Some("invalid_amount")),
            ("four", "committed", None),
        ]
    );
    assert_eq!(bank.balances(ana.id, a).await, (0, 0));
    assert_eq!(bank.balances(bia.id, b).await, (10_000, 10_000));
    bank.audit_passes().await;
}

pub async fn joint_accounts_take_holders_by_invitation(harness: &impl Harness) {
    let bank = bank(harness).await;
    let ana = bank.customer("ana", 1).await;
    let bia = bank.customer("bia", 2).await;
    let caio = bank.customer("caio", 3).await;
    let opened = bank
        .run(Command::OpenAccount {
            actor: ana.id,
            kind: AccountKind::Joint,
            co_holders: vec!["bia".into(), "caio".into()],
            opening_deposit: cents(5_000),
            e2e: e2e(1),
        })
        .await;
    let Outcome::Account(account) = opened else {
        panic!("{opened:?}")
    };
    assert_eq!(
        account.holders.len(),
        1,
        "co-holders are invited, not added"
    );
    let number = AccountNumber::parse(&account.number).unwrap();
    let invitation = |of: CustomerId| {
        let store = bank.store.clone();
        async move {
            let invitations = store.invitations_of(of).await.unwrap();
            assert_eq!(invitations.len(), 1, "{invitations:?}");
            invitations[0].id
        }
    };
    let (to_bia, to_caio) = (invitation(bia.id).await, invitation(caio.id).await);
    assert_eq!(bank.store.invitations_of(ana.id).await.unwrap().len(), 2);
    let answer = |actor, invitation, accept| Command::AnswerInvitation {
        actor,
        invitation,
        accept,
    };
    assert_eq!(
        refused(&bank.run(answer(caio.id, to_bia, true)).await),
        "invitation_not_found",
        "only the invited answer"
    );
    let accepted = bank.run(answer(bia.id, to_bia, true)).await;
    let Outcome::Account(account) = accepted else {
        panic!("{accepted:?}")
    };
    assert_eq!(account.holders.len(), 2);
    assert_eq!(
        bank.run(answer(caio.id, to_caio, false)).await,
        Outcome::Done
    );
    assert_eq!(
        refused(&bank.run(answer(bia.id, to_bia, true)).await),
        "invitation_not_found",
        "answered once"
    );
    // The new holder pays from the account at once (the writer's cache of holders follows).
    let bias = bank.account(bia.id, 5_000, 2).await;
    let paid = bank
        .run(transfer(bia.id, number, Target::Account(bias), 1_000, 3))
        .await;
    assert!(
        matches!(paid, Outcome::Payment(ref p) if p.status == PaymentStatus::Committed),
        "{paid:?}"
    );
    assert!(bank.store.account(caio.id, number).await.unwrap().is_none());
    bank.audit_passes().await;
}

/// A leg between a customer account here and this bank's settlement account with the peer.
fn leg(from: Endpoint, to: Endpoint, amount: i64) -> Leg {
    Leg {
        from,
        to,
        amount: cents(amount),
        memo: protocol::Memo {
            description: "rent".into(),
            made_by: "bia".into(),
            from_label: "Bia".into(),
            to_label: "Ana".into(),
        },
    }
}

fn prepare(serial: u64, legs: Vec<Leg>) -> Command {
    Command::Prepare {
        e2e: peer_e2e(serial),
        coordinator: peer(),
        legs,
        payment: None,
    }
}

fn finish(serial: u64, commit: bool) -> Command {
    Command::Finish {
        e2e: peer_e2e(serial),
        commit,
    }
}

pub async fn a_participant_holds_votes_and_finishes_once(harness: &impl Harness) {
    let bank = bank(harness).await;
    let ana = bank.customer("ana", 1).await;
    let a = bank.account(ana.id, 5_000, 1).await;
    let out = |amount| leg(Endpoint::Account(a), Endpoint::Settlement(peer()), amount);
    let incoming = |amount| leg(Endpoint::Settlement(peer()), Endpoint::Account(a), amount);
    let yes = Outcome::Vote {
        yes: true,
        reason: None,
    };

    // Held, asked again, then posted once.
    assert_eq!(bank.run(prepare(1, vec![out(2_000)])).await, yes);
    assert_eq!(bank.balances(ana.id, a).await, (5_000, 3_000));
    assert_eq!(
        bank.run(prepare(1, vec![out(2_000)])).await,
        yes,
        "the vote stands"
    );
    let open = bank.store.open_interbank().await.unwrap();
    assert_eq!(open.votes, vec![(peer_e2e(1), peer(), true)]);
    assert_eq!(bank.run(finish(1, true)).await, Outcome::Done);
    assert_eq!(bank.run(finish(1, true)).await, Outcome::Done, "once");
    assert_eq!(bank.balances(ana.id, a).await, (3_000, 3_000));
    assert_eq!(
        bank.run(prepare(1, vec![out(2_000)])).await,
        Outcome::AlreadyFinished
    );
    assert!(bank.store.open_interbank().await.unwrap().votes.is_empty());

    // Refused on its second leg: nothing held, and the reason names the leg.
    let vote = bank
        .run(prepare(2, vec![incoming(1_000), out(9_000)]))
        .await;
    assert_eq!(
        vote,
        Outcome::Vote {
            yes: false,
            reason: Some("10000001/1/insufficient_funds".into())
        }
    );
    assert_eq!(bank.balances(ana.id, a).await, (3_000, 3_000));
    let disobeyed = bank.run(finish(2, true)).await;
    assert_eq!(
        refused(&disobeyed),
        "hold_already_resolved",
        "a no vote never commits"
    );
    assert_eq!(bank.run(finish(2, false)).await, Outcome::Done);

    // Held then voided; an abort before any prepare is remembered, and a late prepare holds
    // nothing.
    assert_eq!(
        bank.run(prepare(3, vec![incoming(1_500), out(500)])).await,
        yes
    );
    assert_eq!(bank.run(finish(3, false)).await, Outcome::Done);
    assert_eq!(bank.balances(ana.id, a).await, (3_000, 3_000));
    assert_eq!(bank.run(finish(4, false)).await, Outcome::Done);
    assert_eq!(
        bank.run(prepare(4, vec![out(100)])).await,
        Outcome::AlreadyFinished
    );
    let unknown = bank.run(finish(5, true)).await;
    assert_eq!(refused(&unknown), "hold_already_resolved");

    // Money in: the statement shows it from the other bank, and the position moves.
    assert_eq!(bank.run(prepare(6, vec![incoming(4_000)])).await, yes);
    assert_eq!(
        bank.balances(ana.id, a).await,
        (3_000, 3_000),
        "nothing before the commit"
    );
    assert_eq!(bank.run(finish(6, true)).await, Outcome::Done);
    assert_eq!(bank.balances(ana.id, a).await, (7_000, 7_000));
    let statement = bank
        .store
        .statement(ana.id, a, None, 1)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (
            statement[0].kind.as_str(),
            statement[0].amount_cents,
            statement[0].counterparty.as_str()
        ),
        ("transfer_in", 4_000, "Bia")
    );
    let settlement = bank.store.settlement().await.unwrap();
    // Positive: the peer owes this bank (its customer's 4 000 in, less this bank's 2 000 out).
    assert_eq!(settlement, vec![(peer().to_string(), 4_000 - 2_000)]);
    bank.audit_passes().await;
}

fn decide(serial: u64, commit: bool, finish_here: bool) -> Command {
    Command::RecordDecision {
        e2e: e2e(serial),
        commit,
        participants: vec![me(), peer()],
        reason: (!commit).then(|| "20000002/0/account_not_found".to_string()),
        finish_here,
    }
}

/// A payment of `amount` from `from` here to an account at the peer, as its coordinator begins it.
fn begin_payment(actor: CustomerId, from: AccountNumber, serial: u64, amount: i64) -> Command {
    Command::BeginPayment {
        actor,
        from,
        payment: PaymentRecord {
            e2e_id: e2e(serial).to_string(),
            status: PaymentStatus::Pending,
            reason: None,
            from: AccountAddress {
                bank: me().to_string(),
                number: from.to_string(),
            },
            to: AccountAddress {
                bank: peer().to_string(),
                number: "100001-2".into(),
            },
            amount_cents: amount,
            description: "rent".into(),
            clock: "1.0".into(),
        },
        legs: vec![leg(
            Endpoint::Account(from),
            Endpoint::Settlement(peer()),
            amount,
        )],
    }
}

pub async fn a_coordinator_records_the_first_decision(harness: &impl Harness) {
    let bank = bank(harness).await;
    let ana = bank.customer("ana", 1).await;
    let a = bank.account(ana.id, 5_000, 1).await;
    let keyed = |serial| Request {
        command: begin_payment(ana.id, a, serial, 1_000),
        idempotency: Some(Idempotency {
            scope: ana.id,
            key: format!("k{serial}"),
            fingerprint: [9; 32],
        }),
    };
    let begun = bank.store.execute(keyed(10)).await.unwrap();
    assert!(matches!(begun.outcome, Outcome::Pending(_)), "{begun:?}");
    assert_eq!(bank.balances(ana.id, a).await, (5_000, 4_000), "held");
    let open = bank.store.open_interbank().await.unwrap();
    assert_eq!(open.undecided, vec![(e2e(10), vec![me(), peer()])]);

    let decided = bank.run(decide(10, true, true)).await;
    let Outcome::Decision {
        commit: true,
        finished_here: true,
        settled: Some(settled),
    } = &decided
    else {
        panic!("{decided:?}")
    };
    assert!(matches!(&**settled, Outcome::Payment(p) if p.status == PaymentStatus::Committed));
    assert_eq!(bank.balances(ana.id, a).await, (4_000, 4_000));
    // The first decision stands; the retry answers the payment as it stands.
    let contrary = bank.run(decide(10, false, true)).await;
    assert_eq!(
        contrary,
        Outcome::Decision {
            commit: true,
            finished_here: true,
            settled: None
        }
    );
    let retried = bank.store.execute(keyed(10)).await.unwrap();
    assert!(retried.replayed);
    assert!(
        matches!(retried.outcome, Outcome::Payment(ref p) if p.status == PaymentStatus::Committed),
        "{retried:?}"
    );
    assert_eq!(
        bank.store.decision(&e2e(10)).await.unwrap(),
        Some((true, vec![me(), peer()]))
    );
    let open = bank.store.open_interbank().await.unwrap();
    assert!(open.undecided.is_empty());
    assert_eq!(open.decisions, vec![(e2e(10), true, vec![me(), peer()])]);
    bank.run(Command::CompleteDecisions {
        e2es: vec![e2e(10)],
    })
    .await;
    assert!(
        bank.store
            .open_interbank()
            .await
            .unwrap()
            .decisions
            .is_empty()
    );

    // Aborted by a participant: the payment takes its reason, the hold is voided.
    bank.store.execute(keyed(11)).await.unwrap();
    let aborted = bank.run(decide(11, false, true)).await;
    assert!(
        matches!(
            aborted,
            Outcome::Decision {
                commit: false,
                finished_here: true,
                ..
            }
        ),
        "{aborted:?}"
    );
    let payment = bank.store.payment(ana.id, &e2e(11)).await.unwrap();
    let Some(Outcome::Payment(payment)) = payment else {
        panic!("{payment:?}")
    };
    assert_eq!(
        (payment.status, payment.reason.as_deref()),
        (PaymentStatus::Aborted, Some("account_not_found"))
    );
    assert_eq!(bank.balances(ana.id, a).await, (4_000, 4_000));
    // Refused here: aborted at once, nothing held.
    let refused_here = bank.run(begin_payment(ana.id, a, 12, 9_000)).await;
    assert!(
        matches!(refused_here, Outcome::Payment(ref p) if p.status == PaymentStatus::Aborted),
        "{refused_here:?}"
    );
    assert_eq!(bank.balances(ana.id, a).await, (4_000, 4_000));
    assert_eq!(
        bank.store.settlement().await.unwrap(),
        vec![(peer().to_string(), -1_000)]
    );
    bank.audit_passes().await;
}

pub async fn an_interbank_package_is_settled_by_its_decision(harness: &impl Harness) {
    let bank = bank(harness).await;
    let ana = bank.customer("ana", 1).await;
    let a = bank.account(ana.id, 5_000, 1).await;
    let package = PackageRecord {
        e2e_id: e2e(20).to_string(),
        status: PaymentStatus::Pending,
        results: vec![
            OperationRecord {
                status: OperationStatus::Committed,
                reason: None,
            },
            OperationRecord {
                status: OperationStatus::Committed,
                reason: None,
            },
        ],
        clock: "1.0".into(),
        banks: vec![vec![me()], vec![peer()]],
    };
    let request = Request {
        command: Command::BeginPackage {
            actor: ana.id,
            accounts: vec![a],
            package,
        },
        idempotency: Some(Idempotency {
            scope: ana.id,
            key: "pkg".into(),
            fingerprint: [4; 32],
        }),
    };
    let begun = bank.store.execute(request.clone()).await.unwrap();
    assert!(
        matches!(begun.outcome, Outcome::Package(ref p) if p.status == PaymentStatus::Pending),
        "{begun:?}"
    );
    let decided = bank
        .run(Command::RecordDecision {
            e2e: e2e(20),
            commit: false,
            participants: vec![me(), peer()],
            reason: Some("20000002/0/insufficient_funds".into()),
            finish_here: true,
        })
        .await;
    let Outcome::Decision {
        settled: Some(settled),
        ..
    } = decided
    else {
        panic!("{decided:?}")
    };
    let Outcome::Package(settled) = *settled else {
        panic!("{settled:?}")
    };
    assert_eq!(settled.status, PaymentStatus::Aborted);
    assert_eq!(
        settled.results[1],
        OperationRecord {
            status: OperationStatus::Rejected,
            reason: Some("insufficient_funds".into())
        }
    );
    let retried = bank.store.execute(request).await.unwrap();
    assert!(retried.replayed);
    assert_eq!(
        retried.outcome,
        Outcome::Package(settled.clone()),
        "the record was settled"
    );
    assert_eq!(
        bank.store.payment(ana.id, &e2e(20)).await.unwrap(),
        Some(Outcome::Package(settled))
    );
    bank.audit_passes().await;
}

/// Clients at once, each moving money between the same few accounts: every transfer commits or
/// aborts, money is conserved, nothing goes negative, and the audit is clean.
pub async fn concurrent_transfers_conserve_money(harness: &impl Harness) {
    const CLIENTS: u64 = 16;
    const TRANSFERS: u64 = 40;
    const ACCOUNTS: u64 = 4;
    let bank = Arc::new(bank(harness).await);
    let ana = bank.customer("ana", 1).await;
    let mut numbers = Vec::new();
    for serial in 0..ACCOUNTS {
        numbers.push(bank.account(ana.id, 10_000, serial).await);
    }
    let numbers = Arc::new(numbers);
    let mut clients = Vec::new();
    for client in 0..CLIENTS {
        let (bank, numbers) = (bank.clone(), numbers.clone());
        clients.push(tokio::spawn(async move {
            for n in 0..TRANSFERS {
                let serial = 1_000 + client * TRANSFERS + n;
                let from = numbers[((client + n) % ACCOUNTS) as usize];
                let to = numbers[((client + 2 * n + 1) % ACCOUNTS) as usize];
                let amount = 1 + (serial * 7_919 % 4_000) as i64;
                let outcome = bank
                    .run(transfer(ana.id, from, Target::Account(to), amount, serial))
                    .await;
                match outcome {
                    Outcome::Payment(_) => {}
                    Outcome::Refused(Refusal::Ledger(LedgerRefusal::SameAccount)) => {}
                    other => panic!("{other:?}"),
                }
            }
        }));
    }
    for client in clients {
        client.await.unwrap();
    }
    let mut total = 0;
    for number in numbers.iter() {
        let (balance, available) = bank.balances(ana.id, *number).await;
        assert!(balance >= 0 && available >= 0, "{balance} {available}");
        total += balance;
    }
    assert_eq!(total, (ACCOUNTS * 10_000) as i64, "money is conserved");
    bank.audit_passes().await;
}
