//! Bringing a topology up in namespaces and tearing it down: the [`Lab`] guard.
//!
//! Steps (each one recorded in the run's state file before it happens):
//! 1. one namespace per node (`ft<run>-<node>`), IPv6 off (no ND/MLD noise in the counters),
//!    rp_filter off, forwarding on for routers;
//! 2. one veth pair per link, created directly in both namespaces with deterministic MACs;
//! 3. per namespace one `ip -batch`: addresses, links up, permanent neighbour entries for every
//!    peer (no ARP on the links: counters count only test traffic), unicast routes along shortest
//!    paths;
//! 4. checksum and VLAN offloads off on every veth (XDP_REDIRECT does not support them), and the
//!    optional tbf rate limit per link;
//! 5. router software (smcrouted or fanoutd) per router; fanoutd in a protocol mode
//!    ([`FanoutdOptions`]: `dvmrp`, `linkstate`) is polled until the protocol has converged
//!    ([`Lab::wait_converged`]).
//!
//! Faults for experiments: [`Lab::set_link`] takes a link down (both ends, `ip link set down`)
//! and brings it back (restoring the permanent neighbour entries and unicast routes the kernel
//! dropped with it); [`Lab::kill_router`] / [`Lab::start_router`] / [`Lab::restart_router`]
//! kill a router's fanoutd with SIGKILL by PID and start it again with the same config;
//! [`Lab::freeze_router`] stops it with SIGSTOP (a silent failure) and lets it go on.
//!
//! Netlink is driven through `ip`/`tc`/`ethtool` rather than a netlink crate: one `ip -batch` per
//! namespace is simpler than an async rtnetlink stack and is what operators read anyway; every
//! failure carries the command line and stderr ([`crate::cmd`]). Sysctls are written directly
//! from a thread inside the namespace.
//!
//! Invariant: a [`Lab`] that is dropped without [`Lab::persist`] stops its processes and deletes
//! every namespace, even when bring-up failed half-way.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::cmd::{self, CmdError};
use crate::fanoutd::{FanoutdOptions, RouterIface, RoutingMode};
use crate::netns::{NetNs, NetNsError};
use crate::run::{self, IfaceState, NodeState, RunError, RunState};
use crate::topology::{mac_str, NodeKind, Plan, RouterSoftware, Topology};
use crate::{fanoutd, kernel_router};

#[derive(Debug, thiserror::Error)]
pub enum BringupError {
    #[error(transparent)]
    Cmd(#[from] CmdError),
    #[error(transparent)]
    NetNs(#[from] NetNsError),
    #[error(transparent)]
    Run(#[from] RunError),
    #[error("sysctl {key} in {ns}: {source}")]
    Sysctl { ns: String, key: String, source: std::io::Error },
    #[error("kernel router on {node}: {source}")]
    Kernel { node: String, source: kernel_router::KernelRouterError },
    #[error("fanoutd on {node}: {source}")]
    Fanoutd { node: String, source: fanoutd::FanoutdError },
    #[error("run {run}: {source} (everything created for the run was removed)")]
    InRun { run: String, source: Box<BringupError> },
    #[error("`{tool}` not found on PATH; install the Debian package `{package}`")]
    MissingTool { tool: &'static str, package: &'static str },
    #[error("this needs root (network namespaces, veths, AF_PACKET); run as root")]
    NotRoot,
    #[error("{mode} did not converge within {waited:?}: {last}")]
    NotConverged { mode: RoutingMode, waited: Duration, last: String },
    #[error("node `{0}` is not in this topology")]
    UnknownNode(String),
    #[error("no link joins `{a}` and `{b}`")]
    NoLink { a: String, b: String },
    #[error("`{0}` does not run fanoutd in this lab")]
    NotFanoutd(String),
}

/// Options for bringing a topology up.
#[derive(Debug, Clone, Default)]
pub struct UpOptions {
    /// Overrides the router software of every router.
    pub router: Option<RouterSoftware>,
    /// Use only the first N receivers for the multicast tree (static routes).
    pub fanout: Option<usize>,
}

/// A running topology. Tears everything down on drop unless persisted.
#[derive(Debug)]
pub struct Lab {
    pub plan: Plan,
    pub state: RunState,
    pub receivers: Vec<String>,
    /// Per node: the software that was started (routers) or `None`.
    pub software: Vec<RouterSoftware>,
    /// fanoutd control sockets per router node index.
    pub ctl_sockets: Vec<(usize, std::path::PathBuf)>,
    /// How every fanoutd of the lab is configured.
    pub fanoutd: FanoutdOptions,
    /// Links taken down by [`Lab::set_link`] (indices into the topology's links).
    pub down_links: BTreeSet<usize>,
    /// The config each fanoutd was started with, per router node index (for restarts).
    fanoutd_configs: BTreeMap<usize, String>,
    keep: bool,
    torn_down: bool,
}

fn write_sysctl(ns: &NetNs, kv: &[(String, &str)]) -> Result<(), BringupError> {
    let res = ns.run(|| {
        for (k, v) in kv {
            let path = format!("/proc/sys/{}", k.replace('.', "/"));
            if let Err(e) = std::fs::write(&path, v) {
                return Err((k.clone(), e));
            }
        }
        Ok(())
    })?;
    res.map_err(|(key, source)| BringupError::Sysctl { ns: ns.name().to_owned(), key, source })
}

impl Lab {
    /// Brings `topo` up under a fresh run id (fanoutd, where it runs, in static mode).
    pub fn up(topo: &Topology, opts: &UpOptions) -> Result<Lab, BringupError> {
        Lab::up_with(topo, opts, &FanoutdOptions::default())
    }

    /// Brings `topo` up with fanoutd configured by `fanoutd`. In a protocol mode (`dvmrp`,
    /// `linkstate`) every router runs fanoutd unless `opts.router` says otherwise, and this
    /// returns only once the protocol has converged (see [`Lab::wait_converged`]).
    pub fn up_with(
        topo: &Topology,
        opts: &UpOptions,
        fanoutd: &FanoutdOptions,
    ) -> Result<Lab, BringupError> {
        if !crate::netns::is_root() {
            return Err(BringupError::NotRoot);
        }
        let mut opts = opts.clone();
        if fanoutd.mode != RoutingMode::Static && opts.router.is_none() {
            opts.router = Some(RouterSoftware::Fanoutd);
        }
        let opts = &opts;
        require_tools(topo, opts)?;
        let router_label = match opts.router {
            None => "per-topology".to_owned(),
            Some(RouterSoftware::Fanoutd) => format!("fanoutd ({})", fanoutd.mode),
            Some(r) => r.to_string(),
        };
        let state = RunState::allocate(&topo.name, &router_label)?;
        let plan = Plan::new(topo, state.id());
        let receivers = plan.receivers(opts.fanout);
        let software = (0..topo.nodes.len())
            .map(|i| match topo.nodes[i].kind {
                NodeKind::Router => topo.software(i, opts.router),
                NodeKind::Host => RouterSoftware::None,
            })
            .collect();
        let mut lab = Lab {
            plan,
            state,
            receivers,
            software,
            ctl_sockets: Vec::new(),
            fanoutd: fanoutd.clone(),
            down_links: BTreeSet::new(),
            fanoutd_configs: BTreeMap::new(),
            keep: false,
            torn_down: false,
        };
        // On error, `lab` is dropped here and removes whatever was created.
        match lab.build() {
            Ok(()) => Ok(lab),
            Err(e) => Err(BringupError::InRun { run: lab.state.run.clone(), source: Box::new(e) }),
        }
    }

    pub fn run_id(&self) -> u16 {
        self.state.id()
    }

    /// The namespace of a node by name.
    pub fn ns(&self, node: &str) -> NetNs {
        NetNs::existing(&self.plan.ns_name(self.plan.idx(node)))
    }

    fn build(&mut self) -> Result<(), BringupError> {
        let plan = self.plan.clone();
        let topo = &plan.topo;
        for (i, node) in topo.nodes.iter().enumerate() {
            let name = plan.ns_name(i);
            self.state.namespaces.push(name.clone());
            self.state.nodes.push(NodeState {
                name: node.name.clone(),
                namespace: name.clone(),
                software: self.software[i].to_string(),
                interfaces: plan.ports[i]
                    .iter()
                    .map(|p| IfaceState {
                        name: p.ifname.clone(),
                        addr: format!("{}/{}", p.addr, p.prefix.len),
                        peer: format!("{} ({})", topo.nodes[p.peer_node].name, p.peer_ifname),
                    })
                    .collect(),
            });
            self.state.save()?;
            let mut ns = NetNs::create(&name)?;
            // Ownership of deletion is with the Lab (via the state file), not this guard.
            ns.persist();
            let mut kv: Vec<(String, &str)> = vec![
                ("net.ipv6.conf.all.disable_ipv6".into(), "1"),
                ("net.ipv6.conf.default.disable_ipv6".into(), "1"),
                ("net.ipv4.conf.all.rp_filter".into(), "0"),
                ("net.ipv4.conf.default.rp_filter".into(), "0"),
            ];
            if node.kind == NodeKind::Router {
                kv.push(("net.ipv4.ip_forward".into(), "1"));
            }
            write_sysctl(&ns, &kv)?;
        }
        for (li, _) in topo.links.iter().enumerate() {
            let l = &topo.links[li];
            let (a, b) = (plan.idx(&l.a), plan.idx(&l.b));
            let (Some(pa), Some(pb)) = (plan.port_on_link(a, li), plan.port_on_link(b, li)) else {
                continue;
            };
            cmd::run(
                &mut cmd::command(
                    "ip",
                    [
                        "link",
                        "add",
                        &pa.ifname,
                        "address",
                        &mac_str(pa.mac),
                        "netns",
                        &plan.ns_name(a),
                        "type",
                        "veth",
                        "peer",
                        "name",
                        &pb.ifname,
                        "address",
                        &mac_str(pb.mac),
                        "netns",
                        &plan.ns_name(b),
                    ],
                ),
                None,
            )?;
        }
        for i in 0..topo.nodes.len() {
            let ns = NetNs::existing(&plan.ns_name(i));
            let mut batch = String::new();
            for p in &plan.ports[i] {
                // rp_filter uses max(all, dev); per-device values are created from `default`.
                let _ = writeln!(batch, "addr add {}/{} dev {}", p.addr, p.prefix.len, p.ifname);
                let _ = writeln!(batch, "link set dev {} up", p.ifname);
                let _ = writeln!(
                    batch,
                    "neigh replace {} lladdr {} dev {} nud permanent",
                    p.peer_addr,
                    mac_str(p.peer_mac),
                    p.ifname
                );
            }
            for r in plan.unicast_routes(i) {
                let dest = if r.dest.len == 0 { "default".to_owned() } else { r.dest.to_string() };
                let _ = writeln!(batch, "route replace {dest} via {} dev {}", r.via, r.dev);
            }
            if !batch.is_empty() {
                cmd::run(&mut cmd::command("ip", ["-n", ns.name(), "-batch", "-"]), Some(&batch))?;
            }
            let mut script = String::new();
            for p in &plan.ports[i] {
                let _ = writeln!(
                    script,
                    "ethtool -K {} rx off tx off rxvlan off txvlan off >/dev/null || exit 1",
                    p.ifname
                );
                if let Some(rate) = p.rate_mbit {
                    let _ = writeln!(
                        script,
                        "tc qdisc replace dev {} root tbf rate {rate}mbit burst 64kb latency 50ms || exit 1",
                        p.ifname
                    );
                }
            }
            if !script.is_empty() {
                cmd::run(ns.command("sh").args(["-e", "-c", &script]), None)?;
            }
        }
        self.start_routers()
    }

    fn start_routers(&mut self) -> Result<(), BringupError> {
        let plan = self.plan.clone();
        let routes = plan.mc_routes(&self.receivers);
        let dir = run::run_dir(plan.run);
        for (i, node) in plan.topo.nodes.iter().enumerate() {
            if node.kind != NodeKind::Router {
                continue;
            }
            let my_routes = routes.get(&i).cloned().unwrap_or_default();
            let ifaces: Vec<String> = plan.ports[i].iter().map(|p| p.ifname.clone()).collect();
            let ns = NetNs::existing(&plan.ns_name(i));
            match self.software[i] {
                RouterSoftware::None => {}
                RouterSoftware::Kernel => {
                    let pid =
                        kernel_router::start(&ns, &node.name, &dir, &ifaces, &my_routes).map_err(
                            |source| BringupError::Kernel { node: node.name.clone(), source },
                        )?;
                    self.state.add_process(pid, &node.name, "smcrouted")?;
                    kernel_router::wait_ready(&ns, &node.name, pid, &dir, my_routes.len())
                        .map_err(|source| BringupError::Kernel {
                            node: node.name.clone(),
                            source,
                        })?;
                }
                RouterSoftware::Fanoutd => {
                    let socket = fanoutd::socket_path(&dir, &node.name);
                    let text = match self.fanoutd.mode {
                        RoutingMode::Static => fanoutd::config(&socket, &ifaces, &my_routes),
                        _ => fanoutd::mode_config(
                            &socket,
                            &self.fanoutd,
                            router_id(&plan, i),
                            &self.router_ifaces(i),
                        ),
                    };
                    self.fanoutd_configs.insert(i, text);
                    self.start_router_idx(i)?;
                    self.ctl_sockets.push((i, socket));
                }
            }
        }
        if self.fanoutd.mode != RoutingMode::Static {
            self.wait_converged(CONVERGE_TIMEOUT)?;
        }
        Ok(())
    }

    /// Interfaces of router `i` for a protocol-mode config: IGMP towards hosts, link costs.
    fn router_ifaces(&self, i: usize) -> Vec<RouterIface> {
        let topo = &self.plan.topo;
        self.plan.ports[i]
            .iter()
            .map(|p| RouterIface {
                name: p.ifname.clone(),
                igmp: topo.nodes[p.peer_node].kind == NodeKind::Host,
                cost: topo.links[p.link].cost,
            })
            .collect()
    }

    /// Starts router `i`'s fanoutd with its recorded config and waits until it answers.
    fn start_router_idx(&mut self, i: usize) -> Result<i32, BringupError> {
        let name = self.plan.topo.nodes[i].name.clone();
        let text =
            self.fanoutd_configs.get(&i).cloned().ok_or(BringupError::NotFanoutd(name.clone()))?;
        let ns = NetNs::existing(&self.plan.ns_name(i));
        let dir = run::run_dir(self.plan.run);
        let fd_err = |source| BringupError::Fanoutd { node: name.clone(), source };
        let d = fanoutd::start_with_config(&ns, &name, &dir, &text).map_err(fd_err)?;
        self.state.add_process(d.pid, &name, "fanoutd")?;
        fanoutd::wait_ready(&ns, &d).map_err(fd_err)?;
        Ok(d.pid)
    }

    /// What every fanoutd router must show once converged, given the links that are down.
    pub fn expected(&self) -> Vec<fanoutd::Expected> {
        let plan = &self.plan;
        self.ctl_sockets
            .iter()
            .map(|&(i, _)| {
                let runs_fanoutd = |n: usize| self.ctl_sockets.iter().any(|&(j, _)| j == n);
                fanoutd::Expected {
                    node: plan.topo.nodes[i].name.clone(),
                    router_id: router_id(plan, i),
                    peers: plan.ports[i]
                        .iter()
                        .filter(|p| runs_fanoutd(p.peer_node) && !self.down_links.contains(&p.link))
                        .map(|p| p.peer_addr)
                        .collect(),
                    attached: plan.ports[i]
                        .iter()
                        .map(|p| (p.prefix.network(), p.prefix.len))
                        .collect(),
                }
            })
            .collect()
    }

    /// One poll of every router: `Ok` when the lab's routing protocol has converged (always in
    /// static mode), else what is still missing.
    pub fn converged(&self) -> Result<(), String> {
        let (cmd, check): (&str, ConvergedCheck) = match self.fanoutd.mode {
            RoutingMode::Static => return Ok(()),
            RoutingMode::Dvmrp => ("neighbors", fanoutd::dvmrp_converged),
            RoutingMode::Linkstate => ("lsdb", fanoutd::linkstate_converged),
        };
        let mut outputs = Vec::new();
        for (i, sock) in &self.ctl_sockets {
            let out = fanoutd::fanoutctl(sock, &["show", cmd, "--json"])
                .map_err(|e| format!("{}: {e}", self.plan.topo.nodes[*i].name))?;
            outputs.push(serde_json::from_str(&out).map_err(|e| {
                format!("{}: `show {cmd} --json` is not JSON: {e}", self.plan.topo.nodes[*i].name)
            })?);
        }
        check(&self.expected(), &outputs)
    }

    /// Polls [`Lab::converged`] every 50 ms until it holds or `timeout` passes; returns how long
    /// it took. Use it after a fault to wait for the protocol to settle.
    pub fn wait_converged(&self, timeout: Duration) -> Result<Duration, BringupError> {
        let t0 = Instant::now();
        loop {
            let last = match self.converged() {
                Ok(()) => return Ok(t0.elapsed()),
                Err(e) => e,
            };
            if t0.elapsed() >= timeout {
                return Err(BringupError::NotConverged {
                    mode: self.fanoutd.mode,
                    waited: timeout,
                    last,
                });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The fanoutd control socket of router `node`.
    pub fn ctl_socket(&self, node: &str) -> Result<&Path, BringupError> {
        let i = self.node_idx(node)?;
        self.ctl_sockets
            .iter()
            .find(|(j, _)| *j == i)
            .map(|(_, p)| p.as_path())
            .ok_or_else(|| BringupError::NotFanoutd(node.to_owned()))
    }

    /// Runs `fanoutctl <args>` against router `node`; stdout on success, the error text else.
    pub fn fanoutctl(&self, node: &str, args: &[&str]) -> Result<String, String> {
        let sock = self.ctl_socket(node).map_err(|e| e.to_string())?;
        fanoutd::fanoutctl(sock, args)
    }

    fn node_idx(&self, node: &str) -> Result<usize, BringupError> {
        self.plan.topo.node_index(node).ok_or_else(|| BringupError::UnknownNode(node.to_owned()))
    }

    /// The index of the (first) link joining `a` and `b`.
    pub fn link_between(&self, a: &str, b: &str) -> Result<usize, BringupError> {
        self.node_idx(a)?;
        self.node_idx(b)?;
        self.plan
            .topo
            .links
            .iter()
            .position(|l| (l.a == a && l.b == b) || (l.a == b && l.b == a))
            .ok_or_else(|| BringupError::NoLink { a: a.to_owned(), b: b.to_owned() })
    }

    /// Takes the link between `a` and `b` down (`ip link set dev X down` on both ends, each in
    /// its namespace) or back up. Up also restores what the kernel removed with the link: the
    /// permanent neighbour entries of both ends and the unicast routes through them. Routing
    /// daemons are not told: they notice as they would on a real link (hellos, probes).
    pub fn set_link(&mut self, a: &str, b: &str, up: bool) -> Result<(), BringupError> {
        let li = self.link_between(a, b)?;
        let plan = self.plan.clone();
        for end in [plan.idx(a), plan.idx(b)] {
            let Some(p) = plan.port_on_link(end, li) else { continue };
            let ns = plan.ns_name(end);
            let mut batch =
                format!("link set dev {} {}\n", p.ifname, if up { "up" } else { "down" });
            if up {
                let _ = writeln!(
                    batch,
                    "neigh replace {} lladdr {} dev {} nud permanent",
                    p.peer_addr,
                    mac_str(p.peer_mac),
                    p.ifname
                );
                for r in plan.unicast_routes(end).iter().filter(|r| r.dev == p.ifname) {
                    let dest =
                        if r.dest.len == 0 { "default".to_owned() } else { r.dest.to_string() };
                    let _ = writeln!(batch, "route replace {dest} via {} dev {}", r.via, r.dev);
                }
            }
            cmd::run(&mut cmd::command("ip", ["-n", ns.as_str(), "-batch", "-"]), Some(&batch))?;
        }
        if up {
            self.down_links.remove(&li);
        } else {
            self.down_links.insert(li);
        }
        Ok(())
    }

    /// The PID of the running fanoutd of router `node`, if any.
    pub fn router_pid(&self, node: &str) -> Option<i32> {
        self.state
            .processes
            .iter()
            .rev()
            .find(|p| p.node == node && p.what == "fanoutd" && run::alive(p))
            .map(|p| p.pid)
    }

    /// Kills router `node`'s fanoutd with SIGKILL (by its recorded PID, no clean-up by the
    /// daemon: XDP stays attached, routes are not withdrawn) and waits until it is gone.
    /// Returns the PID killed.
    pub fn kill_router(&mut self, node: &str) -> Result<i32, BringupError> {
        let pid = self.router_pid(node).ok_or_else(|| BringupError::NotFanoutd(node.to_owned()))?;
        let target = nix::unistd::Pid::from_raw(pid);
        let _ = nix::sys::signal::kill(target, nix::sys::signal::Signal::SIGKILL);
        // Reap it if it is our child; otherwise wait for /proc to forget it.
        let _ = poll_until(200, Duration::from_millis(10), || {
            let _ = nix::sys::wait::waitpid(target, Some(nix::sys::wait::WaitPidFlag::WNOHANG));
            (self.router_pid(node) != Some(pid)).then_some(())
        });
        Ok(pid)
    }

    /// Copies the run directory (generated configs, router logs) into `dest` (created), e.g. to
    /// keep the logs of a test run before teardown removes them; returns the files copied.
    pub fn save_logs(&self, dest: &Path) -> std::io::Result<usize> {
        std::fs::create_dir_all(dest)?;
        let mut n = 0;
        for e in std::fs::read_dir(run::run_dir(self.plan.run))? {
            let e = e?;
            if e.file_type()?.is_file() {
                std::fs::copy(e.path(), dest.join(e.file_name()))?;
                n += 1;
            }
        }
        Ok(n)
    }

    /// Freezes (SIGSTOP) or thaws (SIGCONT) router `node`'s fanoutd by PID: a silent failure.
    /// Its interfaces stay up and nothing tells the neighbours, which notice only when their
    /// timers expire (link-state dead interval, DVMRP neighbour timeout); frames steered to its
    /// AF_XDP sockets are dropped meanwhile.
    pub fn freeze_router(&self, node: &str, frozen: bool) -> Result<i32, BringupError> {
        let pid = self.router_pid(node).ok_or_else(|| BringupError::NotFanoutd(node.to_owned()))?;
        let sig = if frozen {
            nix::sys::signal::Signal::SIGSTOP
        } else {
            nix::sys::signal::Signal::SIGCONT
        };
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), sig);
        Ok(pid)
    }

    /// Starts router `node`'s fanoutd again with the config it was first started with (after
    /// [`Lab::kill_router`]); returns once it answers on its control socket, with its PID.
    pub fn start_router(&mut self, node: &str) -> Result<i32, BringupError> {
        let i = self.node_idx(node)?;
        if !self.fanoutd_configs.contains_key(&i) {
            return Err(BringupError::NotFanoutd(node.to_owned()));
        }
        if let Some(pid) = self.router_pid(node) {
            return Ok(pid);
        }
        self.start_router_idx(i)
    }

    /// Detaches XDP programs left on router `node`'s interfaces, as an operator would
    /// (`ip link set dev X xdpgeneric off` / `xdpdrv off`); returns the interfaces that had one.
    ///
    /// A SIGKILLed fanoutd cannot detach its programs; a new fanoutd removes such orphans itself
    /// (dataplane `remove_orphan`), so restarts do not need this. It is for experiments that
    /// want the interfaces bare, and for daemons older than that fix.
    pub fn clear_stale_xdp(&self, node: &str) -> Result<Vec<String>, BringupError> {
        let i = self.node_idx(node)?;
        let ns = self.plan.ns_name(i);
        let mut cleared = Vec::new();
        for p in &self.plan.ports[i] {
            let show = cmd::run(
                &mut cmd::command("ip", ["-n", ns.as_str(), "link", "show", "dev", &p.ifname]),
                None,
            )?;
            if !show.contains("xdp") {
                continue;
            }
            for off in ["xdpgeneric", "xdpdrv"] {
                // Only one of the two modes is attached; the other one fails harmlessly.
                let _ = cmd::run(
                    &mut cmd::command(
                        "ip",
                        ["-n", ns.as_str(), "link", "set", "dev", &p.ifname, off, "off"],
                    ),
                    None,
                );
            }
            cleared.push(p.ifname.clone());
        }
        Ok(cleared)
    }

    /// `kill -9`, then start again with the same config: (old PID, new PID). The killed daemon's
    /// XDP programs are left for the new one to clean up, as after a real crash.
    pub fn restart_router(&mut self, node: &str) -> Result<(i32, i32), BringupError> {
        let old = self.kill_router(node)?;
        let new = self.start_router(node)?;
        Ok((old, new))
    }

    /// Leaves everything running after this guard is dropped (`fanout-testbed up`).
    pub fn persist(mut self) -> RunState {
        self.keep = true;
        self.state.clone()
    }

    /// Tears down now, reporting errors (drop does the same but can only print them).
    pub fn down(mut self) -> Result<Vec<String>, BringupError> {
        self.torn_down = true;
        Ok(run::teardown(self.run_id())?)
    }

    /// PIDs of router processes, with their node names.
    pub fn router_pids(&self) -> Vec<(String, i32)> {
        self.state.processes.iter().map(|p| (p.node.clone(), p.pid)).collect()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if self.keep || self.torn_down {
            return;
        }
        if let Err(e) = run::teardown(self.run_id()) {
            eprintln!("fanout-testbed: teardown of run {}: {e}", self.state.run);
        }
    }
}

/// Whether `tool` is an executable file in a PATH directory.
pub fn on_path(tool: &str) -> bool {
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/sbin:/usr/bin:/sbin:/bin".into());
    std::env::split_paths(&path).any(|d| {
        std::fs::metadata(d.join(tool)).is_ok_and(|m| {
            m.is_file() && std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o111 != 0
        })
    })
}

/// Checks up front for every external tool the bring-up will run, so a missing one is a clear
/// error instead of a failure half-way through.
fn require_tools(topo: &Topology, opts: &UpOptions) -> Result<(), BringupError> {
    let mut need: Vec<(&'static str, &'static str)> =
        vec![("ip", "iproute2"), ("ethtool", "ethtool")];
    if topo.links.iter().any(|l| l.rate_mbit.is_some()) {
        need.push(("tc", "iproute2"));
    }
    let kernel = topo.nodes.iter().enumerate().any(|(i, n)| {
        n.kind == NodeKind::Router && topo.software(i, opts.router) == RouterSoftware::Kernel
    });
    if kernel {
        need.push(("smcrouted", "smcroute"));
    }
    for (tool, package) in need {
        if !on_path(tool) {
            return Err(BringupError::MissingTool { tool, package });
        }
    }
    Ok(())
}

/// A convergence predicate over every router's `fanoutctl show ... --json` output.
type ConvergedCheck = fn(&[fanoutd::Expected], &[serde_json::Value]) -> Result<(), String>;

/// How long bring-up waits for a routing protocol to converge.
pub const CONVERGE_TIMEOUT: Duration = Duration::from_secs(30);

/// The router id of router `i` in link-state mode: its lowest interface address.
pub fn router_id(plan: &Plan, i: usize) -> Ipv4Addr {
    plan.ports[i].iter().map(|p| p.addr).min().unwrap_or(Ipv4Addr::UNSPECIFIED)
}

/// Polls `f` every `wait` up to `count` times until it returns `Some` (FRR `run_and_expect`).
pub fn poll_until<T>(count: u32, wait: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    for i in 0..count {
        if let Some(v) = f() {
            return Some(v);
        }
        if i + 1 < count {
            std::thread::sleep(wait);
        }
    }
    None
}
