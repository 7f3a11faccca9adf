//! Redaction of text a remote command printed, before any of it is kept in a file (reports,
//! journals, the step summary): one-time login links, passwords given as options or
//! variables, credentials inside URLs, and values of variables named like secrets. Imports
//! only [`crate::secret`]'s name check.

/// What replaces a secret.
pub const REDACTED: &str = "[redacted]";

/// `text` with every credential it shows replaced by [`REDACTED`], line by line.
#[must_use]
pub fn redact(text: &str) -> String {
    // The run's own secrets (its machine token, its session…), wherever they stand.
    let mut text = text.to_owned();
    for value in crate::secret::known_values() {
        if text.contains(&value) {
            text = text.replace(&value, REDACTED);
        }
    }
    text.split_inclusive('\n').map(redact_line).collect()
}

fn redact_line(line: &str) -> String {
    let line = redact_php_define(line);
    let line = line.as_str();
    let mut words: Vec<String> = Vec::new();
    let mut hide_next = false;
    // A secret's name, then `:` as a word of its own (`DB password : x`, drush's listing).
    let mut named = false;
    for word in line.split_inclusive(char::is_whitespace) {
        let core_end = word.trim_end().len();
        let (core, space) = word.split_at(core_end);
        if core.is_empty() {
            words.push(word.to_owned());
            continue;
        }
        // Already redacted (a PHP define's value): kept as it is.
        if hide_next && core.contains(REDACTED) {
            words.push(word.to_owned());
            hide_next = false;
            continue;
        }
        if hide_next {
            words.push(format!("{REDACTED}{space}"));
            hide_next = false;
            continue;
        }
        // `DB_PASSWORD = x`, `DB password : x`.
        if named && (core == ":" || core == "=" || core == "=>") {
            hide_next = true;
            named = false;
            words.push(word.to_owned());
            continue;
        }
        named = secret_name(core.trim_matches(|c: char| "'\"`".contains(c)));
        let (kept, takes_next) = redact_word(core);
        hide_next = takes_next;
        words.push(format!("{kept}{space}"));
    }
    words.concat()
}

/// One word: `(what is kept, whether the next word is the value of a secret option)`.
fn redact_word(word: &str) -> (String, bool) {
    let bare = word.trim_matches(|c: char| "'\"`,;()[]{}<>".contains(c));
    if bare.is_empty() {
        return (word.to_owned(), false);
    }
    // A URL: a login link is all secret past its path's start; credentials before `@` and
    // values of secret query parameters go.
    if let Some(at) = bare.find("://") {
        return (word.replace(bare, &redact_url(bare, at)), false);
    }
    // `--password=x`, `PGPASSWORD=x`, `pass: x`-style pairs.
    if let Some((name, value)) = bare.split_once('=')
        && !value.is_empty()
        && secret_name(name)
    {
        return (word.replace(bare, &format!("{name}={REDACTED}")), false);
    }
    // `--password x`, `-p x`: the option alone; its value is the next word.
    let option = bare.trim_start_matches('-');
    if bare.starts_with('-') && (secret_name(option) || option == "p") {
        return (word.to_owned(), true);
    }
    // MySQL's `-pSECRET`.
    if let Some(secret) = bare.strip_prefix("-p")
        && !secret.is_empty()
        && !secret.starts_with('-')
    {
        return (word.replace(bare, &format!("-p{REDACTED}")), false);
    }
    // `Password: x` in a status listing.
    if let Some(name) = bare.strip_suffix(':')
        && secret_name(name)
    {
        return (word.to_owned(), true);
    }
    (word.to_owned(), false)
}

/// PHP's `define( 'DB_PASSWORD', 'S3cr3t' );` and `'password' => 'S3cr3t'` (what
/// `wp-config.php` and `settings.php` lines print when a command fails on them): the quoted
/// value after a secret-named quoted key goes, whatever the spacing.
fn redact_php_define(line: &str) -> String {
    let quoted = quoted_strings(line);
    let mut out = String::with_capacity(line.len());
    let mut from = 0;
    for pair in quoted.windows(2) {
        let ((key_start, key_end), (value_start, value_end)) = (pair[0], pair[1]);
        let between = &line[key_end + 1..value_start];
        let joined = between.trim().trim_start_matches(',').trim_start_matches("=>").trim().is_empty()
            && (between.contains(',') || between.contains("=>"));
        if joined && secret_name(&line[key_start + 1..key_end]) && value_start >= from {
            out.push_str(&line[from..=value_start]);
            out.push_str(REDACTED);
            from = value_end;
        }
    }
    out.push_str(&line[from..]);
    out
}

/// The byte ranges of `line`'s quoted strings, each as (opening quote, closing quote).
fn quoted_strings(line: &str) -> Vec<(usize, usize)> {
    let mut found = Vec::new();
    let mut open: Option<(usize, char)> = None;
    let mut escaped = false;
    for (i, c) in line.char_indices() {
        match open {
            Some(_) if escaped => escaped = false,
            Some(_) if c == '\\' => escaped = true,
            Some((start, quote)) if c == quote => {
                found.push((start, i));
                open = None;
            }
            None if c == '\'' || c == '"' => open = Some((i, c)),
            Some(_) | None => {}
        }
    }
    found
}

fn secret_name(name: &str) -> bool {
    let name = name.trim_start_matches('-');
    !name.is_empty() && crate::secret::looks_like_secret_name(name)
}

fn redact_url(url: &str, scheme_end: usize) -> String {
    let rest = &url[scheme_end + 3..];
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let authority = match authority.rsplit_once('@') {
        Some((credentials, host)) => match credentials.split_once(':') {
            Some((user, _)) => format!("{user}:{REDACTED}@{host}"),
            None => format!("{REDACTED}@{host}"),
        },
        None => authority.to_owned(),
    };
    let scheme = &url[..scheme_end];
    // Drupal's one-time login (`/user/reset/…`, drush uli) and WordPress's reset links
    // (`wp-login.php?…key=…`) grant access in full: nothing after the marker is kept.
    for marker in ["/user/reset/", "/wp-login.php"] {
        if let Some(at) = path.find(marker) {
            return format!("{scheme}://{authority}{}{marker}{REDACTED}", &path[..at]);
        }
    }
    let path = match path.split_once('?') {
        Some((before, query)) => {
            let pairs: Vec<String> = query
                .split('&')
                .map(|pair| match pair.split_once('=') {
                    Some((key, _)) if secret_name(key) || ["key", "sig", "signature", "token"].contains(&key) => {
                        format!("{key}={REDACTED}")
                    }
                    _ => pair.to_owned(),
                })
                .collect();
            format!("{before}?{}", pairs.join("&"))
        }
        None => path.to_owned(),
    };
    format!("{scheme}://{authority}{path}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_redacted_and_the_rest_kept() {
        let cases = [
            (
                "https://dev-acme.pantheonsite.io/user/reset/1/1733170000/AbCdEf/login",
                "https://dev-acme.pantheonsite.io/user/reset/[redacted]",
            ),
            (
                "https://acme.example/wp-login.php?action=rp&key=Xy12&login=admin",
                "https://acme.example/wp-login.php[redacted]",
            ),
            (
                "mysql --user=pantheon --password=s3cr3t --host=dbserver --port=11003 pantheon",
                "mysql --user=pantheon --password=[redacted] --host=dbserver --port=11003 pantheon",
            ),
            ("mysql -u pantheon -ps3cr3t -h db", "mysql -u pantheon -p[redacted] -h db"),
            ("mysql -u pantheon -p s3cr3t -h db", "mysql -u pantheon -p [redacted] -h db"),
            ("PGPASSWORD=hunter2 psql", "PGPASSWORD=[redacted] psql"),
            ("DATABASE_URL=mysql://app:hunter2@db:3306/app", "DATABASE_URL=mysql://app:[redacted]@db:3306/app"),
            (" DB password : hunter2", " DB password : [redacted]"),
            (" Password: hunter2", " Password: [redacted]"),
            ("GITHUB_PAT=ghp_abc and BUILD=7", "GITHUB_PAT=[redacted] and BUILD=7"),
            (" [success] Cache rebuild complete.", " [success] Cache rebuild complete."),
            ("https://example.com/path?page=2", "https://example.com/path?page=2"),
            (
                "PHP Warning: define( 'DB_PASSWORD', 'S3cr3tPa55' ); in wp-config.php",
                "PHP Warning: define( 'DB_PASSWORD', '[redacted]' ); in wp-config.php",
            ),
            ("define(\"AUTH_KEY\",\"k3y\");", "define(\"AUTH_KEY\",\"[redacted]\");"),
            ("  'password' => 'hunter2',", "  'password' => '[redacted]',"),
            ("define( 'WP_DEBUG', true );", "define( 'WP_DEBUG', true );"),
            ("  'host' => 'dbserver', 'database' => 'pantheon',", "  'host' => 'dbserver', 'database' => 'pantheon',"),
            ("DB_PASSWORD = hunter2", "DB_PASSWORD = [redacted]"),
        ];
        for (text, kept) in cases {
            assert_eq!(redact(text), kept, "{text}");
        }
        assert_eq!(redact("a\nPGPASSWORD=x\n"), "a\nPGPASSWORD=[redacted]\n");
        // A value this process holds as a secret goes wherever it stands.
        let _token = crate::secret::Secret::new("mt-0123456789abcdef");
        assert_eq!(redact("echo mt-0123456789abcdef done"), "echo [redacted] done");
    }
}
