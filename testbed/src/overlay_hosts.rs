//! Overlay multicast on the hosts of a running [`Lab`]: fanoutd in routing mode `overlay` on a
//! chosen set of host namespaces, while the routers forward plain unicast (router software
//! `none`). Used by the overlay scenario test and by `compare`.
//!
//! ```text
//!   host namespace (one per overlay node)
//!   ┌──────────────────────────────────────────────────────────┐
//!   │ apps ── lan1 ═veth═ lan0 ── fanoutd ── wan (lab port) ───┼──► unicast routers
//!   │ 172.31.i.2       172.31.i.1   (XDP + AF_XDP on lan0, wan) │
//!   └──────────────────────────────────────────────────────────┘
//! ```
//!
//! A host has a single lab port, and XDP sees only what a port *receives*, so each overlay host
//! gets a veth pair inside its namespace: local apps send to and receive from `lan1`
//! ([`OverlayHost::app_addr`], [`OverlayHost::app_dev`]); fanoutd owns `lan0` (the overlay's
//! local interface) and the lab port (the node's overlay address is that port's address).
//!
//! Lifecycle: [`OverlayHosts::start`] writes one config per host, starts the daemons and waits
//! until every node has joined and holds a tree for every member; [`OverlayHosts::kill`] sends
//! SIGKILL to one daemon by PID, [`OverlayHosts::restart`] starts it again with the same config,
//! [`OverlayHosts::stop`] (or drop) ends every daemon by PID and deletes the veth pairs.
//! Invariants: only processes started here are signalled, by PID; nothing outlives the guard.

use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use controlplane::ctl::{OverlayData, OverlayProtocolData};

use crate::bringup::Lab;
use crate::fanoutd::{fanoutctl, fanoutd_binary};

/// How the overlay's neighbours are chosen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OverlayTopology {
    /// Configured links between host names, with costs (the same on every node).
    Static(Vec<(String, String, u32)>),
    /// Random neighbours, improved by RTT probes (docs/overlay.md).
    SelfOrganising { target_degree: usize, max_degree: usize, probe_interval: Duration },
}

/// What to run: `hosts[0]` is the rendezvous.
#[derive(Debug, Clone)]
pub struct OverlayOptions {
    pub hosts: Vec<String>,
    pub group: Ipv4Addr,
    pub topology: OverlayTopology,
    /// Heartbeat interval (a neighbour is dead after 3 missed).
    pub heartbeat: Duration,
    /// Hex group key (16 to 64 bytes).
    pub key: String,
}

impl OverlayOptions {
    /// 200 ms heartbeats and a fixed test key.
    pub fn new(hosts: Vec<String>, group: Ipv4Addr, topology: OverlayTopology) -> Self {
        OverlayOptions {
            hosts,
            group,
            topology,
            heartbeat: Duration::from_millis(200),
            key: "5a5a0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e".into(),
        }
    }
}

/// Why the overlay could not be run.
#[derive(Debug, thiserror::Error)]
pub enum OverlayHostsError {
    #[error("`{0}` is not a host with one port in this lab")]
    NotAHost(String),
    #[error("setting up {host}: {message}")]
    Setup { host: String, message: String },
    #[error("{0}")]
    Fanoutd(#[from] crate::fanoutd::FanoutdError),
    #[error("the overlay did not converge within {waited:?}: {last}")]
    NotConverged { waited: Duration, last: String },
    #[error("host index {0} is out of range or not running")]
    NoSuchHost(usize),
}

/// One overlay node.
#[derive(Debug, Clone)]
pub struct OverlayHost {
    pub node: String,
    pub ns: String,
    /// The node's overlay address (its lab port's address).
    pub address: Ipv4Addr,
    /// Where local apps send from and receive on.
    pub app_addr: Ipv4Addr,
    pub app_dev: String,
    pub socket: PathBuf,
    /// The lab port and fanoutd's end of the local veth pair.
    pub wan_dev: String,
    pub lan_dev: String,
    config: PathBuf,
    log: PathBuf,
}

/// The running overlay daemons; stops them on drop.
#[derive(Debug)]
pub struct OverlayHosts {
    pub hosts: Vec<OverlayHost>,
    daemons: Vec<Option<Child>>,
    /// Configs, sockets and logs; removed by [`OverlayHosts::stop`].
    pub dir: PathBuf,
}

fn run(mut c: Command, host: &str) -> Result<(), OverlayHostsError> {
    let out = c.output().map_err(|e| OverlayHostsError::Setup {
        host: host.to_owned(),
        message: format!("{c:?}: {e}"),
    })?;
    if out.status.success() {
        Ok(())
    } else {
        Err(OverlayHostsError::Setup {
            host: host.to_owned(),
            message: format!("{c:?}: {}", String::from_utf8_lossy(&out.stderr).trim()),
        })
    }
}

fn ip_ns(ns: &str, args: &[&str]) -> Command {
    let mut c = Command::new("ip");
    c.args(["netns", "exec", ns]).args(args);
    c
}

impl OverlayHosts {
    /// Sets the hosts up, starts fanoutd on each and waits (up to 60 s) until the overlay has
    /// converged ([`OverlayHosts::wait_converged`]).
    pub fn start(lab: &Lab, opts: &OverlayOptions) -> Result<OverlayHosts, OverlayHostsError> {
        let dir = std::env::temp_dir().join(format!(
            "fanout-overlay-{:04x}-{}",
            lab.plan.run,
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).map_err(|e| OverlayHostsError::Setup {
            host: "-".into(),
            message: format!("creating {}: {e}", dir.display()),
        })?;
        let mut hosts = Vec::new();
        for (i, name) in opts.hosts.iter().enumerate() {
            let idx = lab
                .plan
                .topo
                .node_index(name)
                .ok_or_else(|| OverlayHostsError::NotAHost(name.clone()))?;
            let [port] = lab.plan.ports[idx].as_slice() else {
                return Err(OverlayHostsError::NotAHost(name.clone()));
            };
            let octet = u8::try_from(i).map_err(|_| OverlayHostsError::NotAHost(name.clone()))?;
            hosts.push(OverlayHost {
                node: name.clone(),
                ns: lab.plan.ns_name(idx),
                address: port.addr,
                app_addr: Ipv4Addr::new(172, 31, octet, 2),
                app_dev: format!("o{:04x}{i}b", lab.plan.run),
                socket: dir.join(format!("{name}.sock")),
                wan_dev: port.ifname.clone(),
                lan_dev: format!("o{:04x}{i}a", lab.plan.run),
                config: dir.join(format!("{name}.toml")),
                log: dir.join(format!("{name}.log")),
            });
        }
        let mut me = OverlayHosts { hosts, daemons: Vec::new(), dir };
        for i in 0..me.hosts.len() {
            me.setup_host(i, opts)?;
        }
        for i in 0..me.hosts.len() {
            let child = me.spawn(i)?;
            me.daemons.push(Some(child));
        }
        me.wait_converged(Duration::from_secs(60))?;
        Ok(me)
    }

    fn setup_host(&self, i: usize, opts: &OverlayOptions) -> Result<(), OverlayHostsError> {
        let h = &self.hosts[i];
        let (lan0, wan) = (h.lan_dev.clone(), h.wan_dev.clone());
        let ns = h.ns.as_str();
        run(
            ip_ns(ns, &["ip", "link", "add", &lan0, "type", "veth", "peer", "name", &h.app_dev]),
            ns,
        )?;
        for (dev, addr) in
            [(&lan0, format!("172.31.{i}.1/32")), (&h.app_dev, format!("{}/32", h.app_addr))]
        {
            run(ip_ns(ns, &["ip", "addr", "add", &addr, "dev", dev]), ns)?;
            // CHECKSUM_PARTIAL packets are wrong once XDP redirects them to user space.
            run(ip_ns(ns, &["ethtool", "-K", dev, "tx", "off", "rx", "off"]), ns)?;
            run(ip_ns(ns, &["ip", "link", "set", dev, "up"]), ns)?;
        }
        run(ip_ns(ns, &["ethtool", "-K", &wan, "tx", "off", "rx", "off"]), ns)?;
        // Decapsulated datagrams come from other hosts' app addresses, whose reverse path is
        // the lab port.
        for key in ["all", "default", wan.as_str(), h.app_dev.as_str()] {
            run(ip_ns(ns, &["sysctl", "-qw", &format!("net.ipv4.conf.{key}.rp_filter=0")]), ns)?;
        }
        let mut c = format!(
            "[daemon]\ncontrol_socket = \"{}\"\n[routing]\nmode = \"overlay\"\n\
             [[interface]]\nname = \"{wan}\"\n[[interface]]\nname = \"{lan0}\"\n\
             [overlay]\naddress = \"{}\"\nrendezvous = \"{}\"\nlocal_interface = \"{lan0}\"\n\
             groups = [\"{}\"]\nkeys = [{{ id = 1, secret = \"{}\" }}]\n\
             heartbeat_interval = \"{}ms\"\njoin_retry = \"300ms\"\nlsa_refresh = \"2s\"\n",
            h.socket.display(),
            h.address,
            self.hosts[0].address,
            opts.group,
            opts.key,
            opts.heartbeat.as_millis().max(1),
        );
        match &opts.topology {
            OverlayTopology::Static(links) => {
                for (a, b, cost) in links {
                    let addr = |n: &str| {
                        self.hosts
                            .iter()
                            .find(|h| h.node == n)
                            .map(|h| h.address)
                            .ok_or_else(|| OverlayHostsError::NotAHost(n.to_owned()))
                    };
                    let _ = write!(
                        c,
                        "[[overlay.link]]\na = \"{}\"\nb = \"{}\"\ncost = {cost}\n",
                        addr(a)?,
                        addr(b)?
                    );
                }
            }
            OverlayTopology::SelfOrganising { target_degree, max_degree, probe_interval } => {
                let _ = write!(
                    c,
                    "topology = \"self-organising\"\ntarget_degree = {target_degree}\n\
                     max_degree = {max_degree}\nprobe_interval = \"{}ms\"\n",
                    probe_interval.as_millis().max(1)
                );
            }
        }
        std::fs::write(&h.config, c).map_err(|e| OverlayHostsError::Setup {
            host: h.node.clone(),
            message: format!("writing {}: {e}", h.config.display()),
        })
    }

    fn spawn(&self, i: usize) -> Result<Child, OverlayHostsError> {
        let h = &self.hosts[i];
        let bin = fanoutd_binary()?;
        let log = std::fs::File::create(&h.log).map_err(|e| OverlayHostsError::Setup {
            host: h.node.clone(),
            message: format!("log {}: {e}", h.log.display()),
        })?;
        let _ = std::fs::remove_file(&h.socket);
        // `ip netns exec` execs fanoutd after setns, so the child PID is the daemon's.
        Command::new("ip")
            .args(["netns", "exec", &h.ns])
            .arg(bin)
            .args(["--foreground", "--config"])
            .arg(&h.config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| OverlayHostsError::Setup {
                host: h.node.clone(),
                message: format!("spawn fanoutd: {e}"),
            })
    }

    /// `show overlay --json` of host `i` (its protocol part), if the daemon answers.
    pub fn show(&self, i: usize) -> Option<OverlayProtocolData> {
        let out = fanoutctl(&self.hosts.get(i)?.socket, &["show", "overlay", "--json"]).ok()?;
        serde_json::from_str::<OverlayData>(&out).ok()?.protocol
    }

    /// Waits until every running node has joined, lists exactly the running nodes as members
    /// (or all of them: the rendezvous does not age crashed members), holds a tree for every
    /// member and has resolved its next hops. Returns how long that took.
    pub fn wait_converged(&self, limit: Duration) -> Result<Duration, OverlayHostsError> {
        let start = Instant::now();
        let running: Vec<usize> = (0..self.hosts.len())
            .filter(|&i| self.daemons.get(i).is_some_and(Option::is_some))
            .collect();
        let mut last = String::from("no answer yet");
        while start.elapsed() < limit {
            let states: Vec<Option<OverlayProtocolData>> =
                running.iter().map(|&i| self.show(i)).collect();
            let ok = states.iter().zip(&running).all(|(s, &i)| {
                let Some(s) = s else {
                    last = format!("{} does not answer", self.hosts[i].node);
                    return false;
                };
                s.unresolved.is_empty()
                    && s.groups.iter().all(|g| {
                        let want =
                            running.iter().all(|&j| g.members.contains(&self.hosts[j].address));
                        let trees = running
                            .iter()
                            .all(|&j| g.trees.iter().any(|t| t.origin == self.hosts[j].address));
                        if !(g.joined && want && trees) {
                            last = format!(
                                "{}: joined {}, {} members, {} trees",
                                self.hosts[i].node,
                                g.joined,
                                g.members.len(),
                                g.trees.len()
                            );
                        }
                        g.joined && want && trees
                    })
            });
            if ok {
                return Ok(start.elapsed());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err(OverlayHostsError::NotConverged { waited: limit, last })
    }

    /// The PID of host `i`'s daemon, if running.
    pub fn pid(&self, i: usize) -> Option<i32> {
        let c = self.daemons.get(i)?.as_ref()?;
        i32::try_from(c.id()).ok()
    }

    /// SIGKILL to host `i`'s daemon (by PID), reaped. Its XDP program stays attached (the
    /// kernel detaches it only with the interface): restart it to recover.
    pub fn kill(&mut self, i: usize) -> Result<(), OverlayHostsError> {
        let mut c = self
            .daemons
            .get_mut(i)
            .and_then(Option::take)
            .ok_or(OverlayHostsError::NoSuchHost(i))?;
        let _ = c.kill();
        let _ = c.wait();
        Ok(())
    }

    /// Starts host `i`'s daemon again with its config (after [`OverlayHosts::kill`]).
    pub fn restart(&mut self, i: usize) -> Result<(), OverlayHostsError> {
        if self.daemons.get(i).is_none_or(Option::is_some) {
            return Err(OverlayHostsError::NoSuchHost(i));
        }
        // A killed daemon leaves its XDP program attached, and fanoutd never replaces a
        // program it did not attach: detach it as an operator would after a crash.
        let h = &self.hosts[i];
        for dev in [&h.wan_dev, &h.lan_dev] {
            run(ip_ns(&h.ns, &["ip", "link", "set", "dev", dev, "xdp", "off"]), &h.node)?;
        }
        let child = self.spawn(i)?;
        self.daemons[i] = Some(child);
        Ok(())
    }

    /// The last lines of host `i`'s daemon log (for failure messages).
    pub fn log_tail(&self, i: usize) -> String {
        let text = self
            .hosts
            .get(i)
            .and_then(|h| std::fs::read_to_string(&h.log).ok())
            .unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// SIGTERM to every daemon (by PID; each leaves the group and detaches XDP), waits up to
    /// 5 s each, then SIGKILL; deletes the veth pairs.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        let mut running: Vec<Child> = self.daemons.iter_mut().filter_map(Option::take).collect();
        for c in &mut running {
            if let Ok(pid) = i32::try_from(c.id()) {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGTERM,
                );
            }
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline && c.try_wait().ok().flatten().is_none() {
                std::thread::sleep(Duration::from_millis(50));
            }
            if c.try_wait().ok().flatten().is_none() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
        for h in &self.hosts {
            // Deleting one end removes the pair; the namespace may already be gone.
            let _ = ip_ns(&h.ns, &["ip", "link", "del", &h.app_dev]).output();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Drop for OverlayHosts {
    fn drop(&mut self) {
        self.shutdown();
    }
}
