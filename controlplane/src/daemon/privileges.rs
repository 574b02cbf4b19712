//! fanoutd's privileges: the check it runs before touching the data plane (so a missing
//! capability is reported as such instead of as an obscure EPERM from a BPF or socket
//! syscall), and the drop it does once set-up is over.
//!
//! The check reads the effective capability set from /proc/self/status (`CapEff`), which covers
//! both root (all bits) and a non-root service granted capabilities by systemd's
//! `AmbientCapabilities`.
//!
//! The drop ([`drop_privileges`]) keeps only [`RUNTIME_CAPS`] in the effective, permitted and
//! bounding sets, empties the inheritable and ambient sets and sets `no_new_privs`, in *every*
//! thread of the process: Linux credentials are per thread, and by the end of set-up the data
//! plane workers, socket readers and ctl/metrics servers already run with the full set. Each
//! other thread is sent [`drop_signal`] in turn and drops its own credentials in the handler
//! (raw syscalls only, async-signal-safe); threads created later inherit the reduced set from
//! their creator. Invariant after a successful return: no thread of the process holds a
//! capability outside the kept set, and none can regain one through execve.
//!
//! Why these capabilities stay (everything else, CAP_SYS_ADMIN, CAP_DAC_OVERRIDE, CAP_SETUID,
//! CAP_SYS_PTRACE, ..., goes):
//! - CAP_NET_ADMIN: detaching the XDP program at stop (netlink `RTM_SETLINK`) and attaching it
//!   to an interface that is re-added at runtime;
//! - CAP_NET_RAW: raw IGMP/DVMRP/link-state and AF_XDP sockets for such an interface;
//! - CAP_IPC_LOCK: registering that interface's AF_XDP UMEM pins its frames, which without it
//!   is charged against RLIMIT_MEMLOCK (8 MiB by default, less than a 4096-frame UMEM);
//! - CAP_BPF (CAP_SYS_ADMIN before Linux 5.8, when CAP_BPF did not exist): reading counters and
//!   updating the MFIB maps through `bpf(2)` on the already open map descriptors — kernels before
//!   6.5 refuse every `bpf(2)` command without it when `kernel.unprivileged_bpf_disabled` is set
//!   (Debian's default).

use std::fmt;
use std::sync::atomic::{AtomicI32, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Capability bit numbers from linux/capability.h.
pub const CAP_NET_ADMIN: u32 = 12;
pub const CAP_NET_RAW: u32 = 13;
pub const CAP_IPC_LOCK: u32 = 14;
pub const CAP_SYS_ADMIN: u32 = 21;
pub const CAP_BPF: u32 = 39;

/// The capabilities fanoutd keeps after set-up (see the module docs for why each one).
pub const RUNTIME_CAPS: [u32; 4] = [CAP_NET_ADMIN, CAP_NET_RAW, CAP_IPC_LOCK, CAP_BPF];

/// Missing capabilities, by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissingCapabilities(pub Vec<&'static str>);

impl fmt::Display for MissingCapabilities {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "fanoutd needs root or the capabilities CAP_NET_ADMIN, CAP_NET_RAW and CAP_BPF \
             (or CAP_SYS_ADMIN on kernels before 5.8); missing: {}. Run it as root, or grant them \
             (see controlplane/etc/fanoutd.service: AmbientCapabilities=)",
            self.0.join(", ")
        )
    }
}

impl std::error::Error for MissingCapabilities {}

/// Checks this process's effective capabilities.
pub fn check() -> Result<(), MissingCapabilities> {
    let status = std::fs::read_to_string("/proc/self/status")
        .map_err(|_| MissingCapabilities(vec!["(cannot read /proc/self/status)"]))?;
    check_status(&status)
}

/// The check on /proc/self/status text (separate for tests).
pub fn check_status(status: &str) -> Result<(), MissingCapabilities> {
    let cap_eff = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .ok_or_else(|| MissingCapabilities(vec!["(no CapEff line in /proc/self/status)"]))?;
    let has = |bit: u32| cap_eff & (1u64 << bit) != 0;
    let mut missing = Vec::new();
    if !has(CAP_NET_ADMIN) {
        missing.push("CAP_NET_ADMIN");
    }
    if !has(CAP_NET_RAW) {
        missing.push("CAP_NET_RAW");
    }
    // CAP_BPF exists since Linux 5.8; before, loading programs needed CAP_SYS_ADMIN.
    if !has(CAP_BPF) && !has(CAP_SYS_ADMIN) {
        missing.push("CAP_BPF");
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(MissingCapabilities(missing))
    }
}

// ===== dropping privileges after set-up =====

/// Why the privilege drop failed. fanoutd stops rather than run with more than it should.
#[derive(Debug, thiserror::Error)]
pub enum DropError {
    #[error("dropping privileges: thread {tid}: {step} failed: {source}")]
    Thread { tid: i32, step: &'static str, source: std::io::Error },
    #[error("dropping privileges: thread {tid} did not run the drop handler within {waited:?}")]
    Timeout { tid: i32, waited: Duration },
    #[error("dropping privileges: {step}: {source}")]
    Process { step: &'static str, source: std::io::Error },
    #[error(
        "dropping privileges: thread {tid} still holds {field} {value:#018x} (allowed {allowed:#018x})"
    )]
    Verify { tid: i32, field: &'static str, value: u64, allowed: u64 },
    #[error("control socket group {group:?}: {reason}")]
    Group { group: String, reason: String },
}

/// The credentials of one thread, from /proc/<pid>/task/<tid>/status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ThreadCaps {
    pub effective: u64,
    pub permitted: u64,
    pub inheritable: u64,
    pub bounding: u64,
    pub ambient: u64,
    pub no_new_privs: bool,
}

impl ThreadCaps {
    /// Parses the `Cap*:` and `NoNewPrivs:` lines of a status file; `None` if one is missing.
    pub fn parse(status: &str) -> Option<ThreadCaps> {
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        };
        Some(ThreadCaps {
            effective: field("CapEff:")?,
            permitted: field("CapPrm:")?,
            inheritable: field("CapInh:")?,
            bounding: field("CapBnd:")?,
            ambient: field("CapAmb:")?,
            no_new_privs: status
                .lines()
                .find_map(|l| l.strip_prefix("NoNewPrivs:"))
                .map(|v| v.trim() == "1")?,
        })
    }
}

/// What [`drop_privileges`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DropReport {
    /// Threads whose credentials were checked after the drop (all of the process's).
    pub threads: usize,
    /// The effective set every thread has now.
    pub effective: u64,
    /// The bounding set (unchanged, and so possibly wider than `effective`, when the process
    /// lacked CAP_SETPCAP; `no_new_privs` still stops execve from using it).
    pub bounding: u64,
}

/// The set to keep on a kernel whose highest capability is `last_cap`: [`RUNTIME_CAPS`], with
/// CAP_SYS_ADMIN standing in for CAP_BPF before Linux 5.8.
pub fn runtime_mask(last_cap: u32) -> u64 {
    RUNTIME_CAPS.iter().fold(0u64, |m, &c| {
        let c = if c == CAP_BPF && last_cap < CAP_BPF { CAP_SYS_ADMIN } else { c };
        m | (1u64 << c)
    })
}

/// The kernel's highest capability number.
pub fn last_cap() -> Result<u32, DropError> {
    let text = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .map_err(|source| DropError::Process { step: "reading cap_last_cap", source })?;
    text.trim().parse().map_err(|_| DropError::Process {
        step: "parsing cap_last_cap",
        source: std::io::Error::other(format!("not a number: {:?}", text.trim())),
    })
}

/// Names of the capabilities in `mask` (for logs and messages).
pub fn cap_names(mask: u64) -> Vec<String> {
    const NAMES: [(u32, &str); 5] = [
        (CAP_NET_ADMIN, "CAP_NET_ADMIN"),
        (CAP_NET_RAW, "CAP_NET_RAW"),
        (CAP_IPC_LOCK, "CAP_IPC_LOCK"),
        (CAP_SYS_ADMIN, "CAP_SYS_ADMIN"),
        (CAP_BPF, "CAP_BPF"),
    ];
    (0..64)
        .filter(|b| mask & (1u64 << b) != 0)
        .map(|b| {
            NAMES
                .iter()
                .find(|(n, _)| *n == b)
                .map_or_else(|| format!("cap{b}"), |(_, s)| (*s).into())
        })
        .collect()
}

/// The signal other threads receive to drop their own credentials: a real-time signal that
/// neither Rust's runtime nor fanoutd's signal thread (SIGHUP/SIGTERM/SIGINT) uses.
pub fn drop_signal() -> libc::c_int {
    libc::SIGRTMAX() - 1
}

/// What the handler drops to, and its answer (handled one thread at a time).
static KEEP: AtomicU64 = AtomicU64::new(0);
static ACKS: AtomicUsize = AtomicUsize::new(0);
/// 0, or (step << 16) | errno of the last failed handler run.
static FAILURE: AtomicI32 = AtomicI32::new(0);
/// Serialises [`drop_privileges`] (the statics above are shared).
static DROP_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

const STEPS: [&str; 4] = ["", "PR_CAP_AMBIENT_CLEAR_ALL", "capget/capset", "PR_SET_NO_NEW_PRIVS"];

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// Drops the calling thread's credentials to `keep`. Only raw syscalls and stack memory, so it
/// may run in a signal handler. Returns 0 or (step << 16) | errno.
fn drop_this_thread(keep: u64) -> i32 {
    // The bounding set needs CAP_SETPCAP; a service started without it (systemd's
    // CapabilityBoundingSet= already narrowed it) keeps its bounding set, and no_new_privs below
    // still keeps execve from granting anything outside the permitted set.
    for cap in 0..64u32 {
        if keep & (1u64 << cap) != 0 {
            continue;
        }
        // SAFETY: prctl with integer arguments only.
        if unsafe { libc::prctl(libc::PR_CAPBSET_DROP, libc::c_ulong::from(cap), 0, 0, 0) } != 0 {
            // EINVAL: past the kernel's last capability; EPERM: no CAP_SETPCAP.
            break;
        }
    }
    // SAFETY: prctl with integer arguments only.
    let r = unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::c_ulong::try_from(libc::PR_CAP_AMBIENT_CLEAR_ALL).unwrap_or(4),
            0,
            0,
            0,
        )
    };
    if r != 0 {
        return (1 << 16) | errno();
    }
    let mut header = CapHeader { version: LINUX_CAPABILITY_VERSION_3, pid: 0 };
    let mut data = [CapData::default(); 2];
    // SAFETY: header and data are valid for the kernel's v3 layout (two 32-bit words per set).
    if unsafe { libc::syscall(libc::SYS_capget, &raw mut header, data.as_mut_ptr()) } != 0 {
        return (2 << 16) | errno();
    }
    for (i, d) in data.iter_mut().enumerate() {
        #[expect(clippy::cast_possible_truncation, reason = "the low or high 32 bits of the mask")]
        let k = (keep >> (32 * i)) as u32;
        d.permitted &= k;
        d.effective = d.permitted;
        d.inheritable = 0;
    }
    // SAFETY: as for capget; pid 0 is the calling thread.
    if unsafe { libc::syscall(libc::SYS_capset, &raw const header, data.as_ptr()) } != 0 {
        return (2 << 16) | errno();
    }
    // SAFETY: prctl with integer arguments only.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
        return (3 << 16) | errno();
    }
    0
}

extern "C" fn on_drop_signal(_: libc::c_int) {
    // The interrupted code may be about to read errno.
    let saved = errno();
    let r = drop_this_thread(KEEP.load(Ordering::SeqCst));
    if r != 0 {
        FAILURE.store(r, Ordering::SeqCst);
    }
    ACKS.fetch_add(1, Ordering::SeqCst);
    // SAFETY: restoring the thread's own errno.
    unsafe { *libc::__errno_location() = saved };
}

fn failure(tid: i32, code: i32) -> DropError {
    DropError::Thread {
        tid,
        step: STEPS.get(usize::try_from(code >> 16).unwrap_or(0)).copied().unwrap_or("?"),
        source: std::io::Error::from_raw_os_error(code & 0xffff),
    }
}

fn gettid() -> i32 {
    // SAFETY: gettid has no arguments and cannot fail.
    #[expect(clippy::cast_possible_truncation, reason = "thread ids are pid_t (i32)")]
    let tid = unsafe { libc::syscall(libc::SYS_gettid) } as i32;
    tid
}

fn thread_ids() -> Result<Vec<i32>, DropError> {
    let dir = std::fs::read_dir("/proc/self/task")
        .map_err(|source| DropError::Process { step: "listing /proc/self/task", source })?;
    Ok(dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok()).collect())
}

/// How long one thread may take to run the handler.
const THREAD_TIMEOUT: Duration = Duration::from_secs(3);

/// Drops every thread of the process to `keep` (see the module docs), then checks each
/// thread's credentials in /proc and returns them.
pub fn drop_privileges(keep: u64) -> Result<DropReport, DropError> {
    let _guard = DROP_LOCK.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    KEEP.store(keep, Ordering::SeqCst);
    FAILURE.store(0, Ordering::SeqCst);
    let sig = drop_signal();
    // SAFETY: sigaction with a zeroed struct, an extern "C" handler and an empty mask; the old
    // action is restored below.
    let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
    unsafe {
        let mut act: libc::sigaction = std::mem::zeroed();
        act.sa_sigaction = on_drop_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
        act.sa_flags = libc::SA_RESTART;
        libc::sigemptyset(&raw mut act.sa_mask);
        if libc::sigaction(sig, &raw const act, &raw mut old) != 0 {
            return Err(DropError::Process {
                step: "installing the drop handler",
                source: std::io::Error::last_os_error(),
            });
        }
    }
    let result = signal_all_threads(sig);
    // SAFETY: restores the action saved above.
    unsafe { libc::sigaction(sig, &raw const old, std::ptr::null_mut()) };
    result?;
    let own = drop_this_thread(keep);
    if own != 0 {
        return Err(failure(gettid(), own));
    }
    verify(keep)
}

/// Signals each other thread in turn and waits for its handler; repeats the listing until it
/// shows no thread not yet handled (a thread created meanwhile by an unhandled one would have
/// inherited the full set).
fn signal_all_threads(sig: libc::c_int) -> Result<(), DropError> {
    // SAFETY: getpid cannot fail.
    let pid = unsafe { libc::getpid() };
    let me = gettid();
    let mut done = std::collections::BTreeSet::from([me]);
    loop {
        let pending: Vec<i32> = thread_ids()?.into_iter().filter(|t| !done.contains(t)).collect();
        if pending.is_empty() {
            return Ok(());
        }
        for tid in pending {
            done.insert(tid);
            let before = ACKS.load(Ordering::SeqCst);
            // SAFETY: tgkill with integer arguments; the thread belongs to this process.
            let r = unsafe { libc::syscall(libc::SYS_tgkill, pid, tid, sig) };
            if r != 0 {
                if errno() == libc::ESRCH {
                    continue; // exited meanwhile
                }
                return Err(DropError::Thread {
                    tid,
                    step: "tgkill",
                    source: std::io::Error::last_os_error(),
                });
            }
            let start = Instant::now();
            while ACKS.load(Ordering::SeqCst) == before {
                if start.elapsed() > THREAD_TIMEOUT {
                    // A thread that exited after the signal was queued never answers.
                    if std::fs::metadata(format!("/proc/self/task/{tid}")).is_err() {
                        break;
                    }
                    return Err(DropError::Timeout { tid, waited: THREAD_TIMEOUT });
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            let f = FAILURE.swap(0, Ordering::SeqCst);
            if f != 0 {
                return Err(failure(tid, f));
            }
        }
    }
}

/// Checks every thread's credentials against `keep`.
fn verify(keep: u64) -> Result<DropReport, DropError> {
    let mut report = DropReport { threads: 0, effective: 0, bounding: 0 };
    for tid in thread_ids()? {
        let Ok(status) = std::fs::read_to_string(format!("/proc/self/task/{tid}/status")) else {
            continue; // exited
        };
        let caps = ThreadCaps::parse(&status).ok_or_else(|| DropError::Process {
            step: "parsing /proc/self/task/*/status",
            source: std::io::Error::other(format!("thread {tid}: no Cap*/NoNewPrivs lines")),
        })?;
        check_thread(tid, &caps, keep)?;
        report.threads += 1;
        report.effective |= caps.effective;
        report.bounding |= caps.bounding;
    }
    Ok(report)
}

/// One thread's credentials against the kept set.
pub fn check_thread(tid: i32, caps: &ThreadCaps, keep: u64) -> Result<(), DropError> {
    let over = |field, value: u64, allowed: u64| {
        if value & !allowed == 0 {
            Ok(())
        } else {
            Err(DropError::Verify { tid, field, value, allowed })
        }
    };
    over("CapEff", caps.effective, keep)?;
    over("CapPrm", caps.permitted, keep)?;
    over("CapInh", caps.inheritable, 0)?;
    over("CapAmb", caps.ambient, 0)?;
    if caps.no_new_privs {
        Ok(())
    } else {
        Err(DropError::Verify { tid, field: "NoNewPrivs", value: 0, allowed: 1 })
    }
}

/// Lets members of `group` use the control socket: chown to the group, mode 0660.
pub fn share_control_socket(path: &std::path::Path, group: &str) -> Result<u32, DropError> {
    let err = |reason: String| DropError::Group { group: group.to_owned(), reason };
    let g = nix::unistd::Group::from_name(group)
        .map_err(|e| err(format!("looking it up: {e}")))?
        .ok_or_else(|| err("no such group".into()))?;
    nix::unistd::chown(path, None, Some(g.gid))
        .map_err(|e| err(format!("chown {}: {e}", path.display())))?;
    std::fs::set_permissions(
        path,
        <std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(0o660),
    )
    .map_err(|e| err(format!("chmod 0660 {}: {e}", path.display())))?;
    Ok(g.gid.as_raw())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capability_sets() {
        assert!(check_status("Name:\tx\nCapEff:\t000001ffffffffff\n").is_ok());
        let none = check_status("CapEff:\t0000000000000000\n").unwrap_err();
        assert_eq!(none.0, vec!["CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_BPF"]);
        assert!(none.to_string().contains("needs root"));
        // NET_ADMIN + NET_RAW + SYS_ADMIN (pre-5.8 kernels) is enough.
        let old_kernel = (1u64 << 12) | (1 << 13) | (1 << 21);
        assert!(check_status(&format!("CapEff:\t{old_kernel:016x}\n")).is_ok());
        assert!(check_status("nothing").is_err());
    }

    const STATUS: &str = "Name:\tfanoutd\nCapInh:\t0000000000000000\nCapPrm:\t0000008000007000\n\
CapEff:\t0000008000007000\nCapBnd:\t0000008000007000\nCapAmb:\t0000000000000000\nNoNewPrivs:\t1\n";

    #[test]
    fn thread_caps_parse_and_check() {
        let caps = ThreadCaps::parse(STATUS).unwrap();
        assert_eq!(caps.effective, (1 << 39) | (1 << 14) | (1 << 13) | (1 << 12));
        assert!(caps.no_new_privs);
        let keep = runtime_mask(40);
        assert_eq!(keep, caps.effective);
        assert!(check_thread(1, &caps, keep).is_ok());
        // One capability too many, an inheritable bit, or no no_new_privs: refused, by name.
        let wide = ThreadCaps { effective: caps.effective | (1 << 21), ..caps };
        let e = check_thread(7, &wide, keep).unwrap_err().to_string();
        assert!(e.contains("thread 7") && e.contains("CapEff"), "{e}");
        let inh = ThreadCaps { inheritable: 1, ..caps };
        assert!(check_thread(1, &inh, keep).unwrap_err().to_string().contains("CapInh"));
        let nnp = ThreadCaps { no_new_privs: false, ..caps };
        assert!(check_thread(1, &nnp, keep).unwrap_err().to_string().contains("NoNewPrivs"));
        assert_eq!(ThreadCaps::parse("CapEff:\t0\n"), None);
    }

    #[test]
    fn runtime_mask_per_kernel() {
        assert_eq!(
            cap_names(runtime_mask(40)),
            ["CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_BPF"]
        );
        // Before 5.8 (last cap 37) CAP_SYS_ADMIN is what bpf(2) wants.
        assert_eq!(
            cap_names(runtime_mask(37)),
            ["CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_SYS_ADMIN"]
        );
        assert_eq!(cap_names(1 << 2), ["cap2"]);
    }

    /// The drop itself runs in a child process (it is irreversible): this test re-runs the test
    /// binary on [`drop_in_child`] and checks its verdict.
    #[test]
    fn drop_reaches_every_thread() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: needs root");
            return;
        }
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "daemon::privileges::tests::drop_in_child",
                "--ignored",
                "--nocapture",
            ])
            .args(["--test-threads", "1"])
            .env("FANOUT_PRIVILEGE_CHILD", "1")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "child failed:\n{text}");
        assert!(text.contains("1 passed"), "child did not run the test:\n{text}");
    }

    #[test]
    #[ignore = "run by drop_reaches_every_thread in a child process"]
    fn drop_in_child() {
        if std::env::var_os("FANOUT_PRIVILEGE_CHILD").is_none() {
            return;
        }
        // Threads that exist before the drop, blocked the way fanoutd's readers are.
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let rx = std::sync::Arc::new(std::sync::Mutex::new(rx));
        let workers: Vec<_> = (0..4)
            .map(|_| {
                let rx = std::sync::Arc::clone(&rx);
                std::thread::spawn(move || {
                    let _ = rx.lock().map(|r| r.recv());
                })
            })
            .collect();
        let keep = runtime_mask(last_cap().unwrap());
        let report = drop_privileges(keep).unwrap();
        assert!(report.threads >= 5, "{report:?}");
        assert_eq!(report.effective, keep);
        assert_eq!(report.bounding & !keep, 0, "root has CAP_SETPCAP, so the bounding set shrinks");
        // A thread created afterwards inherits the reduced set.
        let later = std::thread::spawn(|| {
            ThreadCaps::parse(&std::fs::read_to_string("/proc/thread-self/status").unwrap())
                .unwrap()
        })
        .join()
        .unwrap();
        assert!(check_thread(0, &later, keep).is_ok(), "{later:?}");
        // Capabilities outside the set are really gone: chown needs CAP_CHOWN.
        let f = std::env::temp_dir().join(format!("fanout-priv-{}", std::process::id()));
        std::fs::write(&f, b"x").unwrap();
        let chown = nix::unistd::chown(&f, Some(nix::unistd::Uid::from_raw(65534)), None);
        let _ = std::fs::remove_file(&f);
        assert_eq!(chown, Err(nix::errno::Errno::EPERM));
        for _ in &workers {
            tx.send(()).unwrap();
        }
        for w in workers {
            w.join().unwrap();
        }
    }
}
