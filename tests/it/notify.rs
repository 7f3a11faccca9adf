//! Notifications: a webhook receiver on 127.0.0.1 gets one POST per configured event, in
//! Slack's format or as the JSON summary; a rehearsal tells only `--notify`'s webhooks; a
//! failed delivery is said and reported without changing the exit code; and no output,
//! report or journal holds a webhook's URL.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use serde_json::Value;

use crate::support::sim::Served;
use crate::support::{Test, simulated};

/// One POST received: its path and its JSON body.
#[derive(Clone, Debug)]
struct Post {
    path: String,
    body: Value,
}

/// A webhook receiver on 127.0.0.1: answers each POST with `status` and keeps it.
struct Receiver {
    port: u16,
    posts: Arc<Mutex<Vec<Post>>>,
}

impl Receiver {
    fn start(status: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let posts = Arc::new(Mutex::new(Vec::new()));
        let kept = Arc::clone(&posts);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut request_line = String::new();
                if reader.read_line(&mut request_line).is_err() {
                    continue;
                }
                let mut length = 0;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    if let Some((name, value)) = line.split_once(':')
                        && name.eq_ignore_ascii_case("content-length")
                    {
                        length = value.trim().parse().unwrap_or(0);
                    }
                }
                let mut body = vec![0; length];
                let _ = reader.read_exact(&mut body);
                let path = request_line.split(' ').nth(1).unwrap_or_default().to_owned();
                kept.lock().unwrap().push(Post { path, body: serde_json::from_slice(&body).unwrap_or(Value::Null) });
                let reason = if status == 200 { "OK" } else { "Error" };
                let _ = write!(stream, "HTTP/1.1 {status} {reason}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
            }
        });
        Self { port, posts }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn posts(&self) -> Vec<Post> {
        self.posts.lock().unwrap().clone()
    }
}

/// Every file the run wrote under `dir` (not the plan, which holds what its author wrote), as
/// text, each after its name.
fn every_file(dir: &std::path::Path) -> String {
    let mut out = String::new();
    let Ok(entries) = std::fs::read_dir(dir) else { return out };
    for entry in entries.flatten() {
        let path = entry.path();
        out.push_str(&format!("\n== {}\n", path.display()));
        if path.file_name().is_some_and(|n| n == "plan.yml") {
            continue;
        }
        if path.is_dir() {
            out.push_str(&every_file(&path));
        } else {
            out.push_str(&String::from_utf8_lossy(&std::fs::read(&path).unwrap_or_default()));
        }
    }
    out
}

const FAILING_WORLD: &str = "simulator:\n  time_scale: 0.001\n  faults:\n    - { route: \"sites/{site}/environments/{env}/workflows\", site: s2, type: clear_cache, fail_workflow: \"Simulated failure\" }\nuser: { email: ops@example.com }\norgs: [{ name: o }]\nsites:\n  - { name: s1, org: o }\n  - { name: s2, org: o }\n";

#[test]
fn a_rehearsal_tells_the_webhooks_its_command_names_once_each_and_never_shows_their_urls() {
    let receiver = Receiver::start(200);
    let plan = format!(
        "version: 1\nsettings:\n  notify:\n    - {{ url: \"{}\", events: [start, failure] }}\njobs:\n  clear:\n    run: env:clear-cache\n    on: {{ sites: [s1, s2], env: live }}\n",
        receiver.url("/team/plan-s3cret")
    );
    let json = format!("--notify={}", receiver.url("/hook/json-s3cret"));
    let slack = format!("--notify=slack={}", receiver.url("/hook/slack-s3cret"));
    let t = simulated(
        FAILING_WORLD,
        &plan,
        &["--yes", "--report", "json=report.json", "--report", "html=report.html", &json, &slack],
    );
    let out = t.run();
    assert_eq!(out.code, 1, "a failed task is exit 1, notifications or not: {}", out.stderr);
    let posts = receiver.posts();
    // The plan's webhook is the team's: a rehearsal does not tell it.
    assert!(posts.iter().all(|p| !p.path.starts_with("/team")), "{posts:#?}");
    assert_eq!(posts.len(), 2, "one end per webhook named: {posts:#?}");
    let json = posts.iter().find(|p| p.path == "/hook/json-s3cret").unwrap();
    assert_eq!(json.body["kind"], "terminus-batch/notification");
    assert_eq!(json.body["event"], "failure");
    assert_eq!(json.body["simulated"], true);
    assert_eq!(json.body["totals"]["failed"], 1);
    assert_eq!(json.body["totals"]["succeeded"], 1);
    assert_eq!(json.body["causes"][0]["tasks"], serde_json::json!(["clear[s2.live]"]));
    assert!(json.body["resume"].as_str().unwrap().contains("--resume="), "{:#}", json.body);
    let slack = posts.iter().find(|p| p.path == "/hook/slack-s3cret").unwrap();
    let text = slack.body["text"].as_str().unwrap();
    assert!(text.contains(" failed (a rehearsal against the simulator): 2 tasks, 1 succeeded"), "{text}");
    assert!(text.contains("• failed 1 task:") && text.contains("clear[s2.live]"), "{text}");
    assert!(text.contains("Resume: `terminus-batch apply plan.yml"), "{text}");
    // Delivered, and said so in the report, by place and host.
    let report = crate::support::report(&t, "report.json");
    let told = report["notifications"].as_array().unwrap();
    assert_eq!(told.len(), 2, "{told:#?}");
    assert!(told.iter().all(|n| n["delivered"] == true && n["host"] == "127.0.0.1" && n["event"] == "failure"));
    // No output, report or journal holds a URL.
    let everything = format!(
        "{}{}{}{}",
        out.stdout,
        out.stderr,
        every_file(t.path()),
        posts.iter().map(|p| p.body.to_string()).collect::<String>()
    );
    let shown: Vec<&str> = everything.lines().filter(|l| l.contains("s3cret") || l.starts_with("== ")).collect();
    assert!(!everything.contains("s3cret"), "a webhook's URL was shown: {shown:#?}");
}

#[test]
fn a_real_run_tells_the_plans_webhooks_of_its_start_and_end_and_a_failed_delivery_changes_nothing() {
    let receiver = Receiver::start(200);
    let down = Receiver::start(503);
    let served = Served::new(tb_simulator::Knobs { time_scale: 0.001, ..tb_simulator::Knobs::default() });
    let plan = "version: 1\nsettings:\n  notify:\n    - { url: \"${{ env.TEAM_HOOK }}\", events: [start, success], format: json }\n    - { url: \"${{ env.DOWN_HOOK }}\" , events: [success] }\njobs:\n  clear:\n    run: env:clear-cache\n    on: { sites: [acme-web], env: live }\n";
    let t = Test::new().file("plan.yml", plan);
    let run = |vars: &[(&str, &str)]| {
        let mut test = served.test_in(t.path()).env("TERMINUS_MACHINE_TOKEN", "simulated-machine-token");
        for (k, v) in vars {
            test = test.env(k, v);
        }
        test.args(&["apply", "plan.yml", "--yes", "--report", "json=report.json"]).run()
    };
    // A webhook whose variable is not set is refused before anything runs.
    let refused = run(&[("TEAM_HOOK", &receiver.url("/team/s3cret"))]);
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    assert!(
        refused.stderr.contains("webhook #2") && refused.stderr.contains("DOWN_HOOK is not set"),
        "{}",
        refused.stderr
    );
    assert!(receiver.posts().is_empty());
    let out = run(&[("TEAM_HOOK", &receiver.url("/team/s3cret")), ("DOWN_HOOK", &down.url("/down/s3cret"))]);
    assert_eq!(out.code, 0, "a failed delivery does not change the exit code: {}", out.stderr);
    let events: Vec<Value> = receiver.posts().iter().map(|p| p.body["event"].clone()).collect();
    assert_eq!(events, ["start", "success"], "{:#?}", receiver.posts());
    assert_eq!(receiver.posts()[0].body["tasks"], 1);
    assert_eq!(down.posts().len(), 3, "tried three times: {:#?}", down.posts());
    assert!(
        out.stderr
            .contains("the success notification to webhook #2 (127.0.0.1) was not delivered after 3 tries: HTTP 503"),
        "{}",
        out.stderr
    );
    let report = crate::support::report(&t, "report.json");
    let failed: Vec<&Value> =
        report["notifications"].as_array().unwrap().iter().filter(|n| n["delivered"] == false).collect();
    assert_eq!(failed.len(), 1, "{report:#}");
    assert_eq!(failed[0]["error"], "HTTP 503");
    let everything = format!("{}{}{}", out.stdout, out.stderr, every_file(t.path()));
    assert!(!everything.contains("s3cret"), "a webhook's URL was shown");
}

#[test]
fn a_webhook_url_that_is_not_one_is_refused_by_validate() {
    let plan = "version: 1\nsettings:\n  notify:\n    - { url: \"http://hooks.example.com/x\" }\n    - { url: \"https://hooks.slack.com/x\", events: [failed] }\n    - { url: \"${{ site }}\" }\njobs:\n  c:\n    run: env:clear-cache\n    on: { sites: [acme-web], env: live }\n";
    let out = Test::new().file("plan.yml", plan).args(&["validate", "plan.yml"]).run();
    assert_eq!(out.code, 2, "{}", out.stderr);
    for said in [
        "a webhook URL is https (plain http only to this machine)",
        "unknown event `failed`",
        "a webhook URL may read only the process environment, not `site`",
    ] {
        assert!(out.stderr.contains(said), "{said}\n{}", out.stderr);
    }
}
