//! The liveness oracle of `kill` mode: a child that writes no ack-log line for a bound is hung.
//! The parent then takes the child's stacks (this module) before it kills it, and reports a
//! `liveness` violation rather than a kill.
//!
//! A workload child normally writes a line every few hundred microseconds. Its longest honest
//! silences are a `Pause` step (at most 3 × the Buffered interval), a `Strict` commit or `sync()`
//! waiting for a write + fdatasync round (milliseconds; on a loaded CI disk occasionally a second
//! or more), and its start (exec and recovery, before the first line). [`default_bound`] sits far
//! above all of them, so a loaded machine does not trip it; a real hang (a committer parked
//! forever, a lost wake-up) is silent forever and is caught however large the bound.
//!
//! The test hook [`STALL_ENV`] makes a child hang on purpose, to prove the watchdog live.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Environment variable read by the `workload` subcommand (test hook for the watchdog): when it
/// holds a step number `N`, the child's main thread blocks forever (parked) instead of running
/// step `N` of its generation. Nothing else reads it; the campaign never sets it.
pub const STALL_ENV: &str = "RINGLOG_CRASH_STALL_AT_STEP";

/// Floor of the watchdog bound: 25 times the longest silence of a healthy child measured on the
/// project's 2-core VM while two other CPU-bound jobs ran on it (408 ms, over 5,600 kill
/// cycles), and above the multi-second fdatasync stalls a busy CI disk can show.
pub const MIN_BOUND: Duration = Duration::from_secs(10);

/// The watchdog bound for a workload whose Buffered interval is `interval`: the floor, or 20
/// intervals plus the longest pause (3 intervals) for long intervals.
pub fn default_bound(interval: Duration) -> Duration {
    MIN_BOUND.max(interval * 23)
}

/// How long the parent keeps watching after the bound expired before it declares the child
/// hung: time for a child that was merely starved (the parent's own reader thread included) to
/// show a line.
pub fn grace(bound: Duration) -> Duration {
    (bound / 4).clamp(Duration::from_millis(50), Duration::from_secs(2))
}

/// The step at which [`STALL_ENV`] asks this process to hang, if any.
pub fn stall_step() -> Option<u64> {
    std::env::var(STALL_ENV).ok()?.trim().parse().ok()
}

/// Blocks the calling thread forever (the [`STALL_ENV`] test hook).
pub fn stall_forever() -> ! {
    loop {
        std::thread::park();
    }
}

/// Lets the parent process and its descendants (the debugger it starts) attach to this process
/// under Yama's `ptrace_scope = 1`, where only ancestors may. Harmless where Yama is absent.
pub fn allow_parent_to_trace() {
    // SAFETY: plain prctl and getppid calls with integer arguments.
    unsafe {
        let parent = libc::getppid();
        libc::prctl(libc::PR_SET_PTRACER, parent as libc::c_ulong, 0, 0, 0);
    }
}

/// Where `prog` is on `PATH` (as `command -v` finds it).
pub fn which(prog: &str) -> Option<std::path::PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(prog))
        .find(|p| {
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// Longest a debugger may take to print the stacks.
const GDB_TIMEOUT: Duration = Duration::from_secs(60);

/// The stacks of every thread of process `pid`: `gdb -p PID -batch -ex "thread apply all bt"`
/// when gdb is installed, then each thread's `/proc/PID/task/TID/{comm,stat,wchan,stack}` (what
/// is readable: `stack` needs privileges).
pub fn capture_stacks(pid: u32) -> String {
    let mut out = String::new();
    match which("gdb") {
        Some(gdb) => out.push_str(&gdb_stacks(&gdb, pid)),
        None => out.push_str("gdb is not installed: no user-space stacks\n"),
    }
    out.push_str(&proc_stacks(pid));
    out
}

fn gdb_stacks(gdb: &Path, pid: u32) -> String {
    let mut cmd = Command::new(gdb);
    cmd.args(["-nx", "-batch", "-p", &pid.to_string()])
        .args(["-ex", "set pagination off", "-ex", "thread apply all bt"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => return format!("gdb did not start: {e}\n"),
    };
    let mut so = child.stdout.take().expect("piped");
    let mut se = child.stderr.take().expect("piped");
    let t_out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = so.read_to_string(&mut s);
        s
    });
    let t_err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = se.read_to_string(&mut s);
        s
    });
    let started = Instant::now();
    let mut timed_out = false;
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if started.elapsed() < GDB_TIMEOUT => {
                std::thread::sleep(Duration::from_millis(20))
            }
            _ => {
                // The kernel detaches a dead tracer's tracees.
                let _ = child.kill();
                let _ = child.wait();
                timed_out = true;
                break;
            }
        }
    }
    let stdout = t_out.join().unwrap_or_default();
    let stderr = t_err.join().unwrap_or_default();
    let mut s = format!("stacks (gdb -p {pid} -batch -ex \"thread apply all bt\"):\n");
    // gdb's chatter about threads and symbols is noise; the backtraces are what matters.
    for l in stdout.lines().filter(|l| {
        !(l.starts_with("[New LWP")
            || l.starts_with("[Thread debugging")
            || l.starts_with("Using host libthread_db")
            || l.trim().is_empty())
    }) {
        s.push_str(l);
        s.push('\n');
    }
    if timed_out {
        s.push_str(&format!("(gdb timed out after {GDB_TIMEOUT:?})\n"));
    }
    if !stdout.contains("Thread") {
        // Attaching failed (ptrace denied, no such process): say why.
        for l in stderr.lines().filter(|l| !l.trim().is_empty()).take(10) {
            s.push_str("gdb: ");
            s.push_str(l);
            s.push('\n');
        }
    }
    s
}

/// Each thread's name, state, wait channel and kernel stack, from `/proc`.
pub fn proc_stacks(pid: u32) -> String {
    let mut s = format!("threads (/proc/{pid}/task):\n");
    let task = format!("/proc/{pid}/task");
    let mut tids: Vec<u32> = match std::fs::read_dir(&task) {
        Ok(d) => d
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
            .collect(),
        Err(e) => return format!("{s}  {task}: {e}\n"),
    };
    tids.sort_unstable();
    for tid in tids {
        let read = |f: &str| std::fs::read_to_string(format!("{task}/{tid}/{f}"));
        let comm = read("comm")
            .map(|c| c.trim().to_string())
            .unwrap_or_default();
        // The state is the field after the parenthesised name.
        let state = read("stat")
            .ok()
            .and_then(|st| {
                st.rsplit_once(')')
                    .and_then(|(_, r)| r.split_whitespace().next().map(String::from))
            })
            .unwrap_or_else(|| "?".into());
        let wchan = read("wchan").unwrap_or_else(|e| format!("({e})"));
        s.push_str(&format!(
            "  thread {tid} \"{comm}\" state {state} wchan {}\n",
            if wchan.is_empty() { "-" } else { wchan.trim() }
        ));
        match read("stack") {
            Ok(st) if !st.trim().is_empty() => {
                for l in st.lines() {
                    s.push_str("    ");
                    s.push_str(l);
                    s.push('\n');
                }
            }
            Ok(_) => {}
            Err(e) => s.push_str(&format!("    kernel stack unreadable: {e}\n")),
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bound_is_generous() {
        assert_eq!(default_bound(Duration::from_millis(10)), MIN_BOUND);
        assert_eq!(
            default_bound(Duration::from_secs(1)),
            Duration::from_secs(23)
        );
        assert!(grace(Duration::from_millis(100)) >= Duration::from_millis(50));
    }

    #[test]
    fn proc_stacks_lists_this_process() {
        let s = proc_stacks(std::process::id());
        assert!(s.contains("thread "), "{s}");
    }
}
