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
    /// Overlay routes and overlay neighbours.
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
