//! `bank atm`: an interactive session in the manner of a bank's "Caixa Eletrônico". It logs in,
//! picks the account, and loops over a menu (balance, statement, deposit, withdrawal,
//! transfer/Pix, package, exit) until the customer leaves.
//!
//! It is written to survive people and networks: bad input is explained and asked again; a lost
//! connection is reported with the choice to retry (with the same `Idempotency-Key`, so a
//! deposit whose answer was lost is not made twice) or to leave; Ctrl-C and the end of input
//! leave cleanly, logging the session out and saying goodbye. It uses only the public API.

mod console;
pub mod text;

use crate::amount::{Lang, parse_amount};
use crate::args::destination;
use crate::error::exit;
use crate::format::{Align, Table, Zone, brl, brl_wire, entry_kind};
use client::{Client, ClientError, Reply, new_idempotency_key};
use console::{Console, Leave};
use std::time::Duration;
use text::Texts;

/// Wrong passwords before the ATM gives up.
const LOGIN_ATTEMPTS_MAX: u32 = 3;
/// Entries per statement page.
const STATEMENT_PAGE: u32 = 10;
/// Operations in one package built at the ATM.
const PACKAGE_OPERATIONS_MAX: usize = 20;
/// How long the goodbye waits for the bank to end the session.
const LOGOUT_TIMEOUT: Duration = Duration::from_secs(3);

pub struct Options {
    pub url: String,
    /// The certificate authorities for an https bank (`--ca`).
    pub trust: client::Trust,
    pub lang: Lang,
    pub show_clock: bool,
    pub zone: Zone,
}

struct Atm {
    console: Console,
    t: &'static Texts,
    lang: Lang,
    show_clock: bool,
    zone: Zone,
}

/// Runs a session and answers the process's exit code: 0 when the customer left (menu, Ctrl-C
/// or end of input), 3 after too many wrong passwords, 4 when the bank was unreachable and the
/// customer gave up.
pub async fn run(options: Options) -> u8 {
    let mut client = match Client::with_trust(&options.url, &options.trust) {
        Ok(client) => client,
        Err(error) => {
            eprintln!("error: {error}");
            return exit::USAGE;
        }
    };
    let console = match Console::start() {
        Ok(console) => console,
        Err(error) => {
            eprintln!("error: cannot read the keyboard: {error}");
            return exit::OTHER;
        }
    };
    let mut atm = Atm {
        console,
        t: text::texts(options.lang),
        lang: options.lang,
        show_clock: options.show_clock,
        zone: options.zone,
    };
    let leave = atm.session(&mut client).await;
    let t = atm.t;
    println!();
    if client.token().is_some() {
        // Not interruptible: a second Ctrl-C should not leave the session open at the bank.
        if let Ok(Ok(reply)) = tokio::time::timeout(LOGOUT_TIMEOUT, client.logout()).await {
            atm.clock(reply.clock.as_deref());
            println!("{}", t.session_closed);
        }
    }
    match leave {
        Leave::LoginFailed => println!("{}", t.too_many_logins),
        Leave::Unavailable => println!("{}", t.connection_lost),
        Leave::Quit | Leave::Interrupted | Leave::EndOfInput => {}
    }
    println!("{}", t.goodbye);
    match leave {
        Leave::Quit | Leave::Interrupted | Leave::EndOfInput => exit::OK,
        Leave::LoginFailed => exit::REFUSED,
        Leave::Unavailable => exit::UNAVAILABLE,
    }
}

impl Atm {
    /// The whole session; it only ends by leaving.
    async fn session(&mut self, client: &mut Client) -> Leave {
        match self.session_steps(client).await {
            Ok(never) => match never {},
            Err(leave) => leave,
        }
    }

    async fn session_steps(
        &mut self,
        client: &mut Client,
    ) -> Result<std::convert::Infallible, Leave> {
        let t = self.t;
        // Not a bank, or a bank that refuses to say who it is: nothing here will work, so
        // leave rather than ask again.
        let health = match self.call(async || client.health().await).await? {
            Ok(reply) => reply.value,
            Err(error) => {
                self.refused(&error);
                return Err(Leave::Unavailable);
            }
        };
        println!("=== {} — {} ({}) ===", t.title, health.name, health.bank);
        println!("{}", t.ctrl_c_hint);
        self.login(client).await?;
        let me = match self.call(async || client.me().await).await? {
            Ok(reply) => reply.value,
            Err(error) => {
                self.refused(&error);
                return Err(Leave::Quit);
            }
        };
        println!("{} {}.", t.welcome, me.customer.name);
        let accounts: Vec<wire::Account> = me
            .accounts
            .into_iter()
            .filter(|a| a.bank == health.bank)
            .collect();
        let account = match accounts.as_slice() {
            [] => {
                println!("{}", t.no_accounts);
                return Err(Leave::Quit);
            }
            [only] => only.clone(),
            several => self.choose_account(several).await?,
        };
        let account = wire::AccountRef {
            bank: account.bank,
            number: account.number,
        };
        println!("{} {}/{}", t.account, account.bank, account.number);
        loop {
            println!();
            for line in t.menu {
                println!("  {line}");
            }
            let choice = self.console.ask(t.option).await?;
            match choice.as_str() {
                "1" => self.balance(client, &account).await?,
                "2" => self.statement(client, &account).await?,
                "3" => self.cash(client, &account, true).await?,
                "4" => self.cash(client, &account, false).await?,
                "5" => self.transfer(client, &account).await?,
                "6" => self.package(client, &account).await?,
                "0" => return Err(Leave::Quit),
                _ => println!("{}", t.invalid_option),
            }
        }
    }

    /// Asks for the username and password until the bank accepts them, at most
    /// [`LOGIN_ATTEMPTS_MAX`] times; the token then goes into `client`.
    async fn login(&mut self, client: &mut Client) -> Result<(), Leave> {
        let t = self.t;
        let mut failures = 0;
        loop {
            let username = loop {
                let username = self.console.ask(t.username).await?;
                if !username.is_empty() {
                    break username;
                }
            };
            let password = self.console.ask_secret(t.password).await?;
            let credentials = wire::Credentials { username, password };
            match self.call(async || client.login(&credentials).await).await? {
                Ok(reply) => {
                    client.set_token(Some(reply.value.token));
                    return Ok(());
                }
                Err(error) => {
                    if error.status() == Some(401) {
                        println!("{}", t.wrong_login);
                    } else {
                        self.refused(&error);
                    }
                    failures += 1;
                    if failures >= LOGIN_ATTEMPTS_MAX {
                        return Err(Leave::LoginFailed);
                    }
                }
            }
        }
    }

    async fn choose_account(&mut self, accounts: &[wire::Account]) -> Result<wire::Account, Leave> {
        let t = self.t;
        println!("{}", t.choose_account);
        for (i, account) in accounts.iter().enumerate() {
            println!(
                "  {}) {}/{}  {}  {}",
                i + 1,
                account.bank,
                account.number,
                account.kind,
                brl_wire(&account.balance)
            );
        }
        loop {
            let choice = self.console.ask(t.option).await?;
            match choice.parse::<usize>() {
                Ok(n) if (1..=accounts.len()).contains(&n) => return Ok(accounts[n - 1].clone()),
                _ => println!("{}", t.invalid_option),
            }
        }
    }

    /// Runs one request: Ctrl-C leaves; a lost connection asks to retry (the same request,
    /// the same `Idempotency-Key`) or to leave; any answer is shown with its clock if asked.
    async fn call<T>(
        &mut self,
        request: impl AsyncFn() -> Result<Reply<T>, ClientError>,
    ) -> Result<Result<Reply<T>, ClientError>, Leave> {
        loop {
            let answer = self.console.interruptible(request()).await?;
            match answer {
                Ok(reply) => {
                    self.clock(reply.clock.as_deref());
                    return Ok(Ok(reply));
                }
                Err(error) if error.is_unavailable() => {
                    self.clock(error.clock());
                    println!("{} ({error})", self.t.connection_lost);
                    loop {
                        let answer = self.console.ask(self.t.retry_or_quit).await?;
                        match text::retry(&answer) {
                            Some(true) => break,
                            Some(false) => return Err(Leave::Unavailable),
                            None => println!("{}", self.t.answer_retry),
                        }
                    }
                }
                Err(error) => {
                    self.clock(error.clock());
                    return Ok(Err(error));
                }
            }
        }
    }

    fn clock(&self, clock: Option<&str>) {
        if let (true, Some(clock)) = (self.show_clock, clock) {
            println!("[{}: {clock}]", self.t.clock);
        }
    }

    /// Tells a refusal: in words where the code is known, else the bank's own detail.
    fn refused(&self, error: &ClientError) {
        let explanation = match error.problem() {
            Some(problem) => format!(
                "{} ({})",
                text::refusal(self.lang, &problem.code).unwrap_or(&problem.detail),
                problem.code
            ),
            None => error.to_string(),
        };
        println!("{} {explanation}", self.t.refused);
    }

    /// Asks for an amount until one is valid; `None` when the customer leaves it empty.
    async fn ask_amount(&mut self) -> Result<Option<ledger::Amount>, Leave> {
        loop {
            let text = self.console.ask(self.t.amount).await?;
            if text.is_empty() {
                println!("{}", self.t.cancelled);
                return Ok(None);
            }
            match parse_amount(&text) {
                Ok(amount) => return Ok(Some(amount)),
                Err(error) => println!("{} {}", self.t.invalid_amount, error.explain(self.lang)),
            }
        }
    }

    async fn ask_yes(&mut self, question: &str) -> Result<bool, Leave> {
        loop {
            let answer = self
                .console
                .ask(&format!("{question} {}", self.t.yes_no))
                .await?;
            match text::yes(&answer) {
                Some(yes) => return Ok(yes),
                None => println!("{}", self.t.answer_yes_no),
            }
        }
    }

    async fn balance(&mut self, client: &Client, account: &wire::AccountRef) -> Result<(), Leave> {
        match self.call(async || client.account(account).await).await? {
            Ok(reply) => println!(
                "{}: {}   {}: {}",
                self.t.balance,
                brl_wire(&reply.value.balance),
                self.t.available,
                brl_wire(&reply.value.available)
            ),
            Err(error) => self.refused(&error),
        }
        Ok(())
    }

    async fn statement(
        &mut self,
        client: &Client,
        account: &wire::AccountRef,
    ) -> Result<(), Leave> {
        let t = self.t;
        println!("{} {}/{}", t.statement_of, account.bank, account.number);
        let mut cursor: Option<String> = None;
        loop {
            let page = cursor.clone();
            let reply = match self
                .call(async || {
                    client
                        .statement(account, Some(STATEMENT_PAGE), page.as_deref())
                        .await
                })
                .await?
            {
                Ok(reply) => reply.value,
                Err(error) => {
                    self.refused(&error);
                    return Ok(());
                }
            };
            if reply.entries.is_empty() {
                println!("{}", t.no_entries);
            } else {
                let mut table = Table::with_headers(
                    vec![
                        self.zone.header(t.statement_columns[0]),
                        t.statement_columns[1].to_string(),
                        t.statement_columns[2].to_string(),
                        t.balance.to_lowercase(),
                        t.statement_columns[3].to_string(),
                    ],
                    vec![
                        Align::Left,
                        Align::Left,
                        Align::Right,
                        Align::Right,
                        Align::Left,
                    ],
                );
                for e in &reply.entries {
                    table.row(vec![
                        self.zone.show(&e.at),
                        entry_kind(&e.kind, self.lang),
                        brl_wire(&e.amount),
                        brl_wire(&e.balance_after),
                        if e.description.is_empty() {
                            e.counterparty.clone()
                        } else {
                            format!("{} {}", e.counterparty, e.description)
                                .trim()
                                .to_string()
                        },
                    ]);
                }
                print!("{}", table.render());
            }
            match reply.next_cursor {
                Some(next) if self.ask_yes(t.older).await? => {
                    cursor = Some(next);
                }
                _ => return Ok(()),
            }
        }
    }

    async fn cash(
        &mut self,
        client: &Client,
        account: &wire::AccountRef,
        deposit: bool,
    ) -> Result<(), Leave> {
        let Some(amount) = self.ask_amount().await? else {
            return Ok(());
        };
        let body = wire::MoneyRequest {
            amount: amount.to_string(),
            description: None,
        };
        // One key for this operation, reused if the customer retries after a lost connection.
        let key = new_idempotency_key();
        let answer = self
            .call(async || {
                if deposit {
                    client.deposit(account, &body, Some(&key)).await
                } else {
                    client.withdraw(account, &body, Some(&key)).await
                }
            })
            .await?;
        match answer {
            Ok(reply) => {
                let done = if deposit {
                    self.t.deposit_done
                } else {
                    self.t.withdrawal_done
                };
                println!(
                    "{done} {} {}",
                    self.t.new_balance,
                    brl_wire(&reply.value.balance_after)
                );
            }
            Err(error) => self.refused(&error),
        }
        Ok(())
    }

    /// Asks for a destination until it is usable: a Pix key is looked up and its holder shown.
    async fn ask_destination(
        &mut self,
        client: &Client,
    ) -> Result<Option<(wire::Destination, String)>, Leave> {
        let t = self.t;
        loop {
            let text = self.console.ask(t.destination).await?;
            if text.is_empty() {
                println!("{}", t.cancelled);
                return Ok(None);
            }
            let to = destination(&text);
            let Some(key) = to.pix_key.clone() else {
                let shown = format!("{} {text}", t.payee_account);
                return Ok(Some((to, shown)));
            };
            match self
                .call(async || client.lookup_pix_key(&key).await)
                .await?
            {
                Ok(reply) => {
                    let k = reply.value;
                    let shown = format!(
                        "{} {} ({}) — {} {}",
                        t.payee, k.holder_name, k.document_masked, k.kind, k.key
                    );
                    return Ok(Some((to, shown)));
                }
                Err(error) => self.refused(&error),
            }
        }
    }

    async fn transfer(&mut self, client: &Client, from: &wire::AccountRef) -> Result<(), Leave> {
        let t = self.t;
        let Some((to, shown)) = self.ask_destination(client).await? else {
            return Ok(());
        };
        println!("{shown}");
        let Some(amount) = self.ask_amount().await? else {
            return Ok(());
        };
        let description = self.console.ask(t.description).await?;
        if !self
            .ask_yes(&format!("{} {}?", t.confirm, brl(amount.cents())))
            .await?
        {
            println!("{}", t.cancelled);
            return Ok(());
        }
        let body = wire::TransferRequest {
            from: from.clone(),
            to,
            amount: amount.to_string(),
            description: (!description.is_empty()).then_some(description),
        };
        let key = new_idempotency_key();
        match self
            .call(async || client.transfer(&body, Some(&key)).await)
            .await?
        {
            Ok(reply) if reply.value.status == "committed" => {
                println!("{} {} {}", t.transfer_done, t.id, reply.value.id);
            }
            Ok(reply) => {
                let reason = reply.value.reason.unwrap_or(reply.value.status);
                println!(
                    "{} {} ({reason})",
                    t.transfer_not_done,
                    text::refusal(self.lang, &reason).unwrap_or(&reason)
                );
            }
            Err(error) => self.refused(&error),
        }
        Ok(())
    }

    async fn package(&mut self, client: &Client, account: &wire::AccountRef) -> Result<(), Leave> {
        let t = self.t;
        let letters = &t.package_letters;
        let mut operations: Vec<wire::OperationRequest> = Vec::new();
        let mut shown: Vec<String> = Vec::new();
        while operations.len() < PACKAGE_OPERATIONS_MAX {
            let choice = self.console.ask(t.package_operation).await?.to_lowercase();
            let (kind, name) = if choice.is_empty() {
                println!("{}", t.cancelled);
                return Ok(());
            } else if choice == letters.finish {
                break;
            } else if choice == letters.deposit {
                ("deposit", t.operation_names[0])
            } else if choice == letters.withdrawal {
                ("withdrawal", t.operation_names[1])
            } else if choice == letters.transfer {
                ("transfer", t.operation_names[2])
            } else {
                println!("{}", t.package_invalid);
                continue;
            };
            let to = if kind == "transfer" {
                match self.ask_destination(client).await? {
                    Some((to, who)) => Some((to, who)),
                    None => continue,
                }
            } else {
                None
            };
            let Some(amount) = self.ask_amount().await? else {
                continue;
            };
            shown.push(format!(
                "{}. {name} {}{}",
                operations.len() + 1,
                brl(amount.cents()),
                to.as_ref()
                    .map(|(_, who)| format!(" — {who}"))
                    .unwrap_or_default()
            ));
            operations.push(wire::OperationRequest {
                kind: kind.into(),
                account: account.clone(),
                amount: amount.to_string(),
                to: to.map(|(to, _)| to),
                description: None,
            });
        }
        if operations.is_empty() {
            println!("{}", t.package_empty);
            return Ok(());
        }
        println!("{}", t.package_summary);
        for line in &shown {
            println!("  {line}");
        }
        if !self.ask_yes(&format!("{}?", t.confirm)).await? {
            println!("{}", t.cancelled);
            return Ok(());
        }
        let body = wire::PackageRequest { operations };
        let key = new_idempotency_key();
        match self
            .call(async || client.package(&body, Some(&key)).await)
            .await?
        {
            Ok(reply) if reply.value.status == "committed" => {
                println!("{} {} {}", t.package_done, t.id, reply.value.id);
            }
            Ok(reply) => {
                println!("{}", t.package_not_done);
                for result in &reply.value.results {
                    let reason = result
                        .reason
                        .as_deref()
                        .map(|r| format!(" — {} ({r})", text::refusal(self.lang, r).unwrap_or(r)))
                        .unwrap_or_default();
                    println!("  {}. {}{reason}", result.index + 1, result.status);
                }
            }
            Err(error) => self.refused(&error),
        }
        Ok(())
    }
}
