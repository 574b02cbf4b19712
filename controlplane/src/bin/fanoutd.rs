//! fanoutd: the fanout multicast router daemon.
//!
//! Start-up order matters: everything that can fail on bad input (arguments, configuration,
//! privileges) is checked before detaching, so `fanoutd` exits non-zero with the reason on the
//! terminal; signals are blocked before the first thread exists, so only the signal thread
//! receives them; the data plane starts last and is stopped (XDP detached) on every way out.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, Result};
use clap::Parser;
use controlplane::config::{Config, LogLevel, RoutingMode};
use controlplane::daemon::igmp::IgmpSockets;
use controlplane::daemon::tasks::{self, CtlServer, MetricsServer};
use controlplane::daemon::xdp::XdpBackend;
use controlplane::daemon::{self, privileges, Daemon};
use crossbeam::channel::bounded;
use tracing::{error, info, warn};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{reload, EnvFilter};

/// The fanout multicast router daemon: an AF_XDP data plane whose routes come from the
/// configuration (static), DVMRP (like mrouted), MOSPF-like link state or overlay multicast.
#[derive(Debug, Parser)]
#[command(
    name = "fanoutd",
    version,
    after_help = "Signals:\n  SIGHUP           re-read the configuration; only changed routes are touched,\n                   \
                  a bad file is reported and the running configuration kept\n  SIGTERM, SIGINT  stop: detach XDP, \
                  remove the control socket, exit 0\n\n\
                  Interfaces that go down or away stop forwarding (routes kept) and are\n\
                  attached again when they come back (netlink; see fanoutctl show interfaces).\n\n\
                  fanoutd needs root or CAP_NET_ADMIN, CAP_NET_RAW and CAP_BPF.\n\
                  See docs/fanoutd.md and docs/config.md."
)]
struct Cli {
    /// Configuration file.
    #[arg(short = 'c', long, value_name = "FILE", default_value = "/etc/fanout/fanout.toml")]
    config: PathBuf,
    /// Stay in the foreground (for systemd and tests); otherwise fanoutd detaches after start-up
    /// checks, keeping stderr as the log destination.
    #[arg(short = 'f', long)]
    foreground: bool,
    /// Validate the configuration file, print the result and exit (0: valid, 1: invalid).
    #[arg(short = 'n', long)]
    check_config: bool,
    /// Control socket, overriding `[daemon] control_socket`.
    #[arg(short = 'u', long, value_name = "PATH")]
    socket: Option<PathBuf>,
    /// Log level, overriding `[daemon] log_level` (RUST_LOG, if set, overrides both).
    #[arg(short = 'l', long, value_name = "LEVEL", value_parser = ["error", "warn", "info", "debug", "trace"])]
    log_level: Option<String>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut config = match Config::load(&cli.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("fanoutd: invalid configuration:\n{e}");
            return ExitCode::from(1);
        }
    };
    if cli.check_config {
        println!(
            "fanoutd: {}: configuration OK ({} interfaces, {} static routes, routing mode {})",
            cli.config.display(),
            config.interfaces.len(),
            config.static_routes.len(),
            config.routing.as_str()
        );
        return ExitCode::SUCCESS;
    }
    if let Some(socket) = &cli.socket {
        config.daemon.control_socket.clone_from(socket);
    }
    if let Err(e) = privileges::check() {
        eprintln!("fanoutd: {e}");
        return ExitCode::from(1);
    }
    match run(&cli, config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            error!("{e:#}");
            eprintln!("fanoutd: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn filter_for(level: &str) -> EnvFilter {
    EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level))
}

fn run(cli: &Cli, config: Config) -> Result<()> {
    let level =
        cli.log_level.clone().unwrap_or_else(|| config.daemon.log_level.as_str().to_owned());
    let (filter, filter_handle) = reload::Layer::new(filter_for(&level));
    tracing_subscriber::registry()
        .with(filter)
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                // journald and log files get plain text; colours only on a terminal.
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
                .with_target(false),
        )
        .try_init()
        .context("installing the logger")?;

    if !cli.foreground {
        // Before any thread exists: fork() keeps only the calling thread. stdio stays open
        // (noclose) so the caller's redirection of stderr is where logs go.
        nix::unistd::daemon(false, true).context("detaching (daemon(3))")?;
    }
    tasks::block_signals().context("blocking signals")?;

    info!(config = %cli.config.display(), interfaces = config.interfaces.len(), "fanoutd starting");
    let backend = XdpBackend::start(&config).context("starting the data plane")?;
    let punts = backend.punts();
    let (tx, rx) = bounded(1024);
    // Started before anything else can change the interfaces, so no change is missed; the
    // events wait in the channel until the loop runs.
    let _link_watcher = match daemon::netlink::LinkWatcher::start(tx.clone()) {
        Ok(w) => Some(w),
        Err(e) => {
            warn!(error = %e, "cannot watch interfaces (netlink); interfaces that go away or come back will not be noticed");
            None
        }
    };

    // From here on every exit path stops the data plane (detaches XDP).
    let mut daemon =
        match Daemon::new(config, cli.config.clone(), backend, std::time::Instant::now()) {
            Ok(d) => d,
            Err(e) => return Err(anyhow::Error::new(e).context("installing static routes")),
        };
    if cli.log_level.is_none() {
        daemon.set_log_level_hook(Box::new(move |level: LogLevel| {
            match filter_handle.modify(|f| *f = filter_for(level.as_str())) {
                Ok(()) => info!(level = level.as_str(), "log level changed"),
                Err(e) => error!("cannot change the log level: {e}"),
            }
        }));
    }
    let servers = start_servers(&daemon, &tx).and_then(|servers| {
        let igmp_ifaces = daemon.igmp_interfaces();
        if igmp_ifaces.is_empty() {
            return Ok((servers, None));
        }
        let dvmrp = daemon.config().routing == RoutingMode::Dvmrp;
        let sockets = IgmpSockets::open(&igmp_ifaces, dvmrp, &tx)?;
        let now = std::time::Instant::now();
        if daemon.config().interfaces.iter().any(|i| i.igmp) {
            daemon.enable_igmp(Box::new(sockets.sender()), now)?;
        }
        if dvmrp {
            let prefixes = interface_prefixes();
            daemon.enable_dvmrp(
                Box::new(sockets.sender()),
                |name| prefixes.get(name).copied(),
                generation_id(),
                now,
            );
        }
        Ok((servers, Some(sockets)))
    });
    // Routing mode linkstate: its own protocol-253 sockets, kept open as long as the servers.
    let servers = servers.and_then(|(servers, igmp)| {
        let prefixes = interface_prefixes();
        let now = std::time::Instant::now();
        let linkstate = daemon.start_linkstate(&tx, |n| prefixes.get(n).copied(), now)?;
        Ok((servers, igmp, linkstate))
    });
    // Routing mode overlay: the UDP 7411 control socket, kept open as long as the servers.
    let servers = servers.and_then(|(servers, igmp, linkstate)| {
        let overlay = daemon.start_overlay(&tx, std::time::Instant::now())?;
        Ok((servers, igmp, linkstate, overlay))
    });
    // Set-up is over (XDP attached, AF_XDP and raw sockets open, ctl socket bound): share the
    // ctl socket if configured, then give up what runtime work does not need.
    let servers = servers.and_then(|servers| {
        restrict(daemon.config())?;
        Ok(servers)
    });
    let result = match servers {
        Ok(servers) => {
            info!("fanoutd running");
            daemon::run(&mut daemon, &rx, Some(&punts));
            // Stop accepting requests and remove the socket before the data plane goes.
            drop(servers);
            Ok(())
        }
        Err(e) => Err(e),
    };
    let stopped = daemon.into_backend().stop().context("stopping the data plane");
    info!("fanoutd stopped");
    result.and(stopped)
}

/// The ctl socket's group and the privilege drop (`[daemon] control_group`, `drop_privileges`).
fn restrict(config: &Config) -> Result<()> {
    if let Some(group) = &config.daemon.control_group {
        let gid = privileges::share_control_socket(&config.daemon.control_socket, group)?;
        info!(group, gid, "control socket shared with the group (mode 0660)");
    }
    if !config.daemon.drop_privileges {
        info!("privilege drop disabled ([daemon] drop_privileges = false)");
        return Ok(());
    }
    let keep = privileges::runtime_mask(privileges::last_cap()?);
    let report = privileges::drop_privileges(keep)?;
    info!(
        threads = report.threads,
        kept = ?privileges::cap_names(report.effective),
        bounding = format!("{:#x}", report.bounding),
        "privileges dropped; no_new_privs set"
    );
    Ok(())
}

fn start_servers(
    daemon: &Daemon<XdpBackend>,
    tx: &crossbeam::channel::Sender<daemon::Input>,
) -> Result<(CtlServer, Option<MetricsServer>, std::thread::JoinHandle<()>)> {
    let ctl = CtlServer::start(&daemon.config().daemon.control_socket, tx.clone())?;
    let metrics = daemon
        .config()
        .daemon
        .metrics_listen
        .map(|addr| MetricsServer::start(addr, tx.clone()))
        .transpose()?;
    let signals = tasks::spawn_signal_thread(tx.clone())?;
    Ok((ctl, metrics, signals))
}

/// The IPv4 prefix length of each interface's first address (DVMRP advertises the subnet).
fn interface_prefixes() -> std::collections::BTreeMap<String, u8> {
    let mut out = std::collections::BTreeMap::new();
    let Ok(addrs) = nix::ifaddrs::getifaddrs() else { return out };
    for a in addrs {
        let Some(mask) = a.netmask.as_ref().and_then(|m| m.as_sockaddr_in()) else { continue };
        if a.address.as_ref().and_then(|m| m.as_sockaddr_in()).is_none() {
            continue;
        }
        let len = mask.ip().to_bits().count_ones() as u8;
        out.entry(a.interface_name).or_insert(len);
    }
    out
}

/// A DVMRP generation id that differs between runs (neighbours detect our restart by it):
/// seconds since the epoch, as mrouted does.
fn generation_id() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_secs() as u32)
}
