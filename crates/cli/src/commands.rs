//! The one-shot subcommands: each resolves which bank and account it means, calls the API once
//! (or a few times, for `statement --all`) through `client`, and prints either a table for
//! people or, with `--json`, the JSON exactly as the bank answered.

use crate::amount::{Lang, parse_amount};
use crate::args::{
    AuditCommand, Command, InvitationsCommand, KeysCommand, OperationArg, TransferCommand,
    destination,
};
use crate::config::{self, SavedSession};
use crate::error::CliError;
use crate::format::{Align, Table, Zone, brl, brl_wire, entry_kind};
use client::{Client, Payment, Reply, Trust};
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// Pages `statement --all` follows at most (100 entries each), so a damaged cursor chain cannot
/// loop forever.
pub const STATEMENT_PAGES_MAX: usize = 10_000;

/// What every command needs: how to print, and which bank was asked for.
pub struct Context {
    pub json: bool,
    pub zone: Zone,
    /// From `--bank` or `$BANK_URL`.
    pub bank: Option<String>,
    pub session_path: PathBuf,
    /// The certificate authorities for https banks (`--ca` / `$BANK_CA` beside the system's).
    pub trust: Trust,
}

impl Context {
    /// The bank's URL: the flag or environment, else the session's bank, else `config.json`'s
    /// `bank` (which `bank login` records).
    pub fn url(&self) -> Result<String, CliError> {
        if let Some(url) = &self.bank {
            return Ok(url.clone());
        }
        if let Some(saved) = config::load(&self.session_path).map_err(CliError::Other)? {
            return Ok(saved.url);
        }
        let defaults = config::load_defaults(&config::defaults_path(&self.session_path))
            .map_err(CliError::Other)?;
        defaults.bank.ok_or_else(|| {
            CliError::Usage(
                "which bank? pass --bank URL, set BANK_URL, or log in once with --bank".into(),
            )
        })
    }

    /// A client of the bank at `url`, trusting `--ca`.
    pub fn client(&self, url: &str) -> Result<Client, CliError> {
        Ok(Client::with_trust(url, &self.trust)?)
    }

    /// A client without a session.
    fn anonymous(&self) -> Result<Client, CliError> {
        self.client(&self.url()?)
    }

    /// A client carrying the saved session's token, which is only ever sent to the bank that
    /// issued it.
    fn authenticated(&self) -> Result<Client, CliError> {
        let saved = config::load(&self.session_path)
            .map_err(CliError::Other)?
            .ok_or_else(|| {
                CliError::Other("not logged in: run `bank login USERNAME` first".into())
            })?;
        let client = self.client(&self.url()?)?;
        let saved_base = self.client(&saved.url)?.base_url();
        if client.base_url() != saved_base {
            return Err(CliError::Other(format!(
                "you are logged in at {saved_base}, not at {}: run `bank login` there",
                client.base_url()
            )));
        }
        Ok(client.with_token(saved.token))
    }

    /// Prints the bank's JSON with `--json`, else the human text.
    fn emit<T>(&self, reply: &Reply<T>, human: impl FnOnce(&T) -> String) {
        if self.json {
            if !reply.json.is_null() {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&reply.json).expect("JSON values serialise")
                );
            }
        } else {
            let text = human(&reply.value);
            print!("{text}");
            if !text.ends_with('\n') {
                println!();
            }
        }
    }
}

pub async fn run(context: &Context, command: Command) -> Result<(), CliError> {
    match command {
        Command::Register {
            name,
            document,
            username,
        } => register(context, name, document, username).await,
        Command::Login { username } => login(context, username).await,
        Command::Logout => logout(context).await,
        Command::Me => me(context).await,
        Command::Accounts => accounts(context).await,
        Command::Open {
            kind,
            co_holders,
            deposit,
        } => open(context, kind, co_holders, deposit).await,
        Command::Deposit {
            amount,
            account,
            description,
        } => cash(context, Cash::Deposit, amount, account, description).await,
        Command::Withdraw {
            amount,
            account,
            description,
        } => cash(context, Cash::Withdrawal, amount, account, description).await,
        Command::Pay {
            to,
            amount,
            from,
            description,
        } => pay(context, to, amount, from, description).await,
        Command::Package { file, ops, account } => package(context, file, ops, account).await,
        Command::Statement {
            account,
            limit,
            cursor,
            all,
        } => statement(context, account, limit, cursor, all).await,
        Command::Keys { action } => keys(context, action).await,
        Command::Invitations { action } => {
            invitations(context, action.unwrap_or(InvitationsCommand::List)).await
        }
        Command::Transfer {
            action: TransferCommand::Show { id },
        } => transfer_show(context, id).await,
        Command::Consortium { operator_token } => consortium(context, operator_token).await,
        Command::Audit {
            action:
                Some(AuditCommand::Events {
                    operator_token,
                    limit,
                }),
            ..
        } => security_events(context, &operator_token, limit).await,
        Command::Audit {
            action: None,
            consortium,
            operator_token,
        } => match consortium {
            Some(file) => crate::audit::consortium(context, &file).await,
            None => {
                let token = operator_token.ok_or_else(|| {
                    CliError::Usage(
                        "audit needs --consortium FILE, or --bank URL with --operator-token".into(),
                    )
                })?;
                crate::audit::one_bank(context, &context.url()?, &token).await
            }
        },
        Command::Health => health(context).await,
        Command::Bench(args) => crate::bench::run(context, args).await,
        Command::Atm { .. } => unreachable!("the ATM is run by lib::run"),
    }
}

async fn register(
    context: &Context,
    name: String,
    document: String,
    username: String,
) -> Result<(), CliError> {
    let client = context.anonymous()?;
    let password =
        crate::terminal::read_password("Choose a password: ", true).map_err(CliError::Other)?;
    let reply = client
        .register(
            &wire::RegisterCustomer {
                name,
                document,
                username,
                password,
            },
            None,
        )
        .await?;
    context.emit(&reply, |c| {
        format!(
            "Registered {} as {} ({}) at bank {}.\nNext: bank login {}\n",
            c.name, c.username, c.kind, c.home_bank, c.username
        )
    });
    Ok(())
}

async fn login(context: &Context, username: String) -> Result<(), CliError> {
    let client = context.anonymous()?;
    let password = crate::terminal::read_password("Password: ", false).map_err(CliError::Other)?;
    let reply = client
        .login(&wire::Credentials {
            username: username.clone(),
            password,
        })
        .await?;
    let saved = SavedSession {
        url: client.base_url(),
        username: username.to_ascii_lowercase(),
        token: reply.value.token.clone(),
        expires_at: reply.value.expires_at.clone(),
    };
    config::save(&context.session_path, &saved).map_err(CliError::Other)?;
    // The next commands (and the next login) go to this bank unless told otherwise.
    let defaults_path = config::defaults_path(&context.session_path);
    let mut defaults = config::load_defaults(&defaults_path).unwrap_or_default();
    if defaults.bank.as_deref() != Some(saved.url.as_str()) {
        defaults.bank = Some(saved.url.clone());
        config::save_defaults(&defaults_path, &defaults).map_err(CliError::Other)?;
    }
    context.emit(&reply, |s| {
        format!(
            "Logged in at {} as {}; the session lasts until {} ({}).\n",
            saved.url,
            saved.username,
            context.zone.show(&s.expires_at),
            context.zone.label()
        )
    });
    Ok(())
}

async fn logout(context: &Context) -> Result<(), CliError> {
    let Some(saved) = config::load(&context.session_path).map_err(CliError::Other)? else {
        if !context.json {
            println!("Not logged in.");
        }
        return Ok(());
    };
    // The token goes back to the bank that issued it, whatever --bank says.
    let client = context.client(&saved.url)?.with_token(saved.token.clone());
    let answer = client.logout().await;
    config::remove(&context.session_path).map_err(CliError::Other)?;
    match answer {
        Ok(reply) => {
            context.emit(&reply, |_| format!("Logged out of {}.", saved.url));
            Ok(())
        }
        // The session had already ended at the bank: forgetting it here is all there is to do.
        Err(error) if error.status() == Some(401) => {
            if !context.json {
                println!("Logged out (the session had already ended at the bank).");
            }
            Ok(())
        }
        Err(error) => {
            eprintln!("The session was forgotten here, but the bank could not be told.");
            Err(error.into())
        }
    }
}

fn accounts_table(accounts: &[wire::Account]) -> String {
    if accounts.is_empty() {
        return "No accounts yet: open one with `bank open --deposit 100`.\n".into();
    }
    let mut table = Table::new(&[
        ("account", Align::Left),
        ("kind", Align::Left),
        ("holders", Align::Left),
        ("balance", Align::Right),
        ("available", Align::Right),
    ]);
    for account in accounts {
        table.row(vec![
            format!("{}/{}", account.bank, account.number),
            account.kind.clone(),
            account
                .holders
                .iter()
                .map(|h| h.username.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            brl_wire(&account.balance),
            brl_wire(&account.available),
        ]);
    }
    table.render()
}

async fn me(context: &Context) -> Result<(), CliError> {
    let reply = context.authenticated()?.me().await?;
    context.emit(&reply, |me| {
        let c = &me.customer;
        format!(
            "{} ({}), {} customer of bank {}\ncustomer id {}\n\n{}",
            c.name,
            c.username,
            c.kind,
            c.home_bank,
            c.id,
            accounts_table(&me.accounts)
        )
    });
    Ok(())
}

async fn accounts(context: &Context) -> Result<(), CliError> {
    let reply = context.authenticated()?.me().await?;
    if context.json {
        let accounts = reply.json.get("accounts").cloned().unwrap_or_default();
        println!(
            "{}",
            serde_json::to_string_pretty(&accounts).expect("JSON values serialise")
        );
    } else {
        print!("{}", accounts_table(&reply.value.accounts));
    }
    Ok(())
}

/// The account a command means: `BANK/NUMBER`, a `NUMBER` at the customer's bank, or, when
/// none is given, the customer's only account at that bank.
async fn resolve_account(
    client: &Client,
    given: Option<&str>,
) -> Result<wire::AccountRef, CliError> {
    if let Some((bank, number)) = given.and_then(|text| text.split_once('/')) {
        return Ok(wire::AccountRef {
            bank: bank.to_string(),
            number: number.to_string(),
        });
    }
    let me = client.me().await?.value;
    let home = me.customer.home_bank.clone();
    if let Some(number) = given {
        return Ok(wire::AccountRef {
            bank: home,
            number: number.to_string(),
        });
    }
    let mine: Vec<&wire::Account> = me.accounts.iter().filter(|a| a.bank == home).collect();
    match mine.as_slice() {
        [only] => Ok(wire::AccountRef {
            bank: only.bank.clone(),
            number: only.number.clone(),
        }),
        [] => Err(CliError::Other(
            "you hold no account at this bank yet: open one with `bank open --deposit 100`".into(),
        )),
        several => Err(CliError::Usage(format!(
            "you hold {} accounts here; choose one with --account ({})",
            several.len(),
            several
                .iter()
                .map(|a| format!("{}/{}", a.bank, a.number))
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

async fn open(
    context: &Context,
    kind: Option<String>,
    co_holders: Vec<String>,
    deposit: ledger::Amount,
) -> Result<(), CliError> {
    let client = context.authenticated()?;
    let kind = match kind {
        Some(kind) => kind,
        None if !co_holders.is_empty() => "joint".into(),
        None => client.me().await?.value.customer.kind,
    };
    let invited = co_holders.join(", ");
    let reply = client
        .open_account(
            &wire::OpenAccount {
                kind,
                co_holders,
                opening_deposit: deposit.to_string(),
            },
            None,
        )
        .await?;
    context.emit(&reply, |a| {
        let mut out = format!(
            "Opened {} account {}/{} with {}.\n",
            a.kind,
            a.bank,
            a.number,
            brl_wire(&a.balance)
        );
        if !invited.is_empty() {
            out.push_str(&format!(
                "Invited {invited}: each holds it once they accept (`bank invitations accept ID`).\n"
            ));
        }
        out
    });
    Ok(())
}

#[derive(Clone, Copy)]
enum Cash {
    Deposit,
    Withdrawal,
}

async fn cash(
    context: &Context,
    direction: Cash,
    amount: ledger::Amount,
    account: Option<String>,
    description: Option<String>,
) -> Result<(), CliError> {
    let client = context.authenticated()?;
    let account = resolve_account(&client, account.as_deref()).await?;
    let body = wire::MoneyRequest {
        amount: amount.to_string(),
        description,
    };
    let (reply, verb, preposition) = match direction {
        Cash::Deposit => (
            client.deposit(&account, &body, None).await?,
            "Deposited",
            "into",
        ),
        Cash::Withdrawal => (
            client.withdraw(&account, &body, None).await?,
            "Withdrew",
            "from",
        ),
    };
    context.emit(&reply, |entry| {
        format!(
            "{verb} {} {preposition} {}/{}; balance {}.\n",
            brl(amount.cents()),
            account.bank,
            account.number,
            brl_wire(&entry.balance_after)
        )
    });
    Ok(())
}

fn describe_destination(to: &wire::Destination) -> String {
    match (&to.pix_key, &to.bank, &to.number) {
        (Some(key), _, _) => format!("Pix key {key}"),
        (None, Some(bank), Some(number)) => format!("{bank}/{number}"),
        _ => "?".into(),
    }
}

async fn pay(
    context: &Context,
    to: String,
    amount: ledger::Amount,
    from: Option<String>,
    description: Option<String>,
) -> Result<(), CliError> {
    let client = context.authenticated()?;
    let from = resolve_account(&client, from.as_deref()).await?;
    let to = destination(&to);
    let reply = client
        .transfer(
            &wire::TransferRequest {
                from,
                to: to.clone(),
                amount: amount.to_string(),
                description,
            },
            None,
        )
        .await?;
    context.emit(&reply, |t| {
        if t.status == "committed" {
            format!(
                "Paid {} from {}/{} to {} ({}/{}).\nend-to-end id {}\n",
                brl_wire(&t.amount),
                t.from.bank,
                t.from.number,
                describe_destination(&to),
                t.to.bank,
                t.to.number,
                t.id
            )
        } else {
            format!("Transfer {} {}.\n", t.id, t.status)
        }
    });
    aborted(
        "transfer",
        &reply.value.status,
        reply.value.reason.as_deref(),
    )
}

/// A payment the bank answered but did not commit is a refusal (exit 3).
fn aborted(what: &str, status: &str, reason: Option<&str>) -> Result<(), CliError> {
    if status == "committed" {
        Ok(())
    } else {
        Err(CliError::Aborted {
            what: what.into(),
            reason: reason.unwrap_or(status).to_string(),
        })
    }
}

/// `account` in a package file: `BANK/NUMBER`, a `NUMBER`, or the API's `{bank, number}`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum FileAccount {
    Text(String),
    Wire(wire::AccountRef),
}

/// `to` in a package file: a Pix key or `BANK/NUMBER`, or the API's destination object.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum FileDestination {
    Text(String),
    Wire(wire::Destination),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileOperation {
    #[serde(rename = "type")]
    kind: String,
    amount: String,
    #[serde(default)]
    account: Option<FileAccount>,
    #[serde(default)]
    to: Option<FileDestination>,
    #[serde(default)]
    description: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum PackageFile {
    Body { operations: Vec<FileOperation> },
    List(Vec<FileOperation>),
}

fn read_package_file(path: &Path) -> Result<Vec<FileOperation>, CliError> {
    let text = if path == Path::new("-") {
        std::io::read_to_string(std::io::stdin())
            .map_err(|e| CliError::Other(format!("cannot read standard input: {e}")))?
    } else {
        std::fs::read_to_string(path)
            .map_err(|e| CliError::Other(format!("cannot read {}: {e}", path.display())))?
    };
    let file: PackageFile = serde_json::from_str(&text).map_err(|e| {
        CliError::Usage(format!(
            "{}: not a package ({e}); see `bank package --help` for the format",
            path.display()
        ))
    })?;
    Ok(match file {
        PackageFile::Body { operations } | PackageFile::List(operations) => operations,
    })
}

async fn package(
    context: &Context,
    file: Option<PathBuf>,
    ops: Vec<OperationArg>,
    account: Option<String>,
) -> Result<(), CliError> {
    // Everything typed is checked before the first request.
    let from_file = match &file {
        Some(path) => Some(read_package_file(path)?),
        None => None,
    };
    let mut checked = Vec::new();
    match from_file {
        Some(operations) => {
            for (index, op) in operations.into_iter().enumerate() {
                let amount = parse_amount(&op.amount).map_err(|e| {
                    CliError::Usage(format!("operation {index}: amount {:?}: {e}", op.amount))
                })?;
                let kind = match op.kind.as_str() {
                    "withdraw" => "withdrawal".to_string(),
                    other => other.to_string(),
                };
                let to = op.to.map(|to| match to {
                    FileDestination::Text(text) => destination(&text),
                    FileDestination::Wire(wire) => wire,
                });
                checked.push((kind, amount, to, op.account, op.description));
            }
        }
        None => {
            for op in ops {
                checked.push((op.kind.to_string(), op.amount, op.to, None, None));
            }
        }
    }
    if checked.is_empty() {
        return Err(CliError::Usage(
            "a package needs operations: --file FILE or --op ... (see bank package --help)".into(),
        ));
    }
    let client = context.authenticated()?;
    let needs_default = checked.iter().any(|op| op.3.is_none());
    let default = if needs_default {
        Some(resolve_account(&client, account.as_deref()).await?)
    } else {
        None
    };
    let mut operations = Vec::with_capacity(checked.len());
    for (kind, amount, to, op_account, description) in checked {
        let account = match op_account {
            None => default
                .clone()
                .expect("resolved above when some operation names none"),
            Some(FileAccount::Wire(account)) => account,
            Some(FileAccount::Text(text)) => resolve_account(&client, Some(&text)).await?,
        };
        operations.push(wire::OperationRequest {
            kind,
            account,
            amount: amount.to_string(),
            to,
            description,
        });
    }
    let shown: Vec<(String, String, String)> = operations
        .iter()
        .map(|op| {
            (
                op.kind.clone(),
                format!("{}/{}", op.account.bank, op.account.number),
                op.to.as_ref().map(describe_destination).unwrap_or_default(),
            )
        })
        .collect();
    let amounts: Vec<String> = operations.iter().map(|op| brl_wire(&op.amount)).collect();
    let reply = client
        .package(&wire::PackageRequest { operations }, None)
        .await?;
    context.emit(&reply, |p| {
        let mut table = Table::new(&[
            ("#", Align::Right),
            ("operation", Align::Left),
            ("account", Align::Left),
            ("amount", Align::Right),
            ("to", Align::Left),
            ("result", Align::Left),
        ]);
        for result in &p.results {
            let (kind, account, to) = shown.get(result.index).cloned().unwrap_or_default();
            let outcome = match &result.reason {
                Some(reason) => format!("{} ({reason})", result.status),
                None => result.status.clone(),
            };
            table.row(vec![
                result.index.to_string(),
                kind,
                account,
                amounts.get(result.index).cloned().unwrap_or_default(),
                to,
                outcome,
            ]);
        }
        format!("Package {}: {}\n{}", p.id, p.status, table.render())
    });
    let reason = reply.value.results.iter().find_map(|r| {
        r.reason
            .as_deref()
            .map(|reason| format!("operation {}: {reason}", r.index))
    });
    aborted("package", &reply.value.status, reason.as_deref())
}

async fn statement(
    context: &Context,
    account: Option<String>,
    limit: Option<u32>,
    cursor: Option<String>,
    all: bool,
) -> Result<(), CliError> {
    let client = context.authenticated()?;
    let account = resolve_account(&client, account.as_deref()).await?;
    let mut reply = client
        .statement(&account, limit.or(all.then_some(100)), cursor.as_deref())
        .await?;
    if all {
        let mut pages = 1;
        while let Some(next) = reply.value.next_cursor.clone() {
            if pages >= STATEMENT_PAGES_MAX {
                return Err(CliError::Other(format!(
                    "the statement has more than {STATEMENT_PAGES_MAX} pages"
                )));
            }
            let page = client
                .statement(&account, limit.or(Some(100)), Some(&next))
                .await?;
            reply.value.entries.extend(page.value.entries);
            reply.value.next_cursor = page.value.next_cursor;
            pages += 1;
        }
        reply.json = serde_json::to_value(&reply.value).expect("a statement serialises");
    }
    context.emit(&reply, |s| {
        let mut out = format!(
            "Statement of {}/{}, newest first\n",
            account.bank, account.number
        );
        if s.entries.is_empty() {
            out.push_str("No entries.\n");
        } else {
            let mut table = Table::with_headers(
                vec![
                    context.zone.header("date"),
                    "kind".into(),
                    "amount".into(),
                    "balance".into(),
                    "counterparty".into(),
                    "by".into(),
                    "description".into(),
                ],
                vec![
                    Align::Left,
                    Align::Left,
                    Align::Right,
                    Align::Right,
                    Align::Left,
                    Align::Left,
                    Align::Left,
                ],
            );
            for e in &s.entries {
                table.row(vec![
                    context.zone.show(&e.at),
                    entry_kind(&e.kind, Lang::En),
                    brl_wire(&e.amount),
                    brl_wire(&e.balance_after),
                    e.counterparty.clone(),
                    e.made_by.clone(),
                    e.description.clone(),
                ]);
            }
            out.push_str(&table.render());
        }
        if let Some(next) = &s.next_cursor {
            out.push_str(&format!(
                "Older entries: bank statement --account {}/{} --cursor {next}\n",
                account.bank, account.number
            ));
        }
        out
    });
    Ok(())
}

async fn keys(context: &Context, action: KeysCommand) -> Result<(), CliError> {
    let client = context.authenticated()?;
    match action {
        KeysCommand::Add {
            kind,
            value,
            account,
        } => {
            let account = resolve_account(&client, account.as_deref()).await?;
            let reply = client
                .add_pix_key(
                    &wire::AddPixKey {
                        account: account.clone(),
                        kind: kind.as_str().into(),
                        value,
                    },
                    None,
                )
                .await?;
            context.emit(&reply, |k| {
                format!(
                    "Added {} key {} on {}/{}.\n",
                    k.kind, k.key, account.bank, account.number
                )
            });
        }
        KeysCommand::List => {
            let reply = client.pix_keys().await?;
            context.emit(&reply, |keys| {
                if keys.keys.is_empty() {
                    return "No Pix keys yet: add one with `bank keys add email you@example.com`.\n"
                        .into();
                }
                let mut table = Table::new(&[
                    ("key", Align::Left),
                    ("type", Align::Left),
                    ("account", Align::Left),
                    ("holder", Align::Left),
                ]);
                for k in &keys.keys {
                    table.row(vec![
                        k.key.clone(),
                        k.kind.clone(),
                        k.account
                            .as_ref()
                            .map(|a| format!("{}/{}", a.bank, a.number))
                            .unwrap_or_default(),
                        k.holder_name.clone(),
                    ]);
                }
                table.render()
            });
        }
        KeysCommand::Lookup { key } => {
            let reply = client.lookup_pix_key(&key).await?;
            context.emit(&reply, |k| {
                format!(
                    "{} ({} key) pays {}, document {}, at bank {}.\n",
                    k.key, k.kind, k.holder_name, k.document_masked, k.bank
                )
            });
        }
        KeysCommand::Remove { key } => {
            let reply = client.remove_pix_key(&key, None).await?;
            context.emit(&reply, |_| format!("Removed Pix key {key}.\n"));
        }
    }
    Ok(())
}

async fn security_events(
    context: &Context,
    operator_token: &str,
    limit: Option<u32>,
) -> Result<(), CliError> {
    let client = Client::new(&context.url()?)?.with_token(operator_token);
    let reply = client.security_events(limit).await?;
    context.emit(&reply, |trail| {
        if trail.events.is_empty() {
            return "No events yet.\n".into();
        }
        let mut table = Table::new(&[
            ("at", Align::Left),
            ("event", Align::Left),
            ("client", Align::Left),
            ("who", Align::Left),
            ("detail", Align::Left),
        ]);
        for e in &trail.events {
            table.row(vec![
                e.at.clone(),
                e.kind.clone(),
                e.client.clone().unwrap_or_default(),
                e.actor.clone().unwrap_or_default(),
                e.detail.clone(),
            ]);
        }
        let mut out = table.render();
        if trail.dropped > 0 {
            out.push_str(&format!(
                "{} events were dropped since the bank started (they came faster than they could be written).\n",
                trail.dropped
            ));
        }
        out
    });
    Ok(())
}

async fn invitations(context: &Context, action: InvitationsCommand) -> Result<(), CliError> {
    let client = context.authenticated()?;
    match action {
        InvitationsCommand::List => {
            let reply = client.invitations().await?;
            context.emit(&reply, |all| {
                if all.received.is_empty() && all.sent.is_empty() {
                    return "No invitations.\n".into();
                }
                let mut table = Table::new(&[
                    ("id", Align::Right),
                    ("account", Align::Left),
                    ("from", Align::Left),
                    ("to", Align::Left),
                    ("status", Align::Left),
                ]);
                for i in all.received.iter().chain(&all.sent) {
                    table.row(vec![
                        i.id.clone(),
                        format!("{}/{}", i.account.bank, i.account.number),
                        format!("{} ({})", i.from.name, i.from.username),
                        i.to.clone(),
                        i.status.clone(),
                    ]);
                }
                let mut out = table.render();
                if all.received.iter().any(|i| i.status == "pending") {
                    out.push_str("Accept one with `bank invitations accept ID`.\n");
                }
                out
            });
        }
        InvitationsCommand::Accept { id } => {
            let reply = client.accept_invitation(&id, None).await?;
            context.emit(&reply, |a| {
                format!(
                    "You now hold {} account {}/{} with {}.\n",
                    a.kind,
                    a.bank,
                    a.number,
                    a.holders
                        .iter()
                        .map(|h| h.username.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            });
        }
        InvitationsCommand::Decline { id } => {
            let reply = client.decline_invitation(&id, None).await?;
            context.emit(&reply, |_| format!("Declined invitation {id}.\n"));
        }
    }
    Ok(())
}

async fn transfer_show(context: &Context, id: String) -> Result<(), CliError> {
    let reply = context.authenticated()?.payment(&id).await?;
    context.emit(&reply, |payment| match payment {
        Payment::Transfer(t) => {
            let mut out = format!(
                "Transfer {}\nstatus       {}{}\nfrom         {}/{}\nto           {}/{}\namount       {}\n",
                t.id,
                t.status,
                t.reason
                    .as_ref()
                    .map(|r| format!(" ({r})"))
                    .unwrap_or_default(),
                t.from.bank,
                t.from.number,
                t.to.bank,
                t.to.number,
                brl_wire(&t.amount)
            );
            if !t.description.is_empty() {
                out.push_str(&format!("description  {}\n", t.description));
            }
            out.push_str(&format!("clock        {}\n", t.clock));
            out
        }
        Payment::Package(p) => {
            let mut out = format!("Package {}\nstatus  {}\nclock   {}\n", p.id, p.status, p.clock);
            for r in &p.results {
                out.push_str(&format!(
                    "  operation {}: {}{}\n",
                    r.index,
                    r.status,
                    r.reason
                        .as_ref()
                        .map(|x| format!(" ({x})"))
                        .unwrap_or_default()
                ));
            }
            out
        }
    });
    Ok(())
}

async fn consortium(context: &Context, operator_token: Option<String>) -> Result<(), CliError> {
    let mut client = context.anonymous()?;
    if let Some(token) = operator_token {
        client = client.with_token(token);
    }
    let reply = client.consortium().await?;
    context.emit(&reply, |view| {
        let mut banks = Table::with_headers(
            vec![
                "code".into(),
                "name".into(),
                "url".into(),
                "status".into(),
                context.zone.header("since"),
            ],
            vec![Align::Left; 5],
        );
        for b in &view.banks {
            let own = if b.code == view.bank {
                " (this bank)"
            } else {
                ""
            };
            banks.row(vec![
                b.code.clone(),
                format!("{}{own}", b.name),
                b.url.clone(),
                b.status.clone(),
                b.since
                    .as_deref()
                    .map(|s| context.zone.show(s))
                    .unwrap_or_else(|| "-".into()),
            ]);
        }
        let mut out = format!(
            "Consortium seen from bank {}\n{}",
            view.bank,
            banks.render()
        );
        if let Some(settlement) = &view.settlement {
            let mut positions = Table::new(&[
                ("with bank", Align::Left),
                ("position", Align::Right),
                ("meaning", Align::Left),
            ]);
            for p in settlement {
                let cents = crate::format::wire_cents(&p.position).unwrap_or(0);
                let meaning = match cents.signum() {
                    1 => "they owe this bank",
                    -1 => "this bank owes them",
                    _ => "settled",
                };
                positions.row(vec![p.bank.clone(), brl_wire(&p.position), meaning.into()]);
            }
            out.push_str("\nSettlement positions\n");
            out.push_str(&positions.render());
        }
        out
    });
    Ok(())
}

async fn health(context: &Context) -> Result<(), CliError> {
    let client = context.anonymous()?;
    let reply = client.health().await?;
    context.emit(&reply, |h| {
        format!(
            "Bank {} ({}) at {}: {}\n",
            h.bank,
            h.name,
            client.base_url(),
            h.status
        )
    });
    Ok(())
}
