//! The `JUnit` report: a test suite per job, a test case per task (CI systems display these
//! natively). Built with quick-junit, as nextest does.

use std::time::Duration;

use chrono::{DateTime, FixedOffset};
use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};

use super::RunReport;
use tb_core::cause::Cause;
use tb_core::events::Status;

/// `JUnit` XML.
#[must_use]
pub fn render(report: &RunReport) -> String {
    let mut junit = Report::new(format!("terminus-batch {}", report.plan.name.as_deref().unwrap_or(&report.plan.path)));
    // No timestamp on <testsuites> or <testcase>: Jenkins' xunit schema (junit-10.xsd)
    // rejects both; each <testsuite> carries its start.
    if let Some(ms) = report.duration_ms {
        junit.set_time(Duration::from_millis(ms));
    }
    let jobs = report.jobs();
    for job in jobs {
        let mut suite = TestSuite::new(job);
        // A suite spans its tasks: from the first start to the last end.
        let tasks = || report.tasks.iter().filter(|t| t.job == job);
        let first = tasks().filter_map(|t| t.started_at).min();
        let last = tasks().filter_map(|t| t.finished_at).max();
        if let Some(at) = timestamp(first) {
            suite.set_timestamp(at);
        }
        if let (Some(first), Some(last)) = (first, last) {
            suite.set_time(Duration::from_millis(last.saturating_sub(first)));
        }
        for task in tasks() {
            // What the task itself said, with its workflows: the body of a failure, an error
            // or a skip, which Jenkins and GitLab show (a skipped task's names the task it
            // needed), and its system-out.
            let mut detail = task.message.clone();
            if !task.workflow_ids.is_empty() {
                detail.push_str(&format!("\nworkflows: {}", task.workflow_ids.join(", ")));
            }
            let status = match task.status {
                Some(Status::Succeeded | Status::Unchanged) => TestCaseStatus::success(),
                Some(Status::Skipped) => {
                    let mut s = TestCaseStatus::skipped();
                    s.set_message(super::table::cause(task));
                    s.set_description(detail.clone());
                    s
                }
                // The message is the cause every task that ended alike shares (a CI server
                // groups failures by it), the type its kind; the task's own words are in
                // its system-out.
                Some(Status::Failed) => {
                    let mut s = TestCaseStatus::non_success(NonSuccessKind::Failure);
                    s.set_message(super::table::cause(task));
                    s.set_type(task.cause.as_ref().map_or("failed", Cause::kind));
                    s.set_description(detail.clone());
                    s
                }
                Some(Status::Cancelled) | None => {
                    let mut s = TestCaseStatus::non_success(NonSuccessKind::Error);
                    s.set_message(super::table::cause(task));
                    let kind = if task.status.is_some() { "cancelled" } else { "unfinished" };
                    s.set_type(task.cause.as_ref().map_or(kind, Cause::kind));
                    s.set_description(detail.clone());
                    s
                }
            };
            let mut case = TestCase::new(task.id.to_string(), status);
            case.set_classname(format!("{}.{}", job, task.operation));
            if let Some(ms) = task.duration_ms {
                case.set_time(Duration::from_millis(ms));
            }
            if !detail.is_empty() {
                case.set_system_out(detail);
            }
            suite.add_test_case(case);
        }
        junit.add_test_suite(suite);
    }
    match junit.to_string() {
        Ok(xml) => without_testsuites_skipped(&xml),
        Err(e) => format!("<!-- cannot render JUnit: {e} -->\n"),
    }
}

/// The XML with no `skipped` count on `<testsuites>`, which junit-10.xsd does not allow there
/// (quick-junit writes it; each `<testsuite>` keeps its own).
fn without_testsuites_skipped(xml: &str) -> String {
    let Some(start) = xml.find("<testsuites ") else { return xml.to_owned() };
    let Some(len) = xml[start..].find('>') else { return xml.to_owned() };
    let tag = &xml[start..start + len];
    let Some(at) = tag.find(" skipped=\"") else { return xml.to_owned() };
    let Some(end) = tag[at + 10..].find('"') else { return xml.to_owned() };
    let cut = start + at..start + at + 10 + end + 1;
    format!("{}{}", &xml[..cut.start], &xml[cut.end..])
}

/// Unix milliseconds as a UTC timestamp.
fn timestamp(ms: Option<u64>) -> Option<DateTime<FixedOffset>> {
    let ms = i64::try_from(ms?).ok()?;
    DateTime::from_timestamp_millis(ms).map(|at| at.fixed_offset())
}

#[cfg(test)]
mod tests {
    #[test]
    fn testsuites_lose_only_their_skipped_count() {
        let xml = "<?xml?>\n<testsuites name=\"n\" tests=\"2\" skipped=\"1\" failures=\"0\">\n<testsuite name=\"j\" skipped=\"1\">";
        let out = super::without_testsuites_skipped(xml);
        assert_eq!(
            out,
            "<?xml?>\n<testsuites name=\"n\" tests=\"2\" failures=\"0\">\n<testsuite name=\"j\" skipped=\"1\">"
        );
    }
}
