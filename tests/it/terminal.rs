//! The live display as a terminal shows it: the real binary under a pseudo-terminal of 80×24
//! (util-linux's `script`, with `stty` setting the size), its output replayed through a
//! terminal emulator (`vt100`), and what the screen held checked frame by frame.

use std::num::NonZeroU16;
use std::process::Command;

use crate::support::Test;

const PLAN: &str = "version: 1
settings: { concurrency: 10 }
jobs:
  deploy-test:
    run: env:deploy
    on: { sites: { org: o }, env: test }
  deploy-live:
    run: env:deploy
    needs: [deploy-test]
    on: { sites: { org: o }, env: live }
  clear:
    run: env:clear-cache
    needs: [deploy-live]
    on: { sites: { org: o }, env: live }
";

/// 60 sites, a fifth of workflows failing, and a few workflow POSTs answered 503 (which `-v`
/// logs while the display is drawn).
fn world() -> String {
    world_of(60)
}

/// [`world`] with `sites` sites.
fn world_of(sites: usize) -> String {
    let mut world = "simulator:\n  time_scale: 0.005\n  seed: 4\n  fail_workflow_rate: 0.2\n  faults:\n    - { method: POST, route: \"sites/{site}/environments/{env}/workflows\", status: 503, after: 5, times: 6 }\nuser: { email: t@example.com }\norgs: [{ name: o }]\nsites:\n".to_owned();
    for i in 0..sites {
        world.push_str(&format!(
            "  - {{ name: site-{i:02}, org: o, envs: {{ test: {{ deployable: 1 }}, live: {{ deployable: 1 }} }} }}\n"
        ));
    }
    world
}

/// `apply plan.yml --simulate --world world.yml` and `extra` in `t`, on a pseudo-terminal of
/// 80×24 that `script` gives it.
fn at_80_by_24(script: &std::path::Path, t: &Test, extra: &str) -> Command {
    let bin = env!("CARGO_BIN_EXE_terminus-batch");
    let inner = format!("stty rows 24 cols 80; exec {bin} apply plan.yml --simulate --world world.yml {extra}");
    let mut command = Command::new(script);
    command
        .args(["-qfec", &inner, "/dev/null"])
        .current_dir(t.path())
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", t.path())
        .env("TERM", "xterm-256color")
        .env("NO_COLOR", "1");
    command
}

#[test]
fn at_80_columns_the_display_leaves_no_stale_frame_and_keeps_what_matters() {
    let script = crate::support::tools::needs!(Script);
    let t = Test::new().file("world.yml", &world()).file("plan.yml", PLAN);
    let out = at_80_by_24(&script, &t, "-v").output().expect("script runs");
    assert_eq!(out.status.code(), Some(1), "some tasks fail: {}", String::from_utf8_lossy(&out.stderr));

    // An emulator as wide as the terminal and tall enough that nothing scrolls away: a
    // frame the display failed to clear stays in it.
    let (tall, wide) = (NonZeroU16::new(4000).unwrap(), NonZeroU16::new(80).unwrap());
    let mut vt = vt100::Parser::new(tall, wide, 0);
    let (mut summaries, mut failed_with_eta) = (0, 0);
    for chunk in out.stdout.chunks(256) {
        vt.process(chunk);
        let (cursor, _) = vt.screen().cursor_position();
        let near = usize::from(cursor).saturating_sub(24);
        for row in vt.screen().rows(0, 80).skip(near).take(26) {
            if row.contains(" done") && row.contains(" running") {
                summaries += 1;
                assert!(row.trim_end().chars().count() < 80, "the summary fits: {row:?}");
                if row.contains(" failed") && row.contains(" ETA ") {
                    failed_with_eta += 1;
                }
            }
        }
    }
    let screen = vt.screen().contents();
    assert!(summaries > 0, "the display was drawn:\n{screen}");
    assert!(failed_with_eta > 0, "at 80 columns the summary keeps the failures and the ETA:\n{screen}");
    // What stays: the lines printed above the display (failures, logs) and the final table;
    // no frame of the display (its summary, its task lines).
    // A failure says why before which task, so a narrow terminal keeps the reason.
    assert!(screen.lines().any(|l| l.starts_with("failed   workflow ") && l.contains(": deploy-test[")), "{screen}");
    assert!(screen.contains("INFO"), "a log line was written while the display was drawn:\n{screen}");
    let stale: Vec<&str> = screen.lines().filter(|l| l.contains("  running ") || l.contains(" running ·")).collect();
    assert!(stale.is_empty(), "stale lines of the display:\n{}\n\n{screen}", stale.join("\n"));
    // The final table's lists of ids wrap within 80 columns: no id is split across rows.
    let lists: Vec<&str> = screen.lines().filter(|l| l.starts_with("           ")).collect();
    assert!(!lists.is_empty(), "{screen}");
    assert!(lists.iter().all(|l| l.trim_end().ends_with(']') || l.contains("more")), "{}", lists.join("\n"));
}

/// Issue 39, item 1: Ctrl-C typed at the terminal (the pty's line discipline sends SIGINT and
/// echoes `^C` where the cursor is) while the display is drawn at 80 columns. The run drains;
/// no frame of the display is left behind, and the notice of what a second Ctrl-C does is
/// there whole.
#[test]
fn an_interrupt_at_80_columns_leaves_no_frame_and_says_what_a_second_ctrl_c_does() {
    use std::io::{Read as _, Write as _};
    let script = crate::support::tools::needs!(Script);
    // 100 sites: 300 tasks, as a fleet's release.
    let world = world_of(100).replace("time_scale: 0.005", "time_scale: 0.05");
    let t = Test::new().file("world.yml", &world).file("plan.yml", PLAN);
    let mut running = at_80_by_24(&script, &t, "")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("script runs");
    // Read the terminal's output as it comes; once the display has drawn a few frames with
    // tasks in flight, type Ctrl-C.
    let mut stdout = running.stdout.take().unwrap();
    let (drawn, seen) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let (mut all, mut chunk, mut told) = (Vec::new(), [0u8; 4096], false);
        while let Ok(n) = stdout.read(&mut chunk) {
            if n == 0 {
                break;
            }
            all.extend_from_slice(&chunk[..n]);
            if !told && String::from_utf8_lossy(&all).matches(" running ·").count() >= 5 {
                told = true;
                let _ = drawn.send(());
            }
        }
        all
    });
    let _ = seen.recv();
    running.stdin.as_mut().unwrap().write_all(b"\x03").unwrap();
    running.stdin.as_mut().unwrap().flush().unwrap();
    let status = running.wait().unwrap();
    let output = reader.join().unwrap();
    assert_eq!(status.code(), Some(130), "interrupted: {}", String::from_utf8_lossy(&output));
    let (tall, wide) = (NonZeroU16::new(4000).unwrap(), NonZeroU16::new(80).unwrap());
    let mut vt = vt100::Parser::new(tall, wide, 0);
    vt.process(&output);
    let screen = vt.screen().contents();
    let stale: Vec<&str> = screen.lines().filter(|l| l.contains("  running ") || l.contains(" running ·")).collect();
    assert!(stale.is_empty(), "stale lines of the display:\n{}\n\n{screen}", stale.join("\n"));
    // The notice's rows, however the emulator joins them, read as one text.
    let notice = screen.lines().skip_while(|l| !l.starts_with("interrupted: ")).take(3).collect::<Vec<_>>().join(" ");
    let notice = notice.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(notice.contains("Ctrl-C again stops waiting") && !notice.contains('…'), "the notice whole:\n{screen}");
    assert!(screen.contains("skipped    ") && screen.contains("the run was interrupted"), "{screen}");
}
