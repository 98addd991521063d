//! How `bank` fails: one error type whose every case maps to a documented exit code, so scripts
//! can tell "the bank said no" from "the bank was not there" from "the ledgers disagree".

use client::ClientError;

/// Exit codes, as documented in the README and `bank --help`.
pub mod exit {
    pub const OK: u8 = 0;
    /// Anything not covered below (not logged in, a file that cannot be read, ...).
    pub const OTHER: u8 = 1;
    /// Usage: clap's own errors, and arguments refused before anything is sent.
    pub const USAGE: u8 = 2;
    /// The bank refused (a 4xx answer, or a payment it aborted).
    pub const REFUSED: u8 = 3;
    /// The bank could not be reached, did not answer in time, or failed (5xx).
    pub const UNAVAILABLE: u8 = 4;
    /// The audit found a violated invariant.
    pub const AUDIT_FAILED: u8 = 5;
}

#[derive(Debug)]
pub enum CliError {
    /// Arguments that cannot work, found before sending anything.
    Usage(String),
    Client(ClientError),
    /// The bank answered, but aborted the payment (a transfer or a package) with a reason.
    Aborted {
        what: String,
        reason: String,
    },
    /// The audit ran and at least this many checks failed.
    AuditFailed(usize),
    Other(String),
}

impl From<ClientError> for CliError {
    fn from(error: ClientError) -> CliError {
        CliError::Client(error)
    }
}

impl CliError {
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Usage(_) => exit::USAGE,
            // A URL that cannot name a bank is a mistake on the command line (or in
            // $BANK_URL), found before anything is sent.
            CliError::Client(ClientError::InvalidUrl { .. }) => exit::USAGE,
            CliError::Client(error) if error.is_unavailable() => exit::UNAVAILABLE,
            CliError::Client(error) if error.is_refusal() => exit::REFUSED,
            CliError::Client(_) => exit::OTHER,
            CliError::Aborted { .. } => exit::REFUSED,
            CliError::AuditFailed(_) => exit::AUDIT_FAILED,
            CliError::Other(_) => exit::OTHER,
        }
    }

    /// What goes to standard error: the problem's title, code and detail for a refusal.
    pub fn report(&self) -> String {
        match self {
            CliError::Usage(text) => format!("error: {text}"),
            CliError::Client(ClientError::Problem {
                status, problem, ..
            }) => {
                let who = if *status >= 500 {
                    "the bank failed"
                } else {
                    "refused by the bank"
                };
                format!(
                    "error: {who}: {} ({status}, {})\n  {}",
                    problem.title, problem.code, problem.detail
                )
            }
            CliError::Client(error @ ClientError::Unavailable { .. }) => {
                format!("error: bank unavailable: {error}")
            }
            CliError::Client(error) => format!("error: {error}"),
            CliError::Aborted { what, reason } => {
                format!("error: refused by the bank: {what} aborted ({reason})")
            }
            CliError::AuditFailed(count) => {
                format!("error: the audit found {count} violated check(s)")
            }
            CliError::Other(text) => format!("error: {text}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problem(status: u16, code: &str) -> CliError {
        CliError::Client(ClientError::Problem {
            status,
            problem: Box::new(wire::Problem {
                kind: "about:blank".into(),
                title: "Title".into(),
                status,
                detail: "why".into(),
                code: code.into(),
            }),
            clock: None,
            retry_after_seconds: None,
        })
    }

    #[test]
    fn exit_codes() {
        let table = [
            (CliError::Usage("x".into()), exit::USAGE),
            (problem(401, "invalid_credentials"), exit::REFUSED),
            (problem(422, "insufficient_funds"), exit::REFUSED),
            (problem(503, "overloaded"), exit::UNAVAILABLE),
            (problem(500, "internal_error"), exit::UNAVAILABLE),
            (
                CliError::Client(ClientError::Unavailable {
                    url: "u".into(),
                    reason: "r".into(),
                }),
                exit::UNAVAILABLE,
            ),
            (
                CliError::Client(ClientError::Unexpected {
                    status: 200,
                    body: "?".into(),
                    clock: None,
                }),
                exit::OTHER,
            ),
            (
                CliError::Aborted {
                    what: "transfer".into(),
                    reason: "insufficient_funds".into(),
                },
                exit::REFUSED,
            ),
            (
                CliError::Client(ClientError::InvalidUrl {
                    url: "ftp://x".into(),
                    reason: "r".into(),
                }),
                exit::USAGE,
            ),
            (CliError::AuditFailed(1), exit::AUDIT_FAILED),
            (CliError::Other("x".into()), exit::OTHER),
        ];
        for (error, code) in table {
            assert_eq!(error.exit_code(), code, "{error:?}");
        }
    }

    #[test]
    fn refusals_show_title_code_and_detail() {
        let text = problem(422, "insufficient_funds").report();
        assert!(text.contains("Title"), "{text}");
        assert!(text.contains("insufficient_funds"), "{text}");
        assert!(text.contains("why"), "{text}");
    }
}
