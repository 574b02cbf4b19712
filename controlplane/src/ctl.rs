//! The control protocol between `fanoutctl` (or any script) and `fanoutd`: newline-delimited JSON
//! over the daemon's unix socket, one request line answered by one response line.
//!
//! ```text
//! → {"cmd":"show","what":"mroute"}
//! ← {"ok":true,"data":{"routes":[...]}}
//! → {"cmd":"reload"}
//! ← {"ok":false,"error":"/etc/fanout/fanout.toml:12:8: static_route[0].group: ..."}
//! ```
//!
//! The `data` types below are the stable JSON schema (docs/fanoutctl.md documents each with an
//! example; tests/ctl.rs pins the field names). Fields may be added; existing ones are neither
//! renamed nor removed. They are independent of the data plane's own types so that the schema
//! does not move when the data plane's internals do.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::Ipv4Addr;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Longest request or response line accepted (a full `show mroute` of `limits.max_routes`
/// fits many times over; anything larger is a broken or hostile peer).
pub const MAX_LINE: usize = 16 << 20;

/// A request line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    Show {
        what: ShowWhat,
    },
    Clear {
        what: ClearWhat,
    },
    /// The link-state shortest-path tree of (source, group) as this router computes it now
    /// (`fanoutctl show spt S G`); answered with [`crate::linkstate::SptSnapshot`].
    ShowSpt {
        source: Ipv4Addr,
        group: Ipv4Addr,
    },
    /// Re-read the configuration file (as SIGHUP does) and report what changed.
    Reload,
    /// Start a packet capture on a data-plane interface (`fanoutctl debug pcap`); answered
    /// with [`PcapStartData`]. One capture at a time; it ends after `seconds` (at most
    /// [`MAX_PCAP_SECONDS`]) or on [`Request::PcapStop`].
    PcapStart {
        interface: String,
        seconds: u32,
        /// Bytes kept per frame (default and maximum [`MAX_PCAP_SNAPLEN`]).
        #[serde(default)]
        snaplen: Option<u32>,
        /// Also capture the copies the data plane transmits on the interface.
        #[serde(default = "default_true")]
        tx: bool,
    },
    /// The frames captured since the last read; answered with [`PcapReadData`].
    PcapRead {
        id: u64,
    },
    /// End a capture early; answered with [`PcapReadData`] (the frames not read yet).
    PcapStop {
        id: u64,
    },
}

fn default_true() -> bool {
    true
}

/// Longest capture `debug pcap` accepts.
pub const MAX_PCAP_SECONDS: u32 = 300;
/// Bytes kept per captured frame at most (a whole UMEM frame's data).
pub const MAX_PCAP_SNAPLEN: u32 = 2048;

/// `pcap_start`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PcapStartData {
    pub id: u64,
    pub interface: String,
    pub seconds: u32,
    pub snaplen: u32,
}

/// `pcap_read` / `pcap_stop`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PcapReadData {
    pub frames: Vec<PcapFrame>,
    /// Frames captured and dropped so far (the reader was too slow; buffers are bounded).
    pub captured: u64,
    pub dropped: u64,
    /// The capture is over (time is up or it was stopped) and every frame has been read.
    pub done: bool,
}

/// One captured frame.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PcapFrame {
    /// Capture time, microseconds since the Unix epoch.
    pub time_us: u64,
    /// Length on the wire (`data` may be shorter: snaplen).
    pub orig_len: u32,
    /// A copy fanout transmitted (false: a frame it received).
    pub tx: bool,
    /// The frame's bytes, lowercase hex.
    pub data: String,
}

/// What `show` displays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum ShowWhat {
    /// Data-plane interfaces, their XDP/AF_XDP modes and packet counts.
    Interfaces,
    /// The multicast forwarding table with per-route counters.
    Mroute,
    /// IGMP membership per interface.
    Igmp,
    /// Routing-protocol neighbours.
    Neighbors,
    /// Configured static routes and protocol routes.
    Routes,
    /// The link-state database.
    Lsdb,
    /// The link-state shortest-path tree of an (S,G): `show spt <S> <G>`.
    Spt,
    /// Overlay routes and overlay neighbours; in routing mode overlay also members, neighbours
    /// with RTT, trees and counters per group.
    Overlay,
    /// Per-interface counters by drop reason, XDP program and control-plane counters.
    Counters,
}

impl ShowWhat {
    pub fn as_str(self) -> &'static str {
        match self {
            ShowWhat::Interfaces => "interfaces",
            ShowWhat::Mroute => "mroute",
            ShowWhat::Igmp => "igmp",
            ShowWhat::Neighbors => "neighbors",
            ShowWhat::Routes => "routes",
            ShowWhat::Lsdb => "lsdb",
            ShowWhat::Spt => "spt",
            ShowWhat::Overlay => "overlay",
            ShowWhat::Counters => "counters",
        }
    }
}

/// What `clear` resets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum ClearWhat {
    /// Interface, route and XDP counters as shown by fanoutctl (Prometheus counters keep growing).
    Counters,
}

/// A response line: `{"ok":true,"data":...}` or `{"ok":false,"error":"..."}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Response {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Response {
    pub fn ok<T: Serialize>(data: &T) -> Response {
        match serde_json::to_value(data) {
            Ok(v) => Response { ok: true, data: Some(v), error: None },
            Err(e) => Response::error(format!("cannot encode response: {e}")),
        }
    }

    pub fn error(msg: impl Into<String>) -> Response {
        Response { ok: false, data: None, error: Some(msg.into()) }
    }

    /// The data as `T`, or the daemon's error.
    pub fn into_data<T: for<'de> Deserialize<'de>>(self) -> Result<T, CtlError> {
        if !self.ok {
            return Err(CtlError::Daemon(self.error.unwrap_or_else(|| "unspecified error".into())));
        }
        let v = self.data.unwrap_or(serde_json::Value::Null);
        serde_json::from_value(v)
            .map_err(|e| CtlError::Protocol(format!("unexpected response data: {e}")))
    }
}

// ===== the data schema =====

/// `show interfaces`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InterfacesData {
    pub interfaces: Vec<InterfaceState>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InterfaceState {
    pub name: String,
    pub ifindex: u32,
    /// `aa:bb:cc:dd:ee:ff`.
    pub mac: String,
    pub ipv4: Ipv4Addr,
    /// How the XDP program is attached: `native` or `skb`.
    pub xdp_mode: String,
    /// How the AF_XDP socket is bound: `zero-copy` or `copy`.
    pub bind_mode: String,
    pub queue: u32,
    pub ttl_threshold: u8,
    pub rx_packets: u64,
    pub tx_packets: u64,
    /// Sum of all drop reasons.
    pub drops: u64,
    /// `up`, `down` (exists, but down or not usable yet) or `absent` (no such interface now;
    /// routes keep it and it forwards again when it reappears).
    #[serde(default = "state_up")]
    pub state: String,
}

fn state_up() -> String {
    "up".to_owned()
}

/// `show mroute`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MrouteData {
    pub routes: Vec<MrouteEntry>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MrouteEntry {
    /// `null` for a (*,G) route.
    pub source: Option<Ipv4Addr>,
    pub group: Ipv4Addr,
    /// Interface name (or `ifindex:N` if the data plane does not know it).
    pub iif: String,
    pub oifs: Vec<MrouteOif>,
    pub overlay_next_hops: Vec<Ipv4Addr>,
    pub packets: u64,
    pub bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MrouteOif {
    pub name: String,
    pub ttl_threshold: u8,
}

/// `show routes`: what the routing protocol (here: the configuration) asks for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoutesData {
    /// `static`, later also `dvmrp`, ...
    pub mode: String,
    pub routes: Vec<ConfiguredRoute>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfiguredRoute {
    pub source: Option<Ipv4Addr>,
    pub group: Ipv4Addr,
    pub iif: String,
    pub oifs: Vec<String>,
    /// Where the route comes from: `static`.
    pub origin: String,
}

/// `show overlay`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OverlayData {
    pub port: u16,
    pub routes: Vec<OverlayRouteEntry>,
    pub neighbors: Vec<OverlayNeighbor>,
    /// Routing mode `overlay`: the protocol's live state (absent in other modes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<OverlayProtocolData>,
}

/// `show overlay` in routing mode overlay: this node, each group's protocol state (members,
/// neighbours with RTT, tree per origin, counters incl. refused joins and auth failures) and
/// the runtime's counters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OverlayProtocolData {
    pub address: Ipv4Addr,
    pub groups: Vec<crate::overlay::OverlayState>,
    pub counters: OverlayRuntimeCounters,
    /// Next hops wanted by some group whose link-layer address is not known yet.
    pub unresolved: Vec<Ipv4Addr>,
}

/// Counters of the overlay runtime (beside each group's protocol counters).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OverlayRuntimeCounters {
    /// Control datagrams received on / sent from UDP 7411.
    pub received: u64,
    pub sent: u64,
    pub send_errors: u64,
    /// Datagrams naming a group this node is not configured for (or too short to name one).
    pub unknown_group: u64,
    /// Next-hop lookups that found no route or link-layer address (retried).
    pub unresolved: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OverlayRouteEntry {
    pub origin: Ipv4Addr,
    pub group: Ipv4Addr,
    pub from: Option<Ipv4Addr>,
    pub deliver: Vec<MrouteOif>,
    pub next_hops: Vec<Ipv4Addr>,
    pub packets: u64,
    pub bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OverlayNeighbor {
    pub addr: Ipv4Addr,
    pub interface: String,
    pub mac: String,
}

/// `show counters`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CountersData {
    pub interfaces: Vec<InterfaceCounters>,
    /// XDP program counters (summed over CPUs), by name.
    pub xdp: BTreeMap<String, u64>,
    pub control: ControlCounters,
    /// Seconds since the last `clear counters` (or since start).
    pub since_clear_secs: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InterfaceCounters {
    pub name: String,
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
    pub punts: u64,
    /// Every drop reason, including zeros, keyed by its stable name.
    pub drops: BTreeMap<String, u64>,
}

/// Control-plane counters (not cleared by `clear counters`: they describe the daemon).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ControlCounters {
    pub ctl_requests: u64,
    pub reloads_ok: u64,
    pub reloads_failed: u64,
    pub punts_received: u64,
    pub mfib_updates: u64,
    pub mfib_errors: u64,
    /// IGMP datagrams the raw-socket readers could not parse (lengths, counts, checksum).
    #[serde(default)]
    pub igmp_rejected: u64,
    /// DVMRP messages (IGMP type 0x13) that failed to parse (masks, metrics, lengths).
    #[serde(default)]
    pub dvmrp_rejected: u64,
}

/// `reload`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReloadData {
    pub routes_installed: usize,
    pub routes_removed: usize,
}

/// `clear counters`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClearData {
    pub cleared: String,
}

// ===== client =====

/// Why a ctl exchange failed.
#[derive(Debug, thiserror::Error)]
pub enum CtlError {
    #[error("cannot reach fanoutd at {}: {source} (is fanoutd running?)", path.display())]
    Connect { path: PathBuf, source: std::io::Error },
    #[error("talking to fanoutd: {0}")]
    Io(#[from] std::io::Error),
    #[error("bad message from fanoutd: {0}")]
    Protocol(String),
    /// The daemon understood the request and refused or failed it.
    #[error("{0}")]
    Daemon(String),
}

/// Sends one request and waits (up to `timeout`) for its response.
pub fn request(socket: &Path, req: &Request, timeout: Duration) -> Result<Response, CtlError> {
    let stream = UnixStream::connect(socket)
        .map_err(|source| CtlError::Connect { path: socket.to_owned(), source })?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    let mut line = serde_json::to_string(req).map_err(|e| CtlError::Protocol(e.to_string()))?;
    line.push('\n');
    (&stream).write_all(line.as_bytes())?;
    let mut reader = BufReader::new(&stream).take(MAX_LINE as u64);
    let mut buf = String::new();
    reader.read_line(&mut buf)?;
    if buf.is_empty() {
        return Err(CtlError::Protocol("connection closed without a response".into()));
    }
    serde_json::from_str(&buf).map_err(|e| CtlError::Protocol(format!("{e}: {}", buf.trim_end())))
}
