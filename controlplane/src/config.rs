//! fanoutd's configuration file: TOML, parsed strictly and validated before anything is applied.
//!
//! Loading is two steps. [`toml`] deserialises the text into private `Raw*` structs that keep the
//! byte span of every field a later check may complain about (`deny_unknown_fields` everywhere,
//! so a misspelt key is an error, not a silently ignored default). [`validate`] then turns the raw
//! form into a [`Config`] whose invariants hold:
//!
//! - interface names are unique, non-empty and at most 15 bytes (IFNAMSIZ - 1);
//! - every static route names configured interfaces, its group is a routable multicast group
//!   (224/4 outside 224.0.0.0/24), its source (if any) is unicast, its oifs are non-empty,
//!   distinct and never its iif (oifs may be empty only with overlay next hops); (source, group)
//!   pairs are unique;
//! - every overlay next hop (of a static route or a `[[static_overlay_route]]`) is unicast,
//!   listed once per route and has a `[[neighbor]]` entry, the only source of its MAC; neighbour
//!   addresses and overlay (origin, group) pairs are unique; `send_key` names a configured key;
//! - durations are positive, overlay keys are valid hex with unique ids, limits are non-zero.
//!
//! Every problem found is reported, not only the first, as a [`Diagnostic`] naming the file,
//! line:column (from toml's spans) and the field path (`static_route[2].oifs[0]`), so an
//! operator can fix a file in one pass. The reference for every key is docs/config.md.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

/// The default control socket path (overridden by `[daemon] control_socket` or `--socket`).
pub const DEFAULT_CONTROL_SOCKET: &str = "/run/fanout/fanoutd.sock";
/// The default overlay UDP port.
pub const DEFAULT_OVERLAY_PORT: u16 = 7410;
/// Overlay keys the data plane holds at once (current and next, for rotation).
pub const MAX_OVERLAY_KEYS: usize = 2;
/// Link-state cost of an `[[interface]]` without `cost`.
pub const DEFAULT_LINK_COST: u32 = 10;
/// Linux interface names are at most IFNAMSIZ - 1 bytes.
const MAX_IFNAME_LEN: usize = 15;

// ===== validated configuration =====

/// A validated configuration (see the module docs for its invariants).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub daemon: DaemonConfig,
    pub dataplane: DataplaneSettings,
    pub interfaces: Vec<InterfaceConfig>,
    pub routing: RoutingMode,
    pub static_routes: Vec<StaticRoute>,
    /// `[[static_overlay_route]]`: the overlay forwarding table, configured by hand.
    pub static_overlay_routes: Vec<StaticOverlayRoute>,
    /// `[[neighbor]]`: link-layer addresses of overlay next hops.
    pub neighbors: Vec<StaticNeighbor>,
    pub igmp: IgmpSettings,
    pub dvmrp: DvmrpSettings,
    pub linkstate: LinkStateSettings,
    pub overlay: OverlaySettings,
    pub limits: Limits,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DaemonConfig {
    pub control_socket: PathBuf,
    pub metrics_listen: Option<SocketAddr>,
    pub log_level: LogLevel,
    /// A group whose members may use the control socket (mode 0660); `None`: root only (0600).
    pub control_group: Option<String>,
    /// Drop capabilities not needed at runtime once set-up is over (default on).
    pub drop_privileges: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

impl LogLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Error => "error",
            LogLevel::Warn => "warn",
            LogLevel::Info => "info",
            LogLevel::Debug => "debug",
            LogLevel::Trace => "trace",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataplaneSettings {
    /// UMEM frames (a power of two).
    pub frame_count: u32,
    /// Frames per RX/TX batch.
    pub batch: usize,
    pub copy_mode: CopyMode,
    pub xdp_mode: XdpMode,
}

/// How AF_XDP sockets bind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CopyMode {
    /// Zero-copy when the driver supports it, copy otherwise.
    Auto,
    Copy,
    ZeroCopy,
}

/// How the XDP program is attached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XdpMode {
    /// Native (driver) mode, generic SKB mode if the driver refuses.
    Auto,
    Native,
    Skb,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterfaceConfig {
    pub name: String,
    /// Copies leave this interface only if the packet's TTL is above this (mrouted semantics).
    pub ttl_threshold: u8,
    /// Run IGMP (querier and membership) on this interface.
    pub igmp: bool,
    /// Link-state cost of sending over this interface (routing mode `linkstate`), at least 1.
    pub cost: u32,
    /// DVMRP metric added to routes learned on this interface (routing mode `dvmrp`; mrouted's
    /// per-vif `metric`), 1..=31.
    pub metric: u8,
}

/// The routing protocol that fills the MFIB.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoutingMode {
    /// Only `[[static_route]]` entries.
    Static,
    /// DVMRP flood-and-prune on every interface (IGMP membership from `igmp = true` ones).
    Dvmrp,
    /// MOSPF-like link state on every interface (docs/linkstate.md).
    LinkState,
    /// Overlay multicast over unicast (docs/overlay.md): the `[overlay]` protocol settings.
    Overlay,
}

impl RoutingMode {
    pub fn as_str(self) -> &'static str {
        match self {
            RoutingMode::Static => "static",
            RoutingMode::Dvmrp => "dvmrp",
            RoutingMode::LinkState => "linkstate",
            RoutingMode::Overlay => "overlay",
        }
    }
}

/// A configured route: (S,G), or (*,G) when `source` is `None`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaticRoute {
    pub source: Option<Ipv4Addr>,
    pub group: Ipv4Addr,
    pub iif: String,
    /// May be empty when `overlay_next_hops` is not.
    pub oifs: Vec<String>,
    /// Overlay neighbours that get an encapsulated copy (each needs a `[[neighbor]]`).
    pub overlay_next_hops: Vec<Ipv4Addr>,
}

/// A configured overlay route: packets of `origin`'s stream to `group`, arriving encapsulated
/// from `from` (any authenticated neighbour when `None`), are delivered natively on `deliver`
/// and re-encapsulated to `next_hops`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaticOverlayRoute {
    pub origin: Ipv4Addr,
    pub group: Ipv4Addr,
    pub from: Option<Ipv4Addr>,
    pub deliver: Vec<String>,
    pub next_hops: Vec<Ipv4Addr>,
}

/// A static neighbour entry: the MAC an overlay next hop is reached at, on which interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaticNeighbor {
    pub addr: Ipv4Addr,
    /// A configured interface; resolved to an ifindex against the data plane's ports.
    pub interface: String,
    pub mac: [u8; 6],
}

/// IGMP timers and counts, RFC 3376 §8 defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IgmpSettings {
    pub robustness: u8,
    pub query_interval: Duration,
    pub query_response_interval: Duration,
    pub startup_query_interval: Duration,
    pub startup_query_count: u8,
    pub last_member_query_interval: Duration,
    pub last_member_query_count: u8,
}

impl Default for IgmpSettings {
    fn default() -> Self {
        Self {
            robustness: 2,
            query_interval: Duration::from_secs(125),
            query_response_interval: Duration::from_secs(10),
            // RFC 3376 §8.6/8.7: a quarter of the query interval, robustness-many times.
            startup_query_interval: Duration::from_millis(31_250),
            startup_query_count: 2,
            last_member_query_interval: Duration::from_secs(1),
            last_member_query_count: 2,
        }
    }
}

/// DVMRP timers (protocols/dvmrp.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DvmrpSettings {
    pub probe_interval: Duration,
    pub neighbor_timeout: Duration,
    pub report_interval: Duration,
    pub route_expiration: Duration,
    pub prune_lifetime: Duration,
    pub graft_retransmit: Duration,
}

impl Default for DvmrpSettings {
    fn default() -> Self {
        Self {
            probe_interval: Duration::from_secs(10),
            neighbor_timeout: Duration::from_secs(35),
            report_interval: Duration::from_secs(60),
            route_expiration: Duration::from_secs(140),
            prune_lifetime: Duration::from_secs(7200),
            graft_retransmit: Duration::from_secs(5),
        }
    }
}

/// The `[linkstate]` section (docs/linkstate.md). The timers start from the `preset`
/// (`default` or `fast`, as [`crate::linkstate::LinkStateConfig`]) and keys set override it;
/// `dead_interval` is always longer than `hello_interval`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkStateSettings {
    /// `None`: the lowest address of the data-plane interfaces.
    pub router_id: Option<Ipv4Addr>,
    pub hello_interval: Duration,
    pub dead_interval: Duration,
    pub retransmit_interval: Duration,
    pub min_ls_interval: Duration,
    pub min_ls_arrival: Duration,
    pub auth: Option<crate::linkstate::AuthKey>,
    /// `accept_keys`: further keys accepted during a rotation (never sent with).
    pub accept_keys: Vec<crate::linkstate::AuthKey>,
}

impl LinkStateSettings {
    /// The settings other than the keys (which a reload rotates without a restart).
    pub fn without_keys(&self) -> LinkStateSettings {
        LinkStateSettings { auth: None, accept_keys: Vec::new(), ..self.clone() }
    }

    fn from_core(c: &crate::linkstate::LinkStateConfig) -> Self {
        Self {
            router_id: None,
            hello_interval: c.hello_interval,
            dead_interval: c.dead_interval,
            retransmit_interval: c.retransmit_interval,
            min_ls_interval: c.min_ls_interval,
            min_ls_arrival: c.min_ls_arrival,
            auth: None,
            accept_keys: Vec::new(),
        }
    }
}

impl Default for LinkStateSettings {
    fn default() -> Self {
        Self::from_core(&crate::linkstate::LinkStateConfig::default())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OverlaySettings {
    pub port: u16,
    pub origin: Option<Ipv4Addr>,
    pub hop_count: u8,
    pub keys: Vec<OverlayKey>,
    /// The key id packets are signed with; `None` = the first key. Always one of `keys`.
    pub send_key: Option<u8>,
    /// Routing mode `overlay`: the overlay protocol's settings (`None` in other modes).
    pub protocol: Option<OverlayProtocolSettings>,
}

impl OverlaySettings {
    /// The settings other than the keys (which a reload rotates without a restart).
    pub fn without_keys(&self) -> OverlaySettings {
        OverlaySettings { keys: Vec::new(), send_key: None, ..self.clone() }
    }
}

/// The `[overlay]` keys of routing mode `overlay` (docs/overlay.md, docs/config.md): who this
/// node is, whom it joins through, which groups, and how neighbours and trees are chosen.
/// Invariants: `groups` is non-empty, distinct and routable; `local_interface` is a configured
/// interface; timers are non-zero; degree bounds satisfy `1 <= target <= max`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OverlayProtocolSettings {
    /// This node's overlay address (its identity, the outer source of what it sends and the
    /// origin of what it encapsulates); an address of one of its interfaces.
    pub address: Ipv4Addr,
    pub rendezvous: Ipv4Addr,
    /// Where local senders' multicast enters and decapsulated datagrams are delivered.
    pub local_interface: String,
    pub groups: Vec<Ipv4Addr>,
    pub topology: crate::overlay::TopologyMode,
    pub tree: crate::overlay::TreeMode,
    pub heartbeat_interval: Duration,
    pub dead_multiplier: u32,
    pub lsa_refresh: Duration,
    pub join_retry: Duration,
    /// At the rendezvous: joins beyond this many members are refused.
    pub max_members: Option<usize>,
}

impl Default for OverlaySettings {
    fn default() -> Self {
        Self {
            port: DEFAULT_OVERLAY_PORT,
            origin: None,
            hop_count: 16,
            keys: Vec::new(),
            send_key: None,
            protocol: None,
        }
    }
}

/// An overlay authentication key (HMAC-SHA256). `Debug` does not print the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct OverlayKey {
    pub id: u8,
    pub secret: Vec<u8>,
}

impl fmt::Debug for OverlayKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OverlayKey")
            .field("id", &self.id)
            .field("secret", &format_args!("<{} bytes>", self.secret.len()))
            .finish()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_routes: usize,
    pub max_groups_per_interface: usize,
    pub max_neighbors: usize,
    /// Punts per second the data plane reports to the control plane.
    pub punt_rate: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_routes: 10_000,
            max_groups_per_interface: 1024,
            max_neighbors: 64,
            punt_rate: 100,
        }
    }
}

impl Config {
    /// Reads, parses and validates a configuration file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| ConfigError::Io { path: path.to_owned(), source })?;
        Config::parse(&text, path)
    }

    /// Parses and validates configuration text; `file` only names it in diagnostics.
    pub fn parse(text: &str, file: &Path) -> Result<Config, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| {
            let span = e.span().unwrap_or(0..0);
            let field = field_path_at(text, span.start);
            ConfigError::Invalid(vec![Diagnostic::new(
                file,
                text,
                &span,
                field,
                ErrorKind::Syntax(e.message().trim_end().to_owned()),
            )])
        })?;
        let mut v = Validator { file, text, diags: Vec::new() };
        let config = v.config(raw);
        if v.diags.is_empty() {
            Ok(config)
        } else {
            Err(ConfigError::Invalid(v.diags))
        }
    }

    /// The configured interface names, in file order.
    pub fn interface_names(&self) -> impl Iterator<Item = &str> {
        self.interfaces.iter().map(|i| i.name.as_str())
    }

    pub fn interface(&self, name: &str) -> Option<&InterfaceConfig> {
        self.interfaces.iter().find(|i| i.name == name)
    }

    /// Whether any route sends or receives overlay traffic, i.e. whether the data plane must
    /// take the overlay UDP port from the kernel.
    pub fn uses_overlay(&self) -> bool {
        self.routing == RoutingMode::Overlay
            || !self.static_overlay_routes.is_empty()
            || self.static_routes.iter().any(|r| !r.overlay_next_hops.is_empty())
    }
}

// ===== errors =====

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{}: cannot read: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    /// One or more problems, each with its location; displayed one per line.
    #[error("{}", DisplayDiags(.0))]
    Invalid(Vec<Diagnostic>),
}

impl ConfigError {
    /// The located problems (empty for I/O errors).
    pub fn diagnostics(&self) -> &[Diagnostic] {
        match self {
            ConfigError::Io { .. } => &[],
            ConfigError::Invalid(d) => d,
        }
    }
}

struct DisplayDiags<'a>(&'a [Diagnostic]);

impl fmt::Display for DisplayDiags<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

/// One located problem: `file:line:col: field: what is wrong`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub file: PathBuf,
    /// 1-based.
    pub line: usize,
    /// 1-based, in characters.
    pub col: usize,
    /// The field path, e.g. `static_route[1].oifs[0]`; empty when the problem is the whole file.
    pub field: String,
    pub kind: ErrorKind,
}

impl Diagnostic {
    fn new(file: &Path, text: &str, span: &Range<usize>, field: String, kind: ErrorKind) -> Self {
        let (line, col) = line_col(text, span.start);
        Self { file: file.to_owned(), line, col, field, kind }
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: ", self.file.display(), self.line, self.col)?;
        if !self.field.is_empty() {
            write!(f, "{}: ", self.field)?;
        }
        write!(f, "{}", self.kind)
    }
}

/// What is wrong with a field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ErrorKind {
    /// TOML syntax, an unknown key, a missing key or a value of the wrong type (toml's message).
    #[error("{0}")]
    Syntax(String),
    #[error("unknown interface \"{0}\" (not in any [[interface]])")]
    UnknownInterface(String),
    #[error("{0} is not a routable multicast group (224.0.0.0/4 outside 224.0.0.0/24)")]
    NotMulticast(Ipv4Addr),
    #[error("source {0} is a multicast address; a source must be a unicast host")]
    SourceMulticast(Ipv4Addr),
    #[error("duplicate interface \"{name}\" (first defined on line {first_line})")]
    DuplicateInterface { name: String, first_line: usize },
    #[error("interface \"{0}\" is both the iif and an oif of this route")]
    OifIsIif(String),
    #[error("interface \"{0}\" is listed twice in oifs")]
    DuplicateOif(String),
    #[error("oifs is empty: a route needs at least one outgoing interface or overlay next hop")]
    EmptyOifs,
    #[error("{what} \"{value}\" is listed twice")]
    Duplicate { what: &'static str, value: String },
    #[error("overlay next hop {0} has no [[neighbor]] entry giving its MAC address")]
    NoNeighbor(Ipv4Addr),
    #[error("duplicate [[neighbor]] {addr} (first on line {first_line})")]
    DuplicateNeighbor { addr: Ipv4Addr, first_line: usize },
    #[error("duplicate overlay route for ({origin}, {group}) (first on line {first_line})")]
    DuplicateOverlayRoute { origin: Ipv4Addr, group: Ipv4Addr, first_line: usize },
    #[error("an overlay route needs at least one deliver interface or next hop")]
    EmptyOverlayRoute,
    #[error(
        "bad MAC address \"{0}\" (want six hex pairs separated by ':', e.g. \"02:00:00:00:00:01\")"
    )]
    BadMac(String),
    #[error("send_key {0} is not the id of any overlay key")]
    UnknownSendKey(u8),
    #[error("duplicate route for ({src}, {group}) (first on line {first_line})")]
    DuplicateRoute { src: String, group: Ipv4Addr, first_line: usize },
    #[error("bad duration \"{value}\": {reason} (examples: \"125s\", \"1m30s\", \"500ms\")")]
    BadDuration { value: String, reason: &'static str },
    #[error("bad key: {0}")]
    BadKey(String),
    #[error("duplicate key id {0}")]
    DuplicateKeyId(u8),
    #[error("bad address \"{value}\": {reason}")]
    BadAddress { value: String, reason: String },
    #[error("bad interface name \"{0}\": must be 1 to 15 bytes without '/', ':' or whitespace")]
    BadInterfaceName(String),
    #[error("unknown {what} \"{value}\" (expected one of: {expected})")]
    UnknownValue { what: &'static str, value: String, expected: &'static str },
    #[error("{value} is out of range: {reason}")]
    OutOfRange { value: String, reason: &'static str },
    #[error("static routes are used only in routing mode \"static\" (routing mode is \"{0}\")")]
    StaticRouteInProtocolMode(&'static str),
    #[error("{count} static routes exceed limits.max_routes = {max}")]
    TooManyRoutes { count: usize, max: usize },
    #[error("routing mode \"overlay\" needs {0}")]
    MissingOverlayKey(&'static str),
    #[error("{0} is used only in routing mode \"overlay\"")]
    OverlayKeyOutsideOverlayMode(String),
}

// ===== raw (as written) form =====

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    daemon: RawDaemon,
    #[serde(default)]
    dataplane: RawDataplane,
    #[serde(default)]
    interface: Vec<RawInterface>,
    #[serde(default)]
    routing: RawRouting,
    #[serde(default)]
    static_route: Vec<RawStaticRoute>,
    #[serde(default)]
    static_overlay_route: Vec<RawOverlayRoute>,
    #[serde(default)]
    neighbor: Vec<RawNeighbor>,
    #[serde(default)]
    igmp: RawIgmp,
    #[serde(default)]
    dvmrp: RawDvmrp,
    #[serde(default)]
    linkstate: RawLinkState,
    #[serde(default)]
    overlay: RawOverlay,
    #[serde(default)]
    limits: RawLimits,
}

type S<T> = Spanned<T>;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDaemon {
    control_socket: Option<S<String>>,
    metrics_listen: Option<S<String>>,
    log_level: Option<S<String>>,
    control_group: Option<S<String>>,
    drop_privileges: Option<S<bool>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDataplane {
    frame_count: Option<S<u32>>,
    batch: Option<S<usize>>,
    copy_mode: Option<S<String>>,
    xdp_mode: Option<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawInterface {
    name: S<String>,
    ttl_threshold: Option<u8>,
    igmp: Option<bool>,
    cost: Option<S<u32>>,
    metric: Option<S<u8>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRouting {
    mode: Option<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStaticRoute {
    source: Option<S<String>>,
    group: S<String>,
    iif: S<String>,
    oifs: S<Vec<S<String>>>,
    #[serde(default)]
    overlay_next_hops: Vec<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOverlayRoute {
    origin: S<String>,
    group: S<String>,
    from: Option<S<String>>,
    #[serde(default)]
    deliver: Vec<S<String>>,
    #[serde(default)]
    next_hops: Vec<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNeighbor {
    addr: S<String>,
    interface: S<String>,
    mac: S<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawIgmp {
    robustness: Option<S<u8>>,
    query_interval: Option<S<String>>,
    query_response_interval: Option<S<String>>,
    startup_query_interval: Option<S<String>>,
    startup_query_count: Option<S<u8>>,
    last_member_query_interval: Option<S<String>>,
    last_member_query_count: Option<S<u8>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDvmrp {
    probe_interval: Option<S<String>>,
    neighbor_timeout: Option<S<String>>,
    report_interval: Option<S<String>>,
    route_expiration: Option<S<String>>,
    prune_lifetime: Option<S<String>>,
    graft_retransmit: Option<S<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLinkState {
    router_id: Option<S<String>>,
    preset: Option<S<String>>,
    hello_interval: Option<S<String>>,
    dead_interval: Option<S<String>>,
    retransmit_interval: Option<S<String>>,
    min_ls_interval: Option<S<String>>,
    min_ls_arrival: Option<S<String>>,
    key_id: Option<S<u8>>,
    secret: Option<S<String>>,
    #[serde(default)]
    accept_keys: Vec<RawLsKey>,
}

/// `[[linkstate.accept_keys]]` / `accept_keys = [{ key_id = 2, secret = "..." }]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLsKey {
    key_id: S<u8>,
    secret: S<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOverlay {
    port: Option<S<u16>>,
    origin: Option<S<String>>,
    hop_count: Option<S<u8>>,
    #[serde(default)]
    keys: Vec<RawKey>,
    send_key: Option<S<u8>>,
    // Routing mode `overlay` only:
    address: Option<S<String>>,
    rendezvous: Option<S<String>>,
    local_interface: Option<S<String>>,
    #[serde(default)]
    groups: Vec<S<String>>,
    topology: Option<S<String>>,
    #[serde(default)]
    link: Vec<RawOverlayLink>,
    target_degree: Option<S<usize>>,
    max_degree: Option<S<usize>>,
    probe_interval: Option<S<String>>,
    candidates_per_round: Option<S<usize>>,
    hysteresis_percent: Option<S<u32>>,
    root: Option<S<String>>,
    tolerance_percent: Option<S<u32>>,
    max_children: Option<S<usize>>,
    tree: Option<S<String>>,
    core: Option<S<String>>,
    heartbeat_interval: Option<S<String>>,
    dead_multiplier: Option<S<u32>>,
    lsa_refresh: Option<S<String>>,
    join_retry: Option<S<String>>,
    max_members: Option<S<usize>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOverlayLink {
    a: S<String>,
    b: S<String>,
    cost: Option<S<u32>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKey {
    id: S<u8>,
    secret: S<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    max_routes: Option<S<usize>>,
    max_groups_per_interface: Option<S<usize>>,
    max_neighbors: Option<S<usize>>,
    punt_rate: Option<S<u32>>,
}

// ===== validation =====

struct Validator<'a> {
    file: &'a Path,
    text: &'a str,
    diags: Vec<Diagnostic>,
}

impl Validator<'_> {
    fn error(&mut self, span: &Range<usize>, field: impl Into<String>, kind: ErrorKind) {
        self.diags.push(Diagnostic::new(self.file, self.text, span, field.into(), kind));
    }

    /// Where the first `[[static_route]]` header is (for errors about routes as a whole).
    fn first_static_route_span(&self) -> Option<Range<usize>> {
        let mut pos = 0;
        for line in self.text.split_inclusive('\n') {
            if line.trim_start().starts_with("[[static_route]]") {
                let start = pos + (line.len() - line.trim_start().len());
                return Some(start..start + "[[static_route]]".len());
            }
            pos += line.len();
        }
        None
    }

    /// Where the `[overlay]` header is (for keys missing from it); the file start without one.
    fn overlay_span(&self) -> Range<usize> {
        let mut pos = 0;
        for line in self.text.split_inclusive('\n') {
            if line.trim_start().starts_with("[overlay]") {
                let start = pos + (line.len() - line.trim_start().len());
                return start..start + "[overlay]".len();
            }
            pos += line.len();
        }
        0..0
    }

    fn line_of(&self, span: &Range<usize>) -> usize {
        line_col(self.text, span.start).0
    }

    fn config(&mut self, raw: RawConfig) -> Config {
        let daemon = self.daemon(raw.daemon);
        let dataplane = self.dataplane(raw.dataplane);
        let interfaces = self.interfaces(raw.interface);
        let routing = self.routing(raw.routing);
        let neighbors = self.neighbors(raw.neighbor, &interfaces);
        let static_routes = self.static_routes(raw.static_route, &interfaces, &neighbors);
        let static_overlay_routes =
            self.overlay_routes(raw.static_overlay_route, &interfaces, &neighbors);
        if routing != RoutingMode::Static {
            if let Some(span) = self.first_static_route_span() {
                self.error(
                    &span,
                    "static_route[0]",
                    ErrorKind::StaticRouteInProtocolMode(routing.as_str()),
                );
            }
        }
        let igmp = self.igmp(raw.igmp);
        let dvmrp = self.dvmrp(raw.dvmrp);
        let linkstate = self.linkstate(raw.linkstate);
        let overlay = self.overlay(raw.overlay, routing, &interfaces);
        let limits = self.limits(raw.limits, static_routes.len());
        Config {
            daemon,
            dataplane,
            interfaces,
            routing,
            static_routes,
            static_overlay_routes,
            neighbors,
            igmp,
            dvmrp,
            linkstate,
            overlay,
            limits,
        }
    }

    fn daemon(&mut self, raw: RawDaemon) -> DaemonConfig {
        let control_socket = match raw.control_socket {
            Some(s) if s.get_ref().is_empty() => {
                self.error(
                    &s.span(),
                    "daemon.control_socket",
                    ErrorKind::OutOfRange {
                        value: "\"\"".into(),
                        reason: "the control socket path must not be empty",
                    },
                );
                PathBuf::from(DEFAULT_CONTROL_SOCKET)
            }
            Some(s) => PathBuf::from(s.into_inner()),
            None => PathBuf::from(DEFAULT_CONTROL_SOCKET),
        };
        let metrics_listen =
            raw.metrics_listen.and_then(|s| match s.get_ref().parse::<SocketAddr>() {
                Ok(a) => Some(a),
                Err(e) => {
                    let kind = ErrorKind::BadAddress {
                        value: s.get_ref().clone(),
                        reason: format!("{e} (want ip:port)"),
                    };
                    self.error(&s.span(), "daemon.metrics_listen", kind);
                    None
                }
            });
        let log_level = match raw.log_level {
            None => LogLevel::Info,
            Some(s) => match s.get_ref().as_str() {
                "error" => LogLevel::Error,
                "warn" => LogLevel::Warn,
                "info" => LogLevel::Info,
                "debug" => LogLevel::Debug,
                "trace" => LogLevel::Trace,
                other => {
                    let kind = ErrorKind::UnknownValue {
                        what: "log level",
                        value: other.to_owned(),
                        expected: "error, warn, info, debug, trace",
                    };
                    self.error(&s.span(), "daemon.log_level", kind);
                    LogLevel::Info
                }
            },
        };
        let control_group = raw.control_group.and_then(|g| {
            if g.get_ref().is_empty() {
                let kind = ErrorKind::OutOfRange {
                    value: "\"\"".into(),
                    reason: "the group name must not be empty (leave the key out for root only)",
                };
                self.error(&g.span(), "daemon.control_group", kind);
                None
            } else {
                Some(g.into_inner())
            }
        });
        let drop_privileges = raw.drop_privileges.is_none_or(S::into_inner);
        DaemonConfig { control_socket, metrics_listen, log_level, control_group, drop_privileges }
    }

    fn dataplane(&mut self, raw: RawDataplane) -> DataplaneSettings {
        let mut out = DataplaneSettings {
            frame_count: 4096,
            batch: 64,
            copy_mode: CopyMode::Auto,
            xdp_mode: XdpMode::Auto,
        };
        if let Some(fc) = raw.frame_count {
            let n = *fc.get_ref();
            // The UMEM fill/completion rings are power-of-two sized and must hold every frame.
            if n.is_power_of_two() && (64..=65_536).contains(&n) {
                out.frame_count = n;
            } else {
                self.error(
                    &fc.span(),
                    "dataplane.frame_count",
                    ErrorKind::OutOfRange {
                        value: n.to_string(),
                        reason: "frame_count must be a power of two between 64 and 65536",
                    },
                );
            }
        }
        if let Some(b) = raw.batch {
            let n = *b.get_ref();
            if (1..=1024).contains(&n) {
                out.batch = n;
            } else {
                self.error(
                    &b.span(),
                    "dataplane.batch",
                    ErrorKind::OutOfRange {
                        value: n.to_string(),
                        reason: "batch must be between 1 and 1024",
                    },
                );
            }
        }
        if out.batch > out.frame_count as usize / 2 {
            self.error(&(0..0), "dataplane.batch", ErrorKind::OutOfRange {
                value: out.batch.to_string(),
                reason: "batch must be at most half of frame_count (RX and TX each need a batch of frames)",
            });
        }
        if let Some(m) = raw.copy_mode {
            match m.get_ref().as_str() {
                "auto" => out.copy_mode = CopyMode::Auto,
                "copy" => out.copy_mode = CopyMode::Copy,
                "zerocopy" => out.copy_mode = CopyMode::ZeroCopy,
                other => {
                    let kind = ErrorKind::UnknownValue {
                        what: "copy_mode",
                        value: other.to_owned(),
                        expected: "auto, copy, zerocopy",
                    };
                    self.error(&m.span(), "dataplane.copy_mode", kind);
                }
            }
        }
        if let Some(m) = raw.xdp_mode {
            match m.get_ref().as_str() {
                "auto" => out.xdp_mode = XdpMode::Auto,
                "native" => out.xdp_mode = XdpMode::Native,
                "skb" => out.xdp_mode = XdpMode::Skb,
                other => {
                    let kind = ErrorKind::UnknownValue {
                        what: "xdp_mode",
                        value: other.to_owned(),
                        expected: "auto, native, skb",
                    };
                    self.error(&m.span(), "dataplane.xdp_mode", kind);
                }
            }
        }
        out
    }

    fn interfaces(&mut self, raw: Vec<RawInterface>) -> Vec<InterfaceConfig> {
        let mut seen: HashMap<String, usize> = HashMap::new();
        let mut out = Vec::with_capacity(raw.len());
        for (i, r) in raw.into_iter().enumerate() {
            let span = r.name.span();
            let name = r.name.into_inner();
            let field = format!("interface[{i}].name");
            if !valid_ifname(&name) {
                self.error(&span, field, ErrorKind::BadInterfaceName(name));
                continue;
            }
            if let Some(&first_line) = seen.get(&name) {
                self.error(&span, field, ErrorKind::DuplicateInterface { name, first_line });
                continue;
            }
            seen.insert(name.clone(), self.line_of(&span));
            let cost = match r.cost {
                // Cost 0 would make a link free and shortest-path ties unresolvable by cost.
                Some(c) if *c.get_ref() == 0 => {
                    self.error(
                        &c.span(),
                        format!("interface[{i}].cost"),
                        ErrorKind::OutOfRange { value: "0".into(), reason: "must be at least 1" },
                    );
                    DEFAULT_LINK_COST
                }
                Some(c) => *c.get_ref(),
                None => DEFAULT_LINK_COST,
            };
            let metric = match r.metric {
                // 32 is DVMRP's infinity: a route learned over the interface would be unreachable.
                Some(m) if !(1..=31).contains(m.get_ref()) => {
                    self.error(
                        &m.span(),
                        format!("interface[{i}].metric"),
                        ErrorKind::OutOfRange {
                            value: m.get_ref().to_string(),
                            reason: "must be 1..=31 (32 is DVMRP infinity)",
                        },
                    );
                    1
                }
                Some(m) => *m.get_ref(),
                None => 1,
            };
            out.push(InterfaceConfig {
                name,
                ttl_threshold: r.ttl_threshold.unwrap_or(1),
                igmp: r.igmp.unwrap_or(false),
                cost,
                metric,
            });
        }
        out
    }

    fn routing(&mut self, raw: RawRouting) -> RoutingMode {
        let Some(mode) = raw.mode else { return RoutingMode::Static };
        match mode.get_ref().as_str() {
            "static" => {}
            "dvmrp" => return RoutingMode::Dvmrp,
            "linkstate" => return RoutingMode::LinkState,
            "overlay" => return RoutingMode::Overlay,
            other => {
                let kind = ErrorKind::UnknownValue {
                    what: "routing mode",
                    value: other.to_owned(),
                    expected: "static, dvmrp, linkstate, overlay",
                };
                self.error(&mode.span(), "routing.mode", kind);
            }
        }
        RoutingMode::Static
    }

    fn static_routes(
        &mut self,
        raw: Vec<RawStaticRoute>,
        ifaces: &[InterfaceConfig],
        neighbors: &[StaticNeighbor],
    ) -> Vec<StaticRoute> {
        let known = |n: &str| ifaces.iter().any(|i| i.name == n);
        let mut seen: BTreeMap<(Option<Ipv4Addr>, Ipv4Addr), usize> = BTreeMap::new();
        let mut out = Vec::new();
        for (i, r) in raw.into_iter().enumerate() {
            let before = self.diags.len();
            let source = r.source.as_ref().and_then(|s| {
                let field = format!("static_route[{i}].source");
                let addr = self.ipv4(s, &field)?;
                if addr.is_multicast() {
                    self.error(&s.span(), field, ErrorKind::SourceMulticast(addr));
                    return None;
                }
                if addr.is_unspecified() || addr.is_broadcast() {
                    let kind = ErrorKind::BadAddress {
                        value: s.get_ref().clone(),
                        reason: "a source must be a unicast host address".into(),
                    };
                    self.error(&s.span(), field, kind);
                    return None;
                }
                Some(addr)
            });
            let gfield = format!("static_route[{i}].group");
            let group = self.ipv4(&r.group, &gfield).and_then(|g| {
                if is_routable_group(g) {
                    Some(g)
                } else {
                    self.error(&r.group.span(), gfield, ErrorKind::NotMulticast(g));
                    None
                }
            });
            let iif = r.iif.get_ref().clone();
            if !known(&iif) {
                self.error(
                    &r.iif.span(),
                    format!("static_route[{i}].iif"),
                    ErrorKind::UnknownInterface(iif.clone()),
                );
            }
            let overlay_next_hops = self.next_hops(
                &r.overlay_next_hops,
                &format!("static_route[{i}].overlay_next_hops"),
                neighbors,
            );
            if r.oifs.get_ref().is_empty() && r.overlay_next_hops.is_empty() {
                self.error(&r.oifs.span(), format!("static_route[{i}].oifs"), ErrorKind::EmptyOifs);
            }
            let mut oifs: Vec<String> = Vec::new();
            for (j, o) in r.oifs.get_ref().iter().enumerate() {
                let field = format!("static_route[{i}].oifs[{j}]");
                let name = o.get_ref();
                if !known(name) {
                    self.error(&o.span(), field, ErrorKind::UnknownInterface(name.clone()));
                } else if *name == iif {
                    self.error(&o.span(), field, ErrorKind::OifIsIif(name.clone()));
                } else if oifs.contains(name) {
                    self.error(&o.span(), field, ErrorKind::DuplicateOif(name.clone()));
                } else {
                    oifs.push(name.clone());
                }
            }
            if self.diags.len() != before {
                continue;
            }
            let Some(group) = group else { continue };
            let span = r.group.span();
            if let Some(&first_line) = seen.get(&(source, group)) {
                let src = source.map_or_else(|| "*".to_owned(), |s| s.to_string());
                self.error(
                    &span,
                    format!("static_route[{i}]"),
                    ErrorKind::DuplicateRoute { src, group, first_line },
                );
                continue;
            }
            seen.insert((source, group), self.line_of(&span));
            out.push(StaticRoute { source, group, iif, oifs, overlay_next_hops });
        }
        out
    }

    /// A unicast host address (next hop, neighbour, origin).
    fn unicast(&mut self, s: &S<String>, field: &str) -> Option<Ipv4Addr> {
        let addr = self.ipv4(s, field)?;
        if addr.is_multicast() || addr.is_unspecified() || addr.is_broadcast() {
            let kind = ErrorKind::BadAddress {
                value: s.get_ref().clone(),
                reason: "must be a unicast host address".into(),
            };
            self.error(&s.span(), field, kind);
            return None;
        }
        Some(addr)
    }

    /// Overlay next hops: unicast, distinct, each with a `[[neighbor]]` (the only source of
    /// their MAC addresses; without one every copy would be dropped at run time).
    fn next_hops(
        &mut self,
        raw: &[S<String>],
        field: &str,
        neighbors: &[StaticNeighbor],
    ) -> Vec<Ipv4Addr> {
        let mut out = Vec::new();
        for (j, h) in raw.iter().enumerate() {
            let field = format!("{field}[{j}]");
            let Some(addr) = self.unicast(h, &field) else { continue };
            if out.contains(&addr) {
                let kind = ErrorKind::Duplicate { what: "next hop", value: addr.to_string() };
                self.error(&h.span(), field, kind);
            } else if !neighbors.iter().any(|n| n.addr == addr) {
                self.error(&h.span(), field, ErrorKind::NoNeighbor(addr));
            } else {
                out.push(addr);
            }
        }
        out
    }

    fn neighbors(
        &mut self,
        raw: Vec<RawNeighbor>,
        ifaces: &[InterfaceConfig],
    ) -> Vec<StaticNeighbor> {
        let mut seen: HashMap<Ipv4Addr, usize> = HashMap::new();
        let mut out = Vec::new();
        for (i, n) in raw.into_iter().enumerate() {
            let before = self.diags.len();
            let addr = self.unicast(&n.addr, &format!("neighbor[{i}].addr"));
            let interface = n.interface.get_ref().clone();
            if !ifaces.iter().any(|c| c.name == interface) {
                self.error(
                    &n.interface.span(),
                    format!("neighbor[{i}].interface"),
                    ErrorKind::UnknownInterface(interface.clone()),
                );
            }
            let mac = parse_mac(n.mac.get_ref());
            if mac.is_none() {
                self.error(
                    &n.mac.span(),
                    format!("neighbor[{i}].mac"),
                    ErrorKind::BadMac(n.mac.get_ref().clone()),
                );
            }
            let (Some(addr), Some(mac)) = (addr, mac) else { continue };
            if self.diags.len() != before {
                continue;
            }
            if let Some(&first_line) = seen.get(&addr) {
                self.error(
                    &n.addr.span(),
                    format!("neighbor[{i}].addr"),
                    ErrorKind::DuplicateNeighbor { addr, first_line },
                );
                continue;
            }
            seen.insert(addr, self.line_of(&n.addr.span()));
            out.push(StaticNeighbor { addr, interface, mac });
        }
        out
    }

    fn overlay_routes(
        &mut self,
        raw: Vec<RawOverlayRoute>,
        ifaces: &[InterfaceConfig],
        neighbors: &[StaticNeighbor],
    ) -> Vec<StaticOverlayRoute> {
        let mut seen: BTreeMap<(Ipv4Addr, Ipv4Addr), usize> = BTreeMap::new();
        let mut out = Vec::new();
        for (i, r) in raw.into_iter().enumerate() {
            let before = self.diags.len();
            let origin = self.unicast(&r.origin, &format!("static_overlay_route[{i}].origin"));
            let gfield = format!("static_overlay_route[{i}].group");
            let group = self.ipv4(&r.group, &gfield).and_then(|g| {
                if is_routable_group(g) {
                    Some(g)
                } else {
                    self.error(&r.group.span(), gfield, ErrorKind::NotMulticast(g));
                    None
                }
            });
            let from = r
                .from
                .as_ref()
                .and_then(|f| self.unicast(f, &format!("static_overlay_route[{i}].from")));
            let mut deliver: Vec<String> = Vec::new();
            for (j, d) in r.deliver.iter().enumerate() {
                let field = format!("static_overlay_route[{i}].deliver[{j}]");
                let name = d.get_ref();
                if !ifaces.iter().any(|c| c.name == *name) {
                    self.error(&d.span(), field, ErrorKind::UnknownInterface(name.clone()));
                } else if deliver.contains(name) {
                    let kind = ErrorKind::Duplicate { what: "interface", value: name.clone() };
                    self.error(&d.span(), field, kind);
                } else {
                    deliver.push(name.clone());
                }
            }
            let next_hops = self.next_hops(
                &r.next_hops,
                &format!("static_overlay_route[{i}].next_hops"),
                neighbors,
            );
            if r.deliver.is_empty() && r.next_hops.is_empty() {
                self.error(
                    &r.group.span(),
                    format!("static_overlay_route[{i}]"),
                    ErrorKind::EmptyOverlayRoute,
                );
            }
            let (Some(origin), Some(group)) = (origin, group) else { continue };
            if self.diags.len() != before {
                continue;
            }
            if let Some(&first_line) = seen.get(&(origin, group)) {
                self.error(
                    &r.group.span(),
                    format!("static_overlay_route[{i}]"),
                    ErrorKind::DuplicateOverlayRoute { origin, group, first_line },
                );
                continue;
            }
            seen.insert((origin, group), self.line_of(&r.group.span()));
            out.push(StaticOverlayRoute { origin, group, from, deliver, next_hops });
        }
        out
    }

    fn ipv4(&mut self, s: &S<String>, field: &str) -> Option<Ipv4Addr> {
        match s.get_ref().parse::<Ipv4Addr>() {
            Ok(a) => Some(a),
            Err(e) => {
                let kind =
                    ErrorKind::BadAddress { value: s.get_ref().clone(), reason: e.to_string() };
                self.error(&s.span(), field, kind);
                None
            }
        }
    }

    fn duration(&mut self, raw: Option<S<String>>, field: &str, default: Duration) -> Duration {
        let Some(s) = raw else { return default };
        match parse_duration(s.get_ref()) {
            Ok(d) => d,
            Err(reason) => {
                self.error(
                    &s.span(),
                    field,
                    ErrorKind::BadDuration { value: s.get_ref().clone(), reason },
                );
                default
            }
        }
    }

    fn count(&mut self, raw: Option<S<u8>>, field: &str, default: u8) -> u8 {
        let Some(s) = raw else { return default };
        if *s.get_ref() == 0 {
            self.error(
                &s.span(),
                field,
                ErrorKind::OutOfRange { value: "0".into(), reason: "must be at least 1" },
            );
            return default;
        }
        *s.get_ref()
    }

    fn igmp(&mut self, raw: RawIgmp) -> IgmpSettings {
        let d = IgmpSettings::default();
        let robustness = self.count(raw.robustness, "igmp.robustness", d.robustness);
        let query_interval =
            self.duration(raw.query_interval, "igmp.query_interval", d.query_interval);
        let qri_span = raw.query_response_interval.as_ref().map(Spanned::span);
        let query_response_interval = self.duration(
            raw.query_response_interval,
            "igmp.query_response_interval",
            d.query_response_interval,
        );
        // RFC 3376 §8.3: the response interval must be shorter than the query interval, or hosts
        // could never answer one query before the next.
        if query_response_interval >= query_interval {
            self.error(
                &qri_span.unwrap_or(0..0),
                "igmp.query_response_interval",
                ErrorKind::OutOfRange {
                    value: format!("{query_response_interval:?}"),
                    reason: "must be shorter than igmp.query_interval (RFC 3376 §8.3)",
                },
            );
        }
        IgmpSettings {
            robustness,
            query_interval,
            query_response_interval,
            startup_query_interval: self.duration(
                raw.startup_query_interval,
                "igmp.startup_query_interval",
                query_interval / 4,
            ),
            startup_query_count: self.count(
                raw.startup_query_count,
                "igmp.startup_query_count",
                robustness,
            ),
            last_member_query_interval: self.duration(
                raw.last_member_query_interval,
                "igmp.last_member_query_interval",
                d.last_member_query_interval,
            ),
            last_member_query_count: self.count(
                raw.last_member_query_count,
                "igmp.last_member_query_count",
                robustness,
            ),
        }
    }

    fn dvmrp(&mut self, raw: RawDvmrp) -> DvmrpSettings {
        let d = DvmrpSettings::default();
        DvmrpSettings {
            probe_interval: self.duration(
                raw.probe_interval,
                "dvmrp.probe_interval",
                d.probe_interval,
            ),
            neighbor_timeout: self.duration(
                raw.neighbor_timeout,
                "dvmrp.neighbor_timeout",
                d.neighbor_timeout,
            ),
            report_interval: self.duration(
                raw.report_interval,
                "dvmrp.report_interval",
                d.report_interval,
            ),
            route_expiration: self.duration(
                raw.route_expiration,
                "dvmrp.route_expiration",
                d.route_expiration,
            ),
            prune_lifetime: self.duration(
                raw.prune_lifetime,
                "dvmrp.prune_lifetime",
                d.prune_lifetime,
            ),
            graft_retransmit: self.duration(
                raw.graft_retransmit,
                "dvmrp.graft_retransmit",
                d.graft_retransmit,
            ),
        }
    }

    fn linkstate(&mut self, raw: RawLinkState) -> LinkStateSettings {
        let base = match raw.preset.as_ref().map(|p| p.get_ref().as_str()) {
            None | Some("default") => crate::linkstate::LinkStateConfig::default(),
            Some("fast") => crate::linkstate::LinkStateConfig::fast(),
            Some(other) => {
                let kind = ErrorKind::UnknownValue {
                    what: "linkstate preset",
                    value: other.to_owned(),
                    expected: "default, fast",
                };
                self.error(
                    &raw.preset.as_ref().map_or(0..0, Spanned::span),
                    "linkstate.preset",
                    kind,
                );
                crate::linkstate::LinkStateConfig::default()
            }
        };
        let d = LinkStateSettings::from_core(&base);
        let router_id = raw.router_id.as_ref().and_then(|r| {
            let addr = self.ipv4(r, "linkstate.router_id")?;
            if addr.is_unspecified() {
                let kind = ErrorKind::BadAddress {
                    value: r.get_ref().clone(),
                    reason: "router id 0.0.0.0 is reserved".into(),
                };
                self.error(&r.span(), "linkstate.router_id", kind);
                return None;
            }
            Some(addr)
        });
        let hello_interval =
            self.duration(raw.hello_interval, "linkstate.hello_interval", d.hello_interval);
        let dead_span = raw.dead_interval.as_ref().map(Spanned::span);
        let dead_interval =
            self.duration(raw.dead_interval, "linkstate.dead_interval", d.dead_interval);
        // A neighbour is declared dead only after missing hellos; a dead interval not above the
        // hello interval would drop every adjacency between two hellos.
        if dead_interval <= hello_interval {
            self.error(
                &dead_span.unwrap_or(0..0),
                "linkstate.dead_interval",
                ErrorKind::OutOfRange {
                    value: format!("{dead_interval:?}"),
                    reason: "must be longer than linkstate.hello_interval",
                },
            );
        }
        let auth = match (raw.key_id, raw.secret) {
            (None, None) => None,
            (Some(id), Some(secret)) => {
                if secret.get_ref().is_empty() {
                    self.error(
                        &secret.span(),
                        "linkstate.secret",
                        ErrorKind::BadKey("the secret is empty".into()),
                    );
                    None
                } else {
                    Some(crate::linkstate::AuthKey {
                        key_id: *id.get_ref(),
                        secret: secret.into_inner(),
                    })
                }
            }
            (Some(id), None) => {
                self.error(
                    &id.span(),
                    "linkstate.key_id",
                    ErrorKind::BadKey("key_id is set but secret is missing".into()),
                );
                None
            }
            (None, Some(secret)) => {
                self.error(
                    &secret.span(),
                    "linkstate.secret",
                    ErrorKind::BadKey("secret is set but key_id is missing".into()),
                );
                None
            }
        };
        let mut accept_keys: Vec<crate::linkstate::AuthKey> = Vec::new();
        for (i, k) in raw.accept_keys.into_iter().enumerate() {
            let id = *k.key_id.get_ref();
            let problem = if auth.is_none() {
                Some("accept_keys needs key_id and secret (the key sent with)".to_owned())
            } else if auth.as_ref().is_some_and(|a| a.key_id == id)
                || accept_keys.iter().any(|a| a.key_id == id)
            {
                Some(format!("key id {id} is used twice"))
            } else if k.secret.get_ref().is_empty() {
                Some("the secret is empty".to_owned())
            } else {
                None
            };
            match problem {
                Some(p) => self.error(
                    &k.key_id.span(),
                    format!("linkstate.accept_keys[{i}]"),
                    ErrorKind::BadKey(p),
                ),
                None => accept_keys
                    .push(crate::linkstate::AuthKey { key_id: id, secret: k.secret.into_inner() }),
            }
        }
        LinkStateSettings {
            accept_keys,
            router_id,
            hello_interval,
            dead_interval,
            retransmit_interval: self.duration(
                raw.retransmit_interval,
                "linkstate.retransmit_interval",
                d.retransmit_interval,
            ),
            min_ls_interval: self.duration(
                raw.min_ls_interval,
                "linkstate.min_ls_interval",
                d.min_ls_interval,
            ),
            min_ls_arrival: self.duration(
                raw.min_ls_arrival,
                "linkstate.min_ls_arrival",
                d.min_ls_arrival,
            ),
            auth,
        }
    }

    fn overlay(
        &mut self,
        mut raw: RawOverlay,
        routing: RoutingMode,
        interfaces: &[InterfaceConfig],
    ) -> OverlaySettings {
        let protocol = if routing == RoutingMode::Overlay {
            self.overlay_protocol(&mut raw, interfaces)
        } else {
            self.no_overlay_protocol(&raw);
            None
        };
        let d = OverlaySettings::default();
        let port = match raw.port {
            Some(p) if *p.get_ref() == 0 => {
                self.error(
                    &p.span(),
                    "overlay.port",
                    ErrorKind::OutOfRange {
                        value: "0".into(),
                        reason: "the overlay port must be 1-65535",
                    },
                );
                d.port
            }
            Some(p) => *p.get_ref(),
            None => d.port,
        };
        let origin = raw.origin.as_ref().and_then(|o| {
            let addr = self.ipv4(o, "overlay.origin")?;
            if addr.is_multicast() || addr.is_unspecified() || addr.is_broadcast() {
                let kind = ErrorKind::BadAddress {
                    value: o.get_ref().clone(),
                    reason: "origin must be unicast".into(),
                };
                self.error(&o.span(), "overlay.origin", kind);
                return None;
            }
            Some(addr)
        });
        let hop_count = self.count(raw.hop_count, "overlay.hop_count", d.hop_count);
        let mut keys: Vec<OverlayKey> = Vec::new();
        for (i, k) in raw.keys.into_iter().enumerate() {
            let id = *k.id.get_ref();
            // The data plane holds the current and the next key, for rotation without loss.
            if i >= MAX_OVERLAY_KEYS {
                self.error(
                    &k.id.span(),
                    format!("overlay.keys[{i}]"),
                    ErrorKind::OutOfRange {
                        value: format!("{} keys", i + 1),
                        reason: "at most 2 overlay keys (current and next) are supported",
                    },
                );
                continue;
            }
            if keys.iter().any(|e| e.id == id) {
                self.error(
                    &k.id.span(),
                    format!("overlay.keys[{i}].id"),
                    ErrorKind::DuplicateKeyId(id),
                );
                continue;
            }
            match parse_key_hex(k.secret.get_ref()) {
                Ok(secret) => keys.push(OverlayKey { id, secret }),
                Err(reason) => self.error(
                    &k.secret.span(),
                    format!("overlay.keys[{i}].secret"),
                    ErrorKind::BadKey(reason),
                ),
            }
        }
        let send_key = raw.send_key.and_then(|k| {
            let id = *k.get_ref();
            if keys.iter().any(|e| e.id == id) {
                Some(id)
            } else {
                self.error(&k.span(), "overlay.send_key", ErrorKind::UnknownSendKey(id));
                None
            }
        });
        let origin = match (&protocol, origin) {
            (Some(p), Some(o)) if o != p.address => {
                let span = raw.origin.as_ref().map_or_else(|| self.overlay_span(), Spanned::span);
                let kind = ErrorKind::BadAddress {
                    value: o.to_string(),
                    reason: format!(
                        "in routing mode overlay the origin is the node's address {}",
                        p.address
                    ),
                };
                self.error(&span, "overlay.origin", kind);
                Some(p.address)
            }
            // Receivers find the overlay route by the origin the core computed trees for.
            (Some(p), _) => Some(p.address),
            (None, o) => o,
        };
        if routing == RoutingMode::Overlay && keys.is_empty() {
            self.error(
                &self.overlay_span(),
                "overlay.keys",
                ErrorKind::MissingOverlayKey("overlay.keys"),
            );
        }
        OverlaySettings { port, origin, hop_count, keys, send_key, protocol }
    }

    /// Outside routing mode overlay, the protocol's keys are mistakes (they would do nothing).
    fn no_overlay_protocol(&mut self, raw: &RawOverlay) {
        let set: [(&str, Option<Range<usize>>); 4] = [
            ("overlay.rendezvous", raw.rendezvous.as_ref().map(Spanned::span)),
            ("overlay.address", raw.address.as_ref().map(Spanned::span)),
            ("overlay.groups", raw.groups.first().map(Spanned::span)),
            ("overlay.topology", raw.topology.as_ref().map(Spanned::span)),
        ];
        for (field, span) in set {
            if let Some(span) = span {
                self.error(&span, field, ErrorKind::OverlayKeyOutsideOverlayMode(field.into()));
            }
        }
    }

    fn required_unicast(
        &mut self,
        raw: Option<&S<String>>,
        field: &'static str,
    ) -> Option<Ipv4Addr> {
        let Some(s) = raw else {
            self.error(&self.overlay_span(), field, ErrorKind::MissingOverlayKey(field));
            return None;
        };
        self.unicast(s, field)
    }

    fn positive_u32(&mut self, raw: Option<&S<u32>>, field: &str, default: u32) -> u32 {
        let Some(s) = raw else { return default };
        if *s.get_ref() == 0 {
            let kind = ErrorKind::OutOfRange { value: "0".into(), reason: "must be at least 1" };
            self.error(&s.span(), field, kind);
            return default;
        }
        *s.get_ref()
    }

    fn positive_usize(&mut self, raw: Option<&S<usize>>, field: &str, default: usize) -> usize {
        let Some(s) = raw else { return default };
        if *s.get_ref() == 0 {
            let kind = ErrorKind::OutOfRange { value: "0".into(), reason: "must be at least 1" };
            self.error(&s.span(), field, kind);
            return default;
        }
        *s.get_ref()
    }

    #[expect(clippy::too_many_lines, reason = "one key after the other, in file order")]
    fn overlay_protocol(
        &mut self,
        raw: &mut RawOverlay,
        interfaces: &[InterfaceConfig],
    ) -> Option<OverlayProtocolSettings> {
        use crate::overlay::{Overcast, SelfOrganising, StaticLink, TopologyMode, TreeMode};
        let address = self.required_unicast(raw.address.as_ref(), "overlay.address");
        let rendezvous = self.required_unicast(raw.rendezvous.as_ref(), "overlay.rendezvous");
        let local_interface = match &raw.local_interface {
            None => {
                let kind = ErrorKind::MissingOverlayKey("overlay.local_interface");
                self.error(&self.overlay_span(), "overlay.local_interface", kind);
                None
            }
            Some(n) if !interfaces.iter().any(|i| &i.name == n.get_ref()) => {
                let kind = ErrorKind::UnknownInterface(n.get_ref().clone());
                self.error(&n.span(), "overlay.local_interface", kind);
                None
            }
            Some(n) => Some(n.get_ref().clone()),
        };
        let mut groups: Vec<Ipv4Addr> = Vec::new();
        if raw.groups.is_empty() {
            self.error(
                &self.overlay_span(),
                "overlay.groups",
                ErrorKind::MissingOverlayKey("overlay.groups"),
            );
        }
        for (i, g) in raw.groups.iter().enumerate() {
            let field = format!("overlay.groups[{i}]");
            let Some(addr) = self.ipv4(g, &field) else { continue };
            if !is_routable_group(addr) {
                self.error(&g.span(), field, ErrorKind::NotMulticast(addr));
            } else if groups.contains(&addr) {
                let kind = ErrorKind::Duplicate { what: "group", value: addr.to_string() };
                self.error(&g.span(), field, kind);
            } else {
                groups.push(addr);
            }
        }
        let so_default = SelfOrganising::default();
        let probe_interval = self.duration(
            raw.probe_interval.take(),
            "overlay.probe_interval",
            so_default.probe_interval,
        );
        let topology = match raw.topology.as_ref().map(|t| t.get_ref().as_str()) {
            None | Some("static") => {
                let mut links = Vec::new();
                for (i, l) in raw.link.iter().enumerate() {
                    let a = self.unicast(&l.a, &format!("overlay.link[{i}].a"));
                    let b = self.unicast(&l.b, &format!("overlay.link[{i}].b"));
                    let cost =
                        self.positive_u32(l.cost.as_ref(), &format!("overlay.link[{i}].cost"), 1);
                    if let (Some(a), Some(b)) = (a, b) {
                        if a == b {
                            let kind = ErrorKind::BadAddress {
                                value: b.to_string(),
                                reason: "a link needs two different ends".into(),
                            };
                            self.error(&l.b.span(), format!("overlay.link[{i}].b"), kind);
                        } else {
                            links.push(StaticLink { a, b, cost });
                        }
                    }
                }
                if raw.link.is_empty() {
                    let kind = ErrorKind::MissingOverlayKey(
                        "at least one [[overlay.link]] with topology = \"static\"",
                    );
                    let span =
                        raw.topology.as_ref().map_or_else(|| self.overlay_span(), Spanned::span);
                    self.error(&span, "overlay.link", kind);
                }
                TopologyMode::Static { links }
            }
            Some("self-organising") => {
                let target_degree = self.positive_usize(
                    raw.target_degree.as_ref(),
                    "overlay.target_degree",
                    so_default.target_degree,
                );
                let max_degree = self.positive_usize(
                    raw.max_degree.as_ref(),
                    "overlay.max_degree",
                    so_default.max_degree.max(target_degree),
                );
                if max_degree < target_degree {
                    let span =
                        raw.max_degree.as_ref().map_or_else(|| self.overlay_span(), Spanned::span);
                    let kind = ErrorKind::OutOfRange {
                        value: max_degree.to_string(),
                        reason: "max_degree must be at least target_degree",
                    };
                    self.error(&span, "overlay.max_degree", kind);
                }
                TopologyMode::SelfOrganising(SelfOrganising {
                    target_degree,
                    max_degree: max_degree.max(target_degree),
                    probe_interval,
                    candidates_per_round: self.positive_usize(
                        raw.candidates_per_round.as_ref(),
                        "overlay.candidates_per_round",
                        so_default.candidates_per_round,
                    ),
                    hysteresis_percent: raw
                        .hysteresis_percent
                        .as_ref()
                        .map_or(so_default.hysteresis_percent, |h| *h.get_ref()),
                })
            }
            Some("overcast") => {
                let root = self.required_unicast(raw.root.as_ref(), "overlay.root");
                TopologyMode::Overcast(Overcast {
                    root: root.unwrap_or(Ipv4Addr::UNSPECIFIED),
                    probe_interval,
                    tolerance_percent: raw.tolerance_percent.as_ref().map_or(30, |t| *t.get_ref()),
                    max_children: self.positive_usize(
                        raw.max_children.as_ref(),
                        "overlay.max_children",
                        4,
                    ),
                })
            }
            Some(other) => {
                let kind = ErrorKind::UnknownValue {
                    what: "overlay topology",
                    value: other.to_owned(),
                    expected: "static, self-organising, overcast",
                };
                let span = raw.topology.as_ref().map_or_else(|| self.overlay_span(), Spanned::span);
                self.error(&span, "overlay.topology", kind);
                TopologyMode::Static { links: Vec::new() }
            }
        };
        let tree = match raw.tree.as_ref().map(|t| t.get_ref().as_str()) {
            None | Some("shortest-path") => TreeMode::ShortestPath,
            Some("shared-core") => {
                let core = self.required_unicast(raw.core.as_ref(), "overlay.core");
                TreeMode::SharedCore { core: core.unwrap_or(Ipv4Addr::UNSPECIFIED) }
            }
            Some(other) => {
                let kind = ErrorKind::UnknownValue {
                    what: "overlay tree",
                    value: other.to_owned(),
                    expected: "shortest-path, shared-core",
                };
                let span = raw.tree.as_ref().map_or_else(|| self.overlay_span(), Spanned::span);
                self.error(&span, "overlay.tree", kind);
                TreeMode::ShortestPath
            }
        };
        let d = crate::overlay::OverlayConfig::new(
            Ipv4Addr::new(239, 0, 0, 1),
            Ipv4Addr::UNSPECIFIED,
            Vec::new(),
            TopologyMode::Static { links: Vec::new() },
        );
        let heartbeat_interval = self.duration(
            raw.heartbeat_interval.take(),
            "overlay.heartbeat_interval",
            d.heartbeat_interval,
        );
        let dead_multiplier = self.positive_u32(
            raw.dead_multiplier.as_ref(),
            "overlay.dead_multiplier",
            d.dead_multiplier,
        );
        let lsa_refresh =
            self.duration(raw.lsa_refresh.take(), "overlay.lsa_refresh", d.lsa_refresh);
        let join_retry = self.duration(raw.join_retry.take(), "overlay.join_retry", d.join_retry);
        let max_members = raw
            .max_members
            .as_ref()
            .map(|m| self.positive_usize(Some(m), "overlay.max_members", usize::MAX));
        Some(OverlayProtocolSettings {
            address: address?,
            rendezvous: rendezvous?,
            local_interface: local_interface?,
            groups,
            topology,
            tree,
            heartbeat_interval,
            dead_multiplier,
            lsa_refresh,
            join_retry,
            max_members,
        })
    }

    fn limits(&mut self, raw: RawLimits, static_routes: usize) -> Limits {
        let d = Limits::default();
        let mut positive =
            |v: Option<S<usize>>, field: &str, default: usize| -> (usize, Range<usize>) {
                let Some(s) = v else { return (default, 0..0) };
                if *s.get_ref() == 0 {
                    self.error(
                        &s.span(),
                        field,
                        ErrorKind::OutOfRange { value: "0".into(), reason: "must be at least 1" },
                    );
                    return (default, s.span());
                }
                (*s.get_ref(), s.span())
            };
        let (max_routes, span) = positive(raw.max_routes, "limits.max_routes", d.max_routes);
        let (max_groups_per_interface, _) = positive(
            raw.max_groups_per_interface,
            "limits.max_groups_per_interface",
            d.max_groups_per_interface,
        );
        let (max_neighbors, _) =
            positive(raw.max_neighbors, "limits.max_neighbors", d.max_neighbors);
        if static_routes > max_routes {
            self.error(
                &span,
                "limits.max_routes",
                ErrorKind::TooManyRoutes { count: static_routes, max: max_routes },
            );
        }
        let punt_rate = match raw.punt_rate {
            Some(p) if *p.get_ref() == 0 => {
                self.error(
                    &p.span(),
                    "limits.punt_rate",
                    ErrorKind::OutOfRange {
                        value: "0".into(),
                        reason: "must be at least 1 punt per second",
                    },
                );
                d.punt_rate
            }
            Some(p) => *p.get_ref(),
            None => d.punt_rate,
        };
        Limits { max_routes, max_groups_per_interface, max_neighbors, punt_rate }
    }
}

// ===== global functions =====

/// 224.0.0.0/4 outside the link-local block 224.0.0.0/24, which routers never forward
/// (RFC 5771 §4).
pub fn is_routable_group(addr: Ipv4Addr) -> bool {
    addr.is_multicast() && addr.octets()[..3] != [224, 0, 0]
}

fn valid_ifname(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_IFNAME_LEN
        && name != "."
        && name != ".."
        && !name.chars().any(|c| c == '/' || c == ':' || c.is_whitespace())
}

/// Parses durations such as `125s`, `1m30s`, `500ms`, `2h`: one or more `<integer><unit>` parts,
/// units `ms`, `s`, `m`, `h`. Zero is rejected: every timer here must make progress.
pub fn parse_duration(text: &str) -> Result<Duration, &'static str> {
    let mut total = Duration::ZERO;
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err("empty");
    }
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
        if digits == 0 {
            return Err("expected a number");
        }
        let n: u64 = rest[..digits].parse().map_err(|_| "number too large")?;
        rest = &rest[digits..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit()).unwrap_or(rest.len());
        let part = match &rest[..unit_len] {
            "ms" => Duration::from_millis(n),
            "s" => Duration::from_secs(n),
            "m" => Duration::from_secs(n.checked_mul(60).ok_or("number too large")?),
            "h" => Duration::from_secs(n.checked_mul(3600).ok_or("number too large")?),
            "" => return Err("missing unit (ms, s, m or h)"),
            _ => return Err("unknown unit (use ms, s, m or h)"),
        };
        rest = &rest[unit_len..];
        total = total.checked_add(part).ok_or("too large")?;
    }
    if total.is_zero() {
        return Err("must be greater than zero");
    }
    Ok(total)
}

/// Decodes an overlay secret: hex, 16 to 64 bytes (HMAC-SHA256 keys shorter than 128 bits are
/// too weak; longer than the 64-byte block are hashed anyway, so they add nothing).
pub fn parse_key_hex(text: &str) -> Result<Vec<u8>, String> {
    if text.len() % 2 != 0 {
        return Err(format!("odd number of hex digits ({})", text.len()));
    }
    let mut out = Vec::with_capacity(text.len() / 2);
    for (i, pair) in text.as_bytes().chunks(2).enumerate() {
        let hi = hex_val(pair[0]).ok_or_else(|| {
            format!("'{}' at position {} is not a hex digit", pair[0] as char, 2 * i)
        })?;
        let lo = hex_val(pair[1]).ok_or_else(|| {
            format!("'{}' at position {} is not a hex digit", pair[1] as char, 2 * i + 1)
        })?;
        out.push(hi << 4 | lo);
    }
    if !(16..=64).contains(&out.len()) {
        return Err(format!(
            "{} bytes; a key must be 16 to 64 bytes (32 to 128 hex digits)",
            out.len()
        ));
    }
    Ok(out)
}

/// Parses `aa:bb:cc:dd:ee:ff` (either case).
pub fn parse_mac(text: &str) -> Option<[u8; 6]> {
    let mut out = [0u8; 6];
    let mut parts = text.split(':');
    for b in &mut out {
        let p = parts.next()?.as_bytes();
        let [hi, lo] = p else { return None };
        *b = hex_val(*hi)? << 4 | hex_val(*lo)?;
    }
    parts.next().is_none().then_some(out)
}

fn hex_val(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// 1-based line and character column of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let col = before[line_start..].chars().count() + 1;
    (line, col)
}

/// Best-effort field path of a byte offset (for toml's own errors, which carry only a span):
/// the last table header above it plus the key on its line, e.g. `interface[1].ttl_threshold`.
fn field_path_at(text: &str, offset: usize) -> String {
    let offset = offset.min(text.len());
    let mut table = String::new();
    let mut counts: HashMap<String, usize> = HashMap::new();
    let mut key = String::new();
    let mut pos = 0;
    for line in text.split_inclusive('\n') {
        let start = pos;
        pos += line.len();
        if start > offset {
            break;
        }
        let t = line.trim();
        if let Some(name) = t.strip_prefix("[[").and_then(|r| r.split("]]").next()) {
            let name = name.trim().to_owned();
            let n = counts.entry(name.clone()).or_insert(0);
            table = format!("{name}[{n}]");
            *n += 1;
            key.clear();
        } else if let Some(name) = t.strip_prefix('[').and_then(|r| r.split(']').next()) {
            name.trim().clone_into(&mut table);
            key.clear();
        } else if let Some((k, _)) = t.split_once('=') {
            k.trim().clone_into(&mut key);
        } else {
            key.clear();
        }
        if offset < pos {
            break;
        }
    }
    match (table.is_empty(), key.is_empty()) {
        (true, _) => key,
        (false, true) => table,
        (false, false) => format!("{table}.{key}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("125s"), Ok(Duration::from_secs(125)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("10").is_err());
        assert!(parse_duration("10x").is_err());
        assert!(parse_duration("s").is_err());
        assert!(parse_duration("").is_err());
        assert!(parse_duration("99999999999999999999s").is_err());
    }

    #[test]
    fn key_hex() {
        assert_eq!(parse_key_hex(&"ab".repeat(16)).unwrap(), vec![0xab; 16]);
        assert!(parse_key_hex("abc").unwrap_err().contains("odd"));
        assert!(parse_key_hex(&"zz".repeat(16)).unwrap_err().contains("not a hex digit"));
        assert!(parse_key_hex("abcd").unwrap_err().contains("16 to 64"));
    }

    #[test]
    fn positions() {
        let text = "a = 1\n[daemon]\nx = 2\n[[interface]]\nname = \"é\"\n[[interface]]\nttl = 3\n";
        assert_eq!(line_col(text, 0), (1, 1));
        let off = text.find("x =").unwrap();
        assert_eq!(line_col(text, off), (3, 1));
        assert_eq!(field_path_at(text, off), "daemon.x");
        assert_eq!(field_path_at(text, text.find("ttl").unwrap()), "interface[1].ttl");
        assert_eq!(field_path_at(text, 0), "a");
    }

    #[test]
    fn routable_groups() {
        assert!(is_routable_group(Ipv4Addr::new(239, 1, 1, 1)));
        assert!(is_routable_group(Ipv4Addr::new(224, 0, 1, 1)));
        assert!(!is_routable_group(Ipv4Addr::new(224, 0, 0, 5)));
        assert!(!is_routable_group(Ipv4Addr::new(10, 0, 0, 1)));
    }

    #[test]
    fn rotation_keys_and_privilege_settings() {
        let parse = |t: &str| Config::parse(t, Path::new("/x.toml"));
        let c = parse(
            "[linkstate]\nkey_id = 2\nsecret = \"new\"\naccept_keys = [{ key_id = 1, secret = \"old\" }]\n",
        )
        .unwrap();
        assert_eq!(c.linkstate.auth.as_ref().map(|k| k.key_id), Some(2));
        assert_eq!(c.linkstate.accept_keys.iter().map(|k| k.key_id).collect::<Vec<_>>(), [1]);
        // Keys are not part of what needs a restart.
        assert_eq!(c.linkstate.without_keys(), parse("").unwrap().linkstate.without_keys());
        for (text, problem) in [
            ("[linkstate]\naccept_keys = [{ key_id = 1, secret = \"a\" }]\n", "needs key_id"),
            (
                "[linkstate]\nkey_id = 1\nsecret = \"a\"\naccept_keys = [{ key_id = 1, secret = \"b\" }]\n",
                "used twice",
            ),
            (
                "[linkstate]\nkey_id = 1\nsecret = \"a\"\naccept_keys = [{ key_id = 2, secret = \"\" }]\n",
                "empty",
            ),
        ] {
            let e = parse(text).unwrap_err().to_string();
            assert!(e.contains(problem) && e.contains("linkstate.accept_keys[0]"), "{e}");
        }
        let d = parse("").unwrap().daemon;
        assert_eq!((d.control_group, d.drop_privileges), (None, true));
        let d = parse("[daemon]\ncontrol_group = \"fanout\"\ndrop_privileges = false\n")
            .unwrap()
            .daemon;
        assert_eq!((d.control_group.as_deref(), d.drop_privileges), (Some("fanout"), false));
        assert!(parse("[daemon]\ncontrol_group = \"\"\n").is_err());
    }
}
