//! Every JSON body the client reads, in the recorded real responses (tests/fixtures, copied
//! from shared/fixtures/pantheon), decodes with the client's wire types.

use std::collections::BTreeMap;

use tb_operations::api::wire;

use crate::support::cassettes::Interaction;
use crate::support::repo;

fn uuid_free(path: &str) -> String {
    path.split('/')
        .map(|seg| if seg.len() == 36 && seg.chars().filter(|c| *c == '-').count() == 4 { "{id}" } else { seg })
        .collect::<Vec<_>>()
        .join("/")
}

fn decode<T: serde::de::DeserializeOwned>(route: &str, body: &str, file: &str) {
    if let Err(e) = serde_json::from_str::<T>(body) {
        panic!("{file}: {route}: {e}\n{}", &body[..body.len().min(400)]);
    }
}

#[test]
#[expect(
    clippy::too_many_lines,
    reason = "a table: one arm per route the recordings hold, each decoded with its wire type"
)]
fn recorded_responses_decode_with_the_wire_types() {
    let mut decoded: BTreeMap<&'static str, usize> = BTreeMap::new();
    let mut malformed: Vec<String> = Vec::new();
    let dir = repo().join("tests/fixtures");
    let mut files: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    for file in files.iter().filter(|p| p.extension().is_some_and(|e| e == "yml")) {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(file).unwrap();
        let interactions: Vec<Interaction> = serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
        for it in interactions {
            let body = it.response.body.unwrap_or_default();
            let code: u16 = it.response.status.code.parse().unwrap();
            let path = it.request.url.split("/api/").nth(1).unwrap_or("").split('?').next().unwrap_or("").to_owned();
            if !it.request.url.contains("/api/") {
                // The platform domain's health check answers `OK`, not JSON.
                continue;
            }
            let route = uuid_free(&path);
            let parts: Vec<&str> = route.split('/').collect();
            let method = it.request.method.as_str();
            // One recording was damaged by the scrubbing of an email (`"…io""}`): not JSON at
            // all, so no client could read it. Those are listed, not decoded.
            if (200..300).contains(&code)
                && !body.trim().is_empty()
                && serde_json::from_str::<serde_json::Value>(&body).is_err()
            {
                malformed.push(format!("{name}: {route}"));
                continue;
            }
            if !(200..300).contains(&code) {
                // Error bodies: JSON strings or text, shown to the user.
                assert!(!wire::error_message(&body).is_empty() || body.is_empty(), "{name}: {route}");
                *decoded.entry("error body").or_default() += 1;
                continue;
            }
            let key: &'static str = match (method, parts.as_slice()) {
                ("POST", ["authorize", "machine-token"]) => {
                    decode::<wire::Session>(&route, &body, &name);
                    "session"
                }
                ("GET", ["users", _]) => {
                    decode::<wire::User>(&route, &body, &name);
                    "user"
                }
                ("GET", ["site-names", _]) => {
                    decode::<wire::SiteName>(&route, &body, &name);
                    "site-names"
                }
                ("GET", ["sites", _]) => {
                    decode::<wire::Site>(&route, &body, &name);
                    "site"
                }
                ("GET", ["sites", _, "environments"]) => {
                    decode::<wire::Environments>(&route, &body, &name);
                    "environments"
                }
                ("GET", ["sites", _, "environments", _]) => {
                    decode::<wire::Environment>(&route, &body, &name);
                    "environment"
                }
                ("GET", ["sites", _, "environments", _, "settings"]) => {
                    decode::<wire::EnvSettings>(&route, &body, &name);
                    "settings"
                }
                ("GET", ["sites", _, "environments", _, "code-log"]) => {
                    decode::<Vec<wire::Commit>>(&route, &body, &name);
                    "code-log"
                }
                ("GET", ["sites", _, "environments", _, "domains"]) => {
                    decode::<Vec<wire::Domain>>(&route, &body, &name);
                    "domains"
                }
                ("GET", ["sites", _, "environments", _, "backups", "catalog"]) => {
                    let catalog = if body.trim().is_empty() { "[]" } else { body.as_str() };
                    decode::<wire::BackupCatalog>(&route, catalog, &name);
                    "backups catalog"
                }
                ("POST", ["sites", _, "environments", _, "backups", "catalog", _, _, "s3token"]) => {
                    decode::<wire::S3Token>(&route, &body, &name);
                    "s3token"
                }
                ("GET", ["sites", _, "code-upstream-updates"]) => {
                    decode::<wire::UpstreamUpdates>(&route, &body, &name);
                    "upstream updates"
                }
                (
                    "POST",
                    ["sites", _, "environments", _, "workflows"]
                    | ["sites", _, "workflows"]
                    | ["users", _, "workflows"],
                )
                | ("GET", ["sites", _, "workflows", _] | ["users", _, "workflows", _]) => {
                    decode::<wire::Workflow>(&route, &body, &name);
                    "workflow"
                }
                ("GET", ["sites", _, "workflows"]) => {
                    decode::<Vec<wire::Workflow>>(&route, &body, &name);
                    "workflow list"
                }
                ("GET", ["users", _, "memberships", "sites"]) => {
                    decode::<Vec<wire::UserSiteMembership>>(&route, &body, &name);
                    "user-site memberships"
                }
                ("GET", ["organizations", _, "memberships", "sites"]) => {
                    decode::<Vec<wire::OrgSiteMembership>>(&route, &body, &name);
                    "org-site memberships"
                }
                ("GET", ["users", _, "memberships", "organizations"]) => {
                    decode::<Vec<wire::UserOrgMembership>>(&route, &body, &name);
                    "user-org memberships"
                }
                ("GET", ["sites", _, "memberships", "users"]) => {
                    decode::<Vec<wire::SiteUserMembership>>(&route, &body, &name);
                    "site-user memberships"
                }
                // Bodies the client does not read: "Ok" replies, tags, features, upstreams.
                _ => continue,
            };
            *decoded.entry(key).or_default() += 1;
        }
    }
    assert_eq!(malformed, ["upstream-updates-no-code.yml: users/{id}"], "unexpected broken recordings");
    for route in [
        "session",
        "user",
        "site-names",
        "site",
        "environments",
        "environment",
        "settings",
        "code-log",
        "domains",
        "backups catalog",
        "s3token",
        "upstream updates",
        "workflow",
        "workflow list",
        "user-site memberships",
        "org-site memberships",
        "user-org memberships",
        "site-user memberships",
        "error body",
    ] {
        assert!(decoded.get(route).is_some_and(|n| *n > 0), "no recorded {route} was decoded: {decoded:?}");
    }
}
