//! Run identities and the per-run state file that makes teardown possible after a crash.
//!
//! A run id is 4 hex digits (so namespace `ft<run>-<node>` and interface `f<run>-<n>-<p>` names
//! stay short). It is derived from the pid and the clock and claimed atomically by creating
//! `/run/fanout-testbed/<run>.json` with `O_EXCL`; an id whose namespaces still exist is skipped.
//!
//! Invariant: the state file is written *before* each namespace or process is created, so it
//! always lists a superset of what exists; `down` of a stale run deletes everything it names,
//! plus any namespace with the run's prefix, and skips pids whose start time no longer matches
//! (pid reuse).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

use crate::netns;

/// Where state files and per-run directories live.
pub const STATE_DIR: &str = "/run/fanout-testbed";

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("cannot {what} {path}: {source}")]
    Io { what: &'static str, path: PathBuf, source: std::io::Error },
    #[error("state file {path} is corrupt: {source}")]
    Corrupt { path: PathBuf, source: serde_json::Error },
    #[error(
        "no free run id after 64 attempts (too many stale runs? try `fanout-testbed down --all`)"
    )]
    Exhausted,
    #[error("run `{0}` is not a 4-hex-digit run id")]
    BadId(String),
    #[error(transparent)]
    NetNs(#[from] netns::NetNsError),
}

/// A process started by the testbed inside a node.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProcRecord {
    pub pid: i32,
    /// Start time in clock ticks since boot (field 22 of /proc/<pid>/stat), to detect pid reuse.
    pub starttime: u64,
    pub node: String,
    pub what: String,
}

/// Everything a run created, persisted as JSON.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunState {
    pub run: String,
    pub topology: String,
    pub router: String,
    pub namespaces: Vec<String>,
    pub processes: Vec<ProcRecord>,
    pub created_unix: u64,
    /// Nodes in topology order with their namespace and interfaces (for `status`/`exec`).
    #[serde(default)]
    pub nodes: Vec<NodeState>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodeState {
    pub name: String,
    pub namespace: String,
    pub software: String,
    pub interfaces: Vec<IfaceState>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IfaceState {
    pub name: String,
    pub addr: String,
    pub peer: String,
}

/// Parses a run id given on the command line.
pub fn parse_id(s: &str) -> Result<u16, RunError> {
    let s = s.strip_prefix("ft").unwrap_or(s);
    if s.len() != 4 {
        return Err(RunError::BadId(s.to_owned()));
    }
    u16::from_str_radix(s, 16).map_err(|_| RunError::BadId(s.to_owned()))
}

pub fn id_str(run: u16) -> String {
    format!("{run:04x}")
}

pub fn state_path(run: u16) -> PathBuf {
    Path::new(STATE_DIR).join(format!("{}.json", id_str(run)))
}

/// Per-run directory for generated configs, sockets and logs.
pub fn run_dir(run: u16) -> PathBuf {
    Path::new(STATE_DIR).join(id_str(run))
}

fn io(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> RunError {
    let path = path.to_owned();
    move |source| RunError::Io { what, path, source }
}

impl RunState {
    /// Claims a fresh run id and writes its initial state file.
    pub fn allocate(topology: &str, router: &str) -> Result<Self, RunError> {
        std::fs::create_dir_all(STATE_DIR).map_err(io("create", Path::new(STATE_DIR)))?;
        let nanos = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
        let seed = std::process::id() ^ nanos.subsec_nanos().rotate_left(7);
        for attempt in 0u32..64 {
            let run = (seed.wrapping_add(attempt.wrapping_mul(0x9e37)) & 0xffff) as u16;
            let path = state_path(run);
            if !netns::list_with_prefix(&format!("ft{}-", id_str(run))).is_empty() {
                continue;
            }
            match std::fs::OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(_) => {
                    let st = RunState {
                        run: id_str(run),
                        topology: topology.to_owned(),
                        router: router.to_owned(),
                        namespaces: Vec::new(),
                        processes: Vec::new(),
                        created_unix: nanos.as_secs(),
                        nodes: Vec::new(),
                    };
                    st.save()?;
                    let dir = run_dir(run);
                    std::fs::create_dir_all(&dir).map_err(io("create", &dir))?;
                    return Ok(st);
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(io("create", &path)(e)),
            }
        }
        Err(RunError::Exhausted)
    }

    pub fn id(&self) -> u16 {
        parse_id(&self.run).unwrap_or_default()
    }

    /// Writes the state atomically (temp file + rename).
    pub fn save(&self) -> Result<(), RunError> {
        let path = state_path(self.id());
        let tmp = path.with_extension("json.tmp");
        let text = serde_json::to_string_pretty(self)
            .map_err(|source| RunError::Corrupt { path: path.clone(), source })?;
        let mut f = std::fs::File::create(&tmp).map_err(io("write", &tmp))?;
        f.write_all(text.as_bytes()).map_err(io("write", &tmp))?;
        std::fs::rename(&tmp, &path).map_err(io("rename", &path))
    }

    pub fn load(run: u16) -> Result<Self, RunError> {
        let path = state_path(run);
        let text = std::fs::read_to_string(&path).map_err(io("read", &path))?;
        serde_json::from_str(&text).map_err(|source| RunError::Corrupt { path, source })
    }

    /// All runs with a state file.
    pub fn list() -> Vec<u16> {
        let Ok(rd) = std::fs::read_dir(STATE_DIR) else {
            return Vec::new();
        };
        let mut v: Vec<u16> = rd
            .filter_map(Result::ok)
            .filter_map(|e| {
                let n = e.file_name().into_string().ok()?;
                parse_id(n.strip_suffix(".json")?).ok()
            })
            .collect();
        v.sort_unstable();
        v
    }

    /// Records a started process.
    pub fn add_process(&mut self, pid: i32, node: &str, what: &str) -> Result<(), RunError> {
        self.processes.push(ProcRecord {
            pid,
            starttime: proc_starttime(pid).unwrap_or(0),
            node: node.to_owned(),
            what: what.to_owned(),
        });
        self.save()
    }
}

/// Start time of `pid` in clock ticks since boot.
pub fn proc_starttime(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may contain spaces; fields after the last ')' are fixed.
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// The pid of a child as the signed type that kill(2) takes. Pids are below 2^22 on Linux, so
/// the conversion cannot fail in practice; 0 (never signalled, see [`stop_process`]) if it did.
pub fn pid_of(child: &std::process::Child) -> i32 {
    i32::try_from(child.id()).unwrap_or(0)
}

/// Whether the recorded process still runs (same pid and start time).
pub fn alive(p: &ProcRecord) -> bool {
    if p.pid <= 0 {
        return false;
    }
    proc_starttime(p.pid).is_some_and(|t| p.starttime == 0 || t == p.starttime)
}

/// Sends SIGTERM, waits up to `grace`, then SIGKILL. Only touches the recorded process.
pub fn stop_process(p: &ProcRecord, grace: Duration) {
    // `alive` is false for pid <= 0, so kill(0) / kill(-1) (process group / everything) can
    // never be sent from here.
    if !alive(p) {
        return;
    }
    let pid = Pid::from_raw(p.pid);
    let _ = kill(pid, Signal::SIGTERM);
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        // Our own children stay zombies until reaped; reap without blocking.
        let _ = nix::sys::wait::waitpid(pid, Some(nix::sys::wait::WaitPidFlag::WNOHANG));
        if !alive(p) || is_zombie(p.pid) {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = kill(pid, Signal::SIGKILL);
    let _ = nix::sys::wait::waitpid(pid, Some(nix::sys::wait::WaitPidFlag::WNOHANG));
}

fn is_zombie(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rfind(')').map(|i| s[i + 2..].starts_with('Z')))
        .unwrap_or(false)
}

/// Tears a run down completely: processes, namespaces (also any with the run prefix that the
/// state file missed), the run directory and the state file. Returns what was removed.
pub fn teardown(run: u16) -> Result<Vec<String>, RunError> {
    let mut removed = Vec::new();
    let state = RunState::load(run).ok();
    if let Some(st) = &state {
        for p in st.processes.iter().rev() {
            if alive(p) {
                stop_process(p, Duration::from_secs(3));
                removed.push(format!("process {} ({} on {})", p.pid, p.what, p.node));
            }
        }
    }
    let mut names: Vec<String> = state.map(|s| s.namespaces).unwrap_or_default();
    for n in netns::list_with_prefix(&format!("ft{}-", id_str(run))) {
        if !names.contains(&n) {
            names.push(n);
        }
    }
    let mut first_err = None;
    for n in names {
        if Path::new("/run/netns").join(&n).exists() {
            match netns::delete_named(&n) {
                Ok(()) => removed.push(format!("namespace {n}")),
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
    }
    if let Some(e) = first_err {
        return Err(e.into());
    }
    let dir = run_dir(run);
    if dir.exists() {
        std::fs::remove_dir_all(&dir).map_err(io("remove", &dir))?;
    }
    let path = state_path(run);
    if path.exists() {
        std::fs::remove_file(&path).map_err(io("remove", &path))?;
        removed.push(format!("state file {}", path.display()));
    }
    Ok(removed)
}
