//! Where sessions and machine tokens live: terminus's own cache files (pantheon-api.md §1.4),
//! so a user logged in with terminus is logged in here and back, or memory only (under
//! `--simulate`, which must never touch the real `~/.terminus`).
//!
//! Files: `<cache>/session` holds the `authorize/machine-token` answer as JSON;
//! `<tokens>/<email>` holds `{"token","email","date"}`. Directories 0755, files 0600.

use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::wire::Session;
use tb_core::secret::Secret;

/// Where the session and machine tokens are kept.
#[derive(Clone, Debug)]
pub enum SessionStore {
    /// terminus's cache directory and tokens directory.
    Files { cache_dir: PathBuf, tokens_dir: PathBuf },
    /// Nothing is read or written (the simulator).
    Memory,
}

/// A saved machine token, as terminus writes it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TokenFile {
    #[serde(serialize_with = "Secret::serialize_exposed")]
    pub token: Secret,
    pub email: String,
    #[serde(default)]
    pub date: i64,
}

/// Why a saved token could not be chosen.
#[derive(Debug, thiserror::Error)]
pub enum TokenChoiceError {
    #[error("several machine tokens are saved in {dir} ({emails}); set TERMINUS_USER to choose one")]
    Ambiguous { dir: String, emails: String },
    #[error("no machine token is saved for {user} in {dir}")]
    NoSuchUser { user: String, dir: String },
    #[error("cannot read {path}: {message}")]
    Unreadable { path: String, message: String },
}

impl SessionStore {
    /// The saved session, if any and readable. A damaged file counts as no session: the
    /// client logs in again and overwrites it.
    pub async fn read_session(&self) -> Option<Session> {
        let Self::Files { cache_dir, .. } = self else { return None };
        let bytes = tokio::fs::read(cache_dir.join("session")).await.ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// Saves the session (0600).
    pub async fn write_session(&self, session: &Session) -> io::Result<()> {
        let Self::Files { cache_dir, .. } = self else { return Ok(()) };
        let json = serde_json::to_vec(session).map_err(io::Error::other)?;
        write_private(&cache_dir.join("session"), &json).await
    }

    /// The machine token to log in with: `user`'s file, or the only one saved.
    pub async fn read_token(&self, user: Option<&str>) -> Result<Option<TokenFile>, TokenChoiceError> {
        let Self::Files { tokens_dir, .. } = self else { return Ok(None) };
        let dir = tokens_dir.display().to_string();
        let names = token_names(tokens_dir).await;
        let chosen = match user {
            Some(user) => {
                let name = token_file_name(user);
                if !names.contains(&name) {
                    return Err(TokenChoiceError::NoSuchUser { user: user.to_owned(), dir });
                }
                name
            }
            None => match names.as_slice() {
                [] => return Ok(None),
                [one] => one.clone(),
                _ => return Err(TokenChoiceError::Ambiguous { dir, emails: names.join(", ") }),
            },
        };
        let path = tokens_dir.join(&chosen);
        let unreadable = |message: String| TokenChoiceError::Unreadable { path: path.display().to_string(), message };
        let bytes = tokio::fs::read(&path).await.map_err(|e| unreadable(e.to_string()))?;
        serde_json::from_slice(&bytes).map(Some).map_err(|e| unreadable(format!("not a token file ({e})")))
    }

    /// Saves a machine token under its email (0600), as `terminus auth:login` does.
    pub async fn write_token(&self, token: &Secret, email: &str, now: i64) -> io::Result<Option<PathBuf>> {
        let Self::Files { tokens_dir, .. } = self else { return Ok(None) };
        let file = TokenFile { token: token.clone(), email: email.to_owned(), date: now };
        let json = serde_json::to_vec(&file).map_err(io::Error::other)?;
        let path = tokens_dir.join(token_file_name(email));
        write_private(&path, &json).await?;
        Ok(Some(path))
    }

    /// Deletes the session and every saved token, as `terminus auth:logout` does. Returns
    /// how many files were removed.
    pub async fn logout(&self) -> io::Result<usize> {
        let Self::Files { cache_dir, tokens_dir } = self else { return Ok(0) };
        let mut removed = 0;
        for name in token_names(tokens_dir).await {
            remove_if_present(&tokens_dir.join(name), &mut removed).await?;
        }
        remove_if_present(&cache_dir.join("session"), &mut removed).await?;
        Ok(removed)
    }
}

async fn remove_if_present(path: &Path, removed: &mut usize) -> io::Result<()> {
    match tokio::fs::remove_file(path).await {
        Ok(()) => {
            *removed += 1;
            Ok(())
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// terminus's file name for an email: every character outside `[A-Za-z0-9-_@.]` becomes `-`.
#[must_use]
pub fn token_file_name(email: &str) -> String {
    email.chars().map(|c| if c.is_ascii_alphanumeric() || "-_@.".contains(c) { c } else { '-' }).collect()
}

/// File names in the tokens directory that look like emails (`\S+@\S+\.\S+`), sorted.
async fn token_names(dir: &Path) -> Vec<String> {
    let mut names = Vec::new();
    let Ok(mut entries) = tokio::fs::read_dir(dir).await else { return names };
    while let Ok(Some(entry)) = entries.next_entry().await {
        if let Ok(name) = entry.file_name().into_string()
            && looks_like_email(&name)
        {
            names.push(name);
        }
    }
    names.sort();
    names
}

fn looks_like_email(name: &str) -> bool {
    if name.chars().any(char::is_whitespace) {
        return false;
    }
    let Some((user, domain)) = name.split_once('@') else { return false };
    !user.is_empty() && domain.split_once('.').is_some_and(|(a, b)| !a.is_empty() && !b.is_empty())
}

/// Writes a file readable by its owner only, creating its directory (0755) as terminus does.
async fn write_private(path: &Path, bytes: &[u8]) -> io::Result<()> {
    if let Some(dir) = path.parent() {
        let mut builder = tokio::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        builder.mode(0o755);
        builder.create(dir).await?;
    }
    let mut options = tokio::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    options.mode(0o600);
    let mut file = options.open(path).await?;
    // The file may predate us with looser permissions; tighten them before writing.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(0o600)).await?;
    }
    tokio::io::AsyncWriteExt::write_all(&mut file, bytes).await?;
    tokio::io::AsyncWriteExt::flush(&mut file).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_names_follow_terminus() {
        assert_eq!(token_file_name("ops+ci@acme.example"), "ops-ci@acme.example");
        assert!(looks_like_email("a@b.c"));
        assert!(!looks_like_email("session"));
        assert!(!looks_like_email("a@b"));
    }

    #[tokio::test]
    async fn files_round_trip_with_private_modes() {
        let dir = tempfile::tempdir().unwrap();
        let store =
            SessionStore::Files { cache_dir: dir.path().join("cache"), tokens_dir: dir.path().join("cache/tokens") };
        assert!(store.read_session().await.is_none());
        let session = Session { session: Secret::new("s:e:cret"), expires_at: 42, user_id: "u1".into() };
        store.write_session(&session).await.unwrap();
        let back = store.read_session().await.unwrap();
        assert_eq!(back.session.expose(), "s:e:cret");
        store.write_token(&Secret::new("tok"), "a@b.example", 7).await.unwrap();
        let token = store.read_token(None).await.unwrap().unwrap();
        assert_eq!((token.token.expose(), token.email.as_str()), ("tok", "a@b.example"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join("cache/session")).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        store.write_token(&Secret::new("tok2"), "c@d.example", 7).await.unwrap();
        assert!(matches!(store.read_token(None).await, Err(TokenChoiceError::Ambiguous { .. })));
        assert_eq!(store.read_token(Some("c@d.example")).await.unwrap().unwrap().token.expose(), "tok2");
        assert_eq!(store.logout().await.unwrap(), 3);
        assert!(store.read_session().await.is_none());
    }
}
