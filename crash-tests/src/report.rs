//! Results of a run: counters, failures, the summary table and its JSON form.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use crate::oracle::Violation;

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
        self.notes.extend(o.notes);
        self.failures.extend(o.failures);
        self.elapsed += o.elapsed;
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

    /// The summary as one JSON object.
    pub fn to_json(&self) -> String {
        let map = |m: &BTreeMap<String, u64>| {
            let items: Vec<String> = m
                .iter()
                .map(|(k, v)| format!("{}:{v}", json_str(k)))
                .collect();
            format!("{{{}}}", items.join(","))
        };
        let failures: Vec<String> = self
            .failures
            .iter()
            .map(|f| {
                format!(
                    "{{\"invariant\":{},\"detail\":{},\"mode\":{},\"seed\":{},\"model\":{},\"point\":{},\"state\":{},\"image\":{},\"replay\":{},\"trace\":[{}]}}",
                    json_str(f.violation.invariant),
                    json_str(&f.violation.detail),
                    json_str(&f.mode),
                    f.seed,
                    json_str(&f.model),
                    json_str(&f.point),
                    f.state,
                    f.image
                        .as_ref()
                        .map(|p| json_str(&p.display().to_string()))
                        .unwrap_or_else(|| "null".into()),
                    json_str(&f.replay),
                    f.trace.iter().map(|l| json_str(l)).collect::<Vec<_>>().join(",")
                )
            })
            .collect();
        let notes: Vec<String> = self.notes.iter().map(|n| json_str(n)).collect();
        let checks: BTreeMap<String, u64> = self
            .checks
            .iter()
            .map(|(k, v)| (k.to_string(), *v))
            .collect();
        format!(
            "{{\"mode\":{},\"unit\":{},\"model\":{},\"seeds\":{},\"steps\":{},\"points\":{},\"sampled_points\":{},\"states\":{},\"seconds\":{:.3},\"states_per_second\":{:.1},\"per_fault\":{},\"covered\":{},\"checks\":{},\"notes\":[{}],\"violations\":{},\"failures\":[{}]}}",
            json_str(&self.mode),
            json_str(&self.unit),
            json_str(&self.model),
            self.seeds,
            self.steps,
            self.points,
            self.sampled_points,
            self.states,
            self.elapsed.as_secs_f64(),
            self.rate(),
            map(&self.per_fault),
            map(&self.covered),
            map(&checks),
            notes.join(","),
            self.failures.len(),
            failures.join(",")
        )
    }
}

/// A JSON string literal.
pub fn json_str(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 2);
    o.push('"');
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            '\n' => o.push_str("\\n"),
            '\r' => o.push_str("\\r"),
            '\t' => o.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(o, "\\u{:04x}", c as u32);
            }
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_escapes() {
        assert_eq!(json_str("a\"b\\c\n\u{1}"), "\"a\\\"b\\\\c\\n\\u0001\"");
        let mut s = Summary::new("power", "sector");
        s.count("after write");
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
        assert!(j.contains("\"violations\":1"));
        assert!(s.render().contains("violations"));
    }
}
