//! The [`Backend`] over the AF_XDP data plane (`dataplane::worker::Dataplane`).
//!
//! Counters are passed through raw: the daemon keeps its own `clear counters` baseline, so this
//! adapter never calls `Dataplane::clear_stats` and Prometheus sees monotonic values.

use std::collections::BTreeMap;

use dataplane::overlay::{OverlayConfig, OverlayKey};
use dataplane::worker::{Dataplane, DataplaneConfig, DataplaneError, PortState};
use dataplane_api::{IfIndex, MfibUpdate, Neighbor, Punt};

use super::backend::{
    ApplyError, Backend, Capture, CapturedFrame, DataplaneCounters, OverlayRouteStats, PortChange,
    PortInfo, RouteStats,
};
use crate::config::{Config, CopyMode, XdpMode};
use crate::ctl::InterfaceCounters;

/// The daemon's view of a data-plane port; a detached port is `absent` when no interface of
/// its name exists (any more), `down` otherwise.
fn port_info(p: dataplane::worker::PortInfo) -> PortInfo {
    let state = match p.state {
        PortState::Up => "up",
        PortState::Detached if nix::net::if_::if_nametoindex(p.name.as_str()).is_ok() => "down",
        PortState::Detached => "absent",
    };
    PortInfo {
        ifindex: IfIndex(p.ifindex),
        mac: p.mac.0,
        ipv4: p.ipv4,
        xdp_mode: p.xdp_mode.name().to_owned(),
        bind_mode: p.bind_mode.name().to_owned(),
        queue: p.queue,
        state: state.to_owned(),
        name: p.name,
    }
}

/// Tap buffers (frames in flight between the worker and a `pcap_read`): 1024 × 2 KiB.
const TAP_BUFFERS: usize = 1024;

/// A data-plane tap as a [`Capture`]; buffers go back to the worker as they are read.
struct TapCapture(dataplane::tap::TapReceiver);

impl Capture for TapCapture {
    fn read(&mut self, max: usize) -> Vec<CapturedFrame> {
        self.0
            .drain(max)
            .into_iter()
            .map(|mut f| {
                let frame = CapturedFrame {
                    time_us: u64::try_from(f.time.as_micros()).unwrap_or(u64::MAX),
                    orig_len: f.orig_len,
                    tx: f.tx,
                    data: f.data.clone(),
                };
                f.data.clear();
                self.0.recycle(f);
                frame
            })
            .collect()
    }

    fn captured(&self) -> u64 {
        self.0.captured()
    }

    fn dropped(&self) -> u64 {
        self.0.dropped()
    }
}

/// A running AF_XDP data plane.
#[derive(Debug)]
pub struct XdpBackend {
    dataplane: Dataplane,
}

/// Why the data plane could not start, with what the operator can do about it.
#[derive(Debug, thiserror::Error)]
pub enum XdpStartError {
    #[error("{0}")]
    Dataplane(#[from] DataplaneError),
    #[error(
        "copy_mode = \"zerocopy\" was configured, but interface {0} bound in copy mode (the driver \
         does not support AF_XDP zero-copy); use copy_mode = \"auto\""
    )]
    NoZeroCopy(String),
    #[error(
        "xdp_mode = \"native\" was configured, but interface {0} fell back to generic (skb) mode"
    )]
    NoNative(String),
}

impl XdpBackend {
    /// Attaches XDP and binds AF_XDP sockets on the configured interfaces, in the calling
    /// thread's network namespace.
    pub fn start(config: &Config) -> Result<XdpBackend, XdpStartError> {
        let dp = &config.dataplane;
        let dataplane = Dataplane::start(DataplaneConfig {
            interfaces: config.interface_names().map(str::to_owned).collect(),
            // Without overlay routes the port stays with the kernel (another overlay daemon on
            // this host may use it).
            overlay_port: if config.uses_overlay() { config.overlay.port } else { 0 },
            overlay: OverlayConfig {
                origin: config.overlay.origin,
                hop_count: config.overlay.hop_count,
                keys: config
                    .overlay
                    .keys
                    .iter()
                    .map(|k| OverlayKey { id: k.id, secret: k.secret.clone() })
                    .collect(),
                send_key: config.overlay.send_key,
            },
            frame_count: dp.frame_count,
            batch: dp.batch,
            force_copy_mode: dp.copy_mode == CopyMode::Copy,
            force_skb_mode: dp.xdp_mode == XdpMode::Skb,
            punt_rate: config.limits.punt_rate,
            ..DataplaneConfig::default()
        })?;
        let ports = dataplane.interfaces();
        // The data plane falls back silently where it can; an explicit request that was not
        // met is a configuration error, reported instead of running in a mode nobody asked for.
        if dp.copy_mode == CopyMode::ZeroCopy {
            if let Some(p) = ports.iter().find(|p| p.bind_mode.name() != "zero-copy") {
                let name = p.name.clone();
                let _ = dataplane.stop();
                return Err(XdpStartError::NoZeroCopy(name));
            }
        }
        if dp.xdp_mode == XdpMode::Native {
            if let Some(p) = ports.iter().find(|p| p.xdp_mode.name() != "native") {
                let name = p.name.clone();
                let _ = dataplane.stop();
                return Err(XdpStartError::NoNative(name));
            }
        }
        for p in &ports {
            tracing::info!(
                interface = %p.name,
                ifindex = p.ifindex,
                xdp = p.xdp_mode.name(),
                bind = p.bind_mode.name(),
                "data plane port up"
            );
        }
        Ok(XdpBackend { dataplane })
    }

    /// No-route notifications from the worker.
    pub fn punts(&self) -> crossbeam::channel::Receiver<Punt> {
        self.dataplane.punts()
    }

    /// Stops the worker and detaches XDP from every interface.
    pub fn stop(self) -> Result<(), DataplaneError> {
        self.dataplane.stop()
    }
}

impl Backend for XdpBackend {
    fn ports(&self) -> Vec<PortInfo> {
        self.dataplane.interfaces().into_iter().map(port_info).collect()
    }

    fn apply(&mut self, updates: &[MfibUpdate]) -> Result<(), ApplyError> {
        self.dataplane
            .mfib()
            .apply(updates, self.dataplane.interface_table())
            .map_err(|e| ApplyError(e.to_string()))
    }

    fn set_overlay_keys(
        &mut self,
        keys: &[crate::config::OverlayKey],
        send_key: Option<u8>,
    ) -> Result<(), ApplyError> {
        let keys: Vec<OverlayKey> =
            keys.iter().map(|k| OverlayKey { id: k.id, secret: k.secret.clone() }).collect();
        self.dataplane.set_overlay_keys(&keys, send_key).map_err(|e| ApplyError(e.to_string()))
    }

    fn start_capture(
        &mut self,
        interface: &str,
        snaplen: u32,
        tx: bool,
    ) -> Result<Box<dyn Capture>, ApplyError> {
        let receiver = self
            .dataplane
            .start_tap(interface, snaplen as usize, TAP_BUFFERS, tx)
            .map_err(|e| ApplyError(e.to_string()))?;
        Ok(Box::new(TapCapture(receiver)))
    }

    fn detach_port(&mut self, name: &str) -> Result<PortChange, ApplyError> {
        let ifindex = self
            .dataplane
            .interfaces()
            .into_iter()
            .find(|p| p.name == name)
            .map(|p| IfIndex(p.ifindex))
            .ok_or_else(|| ApplyError(format!("{name} is not a data-plane interface")))?;
        match self.dataplane.detach_port(name) {
            Ok(true) => Ok(PortChange::Detached { ifindex }),
            Ok(false) => Ok(PortChange::Unchanged),
            Err(e) => Err(ApplyError(e.to_string())),
        }
    }

    fn attach_port(&mut self, name: &str) -> Result<PortChange, ApplyError> {
        let before = self
            .dataplane
            .interfaces()
            .into_iter()
            .find(|p| p.name == name)
            .ok_or_else(|| ApplyError(format!("{name} is not a data-plane interface")))?;
        let after = self.dataplane.attach_port(name).map_err(|e| ApplyError(e.to_string()))?;
        if before.state == PortState::Up && before.ifindex == after.ifindex {
            return Ok(PortChange::Unchanged);
        }
        Ok(PortChange::Attached { old: IfIndex(before.ifindex), port: port_info(after) })
    }

    fn counters(&self) -> DataplaneCounters {
        let interfaces = self
            .dataplane
            .stats()
            .ports
            .into_iter()
            .map(|p| InterfaceCounters {
                name: p.name,
                rx_packets: p.rx_packets,
                rx_bytes: p.rx_bytes,
                tx_packets: p.tx_packets,
                tx_bytes: p.tx_bytes,
                punts: p.punts,
                drops: p.drops,
            })
            .collect();
        // Summed over ports: the program is the same on every interface, and the per-interface
        // picture is the pipeline's (above). Socket-level kernel counters get an `xsk_` prefix.
        let mut xdp: BTreeMap<String, u64> = BTreeMap::new();
        for io in self.dataplane.io_stats() {
            for (prefix, value) in
                [("", serde_json::to_value(io.xdp)), ("xsk_", serde_json::to_value(io.xsk))]
            {
                let Ok(serde_json::Value::Object(map)) = value else { continue };
                for (k, v) in map {
                    *xdp.entry(format!("{prefix}{k}")).or_insert(0) += v.as_u64().unwrap_or(0);
                }
            }
        }
        xdp.insert("punts_dropped".into(), self.dataplane.punts_dropped());
        DataplaneCounters { interfaces, xdp }
    }

    fn routes(&self) -> Vec<RouteStats> {
        self.dataplane
            .mfib()
            .routes()
            .into_iter()
            .map(|v| RouteStats { route: v.route, packets: v.packets, bytes: v.bytes })
            .collect()
    }

    fn overlay_routes(&self) -> Vec<OverlayRouteStats> {
        self.dataplane
            .mfib()
            .overlay_routes()
            .into_iter()
            .map(|v| OverlayRouteStats { route: v.route, packets: v.packets, bytes: v.bytes })
            .collect()
    }

    fn neighbors(&self) -> Vec<Neighbor> {
        self.dataplane.mfib().neighbors()
    }
}
