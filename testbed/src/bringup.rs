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
//! 5. router software (smcrouted or fanoutd) per router.
//!
//! Netlink is driven through `ip`/`tc`/`ethtool` rather than a netlink crate: one `ip -batch` per
//! namespace is simpler than an async rtnetlink stack and is what operators read anyway; every
//! failure carries the command line and stderr ([`crate::cmd`]). Sysctls are written directly
//! from a thread inside the namespace.
//!
//! Invariant: a [`Lab`] that is dropped without [`Lab::persist`] stops its processes and deletes
//! every namespace, even when bring-up failed half-way.

use std::fmt::Write as _;
use std::time::Duration;

use crate::cmd::{self, CmdError};
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
    /// Brings `topo` up under a fresh run id.
    pub fn up(topo: &Topology, opts: &UpOptions) -> Result<Lab, BringupError> {
        if !crate::netns::is_root() {
            return Err(BringupError::NotRoot);
        }
        require_tools(topo, opts)?;
        let router_label = opts.router.map_or_else(|| "per-topology".to_owned(), |r| r.to_string());
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
                    let d = fanoutd::start(&ns, &node.name, &dir, &ifaces, &my_routes).map_err(
                        |source| BringupError::Fanoutd { node: node.name.clone(), source },
                    )?;
                    self.state.add_process(d.pid, &node.name, "fanoutd")?;
                    fanoutd::wait_ready(&ns, &d).map_err(|source| BringupError::Fanoutd {
                        node: node.name.clone(),
                        source,
                    })?;
                    self.ctl_sockets.push((i, d.socket));
                }
            }
        }
        Ok(())
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
