//! No panic on any input: randomized tests (proptest, stable Rust) for the world, saved-plan
//! and journal readers (the plan reader is in `properties`). The `#[ignore]`d variant runs
//! many more cases: `FUZZ_CASES=2500000 cargo test --release --test it fuzz::long -- --ignored`
//! (about ten minutes here).

use proptest::prelude::*;
use tb_plan::plan::PlanSource;
use tb_simulator::World;
use tb_state::journal::parse_lines;

use crate::support::repo;

/// `text` with a few random spans replaced.
fn mutate(mut text: String, cuts: &[(prop::sample::Index, prop::sample::Index, String)]) -> String {
    for (at, len, insert) in cuts {
        if text.is_empty() {
            break;
        }
        let mut start = at.index(text.len());
        while !text.is_char_boundary(start) {
            start -= 1;
        }
        let mut end = (start + len.index(16)).min(text.len());
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.replace_range(start..end, insert);
    }
    text
}

fn world_text() -> String {
    std::fs::read_to_string(repo().join("examples/world.yml")).unwrap()
}

const SAVED: &str = r#"{"kind":"terminus-batch/saved-plan","format_version":1,"source":{"path":"p.yml","sha256":"ab"},
"resolved":{"jobs":{"c":[{"site":"a","site_id":"11111111-2222-3333-4444-555555555555","envs":["live"]}]}},"tasks":[]}"#;

const JOURNAL: &str = r#"{"journal":1,"run_id":"r","resumed_from":null,"first_run":"r","plan_path":"p.yml","plan_sha256":"x","settings":null}
{"event":"run_started","run_id":"r","at":1,"tasks":[{"id":"c[a.live]","job":"c","site":"a","env":"live","operation":"env:clear-cache"}]}
{"event":"task_started","task":0,"at":2}
{"event":"attempt_starting","task":0,"attempt":1,"at":3}
{"event":"workflow_started","task":0,"workflow_id":"w","at":4}
{"event":"task_finished","task":0,"outcome":{"status":"succeeded","message":"ok"},"at":5}"#;

fn check_world(text: &str) {
    let _outcome = World::parse(&PlanSource::new("world.yml", text));
}

fn check_saved(text: &str) {
    let _outcome = tb_run::saved::parse(text);
}

fn check_journal(text: &str) {
    let _bytes = tb_state::journal::parse_bytes(text.as_bytes());
    let lines: Vec<String> = text.lines().map(str::to_owned).collect();
    if let Ok((_, events, _)) = parse_lines(&lines) {
        let journal =
            tb_state::journal::RunJournal { header: parse_lines(&lines).unwrap().0, events, torn_tail: false };
        let carried = journal.header.carried.clone();
        let _priors = tb_state::journal::prior_states(&journal, &carried);
        let _chained = tb_state::journal::chain_priors([&journal]);
    }
}

fn cuts() -> impl Strategy<Value = Vec<(prop::sample::Index, prop::sample::Index, String)>> {
    proptest::collection::vec((any::<prop::sample::Index>(), any::<prop::sample::Index>(), "[ -~\n]{0,10}"), 1..8)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn worlds_never_panic(c in cuts(), noise in "\\PC{0,200}") {
        check_world(&mutate(world_text(), &c));
        check_world(&noise);
    }

    #[test]
    fn saved_plans_never_panic(c in cuts(), noise in "\\PC{0,200}") {
        check_saved(&mutate(SAVED.to_owned(), &c));
        check_saved(&format!("{{\"kind\":\"terminus-batch/saved-plan\"{noise}"));
    }

    #[test]
    fn journals_never_panic(c in cuts()) {
        check_journal(&mutate(JOURNAL.to_owned(), &c));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(200_000),
    ))]

    /// The long run: `FUZZ_CASES=N cargo test --release --test it fuzz::long -- --ignored`.
    #[test]
    #[ignore = "long-running: run by hand before a release"]
    fn long_every_reader_never_panics(c in cuts(), which in 0usize..4) {
        match which {
            0 => check_world(&mutate(world_text(), &c)),
            1 => check_saved(&mutate(SAVED.to_owned(), &c)),
            2 => check_journal(&mutate(JOURNAL.to_owned(), &c)),
            _ => {
                let plans = crate::support::example_plans();
                let text = std::fs::read_to_string(&plans[c.len() % plans.len()]).unwrap();
                let text = mutate(text, &c);
                let _outcome = tb_plan::plan::load(&PlanSource::new("fuzz.yml", text.as_str()));
            }
        }
    }
}
