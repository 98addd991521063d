//! Where `bank` keeps what outlives one command, in two small JSON files:
//! - `session.json`, written by `bank login` and removed by `bank logout`: the bank's URL, the
//!   username and the bearer token. A token is as good as the password until it expires, so the
//!   file is created readable only by its owner (mode 0600, in a 0700 directory) and replaced
//!   atomically, never left half-written or briefly world-readable;
//! - `config.json`: defaults, today only `bank` (the URL used when neither `--bank` nor
//!   `$BANK_URL` says which bank). `bank login` records the bank there; a person may edit it.
//!
//! The directory is `$BANK_CONFIG_DIR` if set, else `$XDG_CONFIG_HOME/interbank`, else
//! `~/.config/interbank`.

use serde::{Deserialize, Serialize};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

pub const SESSION_FILE: &str = "session.json";
pub const DEFAULTS_FILE: &str = "config.json";

/// Defaults for every command, from `config.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Defaults {
    /// The bank's URL when neither `--bank` nor `$BANK_URL` is given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bank: Option<String>,
}

/// A session saved by `bank login`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedSession {
    /// The bank that issued the token; the token is sent to no other.
    pub url: String,
    pub username: String,
    pub token: String,
    /// RFC 3339, as the bank answered.
    pub expires_at: String,
}

/// The configuration directory, from the environment.
pub fn config_dir() -> Result<PathBuf, String> {
    let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
    if let Some(dir) = var("BANK_CONFIG_DIR") {
        return Ok(PathBuf::from(dir));
    }
    if let Some(dir) = var("XDG_CONFIG_HOME") {
        return Ok(PathBuf::from(dir).join("interbank"));
    }
    if let Some(home) = var("HOME") {
        return Ok(PathBuf::from(home).join(".config").join("interbank"));
    }
    Err("cannot find a configuration directory: set BANK_CONFIG_DIR or HOME".into())
}

pub fn session_path() -> Result<PathBuf, String> {
    Ok(config_dir()?.join(SESSION_FILE))
}

/// The saved session, if there is one.
pub fn load(path: &Path) -> Result<Option<SavedSession>, String> {
    match std::fs::read_to_string(path) {
        Ok(text) => serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| format!("{} is damaged ({e}); run `bank logout`", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
    }
}

/// Saves the session: the directory is created 0700 if missing, the file written 0600 under a
/// temporary name and renamed over the old one.
pub fn save(path: &Path, session: &SavedSession) -> Result<(), String> {
    let text = serde_json::to_string_pretty(session).expect("a session serialises");
    write_private(path, &text)
}

/// `config.json` beside the session file.
pub fn defaults_path(session_path: &Path) -> PathBuf {
    session_path.with_file_name(DEFAULTS_FILE)
}

/// The defaults; none when the file does not exist.
pub fn load_defaults(path: &Path) -> Result<Defaults, String> {
    match std::fs::read_to_string(path) {
        Ok(text) => serde_json::from_str(&text).map_err(|e| {
            format!(
                "{} is not a configuration like {{\"bank\": \"http://127.0.0.1:8081\"}}: {e}",
                path.display()
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Defaults::default()),
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
    }
}

pub fn save_defaults(path: &Path, defaults: &Defaults) -> Result<(), String> {
    let text = serde_json::to_string_pretty(defaults).expect("defaults serialise");
    write_private(path, &text)
}

/// Writes `text` to `path` owner-only: the directory is created 0700 if missing, the file
/// written 0600 under a temporary name and renamed over the old one.
fn write_private(path: &Path, text: &str) -> Result<(), String> {
    let dir = path
        .parent()
        .ok_or_else(|| format!("{} has no directory", path.display()))?;
    let name = path
        .file_name()
        .ok_or_else(|| format!("{} names no file", path.display()))?
        .to_string_lossy();
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let temporary = dir.join(format!(".{name}.{}", std::process::id()));
    let written = (|| {
        let _ = std::fs::remove_file(&temporary);
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temporary)?;
        // `mode` at creation is filtered by the umask; setting it again states 0600 exactly.
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        file.write_all(text.as_bytes())?;
        file.write_all(b"\n")?;
        file.sync_all()?;
        std::fs::rename(&temporary, path)
    })();
    written.map_err(|e| {
        let _ = std::fs::remove_file(&temporary);
        format!("cannot write {}: {e}", path.display())
    })
}

/// Forgets the saved session; `Ok(false)` if there was none.
pub fn remove(path: &Path) -> Result<bool, String> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(format!("cannot remove {}: {e}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session() -> SavedSession {
        SavedSession {
            url: "http://127.0.0.1:8081".into(),
            username: "ana".into(),
            token: "secret".into(),
            expires_at: "2026-11-03T17:05:09Z".into(),
        }
    }

    #[test]
    fn saved_owner_only_and_loaded_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested").join(SESSION_FILE);
        assert_eq!(load(&path).unwrap(), None);
        save(&path, &session()).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let dir_mode = std::fs::metadata(path.parent().unwrap())
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(dir_mode, 0o700);
        assert_eq!(load(&path).unwrap(), Some(session()));

        // Replacing keeps the mode even if someone loosened the old file.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let mut other = session();
        other.token = "other".into();
        save(&path, &other).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(load(&path).unwrap().unwrap().token, "other");

        assert!(remove(&path).unwrap());
        assert!(!remove(&path).unwrap());
        assert_eq!(load(&path).unwrap(), None);
    }

    #[test]
    fn defaults_are_kept_beside_the_session() {
        let dir = tempfile::tempdir().unwrap();
        let path = defaults_path(&dir.path().join(SESSION_FILE));
        assert_eq!(path, dir.path().join(DEFAULTS_FILE));
        assert_eq!(load_defaults(&path).unwrap(), Defaults::default());
        let defaults = Defaults {
            bank: Some("http://127.0.0.1:8081".into()),
        };
        save_defaults(&path, &defaults).unwrap();
        assert_eq!(load_defaults(&path).unwrap(), defaults);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        std::fs::write(&path, "[1, 2]").unwrap();
        assert!(
            load_defaults(&path)
                .unwrap_err()
                .contains("not a configuration")
        );
    }

    #[test]
    fn damaged_file_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(SESSION_FILE);
        std::fs::write(&path, "{not json").unwrap();
        let error = load(&path).unwrap_err();
        assert!(error.contains("damaged"), "{error}");
    }
}
