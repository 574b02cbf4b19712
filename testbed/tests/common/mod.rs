//! Shared helpers for the privileged testbed tests (included with `mod common;`).

#![allow(dead_code, reason = "each test binary uses a different subset")]

use std::path::Path;

use testbed::netns;
use testbed::run;

/// Returns false (after saying why) when the test cannot run here.
pub fn can_run(needs_smcroute: bool) -> bool {
    if !netns::is_root() {
        eprintln!("skipped: needs root");
        return false;
    }
    if needs_smcroute
        && !["/usr/sbin/smcrouted", "/usr/bin/smcrouted", "/sbin/smcrouted"]
            .iter()
            .any(|p| Path::new(p).exists())
    {
        eprintln!("skipped: smcrouted not installed (Debian package smcroute)");
        return false;
    }
    true
}

/// Asserts that nothing of run `id` is left: namespaces, state file, run dir, processes.
pub fn assert_gone(id: u16, pids: &[i32]) {
    let prefix = format!("ft{}-", run::id_str(id));
    assert!(
        netns::list_with_prefix(&prefix).is_empty(),
        "namespaces left: {:?}",
        netns::list_with_prefix(&prefix)
    );
    assert!(!run::state_path(id).exists(), "state file left");
    assert!(!run::run_dir(id).exists(), "run dir left");
    for pid in pids {
        let alive = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .is_ok_and(|s| !s.rsplit(')').next().unwrap_or("").trim_start().starts_with('Z'));
        assert!(!alive, "process {pid} still running");
    }
}
