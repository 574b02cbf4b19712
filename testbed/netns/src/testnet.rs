//! A throwaway network for one privileged test: namespaces and veth pairs named under an id that
//! is unique per test run, and the processes the test started inside them.
//!
//! Invariants:
//! - Every namespace is named `<id>-<short>` and every interface `<id><short>`, where `<id>` is
//!   the caller's tag plus this process's PID and a per-process counter: tests in parallel (and
//!   runs of different test binaries) never collide, and `ip netns list` shows which test left
//!   something behind.
//! - Dropping a [`TestNet`] deletes its namespaces (which deletes their veths), on success and on
//!   panic alike. A [`Spawned`] process is ended by its PID when its guard drops; nothing is ever
//!   killed by name.
//! - Interface names are checked against IFNAMSIZ when built, so a long tag fails loudly instead of
//!   being truncated by the kernel into a name that collides.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::cmd::{self, CmdError};
use crate::{NetNs, NetNsError};

/// Longest interface name the kernel accepts (IFNAMSIZ - 1).
const MAX_IFNAME: usize = 15;

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// What can go wrong while building a test network.
#[derive(Debug, thiserror::Error)]
pub enum TestNetError {
    #[error(transparent)]
    Cmd(#[from] CmdError),
    #[error(transparent)]
    NetNs(#[from] NetNsError),
    #[error("interface name {0:?} is longer than {MAX_IFNAME} bytes; use a shorter tag or name")]
    NameTooLong(String),
    #[error("no interface {dev} in namespace {ns}")]
    NoSuchInterface { ns: String, dev: String },
    #[error("cannot start {what}: {source}")]
    Spawn { what: String, source: std::io::Error },
}

/// One end of a veth pair: its namespace, its name and, optionally, an address with prefix length
/// (`"10.1.0.1/24"`).
#[derive(Debug, Clone, Copy)]
pub struct End<'a> {
    pub ns: &'a str,
    pub dev: &'a str,
    pub addr: Option<&'a str>,
}

impl<'a> End<'a> {
    pub fn new(ns: &'a str, dev: &'a str, addr: &'a str) -> Self {
        End { ns, dev, addr: Some(addr) }
    }

    /// An end without an address (a port that only the data plane uses).
    pub fn bare(ns: &'a str, dev: &'a str) -> Self {
        End { ns, dev, addr: None }
    }
}

/// Namespaces of one test, deleted on drop.
#[derive(Debug)]
pub struct TestNet {
    id: String,
    namespaces: Vec<NetNs>,
}

impl TestNet {
    /// Starts an empty network whose names begin with `tag` (a few letters naming the test).
    pub fn new(tag: &str) -> Self {
        let id = format!(
            "{tag}{:x}{}",
            std::process::id() % 0xfffff,
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        TestNet { id, namespaces: Vec::new() }
    }

    /// The run-unique prefix of every name in this network.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Creates namespace `<id>-<short>` with loopback up and IPv6 off (no router solicitations or
    /// MLD reports in the counters), and returns its name.
    pub fn add_ns(&mut self, short: &str) -> Result<String, TestNetError> {
        let name = format!("{}-{short}", self.id);
        self.namespaces.push(NetNs::create(&name)?);
        for key in ["all", "default"] {
            self.sysctl(&name, &format!("net.ipv6.conf.{key}.disable_ipv6"), "1")?;
        }
        Ok(name)
    }

    /// The run-unique interface name `<id><short>`.
    pub fn ifname(&self, short: &str) -> Result<String, TestNetError> {
        let name = format!("{}{short}", self.id);
        if name.len() > MAX_IFNAME {
            return Err(TestNetError::NameTooLong(name));
        }
        Ok(name)
    }

    /// Creates a veth pair between two namespaces (or within one), gives each end its address,
    /// turns checksum offload off and brings both ends up.
    ///
    /// Offload off: a veth hands CHECKSUM_PARTIAL packets whose UDP checksum only a driver would
    /// finish; once XDP redirects such a packet to user space it leaves with a wrong checksum.
    pub fn veth(&self, a: End<'_>, b: End<'_>) -> Result<(), TestNetError> {
        for dev in [a.dev, b.dev] {
            if dev.len() > MAX_IFNAME {
                return Err(TestNetError::NameTooLong(dev.to_owned()));
            }
        }
        self.ip(
            a.ns,
            &["link", "add", a.dev, "type", "veth", "peer", "name", b.dev, "netns", b.ns],
        )?;
        for end in [a, b] {
            if let Some(addr) = end.addr {
                self.ip(end.ns, &["addr", "add", addr, "dev", end.dev])?;
            }
            cmd::run(
                &mut self.command(end.ns, "ethtool", ["-K", end.dev, "tx", "off", "rx", "off"]),
                None,
            )?;
            self.ip(end.ns, &["link", "set", end.dev, "up"])?;
        }
        Ok(())
    }

    /// Runs `ip <args>` inside `ns` and returns its stdout.
    pub fn ip(&self, ns: &str, args: &[&str]) -> Result<String, TestNetError> {
        let mut c = cmd::command("ip", ["-n", ns]);
        c.args(args);
        Ok(cmd::run(&mut c, None)?)
    }

    /// Sets `key` (dotted, e.g. `net.ipv4.ip_forward`) to `value` inside `ns`.
    pub fn sysctl(&self, ns: &str, key: &str, value: &str) -> Result<(), TestNetError> {
        cmd::run(&mut self.command(ns, "sysctl", ["-qw", &format!("{key}={value}")]), None)?;
        Ok(())
    }

    /// A command that runs `program args` inside `ns` (`ip netns exec`, which execs the program
    /// after `setns`, so the child's PID is the program's own).
    pub fn command<I, S>(&self, ns: &str, program: impl AsRef<Path>, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", ns]).arg(program.as_ref()).args(args);
        c
    }

    /// Starts `program args` inside `ns` (stdin closed), ended by PID when the guard drops.
    pub fn spawn<I, S>(
        &self,
        ns: &str,
        program: impl AsRef<Path>,
        args: I,
    ) -> Result<Spawned, TestNetError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        let what = format!("{} in {ns}", program.as_ref().display());
        let child = self
            .command(ns, program, args)
            .stdin(Stdio::null())
            .spawn()
            .map_err(|source| TestNetError::Spawn { what, source })?;
        Ok(Spawned(child))
    }

    /// The ifindex of `dev` inside `ns`.
    pub fn ifindex(&self, ns: &str, dev: &str) -> Result<u32, TestNetError> {
        let out = self.ip(ns, &["-o", "link", "show", "dev", dev])?;
        out.split(':')
            .next()
            .and_then(|i| i.trim().parse().ok())
            .ok_or_else(|| TestNetError::NoSuchInterface { ns: ns.to_owned(), dev: dev.to_owned() })
    }

    /// Runs `f` on a thread inside `ns` and waits for its result.
    pub fn run_in<F, R>(&self, ns: &str, f: F) -> Result<R, TestNetError>
    where
        F: FnOnce() -> R + Send,
        R: Send,
    {
        Ok(NetNs::existing(ns).run(f)?)
    }

    /// Starts `f` on a thread that lives inside `ns`; join the handle for its result.
    pub fn spawn_in<F, R>(
        &self,
        ns: &str,
        f: F,
    ) -> Result<std::thread::JoinHandle<Result<R, NetNsError>>, TestNetError>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        Ok(NetNs::existing(ns).spawn(f)?)
    }
}

/// Starts `f` on a new thread inside namespace `ns` (panics on that thread, naming the namespace,
/// if it cannot enter it); the calling thread stays where it is.
pub fn thread_in<F, R>(ns: &str, f: F) -> std::thread::JoinHandle<R>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    let ns = NetNs::existing(ns);
    std::thread::spawn(move || match ns.run(f) {
        Ok(r) => r,
        Err(e) => panic!("{e}"),
    })
}

/// A process a test started; on drop it is killed by its PID (if still running) and reaped.
#[derive(Debug)]
pub struct Spawned(Child);

impl Spawned {
    pub fn pid(&self) -> Pid {
        Pid::from_raw(i32::try_from(self.0.id()).expect("PIDs fit pid_t"))
    }

    /// Sends `signal` to the process (by PID).
    pub fn signal(&self, signal: Signal) -> nix::Result<()> {
        kill(self.pid(), signal)
    }

    /// Whether the process has exited, and how (reaps it when it has).
    pub fn try_wait(&mut self) -> std::io::Result<Option<std::process::ExitStatus>> {
        self.0.try_wait()
    }

    /// Waits up to `limit` for the process to exit; `None` if it is still running.
    pub fn wait_timeout(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let mut status = None;
        wait_for(limit, || {
            status = self.0.try_wait().ok().flatten();
            status.is_some()
        });
        status
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        if self.0.try_wait().ok().flatten().is_none() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Polls `cond` every 50 ms until it holds or `limit` passes; true if it held.
pub fn wait_for(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// True when the test may build namespaces; otherwise says why it is skipped.
pub fn privileged() -> bool {
    if crate::is_root() {
        return true;
    }
    eprintln!("skipped: needs root (network namespaces, XDP, AF_XDP)");
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_bounded() {
        let a = TestNet::new("t");
        let b = TestNet::new("t");
        assert_ne!(a.id(), b.id());
        assert!(a.ifname("x").unwrap().starts_with(a.id()));
        assert!(matches!(a.ifname("a-name-far-too-long"), Err(TestNetError::NameTooLong(_))));
    }

    #[test]
    fn wait_for_returns_when_the_condition_holds_or_time_is_up() {
        let mut n = 0;
        assert!(wait_for(Duration::from_secs(5), || {
            n += 1;
            n == 3
        }));
        assert_eq!(n, 3);
        assert!(!wait_for(Duration::from_millis(120), || false));
    }

    #[test]
    fn veth_pair_with_addresses_in_two_namespaces() {
        if !privileged() {
            return;
        }
        let mut net = TestNet::new("nt");
        let a = net.add_ns("a").unwrap();
        let b = net.add_ns("b").unwrap();
        let (da, db) = (net.ifname("a").unwrap(), net.ifname("b").unwrap());
        net.veth(End::new(&a, &da, "10.201.0.1/24"), End::new(&b, &db, "10.201.0.2/24")).unwrap();
        assert!(net.ifindex(&a, &da).unwrap() > 0);
        let out = net.ip(&b, &["-o", "addr", "show", "dev", &db]).unwrap();
        assert!(out.contains("10.201.0.2/24"), "{out}");
        // A datagram crosses the pair: sockets opened inside each namespace stay bound to it.
        let rx = net
            .run_in(&b, || {
                let s = std::net::UdpSocket::bind("10.201.0.2:7000").unwrap();
                s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                s
            })
            .unwrap();
        net.run_in(&a, || {
            let s = std::net::UdpSocket::bind("10.201.0.1:0").unwrap();
            s.send_to(b"hello", "10.201.0.2:7000").unwrap();
        })
        .unwrap();
        let mut buf = [0u8; 16];
        let (n, from) = rx.recv_from(&mut buf).unwrap();
        assert_eq!((&buf[..n], from.ip().to_string().as_str()), (&b"hello"[..], "10.201.0.1"));
        let names = [a.clone(), b.clone()];
        drop(net);
        for n in names {
            assert!(!Path::new("/run/netns").join(n).exists(), "namespace left behind");
        }
    }
}
