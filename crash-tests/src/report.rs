//! Results of a run: counters, failures, the summary table and its JSON form.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::oracle::Violation;

/// The progress line on stderr (`--progress`): seeds done, states checked, violations, at most
/// twice a second and once more for the last seed.
#[derive(Debug)]
pub struct Progress {
    on: bool,
    total: usize,
    seeds: usize,
    states: u64,
    violations: usize,
    printed: Instant,
}

impl Progress {
    /// A progress line over `total` seeds, printed only when `on`.
    pub fn new(on: bool, total: usize) -> Self {
        Progress {
            on,
            total,
            seeds: 0,
            states: 0,
            violations: 0,
            printed: Instant::now(),
        }
    }

    /// Counts one seed's summary and prints the line when it is due.
    pub fn seed(&mut self, s: &Summary) {
        if !self.on {
            return;
        }
        self.seeds += 1;
        self.states += s.states;
        self.violations += s.failures.len();
        if self.printed.elapsed() > Duration::from_millis(500) || self.seeds == self.total {
            self.printed = Instant::now();
            eprint!(
                "\r[{}/{}] seeds, {} states, {} violations   ",
                self.seeds, self.total, self.states, self.violations
            );
        }
    }

    /// Ends the line.
    pub fn finish(&self) {
        if self.on {
            eprintln!();
        }
    }
}

/// One violation found, with everything needed to reproduce it.
#[derive(Clone, Debug)]
pub struct Failure {
    /// Fault mode (`power`, `kill`, ...).
    pub mode: String,
    /// Seed of the run.
    pub seed: u64,
    /// Tear model (power-loss modes) or I/O path (kill).
    pub model: String,
    /// Crash point: `GEN.POSITION` for simulated modes, a failpoint name or time for kill.
    pub point: String,
    /// State index at that point.
    pub state: u64,
    /// The broken invariant.
    pub violation: Violation,
    /// The operations and steps around the crash, trimmed to what matters.
    pub trace: Vec<String>,
    /// Where the disk image was kept.
    pub image: Option<PathBuf>,
    /// The `--replay` argument that reproduces it.
    pub replay: String,
}

impl Failure {
    /// The multi-line report of this failure.
    pub fn render(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "VIOLATION [{}] mode={} seed={} model={} point={} state={}",
            self.violation.invariant, self.mode, self.seed, self.model, self.point, self.state
        );
        let _ = writeln!(s, "  {}", self.violation.detail);
        if !self.trace.is_empty() {
            let _ = writeln!(s, "  trace:");
            for l in &self.trace {
                let _ = writeln!(s, "    {l}");
            }
        }
        if let Some(p) = &self.image {
            let _ = writeln!(s, "  disk image kept in {}", p.display());
        }
        let _ = writeln!(s, "  reproduce: {}", self.replay);
        s
    }
}

/// Separates a known issue's name from its reproduction in a summary note.
const KNOWN_ISSUE_FIRST: &str = " — first stepped around at: ";

/// Counters of a run.
#[derive(Clone, Debug, Default)]
pub struct Summary {
    /// Mode name.
    pub mode: String,
    /// Tear model or I/O path.
    pub model: String,
    /// Seeds run.
    pub seeds: u64,
    /// Workload steps executed.
    pub steps: u64,
    /// Crash points (positions, kills) explored.
    pub points: u64,
    /// Crash states checked (each a recovery plus an oracle check).
    pub states: u64,
    /// Crash points whose states were sampled rather than enumerated.
    pub sampled_points: u64,
    /// States per fault type (e.g. the kind of the last operation before the crash).
    pub per_fault: BTreeMap<String, u64>,
    /// Distinct named crash points reached (failpoints, kinds of operation).
    pub covered: BTreeMap<String, u64>,
    /// Things worth reporting that are not violations.
    pub notes: Vec<String>,
    /// Violations found.
    pub failures: Vec<Failure>,
    /// Time spent.
    pub elapsed: Duration,
    /// What `states` counts ("crash states" or "kill/recover cycles").
    pub unit: String,
    /// Checks of reads at versions, through snapshots and after recovery, by kind.
    pub checks: BTreeMap<&'static str, u64>,
}

impl Summary {
    /// A summary for `mode` under `model`.
    pub fn new(mode: &str, model: &str) -> Summary {
        Summary {
            mode: mode.into(),
            model: model.into(),
            unit: "crash states".into(),
            ..Summary::default()
        }
    }

    /// Counts one state of fault type `kind`.
    pub fn count(&mut self, kind: &str) {
        self.states += 1;
        *self.per_fault.entry(kind.to_string()).or_default() += 1;
    }

    /// Adds another summary's counters to this one.
    pub fn merge(&mut self, o: Summary) {
        self.seeds += o.seeds;
        self.steps += o.steps;
        self.points += o.points;
        self.states += o.states;
        self.sampled_points += o.sampled_points;
        for (k, v) in o.per_fault {
            *self.per_fault.entry(k).or_default() += v;
        }
        for (k, v) in o.covered {
            *self.covered.entry(k).or_default() += v;
        }
        for (k, v) in o.checks {
            *self.checks.entry(k).or_default() += v;
        }
        for n in o.notes {
            // One reproduction per known issue (the first seed's).
            if let Some((issue, _)) = n.split_once(KNOWN_ISSUE_FIRST) {
                if self.notes.iter().any(|m| m.starts_with(issue)) {
                    continue;
                }
            }
            self.notes.push(n);
        }
        self.failures.extend(o.failures);
        self.elapsed += o.elapsed;
    }

    /// Notes the reproduction of the first crash state a run stepped around for the open known
    /// issue `issue` (`crate::known`), once per issue.
    pub fn note_known(&mut self, issue: &str, replay: impl FnOnce() -> String) {
        if !self.notes.iter().any(|m| m.starts_with(issue)) {
            self.notes
                .push(format!("{issue}{KNOWN_ISSUE_FIRST}{}", replay()));
        }
    }

    /// States (or cycles) per second.
    pub fn rate(&self) -> f64 {
        self.states as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// The summary table.
    pub fn render(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "ringlog-crash {} (model: {})", self.mode, self.model);
        let row = |s: &mut String, k: &str, v: String| {
            let _ = writeln!(s, "  {k:<28} {v}");
        };
        row(&mut s, "seeds", self.seeds.to_string());
        row(&mut s, "workload steps", self.steps.to_string());
        row(&mut s, "crash points", self.points.to_string());
        row(
            &mut s,
            "  of which sampled",
            self.sampled_points.to_string(),
        );
        row(
            &mut s,
            &format!("{} checked", self.unit),
            self.states.to_string(),
        );
        row(
            &mut s,
            &format!("{} per second", self.unit),
            format!("{:.0} ({:.2} s)", self.rate(), self.elapsed.as_secs_f64()),
        );
        if !self.per_fault.is_empty() {
            let _ = writeln!(s, "  per fault type:");
            for (k, v) in &self.per_fault {
                let _ = writeln!(s, "    {k:<26} {v}");
            }
        }
        if !self.covered.is_empty() {
            let _ = writeln!(s, "  distinct crash points covered: {}", self.covered.len());
            for (k, v) in &self.covered {
                let _ = writeln!(s, "    {k:<36} {v}");
            }
        }
        if !self.checks.is_empty() {
            let _ = writeln!(s, "  versions and snapshots:");
            for (k, v) in &self.checks {
                let _ = writeln!(s, "    {k:<36} {v}");
            }
        }
        for n in &self.notes {
            let _ = writeln!(s, "  note: {n}");
        }
        row(&mut s, "violations", self.failures.len().to_string());
        s
    }

    /// The summary as one JSON object, its fields in this order ([`SummaryJson`]).
    pub fn to_json(&self) -> String {
        let doc = SummaryJson {
            mode: &self.mode,
            unit: &self.unit,
            model: &self.model,
            seeds: self.seeds,
            steps: self.steps,
            points: self.points,
            sampled_points: self.sampled_points,
            states: self.states,
            seconds: round_to(self.elapsed.as_secs_f64(), 3),
            states_per_second: round_to(self.rate(), 1),
            per_fault: &self.per_fault,
            covered: &self.covered,
            checks: &self.checks,
            notes: &self.notes,
            violations: self.failures.len(),
            failures: self.failures.iter().map(Failure::to_json).collect(),
        };
        serde_json::to_string(&doc).expect("the summary serializes")
    }
}

/// The summary's JSON form (`--json`), field by field in this order.
#[derive(Serialize)]
struct SummaryJson<'a> {
    mode: &'a str,
    unit: &'a str,
    model: &'a str,
    seeds: u64,
    steps: u64,
    points: u64,
    sampled_points: u64,
    states: u64,
    seconds: f64,
    states_per_second: f64,
    per_fault: &'a BTreeMap<String, u64>,
    covered: &'a BTreeMap<String, u64>,
    checks: &'a BTreeMap<&'static str, u64>,
    notes: &'a [String],
    violations: usize,
    failures: Vec<FailureJson<'a>>,
}

/// One failure of the summary's JSON form.
#[derive(Serialize)]
struct FailureJson<'a> {
    invariant: &'a str,
    detail: &'a str,
    mode: &'a str,
    seed: u64,
    model: &'a str,
    point: &'a str,
    state: u64,
    image: Option<String>,
    replay: &'a str,
    trace: &'a [String],
}

impl Failure {
    /// This failure as one JSON object of the summary's `failures`.
    fn to_json(&self) -> FailureJson<'_> {
        FailureJson {
            invariant: self.violation.invariant,
            detail: &self.violation.detail,
            mode: &self.mode,
            seed: self.seed,
            model: &self.model,
            point: &self.point,
            state: self.state,
            image: self.image.as_ref().map(|p| p.display().to_string()),
            replay: &self.replay,
            trace: &self.trace,
        }
    }
}

/// `v` rounded to `decimals` places, as the summary prints its times and rates.
fn round_to(v: f64, decimals: i32) -> f64 {
    let scale = 10f64.powi(decimals);
    (v * scale).round() / scale
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_escapes() {
        let mut s = Summary::new("power", "sector");
        s.count("after write");
        s.notes.push("a\"b\\c\n\u{1}".into());
        s.failures.push(Failure {
            mode: "power".into(),
            seed: 1,
            model: "sector".into(),
            point: "1.2".into(),
            state: 3,
            violation: Violation::new("I3", "hole"),
            trace: vec!["x".into()],
            image: None,
            replay: "--replay 1:1.2:3".into(),
        });
        let j = s.to_json();
        assert!(j.starts_with('{') && j.ends_with('}'));
        assert!(j.contains("\"notes\":[\"a\\\"b\\\\c\\n\\u0001\"]"), "{j}");
        assert!(j.contains("\"violations\":1"));
        assert!(s.render().contains("violations"));
    }

    #[test]
    fn json_parses_back() {
        let mut s = Summary::new("kill", "pwrite");
        s.seeds = 2;
        s.steps = 40;
        s.points = 7;
        s.sampled_points = 1;
        s.count("after put");
        s.count("after put");
        s.count("after sync");
        s.covered.insert("log.append".into(), 4);
        s.checks.insert("snapshot reads", 9);
        s.notes.push("a note".into());
        s.elapsed = Duration::from_millis(1500);
        s.failures.push(Failure {
            mode: "kill".into(),
            seed: u64::MAX,
            model: "pwrite".into(),
            point: "log.append".into(),
            state: 5,
            violation: Violation::new("I1", "lost \"k\""),
            trace: vec!["put k".into(), "sync".into()],
            image: Some(PathBuf::from("/tmp/img")),
            replay: "--replay x".into(),
        });
        let v: serde_json::Value = serde_json::from_str(&s.to_json()).unwrap();
        let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "mode",
                "unit",
                "model",
                "seeds",
                "steps",
                "points",
                "sampled_points",
                "states",
                "seconds",
                "states_per_second",
                "per_fault",
                "covered",
                "checks",
                "notes",
                "violations",
                "failures"
            ]
        );
        assert_eq!(v["mode"], "kill");
        assert_eq!(v["unit"], "crash states");
        assert_eq!(v["seeds"].as_u64(), Some(2));
        assert_eq!(v["states"].as_u64(), Some(3));
        assert_eq!(v["seconds"].as_f64(), Some(1.5));
        assert_eq!(v["states_per_second"].as_f64(), Some(2.0));
        assert_eq!(v["per_fault"]["after put"].as_u64(), Some(2));
        assert_eq!(v["covered"]["log.append"].as_u64(), Some(4));
        assert_eq!(v["checks"]["snapshot reads"].as_u64(), Some(9));
        assert_eq!(v["notes"][0], "a note");
        assert_eq!(v["violations"].as_u64(), Some(1));
        let f = &v["failures"][0];
        assert_eq!(f["invariant"], "I1");
        assert_eq!(f["detail"], "lost \"k\"");
        assert_eq!(f["seed"].as_u64(), Some(u64::MAX));
        assert_eq!(f["state"].as_u64(), Some(5));
        assert_eq!(f["image"], "/tmp/img");
        assert_eq!(f["trace"][1], "sync");
        s.failures[0].image = None;
        let v: serde_json::Value = serde_json::from_str(&s.to_json()).unwrap();
        assert!(v["failures"][0]["image"].is_null());
    }
}
