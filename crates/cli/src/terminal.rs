//! Reading secrets from the terminal: a password typed on a TTY is not echoed, and the terminal
//! is always given back as it was (also when the read is interrupted). When standard input is a
//! pipe, as in scripts and tests, the line is simply read.

use std::io::{BufRead, IsTerminal, Write};

/// While alive, the terminal on standard input does not echo what is typed.
pub struct EchoOff {
    saved: rustix::termios::Termios,
}

impl EchoOff {
    /// Turns echo off if standard input is a terminal; `None` (and nothing changed) otherwise.
    pub fn new() -> Option<EchoOff> {
        let stdin = std::io::stdin();
        if !stdin.is_terminal() {
            return None;
        }
        let saved = rustix::termios::tcgetattr(&stdin).ok()?;
        let mut quiet = saved.clone();
        quiet.local_modes.remove(rustix::termios::LocalModes::ECHO);
        // Keep the newline visible so the cursor moves on after Enter.
        quiet
            .local_modes
            .insert(rustix::termios::LocalModes::ECHONL);
        rustix::termios::tcsetattr(&stdin, rustix::termios::OptionalActions::Now, &quiet).ok()?;
        Some(EchoOff { saved })
    }
}

impl Drop for EchoOff {
    fn drop(&mut self) {
        let _ = rustix::termios::tcsetattr(
            std::io::stdin(),
            rustix::termios::OptionalActions::Now,
            &self.saved,
        );
    }
}

/// Reads a password for a one-shot command: `$BANK_PASSWORD` if set; else, on a terminal, asks
/// without echo (twice when `confirm`); else reads one line from standard input.
pub fn read_password(prompt: &str, confirm: bool) -> Result<String, String> {
    if let Some(password) = std::env::var("BANK_PASSWORD")
        .ok()
        .filter(|p| !p.is_empty())
    {
        return Ok(password);
    }
    let interactive = std::io::stdin().is_terminal();
    let ask = |prompt: &str| -> Result<String, String> {
        if interactive {
            eprint!("{prompt}");
            let _ = std::io::stderr().flush();
        }
        let _quiet = EchoOff::new();
        let mut line = String::new();
        let read = std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(|e| format!("cannot read the password: {e}"))?;
        if read == 0 {
            return Err("no password given (standard input is empty; or set BANK_PASSWORD)".into());
        }
        Ok(line.trim_end_matches(['\n', '\r']).to_string())
    };
    let password = ask(prompt)?;
    if confirm && interactive {
        let again = ask("Repeat the password: ")?;
        if again != password {
            return Err("the passwords differ".into());
        }
    }
    Ok(password)
}
