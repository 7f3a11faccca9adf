//! Property tests over the library's stages: expansion sizes, per-site needs, graph cycle
//! refusal, determinism, and no panic on any input.

use std::fmt::Write as _;

use proptest::prelude::*;
use tb_core::graph::TaskGraph;
use tb_plan::expand::{Filter, expand};
use tb_plan::plan::{self, PlanSource};
use tb_plan::resolve::{Resolved, SiteTargets};

fn load(text: &str) -> plan::model::Plan {
    plan::load(&PlanSource::new("p.yml", text)).unwrap_or_else(|e| panic!("{e:?}\n{text}"))
}

fn resolved(jobs: &[(String, Vec<String>, Vec<String>)]) -> Resolved {
    let mut r = Resolved::default();
    for (job, sites, envs) in jobs {
        r.jobs.insert(
            job.clone(),
            sites
                .iter()
                .map(|s| SiteTargets { site: s.clone(), site_id: format!("id-{s}"), envs: envs.clone(), frozen: false })
                .collect(),
        );
    }
    r
}

fn site_names(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("site-{i}")).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn expansion_is_the_product_of_targets_and_matrix(
        sites in 1usize..6,
        envs in proptest::sample::subsequence(vec!["dev", "test", "live", "ci-1"], 1..=4),
        axes in proptest::collection::vec(1usize..4, 0..3),
    ) {
        let mut text = String::from("version: 1\njobs:\n  j:\n    run: env:clear-cache\n");
        let _ = writeln!(text, "    on: {{ sites: [{}], env: [{}] }}", site_names(sites).join(", "), envs.join(", "));
        if !axes.is_empty() {
            text.push_str("    matrix:\n");
            for (a, n) in axes.iter().enumerate() {
                let values: Vec<String> = (0..*n).map(|v| format!("v{v}")).collect();
                let _ = writeln!(text, "      axis{a}: [{}]", values.join(", "));
            }
        }
        let p = load(&text);
        let envs: Vec<String> = envs.iter().map(|e| (*e).to_owned()).collect();
        let r = resolved(&[("j".to_owned(), site_names(sites), envs.clone())]);
        let e = expand(&p, &r, &Filter::default()).unwrap();
        let product: usize = axes.iter().product();
        prop_assert_eq!(e.tasks.len(), sites * envs.len() * product);
        let mut ids: Vec<&str> = e.tasks.iter().map(|t| t.id.as_str()).collect();
        ids.sort_unstable();
        ids.dedup();
        prop_assert_eq!(ids.len(), e.tasks.len(), "task ids are unique");
    }

    #[test]
    fn per_site_needs_never_cross_sites_and_order_is_deterministic(
        jobs in 2usize..6,
        picks in proptest::collection::vec((proptest::collection::vec(any::<bool>(), 4), any::<u8>()), 6),
    ) {
        let all_sites = site_names(4);
        let mut text = String::from("version: 1\njobs:\n");
        let mut targets = Vec::new();
        for j in 0..jobs {
            let (mask, needs_bits) = &picks[j];
            let mut sites: Vec<String> = all_sites.iter().zip(mask).filter(|(_, m)| **m).map(|(s, _)| s.clone()).collect();
            if sites.is_empty() { sites.push(all_sites[0].clone()); }
            let _ = writeln!(text, "  j{j}:\n    run: env:clear-cache\n    on: {{ sites: [{}], env: live }}", sites.join(", "));
            let needs: Vec<String> = (0..j).filter(|k| needs_bits & (1 << k) != 0).map(|k| format!("{{ job: j{k}, optional: true }}")).collect();
            if !needs.is_empty() {
                let _ = writeln!(text, "    needs: [{}]", needs.join(", "));
            }
            targets.push((format!("j{j}"), sites, vec!["live".to_owned()]));
        }
        let p = load(&text);
        let r = resolved(&targets);
        let a = expand(&p, &r, &Filter::default()).unwrap();
        for task in &a.tasks {
            for &n in &task.needs {
                prop_assert_eq!(&a.tasks[n].site, &task.site, "{} needs {}", task.id, a.tasks[n].id);
                prop_assert!(a.tasks[n].job_index < task.job_index);
            }
        }
        let b = expand(&p, &r, &Filter::default()).unwrap();
        let ids = |e: &tb_plan::expand::Expansion<_>| e.tasks.iter().map(|t| (t.id.clone(), t.needs.clone())).collect::<Vec<_>>();
        prop_assert_eq!(ids(&a), ids(&b));
        let edges = |e: &tb_plan::expand::Expansion<_>| -> Vec<(usize, usize)> {
            e.tasks.iter().enumerate().flat_map(|(i, t)| t.needs.iter().map(move |&n| (n, i))).collect()
        };
        let ga = TaskGraph::build(a.tasks.clone(), edges(&a), |t| t.id.to_string()).unwrap();
        let gb = TaskGraph::build(b.tasks.clone(), edges(&b), |t| t.id.to_string()).unwrap();
        prop_assert_eq!(ga.topological_order(), gb.topological_order());
    }

    #[test]
    fn the_graph_rejects_every_back_edge(
        n in 2usize..12,
        raw_edges in proptest::collection::vec((0usize..12, 0usize..12), 0..30),
    ) {
        let edges: Vec<(usize, usize)> = raw_edges.into_iter().filter(|(a, b)| a < b && *b < n).collect();
        let mut graph = TaskGraph::build((0..n).collect::<Vec<usize>>(), edges.clone(), ToString::to_string).unwrap();
        // reach[a][b]: b is reachable from a.
        let mut reach = vec![vec![false; n]; n];
        for &(a, b) in &edges { reach[a][b] = true; }
        for k in 0..n { for i in 0..n { for j in 0..n { if reach[i][k] && reach[k][j] { reach[i][j] = true; } } } }
        for a in 0..n {
            for b in 0..n {
                if a == b || reach[a][b] {
                    // b → a would close a loop through a … b.
                    prop_assert!(graph.add_edge(b, a, ToString::to_string).is_err(), "{b} -> {a} accepted");
                }
            }
        }
        // Forward edges never close a loop.
        for a in 0..n {
            for b in a + 1..n {
                prop_assert!(graph.add_edge(a, b, ToString::to_string).is_ok());
            }
        }
    }

    #[test]
    fn random_text_never_panics(text in "\\PC{0,400}") {
        check_no_panic(&text);
    }

    #[test]
    fn mutated_examples_never_panic(
        which in 0usize..5,
        cuts in proptest::collection::vec((any::<proptest::sample::Index>(), any::<proptest::sample::Index>(), "[ -~\n]{0,8}"), 1..6),
    ) {
        let plans = crate::support::example_plans();
        let mut text = std::fs::read_to_string(&plans[which % plans.len()]).unwrap();
        for (at, len, insert) in cuts {
            if text.is_empty() { break; }
            let mut start = at.index(text.len());
            while !text.is_char_boundary(start) { start -= 1; }
            let mut end = (start + len.index(12)).min(text.len());
            while !text.is_char_boundary(end) { end -= 1; }
            text.replace_range(start..end, &insert);
        }
        check_no_panic(&text);
    }
}

/// Every outcome is a plan or diagnostics whose labels point inside the text.
fn check_no_panic(text: &str) {
    let source = PlanSource::new("fuzz.yml", text);
    match plan::load(&source) {
        Ok(p) => {
            // Expansion over an empty resolution must not panic either.
            let _outcome = expand(&p, &Resolved::default(), &Filter::default());
        }
        Err(errors) => {
            assert!(!errors.is_empty());
            for e in errors {
                for label in &e.labels {
                    assert!(label.span.offset() <= text.len(), "{e:?} points past the end");
                }
                let _rendered =
                    terminus_batch::cli::commands::render_plan_errors(&source, std::slice::from_ref(&e), 100);
            }
        }
    }
}
