//! The ATM's keyboard and screen: prompts that wait for a line, for the end of input, or for
//! Ctrl-C, whichever comes first, so the session can always leave cleanly (log out, say
//! goodbye) instead of dying in the middle of a read.
//!
//! Standard input is read line by line on its own thread (a blocking read cannot be cancelled);
//! the session waits on a channel fed by that thread and on the SIGINT stream together.

use crate::terminal::EchoOff;
use std::io::{BufRead, Write};
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::sync::mpsc;

/// Lines typed ahead and not yet read are kept up to this many.
const TYPED_AHEAD_LINES_MAX: usize = 64;

/// Why the session ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Leave {
    /// The customer chose to leave.
    Quit,
    /// Ctrl-C.
    Interrupted,
    /// Standard input ended (Ctrl-D, or the end of a script).
    EndOfInput,
    /// The bank could not be reached and the customer chose not to retry.
    Unavailable,
    /// Too many wrong passwords.
    LoginFailed,
}

pub struct Console {
    lines: mpsc::Receiver<String>,
    interrupt: Signal,
}

impl Console {
    /// Starts reading standard input and catching Ctrl-C (from then on, Ctrl-C no longer kills
    /// the process: it ends the session through [`Leave::Interrupted`]).
    pub fn start() -> std::io::Result<Console> {
        let interrupt = signal(SignalKind::interrupt())?;
        let (sender, lines) = mpsc::channel(TYPED_AHEAD_LINES_MAX);
        std::thread::Builder::new()
            .name("atm-stdin".into())
            .spawn(move || {
                for line in std::io::stdin().lock().lines() {
                    let Ok(line) = line else { break };
                    if sender.blocking_send(line).is_err() {
                        break;
                    }
                }
            })?;
        Ok(Console { lines, interrupt })
    }

    /// Prints `prompt` (no newline) and waits for a line, trimmed.
    pub async fn ask(&mut self, prompt: &str) -> Result<String, Leave> {
        print!("{prompt}");
        let _ = std::io::stdout().flush();
        tokio::select! {
            line = self.lines.recv() => match line {
                Some(line) => Ok(line.trim().to_string()),
                None => Err(Leave::EndOfInput),
            },
            _ = self.interrupt.recv() => Err(Leave::Interrupted),
        }
    }

    /// Like [`Console::ask`], without echo on a terminal; the line is not trimmed (spaces may
    /// be part of a password), only its line ending removed.
    pub async fn ask_secret(&mut self, prompt: &str) -> Result<String, Leave> {
        let quiet = EchoOff::new();
        print!("{prompt}");
        let _ = std::io::stdout().flush();
        let line = tokio::select! {
            line = self.lines.recv() => line.ok_or(Leave::EndOfInput),
            _ = self.interrupt.recv() => Err(Leave::Interrupted),
        };
        drop(quiet);
        line.map(|l| l.trim_end_matches('\r').to_string())
    }

    /// Runs `work` unless Ctrl-C comes first.
    pub async fn interruptible<F: Future>(&mut self, work: F) -> Result<F::Output, Leave> {
        tokio::select! {
            output = work => Ok(output),
            _ = self.interrupt.recv() => Err(Leave::Interrupted),
        }
    }
}
