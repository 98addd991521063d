//! The command line of `bank`: one subcommand per endpoint of the public API, plus the ATM and
//! the consortium audit. Amounts, accounts and package operations are parsed here, by clap's
//! value parsers, so a malformed one is a usage error (exit 2) before anything is sent.

use crate::amount::amount_arg;
use clap::{Parser, Subcommand, ValueEnum};
use ledger::Amount;
use std::path::PathBuf;

const AFTER_HELP: &str = "\
Amounts: 10 | 10,50 | 10.50 | 1.234,56 | 1234,56 | R$ 1.234,56 (ambiguous ones like 1.234 are refused).
Accounts: BANK/NUMBER (10000001/100001-2) or NUMBER at your bank; optional when you hold one account.

Exit codes: 0 ok, 1 other error, 2 usage (or an argument refused before sending),
3 refused by the bank (4xx, or a payment it aborted), 4 bank unavailable (connection, timeout, 5xx),
5 the audit found a violation.

The bank: --bank URL, else $BANK_URL, else the bank of the current session, else `bank` in
config.json (recorded by `bank login`). Both files live in $BANK_CONFIG_DIR, else
$XDG_CONFIG_HOME/interbank, else ~/.config/interbank; session.json (the token) is mode 0600.";

#[derive(Debug, Parser)]
#[command(
    name = "bank",
    version,
    about = "Interbank's terminal client: your accounts, Pix payments, the ATM and the audit.",
    after_help = AFTER_HELP
)]
pub struct Args {
    /// The bank's URL; else $BANK_URL; else your session's bank; else config.json's `bank`.
    #[arg(long, global = true, env = "BANK_URL", value_name = "URL")]
    pub bank: Option<String>,
    /// Also trust this CA's certificates (PEM) for https banks, as `bankd demo`'s
    /// interbank-demo/ca.pem; else $BANK_CA. `audit`/`bench --consortium` read demo.json's own.
    #[arg(long, global = true, env = "BANK_CA", value_name = "FILE")]
    pub ca: Option<PathBuf>,
    /// Print the API's JSON instead of tables (for scripts).
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Become a customer of the bank (the password is asked, or read from $BANK_PASSWORD).
    Register {
        /// Full name.
        #[arg(long)]
        name: String,
        /// CPF or CNPJ, bare or formatted.
        #[arg(long)]
        document: String,
        #[arg(long)]
        username: String,
    },
    /// Log in and keep the session (and the bank's URL) for the next commands.
    Login { username: String },
    /// End the session at the bank and forget it here.
    Logout,
    /// Who you are, and every account you hold.
    Me,
    /// Your accounts with their balances.
    Accounts,
    /// Open an account with an opening deposit (at least R$ 50,00).
    Open {
        /// individual, company or joint; by default your own kind (joint with --co-holder).
        #[arg(long, value_parser = ["individual", "company", "joint"])]
        kind: Option<String>,
        /// Another holder of a joint account (a username); repeat for more.
        #[arg(long = "co-holder", value_name = "USERNAME")]
        co_holders: Vec<String>,
        /// The opening deposit.
        #[arg(long, value_parser = amount_arg, allow_hyphen_values = true)]
        deposit: Amount,
    },
    /// Deposit cash into an account.
    Deposit {
        #[arg(value_parser = amount_arg, allow_hyphen_values = true)]
        amount: Amount,
        #[arg(long, short)]
        account: Option<String>,
        #[arg(long)]
        description: Option<String>,
    },
    /// Withdraw cash from an account.
    Withdraw {
        #[arg(value_parser = amount_arg, allow_hyphen_values = true)]
        amount: Amount,
        #[arg(long, short)]
        account: Option<String>,
        #[arg(long)]
        description: Option<String>,
    },
    /// Pay a Pix key or an account (BANK/NUMBER).
    Pay {
        /// A Pix key (CPF, CNPJ, e-mail, +55 phone, random) or BANK/NUMBER.
        to: String,
        #[arg(value_parser = amount_arg, allow_hyphen_values = true)]
        amount: Amount,
        /// The paying account.
        #[arg(long, short)]
        from: Option<String>,
        #[arg(long)]
        description: Option<String>,
    },
    /// Several operations that commit all together or not at all.
    #[command(after_help = "\
Operations come from a JSON file (`-` for standard input) or from repeated --op flags:
  --op deposit:100,00  --op withdraw:20  --op transfer:10,50:ana@example.com
The file is the API's body or a bare list; amounts are strings in any accepted format, `account`
is optional (default --account), and `to` is a Pix key, BANK/NUMBER, or {\"pix_key\"} / {\"bank\", \"number\"}:
  {\"operations\": [{\"type\": \"deposit\", \"amount\": \"100,00\"},
                  {\"type\": \"transfer\", \"amount\": \"10.50\", \"to\": \"ana@example.com\"}]}")]
    Package {
        /// A JSON file with the operations; `-` reads standard input.
        #[arg(long, short, conflicts_with = "ops")]
        file: Option<PathBuf>,
        /// An operation: deposit:AMOUNT, withdraw:AMOUNT or transfer:AMOUNT:TO. Repeatable.
        #[arg(long = "op", value_name = "OPERATION", value_parser = operation_arg)]
        ops: Vec<OperationArg>,
        /// The account for operations that name none.
        #[arg(long, short)]
        account: Option<String>,
    },
    /// An account's statement, newest first.
    Statement {
        #[arg(long, short)]
        account: Option<String>,
        /// Entries per page (1 to 100).
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..=100))]
        limit: Option<u32>,
        /// Continue from a previous page's cursor.
        #[arg(long, conflicts_with = "all")]
        cursor: Option<String>,
        /// Every entry, following the pages to the first.
        #[arg(long)]
        all: bool,
    },
    /// Pix keys: add, list, look up, remove.
    Keys {
        #[command(subcommand)]
        action: KeysCommand,
    },
    /// Invitations to hold a joint account: list them (the default), accept or decline one.
    Invitations {
        #[command(subcommand)]
        action: Option<InvitationsCommand>,
    },
    /// Look up payments.
    Transfer {
        #[command(subcommand)]
        action: TransferCommand,
    },
    /// The banks of the consortium; with the bank's operator token, its settlement position
    /// with each.
    Consortium {
        /// The bank's operator token: settlement positions are shown only to the operator.
        #[arg(long, env = "BANK_OPERATOR_TOKEN", hide_env_values = true)]
        operator_token: Option<String>,
    },
    /// Audit one bank (--bank and --operator-token) or a whole consortium (--consortium FILE);
    /// `bank audit events` shows a bank's security trail.
    Audit {
        #[command(subcommand)]
        action: Option<AuditCommand>,
        /// A demo.json as written by `bankd demo` (every bank's code, name, URL, operator token),
        /// or the demo's folder holding it.
        #[arg(long, value_name = "FILE", conflicts_with = "operator_token")]
        consortium: Option<PathBuf>,
        /// The bank's operator token, to audit the one bank given by --bank.
        #[arg(long, env = "BANK_OPERATOR_TOKEN", hide_env_values = true)]
        operator_token: Option<String>,
    },
    /// Whether the bank is up.
    Health,
    /// Load and latency: many concurrent clients moving money, then the consortium audit.
    #[command(after_help = BENCH_AFTER_HELP)]
    Bench(BenchArgs),
    /// An interactive ATM session ("Caixa Eletrônico").
    Atm {
        #[arg(long, value_enum, default_value_t = LangArg::Pt)]
        lang: LangArg,
        /// Print the bank's logical clock (X-Clock) after each answer.
        #[arg(long)]
        show_clock: bool,
    },
}

const BENCH_AFTER_HELP: &str = "\
Which banks: --consortium FILE (a demo.json, or its folder) for a running consortium; else --bank URL
(or $BANK_URL) for one running bank (intra, bulk and mixed only); else the bench starts its own
three-bank consortium in a temporary folder (or --data-dir) and stops it at the end.

Workloads: intra (one transfer per request, between accounts of the same bank), interbank (between
accounts of different banks), mixed (80% intra, 15% interbank, 5% packages of two transfers),
bulk (POST /api/v1/transfers/batch, --batch-size transfers per request).

The run stops after --duration or --count operations (a bulk request is one operation), whichever
comes first; --warmup runs load that is not measured. It prints throughput, latency percentiles,
outcomes and errors by code, then audits every bank (exit 5 if a check fails).";

/// `bank bench`'s options; every one is bounded, so a typo cannot start an endless run.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    #[arg(long, value_enum, default_value_t = Workload::Intra)]
    pub workload: Workload,
    /// Concurrent clients, each with one request in flight at a time.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub clients: u32,
    /// Accounts opened per bank for the run.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(2..=100_000))]
    pub accounts: u32,
    /// Customers registered per bank, holding the accounts between them (each logs in once).
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub customers: u32,
    /// How long to measure: 10s, 500ms, 2m (at most 1h).
    #[arg(long, default_value = "10s", value_parser = duration_arg)]
    pub duration: std::time::Duration,
    /// Stop after this many measured operations (requests), if that comes before --duration.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=1_000_000_000))]
    pub count: Option<u64>,
    /// Load run before measuring, not counted: 1s, 0s.
    #[arg(long, default_value = "1s", value_parser = duration_arg)]
    pub warmup: std::time::Duration,
    /// Transfers per request of the bulk workload (1 to 8189).
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=8189))]
    pub batch_size: u32,
    /// A running consortium: demo.json as written by `bankd demo`, or its folder.
    #[arg(long, value_name = "FILE")]
    pub consortium: Option<PathBuf>,
    /// With --bank: its operator token, for the audit at the end (skipped without one).
    #[arg(long, env = "BANK_OPERATOR_TOKEN", hide_env_values = true)]
    pub operator_token: Option<String>,
    /// HTTP connections: one kept-alive connection per client written to directly (lane), or
    /// the terminal client's reqwest pool, shared by every client or one per client.
    #[arg(long, value_enum, default_value_t = Pool::Lane)]
    pub pool: Pool,
    /// Where the bench's own consortium keeps its data (default: a temporary folder, removed).
    #[arg(long, value_name = "DIR", conflicts_with = "consortium")]
    pub data_dir: Option<PathBuf>,
    /// Threads driving the clients when the banks run elsewhere (--bank, --consortium). One
    /// drives 64 clients with a quarter of a core; more only take cores from banks on the same
    /// machine. The bench's own consortium shares every core with its clients.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub threads: u16,
    /// The SQLite backend's tuning of the bench's own banks, as `bankd --sqlite-tuning`: none
    /// (the default), all, or a list of vfs, realtime, statements.
    #[arg(long, default_value = "none", value_parser = sqlite_tuning_arg, conflicts_with = "consortium")]
    pub sqlite_tuning: store::sqlite::SqliteTuning,
}

fn sqlite_tuning_arg(text: &str) -> Result<store::sqlite::SqliteTuning, String> {
    store::sqlite::SqliteTuning::parse(text)
        .ok_or_else(|| "expected none, all, or a list of vfs, realtime, statements".to_string())
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum Workload {
    Intra,
    Interbank,
    Mixed,
    Bulk,
}

impl Workload {
    pub fn as_str(self) -> &'static str {
        match self {
            Workload::Intra => "intra",
            Workload::Interbank => "interbank",
            Workload::Mixed => "mixed",
            Workload::Bulk => "bulk",
        }
    }
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum Pool {
    /// One `client::Lane` per client task: its own connection, headers made once, no pool.
    Lane,
    /// One `reqwest::Client` (one connection pool) shared by every client task.
    Shared,
    /// One `reqwest::Client` per client task, each with its own kept-alive connection.
    PerClient,
}

impl Pool {
    pub fn as_str(self) -> &'static str {
        match self {
            Pool::Lane => "lane",
            Pool::Shared => "shared",
            Pool::PerClient => "per-client",
        }
    }
}

/// Runs longer than this are refused: a benchmark is bounded.
pub const BENCH_DURATION_MAX: std::time::Duration = std::time::Duration::from_secs(3600);

/// `10s`, `500ms`, `2m`, `1h`, or bare seconds (`10`, `0.5`).
pub fn duration_arg(text: &str) -> Result<std::time::Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration like 10s, 500ms or 2m"))?;
    let seconds = match unit.trim() {
        "" | "s" => value,
        "ms" => value / 1000.0,
        "m" | "min" => value * 60.0,
        "h" => value * 3600.0,
        other => return Err(format!("unknown unit {other:?}: use ms, s, m or h")),
    };
    let duration = std::time::Duration::try_from_secs_f64(seconds)
        .map_err(|_| format!("{text:?} is not a duration like 10s"))?;
    if duration > BENCH_DURATION_MAX {
        return Err(format!("at most {}s", BENCH_DURATION_MAX.as_secs()));
    }
    Ok(duration)
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Register a key on one of your accounts.
    Add {
        #[arg(value_enum)]
        kind: KeyKind,
        /// The key (none for `random`, which the bank generates).
        value: Option<String>,
        #[arg(long, short)]
        account: Option<String>,
    },
    /// Every key on your accounts.
    List,
    /// Whom a key pays.
    Lookup { key: String },
    /// Remove one of your keys.
    Remove { key: String },
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// The bank's security trail, newest last: logins, refusals, operator calls, interbank
    /// requests and their signers.
    Events {
        /// The bank's operator token.
        #[arg(long, env = "BANK_OPERATOR_TOKEN", hide_env_values = true)]
        operator_token: String,
        /// How many of the newest events (1 to 1,000; default 100).
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1000))]
        limit: Option<u32>,
    },
}

#[derive(Debug, Subcommand)]
pub enum InvitationsCommand {
    /// The invitations you received and sent.
    List,
    /// Become a holder of the account you were invited to.
    Accept { id: String },
    /// Turn an invitation down.
    Decline { id: String },
}

#[derive(Debug, Subcommand)]
pub enum TransferCommand {
    /// A transfer (or a package) by its end-to-end id.
    Show { id: String },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum KeyKind {
    Cpf,
    Cnpj,
    Email,
    Phone,
    Random,
}

impl KeyKind {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyKind::Cpf => "cpf",
            KeyKind::Cnpj => "cnpj",
            KeyKind::Email => "email",
            KeyKind::Phone => "phone",
            KeyKind::Random => "random",
        }
    }
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum LangArg {
    Pt,
    En,
}

/// One `--op` of `bank package`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperationArg {
    /// `deposit`, `withdrawal` or `transfer` (the API's words).
    pub kind: &'static str,
    pub amount: Amount,
    pub to: Option<wire::Destination>,
}

fn operation_arg(text: &str) -> Result<OperationArg, String> {
    let mut parts = text.splitn(3, ':');
    let kind = parts.next().unwrap_or_default().trim();
    let amount_text = parts
        .next()
        .ok_or("an operation is deposit:AMOUNT, withdraw:AMOUNT or transfer:AMOUNT:TO")?;
    let amount = amount_arg(amount_text)?;
    let to = parts.next();
    let (kind, to) = match (kind, to) {
        ("deposit", None) => ("deposit", None),
        ("withdraw" | "withdrawal", None) => ("withdrawal", None),
        ("transfer", Some(to)) if !to.trim().is_empty() => {
            ("transfer", Some(destination(to.trim())))
        }
        ("transfer", _) => return Err("a transfer is transfer:AMOUNT:TO".into()),
        ("deposit" | "withdraw" | "withdrawal", Some(_)) => {
            return Err(format!("{kind} takes no destination: {kind}:AMOUNT"));
        }
        _ => return Err(format!("{kind:?} is not deposit, withdraw or transfer")),
    };
    Ok(OperationArg { kind, amount, to })
}

/// `BANK/NUMBER` (eight digits, a slash, the number) is an account; anything else a Pix key.
pub fn destination(text: &str) -> wire::Destination {
    match text.split_once('/') {
        Some((bank, number))
            if bank.len() == 8
                && bank.bytes().all(|b| b.is_ascii_digit())
                && !number.is_empty() =>
        {
            wire::Destination {
                pix_key: None,
                bank: Some(bank.to_string()),
                number: Some(number.to_string()),
            }
        }
        _ => wire::Destination {
            pix_key: Some(text.to_string()),
            bank: None,
            number: None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        use clap::CommandFactory;
        Args::command().debug_assert();
    }

    #[test]
    fn destinations() {
        let account = destination("10000001/100001-2");
        assert_eq!(account.bank.as_deref(), Some("10000001"));
        assert_eq!(account.number.as_deref(), Some("100001-2"));
        assert_eq!(account.pix_key, None);
        for key in [
            "ana@example.com",
            "+5511999998888",
            "12345678909",
            "123/456",
            "10000001/",
        ] {
            assert_eq!(destination(key).pix_key.as_deref(), Some(key), "{key}");
        }
    }

    #[test]
    fn durations() {
        use std::time::Duration;
        let table = [
            ("10s", Duration::from_secs(10)),
            ("10", Duration::from_secs(10)),
            ("500ms", Duration::from_millis(500)),
            ("2m", Duration::from_secs(120)),
            ("1h", Duration::from_secs(3600)),
            ("0.5", Duration::from_millis(500)),
            ("0s", Duration::ZERO),
        ];
        for (text, expected) in table {
            assert_eq!(duration_arg(text), Ok(expected), "{text}");
        }
        for bad in ["", "s", "10x", "-1s", "2h", "1e9"] {
            assert!(duration_arg(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn operations() {
        let op = operation_arg("transfer:1.234,56:ana@example.com").unwrap();
        assert_eq!(op.kind, "transfer");
        assert_eq!(op.amount.cents(), 123_456);
        assert_eq!(op.to.unwrap().pix_key.as_deref(), Some("ana@example.com"));
        assert_eq!(operation_arg("withdraw:20").unwrap().kind, "withdrawal");
        assert_eq!(operation_arg("deposit:R$ 10").unwrap().amount.cents(), 1000);
        for bad in [
            "deposit",
            "deposit:1.234",
            "deposit:10:x",
            "transfer:10",
            "transfer:10:",
            "refund:10",
        ] {
            assert!(operation_arg(bad).is_err(), "{bad}");
        }
    }
}
