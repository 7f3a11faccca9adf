//! The run journal (DESIGN.md §8): a header line then one event per line, so a crash loses
//! nothing that was started; `result.json` at the end. In a directory it is
//! `runs/<run>/events.jsonl`, each line written and flushed before the executor goes on; in
//! an object store, numbered segments `runs/<run>/events/NNNNNNNN.jsonl`, each the events
//! that were ready together, and an attempt acts only once its segment is written. The
//! reader tolerates a torn last line, and [`prior_states`] turns a journal into what
//! `--resume` needs to know.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::store::Store;
use tb_core::endpoint::Endpoint;
use tb_core::events::{Event, EventSink, Record, RecordError, Status};

/// The first line of a journal.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Header {
    /// Journal format version.
    pub journal: u32,
    pub run_id: String,
    /// The run this one resumed, if any.
    pub resumed_from: Option<String>,
    /// The first run of a resume chain (workflow annotations carry it).
    pub first_run: String,
    pub plan_path: String,
    pub plan_sha256: String,
    /// What the run talked to; a resume against anything else is refused. (Earlier journals
    /// named it `target`, and are still read.)
    #[serde(default, alias = "target")]
    pub endpoint: Option<Endpoint>,
    /// The platform user the run acted as; a resume as another user is refused.
    #[serde(default)]
    pub user_id: Option<String>,
    /// What the earlier runs of a resume chain left, by task id, written before this run
    /// acts: a crash of this run loses nothing they started.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub carried: BTreeMap<String, Prior>,
    /// The settings in force, for people reading the journal.
    pub settings: serde_json::Value,
    /// The run group (the CI pipeline) this run is a part of (`--run-group`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// The shard of the plan it ran (`--shard I/N`): a resume continues the same shard.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<String>,
}

/// Why a journal could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("cannot write the journal in {dir}")]
    Write { dir: String, source: io::Error },
    #[error("cannot read the journal {path}: {message}")]
    Read { path: String, message: String },
    #[error("no earlier run of {plan} in {dir} to resume")]
    NoRun { plan: String, dir: String },
}

/// Where a run's records are under the store.
#[must_use]
pub fn run_key(run: &str) -> String {
    format!("runs/{run}")
}

/// Where a run's JSON report is under the store.
#[must_use]
pub fn result_key(run: &str) -> String {
    format!("{}/result.json", run_key(run))
}

/// A run's journal in an object store: numbered segments, each one write of the events
/// that were ready together.
fn segment_key(run: &str, n: u64) -> String {
    format!("runs/{run}/events/{n:08}.jsonl")
}

/// Writes a run's events where `--resume` and `runs` find them: appended to
/// `events.jsonl` in a directory, or as segments in an object store.
pub struct JournalWriter {
    inner: Writer,
    /// Where the journal is, for messages.
    location: String,
    store: Store,
    run: String,
}

enum Writer {
    File(FileJournal),
    Segments(SegmentJournal),
}

impl JournalWriter {
    /// Creates the run's journal with `header` in `store`. A store that cannot be written
    /// is an error: a run that cannot be journalled does not start.
    pub fn create(store: &Store, header: &Header) -> Result<Self, JournalError> {
        let run = header.run_id.clone();
        let line = serde_json::to_string(header)
            .map_err(|e| JournalError::Write { dir: store.locate(&run_key(&run)), source: io::Error::other(e) })?;
        let (inner, location) = match store {
            Store::Dir(_) => {
                let dir = store.local_dir().map(|d| d.join("runs").join(&run)).unwrap_or_default();
                let file = FileJournal::create(&dir, &line)?;
                (Writer::File(file), dir.join("events.jsonl").display().to_string())
            }
            Store::Object(objects) => {
                let key = segment_key(&run, 0);
                match store.create(&key, format!("{line}\n").as_bytes()) {
                    Ok(Some(_)) => {}
                    Ok(None) => {
                        return Err(JournalError::Write {
                            dir: store.locate(&run_key(&run)),
                            source: io::Error::new(io::ErrorKind::AlreadyExists, "a run with this id is already there"),
                        });
                    }
                    Err(e) => {
                        return Err(JournalError::Write { dir: store.locate(&run_key(&run)), source: e.into_io() });
                    }
                }
                (Writer::Segments(SegmentJournal::start(objects.clone(), &run)), store.locate(&run_key(&run)))
            }
        };
        Ok(Self { inner, location, store: store.clone(), run })
    }

    /// Where the journal is: a file's path, or the run's URL in an object store.
    #[must_use]
    pub fn location(&self) -> &str {
        &self.location
    }

    /// The first write error, if any.
    #[must_use]
    pub fn error(&self) -> Option<String> {
        match &self.inner {
            Writer::File(f) => f.failed.as_ref().map(ToString::to_string),
            Writer::Segments(s) => s.failed(),
        }
    }

    /// Waits until every event emitted is written (or the writing failed).
    pub async fn settle(&mut self) {
        if let Writer::Segments(s) = &mut self.inner {
            s.settle().await;
        }
    }

    /// Writes `result.json` (the JSON report) beside the events; its location.
    pub fn write_result(&self, json: &str) -> Result<String, String> {
        let key = result_key(&self.run);
        self.store.put(&key, json.as_bytes()).map_err(|e| e.to_string())?;
        Ok(self.store.locate(&key))
    }
}

impl EventSink for JournalWriter {
    /// Writes the event's line. After a failure nothing more is written (a line after a cut
    /// one would make the journal unreadable) and every event is refused, so the executor
    /// starts nothing it cannot record.
    fn emit(&mut self, event: &Event) -> Result<(), RecordError> {
        // A transfer's byte counts are for the progress bar only; its milestones come as
        // plain progress messages.
        // What a remote command printed is for the person who ran it, never for a file.
        if matches!(event, Event::Progress { bytes: Some(_), .. } | Event::Output { .. }) {
            return self.error().map_or(Ok(()), |e| Err(self.record_error(io::ErrorKind::Other, &e)));
        }
        let line =
            serde_json::to_string(event).map_err(|e| self.record_error(io::ErrorKind::InvalidData, &e.to_string()))?;
        let written = match &mut self.inner {
            Writer::File(f) => f.append(&line),
            Writer::Segments(s) => s.append(line),
        };
        written.map_err(|(kind, message)| self.record_error(kind, &message))
    }

    fn durable(&mut self) -> Option<tb_core::events::Durable> {
        match &mut self.inner {
            Writer::File(_) => None,
            Writer::Segments(s) => {
                let location = self.location.clone();
                s.durable().map(|wait| -> tb_core::events::Durable {
                    Box::pin(async move {
                        wait.await.map_err(|message| RecordError {
                            message: format!("the journal at {location} cannot be written: {message}"),
                            source: None,
                        })
                    })
                })
            }
        }
    }
}

impl JournalWriter {
    fn record_error(&self, kind: io::ErrorKind, message: &str) -> RecordError {
        RecordError {
            message: format!("the journal at {} cannot be written: {message}", self.location),
            source: Some(io::Error::new(kind, message.to_owned())),
        }
    }
}

/// `events.jsonl` in a directory: a line per event, each written and flushed to the
/// operating system before the executor goes on (that survives the process being killed).
struct FileJournal {
    file: File,
    /// The first write error; later events are not attempted.
    failed: Option<io::Error>,
}

impl FileJournal {
    fn create(dir: &Path, header_line: &str) -> Result<Self, JournalError> {
        let fail = |source| JournalError::Write { dir: dir.display().to_string(), source };
        fs::create_dir_all(dir).map_err(fail)?;
        let mut file = OpenOptions::new().create_new(true).append(true).open(dir.join("events.jsonl")).map_err(fail)?;
        writeln!(file, "{header_line}").and_then(|()| file.flush()).map_err(fail)?;
        Ok(Self { file, failed: None })
    }

    fn append(&mut self, line: &str) -> Result<(), (io::ErrorKind, String)> {
        if let Some(first) = &self.failed {
            return Err((first.kind(), first.to_string()));
        }
        match writeln!(self.file, "{line}").and_then(|()| self.file.flush()) {
            Ok(()) => Ok(()),
            Err(e) => {
                let said = (e.kind(), e.to_string());
                self.failed = Some(e);
                Err(said)
            }
        }
    }
}

/// A journal in an object store. Object stores do not append: lines go to a writer on the
/// store's runtime, which writes whatever is waiting as the next numbered segment (one PUT
/// for every event that was ready together: the attempts of many tasks starting at once),
/// while the run goes on. An attempt waits for [`SegmentJournal::durable`] before it acts,
/// and that write goes at once; events no one waits for wait up to [`LINGER`] for company,
/// so a run makes few writes (a crash loses at most that much of them, which a resume
/// recovers: each attempt before them is on record). Segments are written side by side (at
/// most [`IN_FLIGHT`]), numbered in order: an attempt ready while another segment is being
/// written does not wait for that one to end before its own starts, so against a far store it
/// waits one round trip, not two. A line counts as written once its segment and every
/// segment before it are: a reader stops at the first missing number, so nothing after a
/// segment that failed is ever taken as recorded, nor acted on.
struct SegmentJournal {
    lines: Option<tokio::sync::mpsc::UnboundedSender<(u64, String)>>,
    /// The last line written, and the first failure.
    written: tokio::sync::watch::Receiver<(u64, Option<String>)>,
    /// The last line someone waits to see written, and the writer's wake-up.
    wanted: std::sync::Arc<(std::sync::atomic::AtomicU64, tokio::sync::Notify)>,
    writer: Option<tokio::task::JoinHandle<()>>,
    next: u64,
}

/// How long events no one waits for wait for more before they are written.
const LINGER: std::time::Duration = std::time::Duration::from_millis(200);
/// Segments being written at once.
const IN_FLIGHT: usize = 8;

impl SegmentJournal {
    fn start(objects: crate::store::Objects, run: &str) -> Self {
        use std::sync::atomic::Ordering;
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(u64, String)>();
        let (done_tx, done_rx) = tokio::sync::watch::channel((0_u64, None::<String>));
        let wanted = std::sync::Arc::new((std::sync::atomic::AtomicU64::new(0), tokio::sync::Notify::new()));
        let run = run.to_owned();
        let store = objects.clone();
        let waits = std::sync::Arc::clone(&wanted);
        let writer = store.spawn(async move {
            use futures::StreamExt as _;
            // Segments written and in flight: (segment, its last line, the write).
            let mut flying = futures::stream::FuturesUnordered::new();
            // Segments written out of order, by number: their last lines.
            let mut landed: std::collections::BTreeMap<u64, u64> = std::collections::BTreeMap::new();
            let (mut segment, mut next_landing, mut sent) = (1_u64, 1_u64, 0_u64);
            // The lines gathered for the next segment, its last line, and until when it waits.
            let mut pending: Option<(Vec<u8>, u64, tokio::time::Instant)> = None;
            let mut open = true;
            let gather = |pending: &mut Option<(Vec<u8>, u64, tokio::time::Instant)>, seq: u64, line: String| {
                let (bytes, last, _) =
                    pending.get_or_insert_with(|| (Vec::new(), seq, tokio::time::Instant::now() + LINGER));
                bytes.extend_from_slice(line.as_bytes());
                bytes.push(b'\n');
                *last = seq;
            };
            loop {
                while let Ok((seq, line)) = rx.try_recv() {
                    gather(&mut pending, seq, line);
                }
                if let Some((_, _, linger)) = &pending {
                    // Someone waits for a line no segment in flight holds, the lines waited
                    // long enough for company, or no more will come: it goes now.
                    let due = waits.0.load(Ordering::Acquire) > sent || tokio::time::Instant::now() >= *linger || !open;
                    if due
                        && flying.len() < IN_FLIGHT
                        && let Some((bytes, last, _)) = pending.take()
                    {
                        let write = objects.spawn_create(&segment_key(&run, segment), bytes);
                        let number = segment;
                        flying.push(async move { (number, last, write.await) });
                        segment += 1;
                        sent = last;
                        continue;
                    }
                }
                if !open && pending.is_none() && flying.is_empty() {
                    return;
                }
                let linger = pending.as_ref().map(|(_, _, at)| *at);
                tokio::select! {
                    more = rx.recv(), if open => match more {
                        Some((seq, line)) => gather(&mut pending, seq, line),
                        None => open = false,
                    },
                    () = waits.1.notified() => {}
                    // (With every writer busy, what lingers waits for one to land instead.)
                    () = tokio::time::sleep_until(linger.unwrap_or_else(tokio::time::Instant::now)),
                        if linger.is_some() && flying.len() < IN_FLIGHT => {}
                    Some((number, last, result)) = flying.next(), if !flying.is_empty() => match result {
                        Ok(()) => {
                            landed.insert(number, last);
                            let mut written = None;
                            while let Some(last) = landed.remove(&next_landing) {
                                written = Some(last);
                                next_landing += 1;
                            }
                            if let Some(written) = written {
                                done_tx.send_modify(|(done, _)| *done = written);
                            }
                        }
                        Err(e) => {
                            // Nothing after a lost segment: a resume would read past a hole.
                            done_tx.send_modify(|(_, failed)| *failed = Some(e.to_string()));
                            return;
                        }
                    },
                }
            }
        });
        Self { lines: Some(tx), written: done_rx, wanted, writer, next: 1 }
    }

    fn failed(&self) -> Option<String> {
        self.written.borrow().1.clone()
    }

    fn append(&mut self, line: String) -> Result<(), (io::ErrorKind, String)> {
        if let Some(failed) = self.failed() {
            return Err((io::ErrorKind::Other, failed));
        }
        let sent = self.lines.as_ref().is_some_and(|tx| tx.send((self.next, line)).is_ok());
        if !sent {
            return Err((io::ErrorKind::Other, "the journal's writer stopped".to_owned()));
        }
        self.next += 1;
        Ok(())
    }

    /// A wait for every line appended so far to be written; `None` when they are.
    fn durable(&self) -> Option<impl Future<Output = Result<(), String>> + Send + 'static + use<>> {
        let target = self.next - 1;
        if self.written.borrow().0 >= target {
            return None;
        }
        // Someone waits: the writer writes what it has at once.
        self.wanted.0.fetch_max(target, std::sync::atomic::Ordering::AcqRel);
        self.wanted.1.notify_one();
        let mut rx = self.written.clone();
        Some(async move {
            let seen = rx.wait_for(|(done, failed)| *done >= target || failed.is_some()).await;
            match seen.as_deref() {
                Ok((_, Some(failed))) => Err(failed.clone()),
                Ok(_) => Ok(()),
                Err(_) => Err("the journal's writer stopped".to_owned()),
            }
        })
    }

    /// Closes the stream of lines and waits for the writer to write them.
    async fn settle(&mut self) {
        self.lines = None;
        if let Some(writer) = self.writer.take() {
            let _ended = writer.await;
        }
    }
}

/// A journal as read back.
#[derive(Clone, Debug)]
pub struct RunJournal {
    pub header: Header,
    pub events: Vec<Event>,
    /// A last line cut short by a crash, ignored.
    pub torn_tail: bool,
}

/// The most a journal may hold: far past any real run (20,000 tasks write a few tens of
/// megabytes), and a bound on what a damaged or hostile file can make us read.
pub const MAX_JOURNAL_BYTES: u64 = 512 << 20;

/// Reads run `run`'s journal from `store`; a torn last line (cut short, or not UTF-8) is
/// tolerated and reported in `torn_tail`. Anything else unreadable is an error naming the
/// line.
pub fn read(store: &Store, run: &str) -> Result<RunJournal, JournalError> {
    let bytes = match store.local_dir() {
        Some(dir) => read_file(&dir.join("runs").join(run).join("events.jsonl"))?,
        None => read_segments(store, run)?,
    };
    let shown = store.locate(&run_key(run));
    let (header, events, torn_tail) =
        parse_bytes(&bytes).map_err(|message| JournalError::Read { path: shown, message })?;
    Ok(RunJournal { header, events, torn_tail })
}

fn read_file(path: &Path) -> Result<Vec<u8>, JournalError> {
    let shown = path.display().to_string();
    let bad = |message: String| JournalError::Read { path: shown.clone(), message };
    let file = File::open(path).map_err(|e| bad(e.to_string()))?;
    // Its length first: a damaged or hostile file is refused before a byte is read.
    if file.metadata().is_ok_and(|m| m.len() > MAX_JOURNAL_BYTES) {
        return Err(bad(format!("it is over the limit of {MAX_JOURNAL_BYTES} bytes")));
    }
    let mut bytes = Vec::new();
    file.take(MAX_JOURNAL_BYTES + 1).read_to_end(&mut bytes).map_err(|e| bad(e.to_string()))?;
    if bytes.len() as u64 > MAX_JOURNAL_BYTES {
        return Err(bad(format!("it is over the limit of {MAX_JOURNAL_BYTES} bytes")));
    }
    Ok(bytes)
}

/// A journal's segments, in order, as far as they run without a gap (a segment is written
/// only after the one before it).
fn read_segments(store: &Store, run: &str) -> Result<Vec<u8>, JournalError> {
    let shown = store.locate(&run_key(run));
    let bad = |message: String| JournalError::Read { path: shown.clone(), message };
    let keys = store.list(&format!("{}/events", run_key(run))).map_err(|e| bad(e.to_string()))?;
    if keys.is_empty() {
        return Err(bad("there is no such run".to_owned()));
    }
    let mut bytes = Vec::new();
    for n in 0..keys.len() as u64 {
        let key = segment_key(run, n);
        let Some(entry) = store.get(&key).map_err(|e| bad(e.to_string()))? else { break };
        bytes.extend_from_slice(&entry.bytes);
        if bytes.len() as u64 > MAX_JOURNAL_BYTES {
            return Err(bad(format!("it is over the limit of {MAX_JOURNAL_BYTES} bytes")));
        }
    }
    Ok(bytes)
}

/// Parses a journal's bytes: lines of UTF-8 JSON; the last may be torn.
pub fn parse_bytes(bytes: &[u8]) -> Result<(Header, Vec<Event>, bool), String> {
    let mut lines: Vec<&[u8]> = bytes.split(|&b| b == b'\n').collect();
    if lines.last().is_some_and(|l| l.is_empty()) {
        lines.pop();
    }
    let last = lines.len().saturating_sub(1);
    let mut text = Vec::with_capacity(lines.len());
    let mut torn_tail = false;
    for (i, line) in lines.iter().enumerate() {
        match std::str::from_utf8(line) {
            Ok(t) => text.push(t.to_owned()),
            // A crash mid-write can cut a multi-byte character: only the last line may be.
            Err(_) if i == last && i > 0 => torn_tail = true,
            Err(e) => return Err(format!("line {} is not UTF-8 ({e})", i + 1)),
        }
    }
    let (header, events, torn) = parse_lines(&text)?;
    Ok((header, events, torn_tail || torn))
}
/// Parses a journal's lines: the header, the events, and whether the last line was torn.
pub fn parse_lines(lines: &[String]) -> Result<(Header, Vec<Event>, bool), String> {
    let bad = |m: String| m;
    let Some(first) = lines.first() else { return Err(bad("the journal is empty".to_owned())) };
    let header: Header =
        serde_json::from_str(first).map_err(|e| bad(format!("line 1 is not a journal header: {e}")))?;
    let mut events = Vec::new();
    let mut torn_tail = false;
    let last = lines.len() - 1;
    for (i, line) in lines.iter().enumerate().skip(1) {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<Event>(line) {
            Ok(event) => events.push(event),
            Err(_) if i == last => torn_tail = true,
            Err(e) => return Err(bad(format!("line {}: {e}", i + 1))),
        }
    }
    Ok((header, events, torn_tail))
}

/// Which runs `--resume` may continue: the plan's (by any of its keys), of the same shard,
/// and, in a run group (a CI pipeline), of that group only: a pipeline's re-run never
/// continues another pipeline's run.
pub struct Whose<'a> {
    pub plan_keys: &'a [String],
    pub shard: Option<&'a str>,
    pub group: Option<&'a str>,
}

impl Whose<'_> {
    fn owns(&self, header: &Header) -> bool {
        self.plan_keys.contains(&header.plan_path)
            && header.shard.as_deref() == self.shard
            && (self.group.is_none() || header.group.as_deref() == self.group)
    }
}

/// The newest run `whose` in `store` (run ids sort by time), or the run named. A journal that
/// cannot be read is said to be corrupt, never skipped for an older run: the newest record
/// of a plan is the one that tells what was started.
pub fn find(store: &Store, whose: &Whose<'_>, run: Option<&str>) -> Result<RunJournal, JournalError> {
    if let Some(run) = run {
        return read(store, run);
    }
    for id in &runs_newest_first(store) {
        // Whose run it is, from the header alone: another plan's journal is not ours to judge.
        match read_header(store, id) {
            Ok(header) if !whose.owns(&header) => continue,
            Ok(_) => {}
            Err(e) => return Err(corrupt(&e)),
        }
        return read(store, id).map_err(|e| corrupt(&e));
    }
    let mut plan = whose.plan_keys.first().map_or("the plan", String::as_str).to_owned();
    if let Some(shard) = whose.shard {
        plan.push_str(&format!(" (shard {shard})"));
    }
    if let Some(group) = whose.group {
        plan.push_str(&format!(" in run group {group}"));
    }
    Err(JournalError::NoRun { plan, dir: store.describe() })
}

/// The newest run in `store` that resumed `run`, directly or through other resumes: a
/// resume of `run` must start from it, since it may have done what `run` left. `None` when no
/// run resumed `run`. Headers that cannot be read are passed over (such a run is said to be
/// corrupt when it is the one resumed).
#[must_use]
pub fn newest_resume_of(store: &Store, run: &str) -> Option<RunJournal> {
    let ids = runs_newest_first(store);
    let parent_of: HashMap<String, Option<String>> = ids
        .iter()
        .filter_map(|id| read_header(store, id).ok())
        .map(|header| (header.run_id, header.resumed_from))
        .collect();
    ids.iter().filter(|id| descends(&parent_of, id, run)).find_map(|id| read(store, id).ok())
}

/// Whether run `id` resumed `run`, directly or through the runs between (`parent_of`: each
/// run's `resumed_from`).
fn descends<'a>(parent_of: &'a HashMap<String, Option<String>>, mut id: &'a str, run: &str) -> bool {
    // At most one step per run: a cycle among damaged headers ends the walk.
    for _ in 0..parent_of.len() {
        match parent_of.get(id) {
            Some(Some(parent)) if parent == run => return true,
            Some(Some(parent)) => id = parent,
            _ => return false,
        }
    }
    false
}

/// The runs in `store`, newest first: by the time in their ids (to the second), then, for
/// runs started in the same second, by the millisecond their journal records.
#[must_use]
pub fn runs_newest_first(store: &Store) -> Vec<String> {
    let mut ids: Vec<(String, String)> = store
        .children("runs")
        .unwrap_or_default()
        .into_iter()
        .map(|id| (id.split('-').next().unwrap_or_default().to_owned(), id))
        .collect();
    ids.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| b.1.cmp(&a.1)));
    let mut out = Vec::with_capacity(ids.len());
    let mut i = 0;
    while i < ids.len() {
        let same = ids[i..].iter().take_while(|(second, _)| *second == ids[i].0).count();
        let mut group: Vec<&String> = ids[i..i + same].iter().map(|(_, id)| id).collect();
        if same > 1 {
            group.sort_by_cached_key(|id| std::cmp::Reverse(started_ms(store, id)));
        }
        out.extend(group.into_iter().cloned());
        i += same;
    }
    out
}

/// When a run started (its `run_started` event, the journal's second line), 0 when not
/// recorded.
fn started_ms(store: &Store, run: &str) -> u64 {
    let Ok(Some(line)) = early_line(store, run, 1) else { return 0 };
    match serde_json::from_slice::<Event>(&line) {
        Ok(Event::RunStarted { at, .. }) => at,
        _ => 0,
    }
}

/// A journal's line `n` (0: its header, 1: `run_started`), without reading the rest: in a
/// directory, the file's `n + 1`-th line (empty past its end); in an object store, the first
/// line of segment `n` (the header is written alone, and `run_started` opens the next one),
/// `None` when there is no such segment.
fn early_line(store: &Store, run: &str, n: u64) -> Result<Option<Vec<u8>>, String> {
    match store.local_dir() {
        Some(dir) => {
            let file = File::open(dir.join("runs").join(run).join("events.jsonl")).map_err(|e| e.to_string())?;
            let mut reader = BufReader::new(file.take(MAX_JOURNAL_BYTES));
            let mut line = Vec::new();
            for _ in 0..=n {
                line.clear();
                if reader.read_until(b'\n', &mut line).map_err(|e| e.to_string())? == 0 {
                    break;
                }
            }
            Ok(Some(line))
        }
        None => Ok(store
            .get(&segment_key(run, n))
            .map_err(|e| e.to_string())?
            .map(|entry| entry.bytes.split(|&b| b == b'\n').next().unwrap_or_default().to_vec())),
    }
}

fn corrupt(e: &JournalError) -> JournalError {
    match e {
        JournalError::Read { path, message } => JournalError::Read {
            path: path.clone(),
            message: format!(
                "{message}; the journal is corrupt, and an older run is not resumed in its place (name a run with --resume=RUN)"
            ),
        },
        other => JournalError::Read { path: String::new(), message: other.to_string() },
    }
}

/// A journal's first line, without reading the rest.
///
/// # Errors
/// The journal cannot be opened or its first line is not a header.
pub fn read_header(store: &Store, run: &str) -> Result<Header, JournalError> {
    let shown = store.locate(&run_key(run));
    let bad = |message: String| JournalError::Read { path: shown.clone(), message };
    let first = early_line(store, run, 0).map_err(bad)?.ok_or_else(|| bad("there is no such run".to_owned()))?;
    let text = std::str::from_utf8(&first).map_err(|e| bad(format!("line 1 is not UTF-8 ({e})")))?;
    serde_json::from_str(text.trim_end()).map_err(|e| bad(format!("line 1 is not a journal header: {e}")))
}

/// What an earlier run left for one task.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Prior {
    /// Ended `succeeded` or `unchanged`: not run again, unless its definition changed.
    Done {
        status: Status,
        message: String,
        run: String,
        /// The task's definition then ([`tb_core::events::TaskHeader::digest`]; empty in
        /// journals older than it).
        #[serde(default, skip_serializing_if = "String::is_empty")]
        digest: String,
        /// What that run recorded of it, for the report of the run that carries it over.
        #[serde(default)]
        record: Record,
    },
    /// A workflow started and was not seen to end: re-attach to it.
    InFlight { workflow_id: String, run: String },
    /// An attempt was about to act and no workflow id was recorded: look for the workflow it
    /// may have started before acting again.
    Attempted { since_unix: f64, run: String },
}

/// Whether a journal records nothing past its header (not even the run's task list): cut
/// short, or its process died right after writing the header. What that run started is
/// unknown, not nothing.
#[must_use]
pub fn records_nothing(journal: &RunJournal) -> bool {
    !journal.events.iter().any(|e| matches!(e, Event::RunStarted { .. }))
}

/// What one journal's own events say of a task.
#[derive(Default)]
struct Seen {
    finished: Option<(Status, String, Option<String>)>,
    /// Its times, workflows and attempts (or those of the run it carried the result from).
    record: Record,
    started: Vec<String>,
    ended: BTreeSet<String>,
    /// Attempt records (their number and unix ms) followed by no workflow id and not known to
    /// have done nothing: each may have acted.
    attempted: BTreeMap<u32, u64>,
}

/// Per task id, what `journal` says happened, for `--resume`: its own events over what the
/// earlier runs left (`carried`). A workflow started and never seen to end is re-attached to
/// whatever the task's outcome (a task that timed out may still have its deploy running).
#[must_use]
pub fn prior_states(journal: &RunJournal, carried: &BTreeMap<String, Prior>) -> BTreeMap<String, Prior> {
    let run = journal.header.run_id.clone();
    let mut ids: Vec<String> = Vec::new();
    let mut digests: Vec<String> = Vec::new();
    let mut seen: HashMap<usize, Seen> = HashMap::new();
    for event in &journal.events {
        match event {
            Event::RunStarted { tasks, .. } => {
                ids = tasks.iter().map(|t| t.id.to_string()).collect();
                digests = tasks.iter().map(|t| t.digest.clone()).collect();
            }
            Event::TaskStarted { task, at } => {
                seen.entry(*task).or_default().record.started_at = Some(*at);
            }
            Event::AttemptStarting { task, attempt, at } => {
                let s = seen.entry(*task).or_default();
                s.attempted.insert(*attempt, *at);
                s.record.attempts = s.record.attempts.max(*attempt);
            }
            Event::WorkflowStarted { task, workflow_id, .. } => {
                let s = seen.entry(*task).or_default();
                s.started.push(workflow_id.clone());
                s.record.workflow_ids.push(workflow_id.clone());
                // The attempt it came from is accounted for by the workflow.
                s.attempted.clear();
            }
            // Its end was seen (refused before any session, or an exit code): nothing of that
            // attempt is left for a resume to look for.
            Event::AttemptEnded { task, attempt, .. } => {
                seen.entry(*task).or_default().attempted.remove(attempt);
            }
            Event::WorkflowEnded { task, workflow_id, .. } => {
                seen.entry(*task).or_default().ended.insert(workflow_id.clone());
            }
            Event::TaskFinished { task, outcome, at } => {
                let s = seen.entry(*task).or_default();
                s.finished = Some((outcome.status, outcome.message.clone(), outcome.run.clone()));
                s.record.finished_at = Some(*at);
                if s.record.attempts == 0 && s.record.started_at.is_some() {
                    s.record.attempts = 1;
                }
                // Carried over from an earlier run: that run's record is the task's.
                if let Some(record) = &outcome.record {
                    s.record = record.clone();
                }
            }
            _ => {}
        }
    }
    let mut out = BTreeMap::new();
    let names: BTreeSet<&String> = ids.iter().chain(carried.keys()).collect();
    for id in names {
        let index = ids.iter().position(|i| i == id);
        let own = index.and_then(|index| seen.get(&index));
        let digest = index.and_then(|index| digests.get(index)).map_or("", String::as_str);
        if let Some(prior) = settle(own, carried.get(id), &run, digest) {
            out.insert(id.clone(), prior);
        }
    }
    out
}

/// One task's prior: this run's own record first, then what earlier runs left that this
/// run did not settle.
fn settle(own: Option<&Seen>, carried: Option<&Prior>, run: &str, digest: &str) -> Option<Prior> {
    if let Some(own) = own {
        if let Some((status, message, by)) = &own.finished
            && status.is_ok()
        {
            let run = by.clone().unwrap_or_else(|| run.to_owned());
            return Some(Prior::Done {
                status: *status,
                message: message.clone(),
                run,
                digest: digest.to_owned(),
                record: own.record.clone(),
            });
        }
        if let Some(workflow_id) = own.started.iter().rev().find(|w| !own.ended.contains(*w)) {
            return Some(Prior::InFlight { workflow_id: workflow_id.clone(), run: run.to_owned() });
        }
        if !own.started.is_empty() && own.attempted.is_empty() {
            // Every workflow it started (or re-attached to) was seen to end, and it did not
            // succeed: run it again, from the start.
            return None;
        }
    }
    let ended = |w: &str| own.is_some_and(|o| o.ended.contains(w));
    match carried {
        Some(prior @ Prior::Done { .. }) => return Some(prior.clone()),
        Some(prior @ Prior::InFlight { workflow_id, .. }) if !ended(workflow_id) => return Some(prior.clone()),
        _ => {}
    }
    #[expect(clippy::cast_precision_loss, reason = "unix milliseconds as seconds")]
    let own_attempt = own.and_then(|o| o.attempted.values().min().copied()).map(|at| at as f64 / 1000.0);
    let carried_attempt = match carried {
        Some(Prior::Attempted { since_unix, .. }) => Some(*since_unix),
        _ => None,
    };
    // The earliest attempt that may have started something: the widest search.
    match (own_attempt, carried_attempt) {
        (Some(a), Some(b)) => Some(Prior::Attempted { since_unix: a.min(b), run: run.to_owned() }),
        (Some(a), None) => Some(Prior::Attempted { since_unix: a, run: run.to_owned() }),
        (None, Some(_)) => carried.cloned(),
        (None, None) => None,
    }
}

/// Every workflow a resume chain recorded (started, re-attached to or carried over): a search
/// for what a lost POST started must not adopt one of them.
#[must_use]
pub fn chain_workflows<'a>(runs: impl IntoIterator<Item = &'a RunJournal>) -> BTreeSet<String> {
    let mut ids = BTreeSet::new();
    for journal in runs {
        for prior in journal.header.carried.values() {
            match prior {
                Prior::InFlight { workflow_id, .. } => {
                    ids.insert(workflow_id.clone());
                }
                Prior::Done { record, .. } => ids.extend(record.workflow_ids.iter().cloned()),
                Prior::Attempted { .. } => {}
            }
        }
        for event in &journal.events {
            if let Event::WorkflowStarted { workflow_id, .. } = event {
                ids.insert(workflow_id.clone());
            }
        }
    }
    ids
}

/// What a resume chain left, given oldest run first: each journal's own events over what its
/// header carried and what the runs before it (still on disk) left.
#[must_use]
pub fn chain_priors<'a>(runs: impl IntoIterator<Item = &'a RunJournal>) -> BTreeMap<String, Prior> {
    let mut acc: BTreeMap<String, Prior> = BTreeMap::new();
    for journal in runs {
        let mut carried = journal.header.carried.clone();
        for (id, prior) in acc {
            carried.entry(id).or_insert(prior);
        }
        acc = prior_states(journal, &carried);
    }
    acc
}

/// The runs `newest` resumed, oldest first, as far back as their journals are still in the
/// state directory (each header also carries what came before, so a missing one loses
/// nothing).
#[must_use]
pub fn chain(store: &Store, newest: &RunJournal) -> Vec<RunJournal> {
    let mut out: Vec<RunJournal> = Vec::new();
    let mut seen = BTreeSet::new();
    let mut previous = newest.header.resumed_from.clone();
    while let Some(run) = previous.take() {
        if !seen.insert(run.clone()) {
            break;
        }
        match read(store, &run) {
            Ok(journal) => {
                previous.clone_from(&journal.header.resumed_from);
                out.push(journal);
            }
            Err(_) => break,
        }
    }
    out.reverse();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use tb_core::events::{Outcome, TaskHeader};
    use tb_core::ids::RunId;

    fn header(run: &str) -> Header {
        Header {
            journal: 1,
            run_id: run.into(),
            resumed_from: None,
            first_run: run.into(),
            plan_path: "p.yml".into(),
            plan_sha256: "x".into(),
            endpoint: None,
            user_id: None,
            carried: BTreeMap::new(),
            settings: serde_json::Value::Null,
            group: None,
            shard: None,
        }
    }

    fn whose(plan_keys: &[String]) -> Whose<'_> {
        Whose { plan_keys, shard: None, group: None }
    }

    fn task(name: &str) -> TaskHeader {
        TaskHeader::new(name, None, None, "x")
    }

    #[test]
    fn a_journal_written_before_the_endpoint_was_named_so_is_read() {
        let old = r#"{"journal": 1, "run_id": "r", "first_run": "r", "plan_path": "p.yml", "plan_sha256": "x",
            "target": {"api": {"base": "https://terminus.pantheon.io:443/api"}}, "settings": {}}"#;
        let header: Header = serde_json::from_str(old).unwrap();
        assert_eq!(header.endpoint, Some(Endpoint::Api { base: "https://terminus.pantheon.io:443/api".into() }));
        let written = serde_json::to_value(&header).unwrap();
        assert!(written.get("endpoint").is_some() && written.get("target").is_none(), "{written}");
    }

    #[test]
    fn a_journal_over_the_budget_is_refused_without_being_read() {
        let dir = tempfile::tempdir().unwrap();
        let run = dir.path().join("runs").join("r1");
        fs::create_dir_all(&run).unwrap();
        // Sparse: the length without the disk space.
        let file = File::create(run.join("events.jsonl")).unwrap();
        file.set_len(MAX_JOURNAL_BYTES + 1).unwrap();
        let store = Store::dir(dir.path());
        let Err(JournalError::Read { message, .. }) = read(&store, "r1") else {
            panic!("read a journal over the budget")
        };
        assert!(message.contains("over the limit"), "{message}");
    }

    #[test]
    fn byte_counts_stay_out_of_the_journal() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::dir(dir.path());
        let mut w = JournalWriter::create(&store, &header("r1")).unwrap();
        let milestone = Event::Progress { task: 0, message: "db: 1 of 4 bytes".into(), bytes: None, at: 1 };
        w.emit(&Event::Progress { task: 0, message: "db".into(), bytes: Some([1, 4]), at: 1 }).unwrap();
        w.emit(&milestone).unwrap();
        assert_eq!(read(&store, "r1").unwrap().events, [milestone]);
    }

    #[test]
    fn writes_reads_and_tolerates_a_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::dir(dir.path());
        let mut w = JournalWriter::create(&store, &header("r1")).unwrap();
        let events = [
            Event::RunStarted {
                run_id: RunId::from_parts("r", 1),
                at: 0,
                tasks: vec![task("a"), task("b"), task("c"), task("d")],
            },
            Event::TaskFinished { task: 0, outcome: Outcome::new(Status::Succeeded, "ok"), at: 1 },
            Event::AttemptStarting { task: 1, attempt: 1, at: 2000 },
            Event::WorkflowStarted { task: 1, workflow_id: "wf-1".into(), at: 3 },
            Event::AttemptStarting { task: 2, attempt: 1, at: 4000 },
            Event::TaskFinished { task: 3, outcome: Outcome::new(Status::Failed, "no"), at: 5 },
        ];
        for e in &events {
            w.emit(e).unwrap();
        }
        // A crash mid-line.
        let path = dir.path().join("runs/r1/events.jsonl");
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        write!(f, "{{\"event\":\"task_fini").unwrap();
        let j = read(&store, "r1").unwrap();
        assert!(j.torn_tail);
        assert_eq!(j.events, events);
        let prior = prior_states(&j, &BTreeMap::new());
        let Prior::Done { status, message, run, record, .. } = &prior["a"] else { panic!("{:?}", prior["a"]) };
        assert_eq!((*status, message.as_str(), run.as_str()), (Status::Succeeded, "ok", "r1"));
        assert_eq!(record.finished_at, Some(1), "{record:?}");
        assert_eq!(prior["b"], Prior::InFlight { workflow_id: "wf-1".into(), run: "r1".into() });
        assert_eq!(prior["c"], Prior::Attempted { since_unix: 4.0, run: "r1".into() });
        assert!(!prior.contains_key("d"), "failed tasks run again");
        assert_eq!(find(&store, &whose(&["p.yml".into()]), None).unwrap().header.run_id, "r1");
        assert!(find(&store, &whose(&["other.yml".into()]), None).is_err());
    }

    #[test]
    fn a_torn_or_broken_last_line_is_dropped_and_a_corrupt_newest_journal_is_said_so() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::dir(dir.path());
        let mut older = header("20260101T000000Z-0001");
        older.plan_path = "p.yml".into();
        JournalWriter::create(&store, &older).unwrap();
        JournalWriter::create(&store, &header("20260101T000001Z-0002")).unwrap();
        let path = dir.path().join("runs/20260101T000001Z-0002/events.jsonl");
        // A crash cut a multi-byte character in the last line: dropped, the rest read.
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"{\"event\":\"progress\",\"message\":\"caf\xc3").unwrap();
        let j = read(&store, "20260101T000001Z-0002").unwrap();
        assert!(j.torn_tail);
        assert_eq!(find(&store, &whose(&["p.yml".into()]), None).unwrap().header.run_id, "20260101T000001Z-0002");
        // A broken line before the last: the newest journal is corrupt, and said to be.
        f.write_all(b"\n{\"event\":\"run_finished\",\"at\":1,\"interrupted\":false,\"timed_out\":false}\n").unwrap();
        let e = find(&store, &whose(&["p.yml".into()]), None).unwrap_err().to_string();
        assert!(e.contains("corrupt") && e.contains("20260101T000001Z-0002"), "{e}");
        // An unreadable header is corrupt too, not skipped for the older run.
        fs::write(&path, b"not a header\n").unwrap();
        let e = find(&store, &whose(&["p.yml".into()]), None).unwrap_err().to_string();
        assert!(e.contains("corrupt"), "{e}");
    }

    #[test]
    fn an_unwritable_state_dir_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("not-a-dir");
        fs::write(&file, "x").unwrap();
        assert!(JournalWriter::create(&Store::dir(&file), &header("r1")).is_err());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn in_an_object_store_events_ready_together_are_one_segment_and_durable_says_when_written() {
        let store = Store::in_memory("team");
        let mut w = JournalWriter::create(&store, &header("r1")).unwrap();
        // Another run that drew the same id (its header is its own: a write of the same
        // bytes would be this one's, its answer lost, and is taken as written).
        let other = Header { plan_path: "other.yml".into(), ..header("r1") };
        assert!(JournalWriter::create(&store, &other).is_err(), "a run id is taken once");
        let started = Event::RunStarted { run_id: RunId::from_parts("r", 1), at: 0, tasks: vec![task("a"), task("b")] };
        w.emit(&started).unwrap();
        let a = Event::AttemptStarting { task: 0, attempt: 1, at: 1 };
        let b = Event::AttemptStarting { task: 1, attempt: 1, at: 1 };
        w.emit(&a).unwrap();
        w.emit(&b).unwrap();
        // The in-memory store may have written them already: then there is nothing to wait for.
        if let Some(wait) = w.durable() {
            wait.await.unwrap();
        }
        // On record once `durable` says so, as a resume reads it.
        let seen = tokio::task::spawn_blocking({
            let store = store.clone();
            move || read(&store, "r1").unwrap()
        })
        .await
        .unwrap();
        assert_eq!(seen.events, [started.clone(), a.clone(), b.clone()]);
        assert!(w.durable().is_none(), "nothing new to wait for");
        let finished = Event::RunFinished { at: 2, interrupted: false, timed_out: false };
        w.emit(&finished).unwrap();
        w.settle().await;
        let (keys, j) =
            tokio::task::spawn_blocking(move || (store.list("runs/r1/events").unwrap(), read(&store, "r1").unwrap()))
                .await
                .unwrap();
        assert_eq!(j.events, [started, a, b, finished]);
        assert_eq!(j.header.run_id, "r1");
        // The header, then at most one segment per event (fewer when they were ready together).
        assert!((2..=5).contains(&keys.len()), "{keys:?}");
        assert!(w.error().is_none());
    }
}
