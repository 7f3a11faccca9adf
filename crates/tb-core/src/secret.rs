//! [`Secret`]: a string that never prints. The machine token, the session, lock passwords,
//! signed backup URLs and the backup encryption passphrase are held in it from the moment
//! they are read. Imports nothing internal.

use std::fmt;

use serde::Deserialize;

/// A value that must never be printed: `Debug` and `Display` show `<redacted>`. It has no
/// `Serialize`: the few files that must hold one (terminus's session and token files) say
/// so field by field with [`Secret::serialize_exposed`], so no report, journal or event can
/// carry one by accident.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(String);

/// Every secret value this process has held (8 characters or more): what a remote command
/// prints is redacted of them too, so a token a command echoes back never reaches a file.
static KNOWN: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

/// The secret values this process knows, longest first (so that one holding another goes
/// whole).
#[must_use]
pub fn known_values() -> Vec<String> {
    let mut known = KNOWN.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
    known.sort_by_key(|v| std::cmp::Reverse(v.len()));
    known
}

impl Secret {
    #[must_use]
    pub fn new(value: impl Into<String>) -> Self {
        let value = value.into();
        if value.chars().count() >= 8 {
            let mut known = KNOWN.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if !known.contains(&value) {
                known.push(value.clone());
            }
        }
        Self(value)
    }

    /// The value, for the one place that must send it.
    #[must_use]
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Serializes the value itself, for `#[serde(serialize_with = ...)]` on the fields of
    /// files that must store it.
    pub fn serialize_exposed<S: serde::Serializer>(secret: &Self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&secret.0)
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Self::new)
    }
}

/// Parts of a name that say it holds a secret anywhere in it (`DEPLOY_APIKEY`,
/// `SSH_PRIVATE_KEY`, `HTTP_AUTHORIZATION`).
const SECRET_PARTS: [&str; 14] = [
    "TOKEN",
    "PASSWORD",
    "PASSWD",
    "PASSPHRASE",
    "SECRET",
    "APIKEY",
    "SESSION",
    "CREDENTIAL",
    "PRIVATE",
    "BEARER",
    "COOKIE",
    "SIGNATURE",
    "AUTHORIZATION",
    "CERTIFICATE",
];

/// Words that say so only as whole words between `_`, `-` or `.` (`GITHUB_PAT`, `DB_PASS`,
/// `AUTH_HEADER`), not inside others (`PATH`, `PASSAGE`, `AUTHOR`).
const SECRET_WORDS: [&str; 9] = ["KEY", "PAT", "PASS", "PWD", "PW", "AUTH", "DSN", "SALT", "OTP"];

/// Whether a name (a variable, an option, a setting) says its value is a secret (README,
/// "Secrets in plans"): one of `SECRET_PARTS` anywhere, or one of `SECRET_WORDS` as a
/// word, in any case.
#[must_use]
pub fn looks_like_secret_name(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    SECRET_PARTS.iter().any(|part| upper.contains(part))
        || upper.split(['_', '-', '.']).any(|word| SECRET_WORDS.contains(&word))
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Compiles only while `Secret` has no `Serialize`: with one, the call below would be
    /// ambiguous between the two impls.
    #[test]
    fn a_secret_cannot_be_serialized_by_accident() {
        trait AmbiguousIfSerialize<A> {
            fn check() {}
        }
        impl<T: ?Sized> AmbiguousIfSerialize<()> for T {}
        struct Serializable;
        impl<T: ?Sized + serde::Serialize> AmbiguousIfSerialize<Serializable> for T {}
        <Secret as AmbiguousIfSerialize<_>>::check();
        assert_eq!(format!("{:?} {}", Secret::new("x"), Secret::new("x")), "<redacted> <redacted>");
    }
}
