//! Prometheus text exposition (format 0.0.4) of fanoutd's state, and the tiny HTTP/1.0 side of
//! `GET /metrics`.
//!
//! Metrics are rendered from the same ctl data the `show` commands return, so the numbers an
//! operator sees in `fanoutctl` and in Prometheus come from one snapshot. They are raw, never
//! cleared values: `fanoutctl clear counters` only moves fanoutctl's baseline, because Prometheus
//! counters must be monotonic (a reset looks like a restart to `rate()`).
//!
//! The HTTP side is deliberately minimal (one request per connection, no keep-alive, no
//! chunking): it is scraped by Prometheus on a management address, not served to browsers.

use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::Duration;

use crate::ctl::{CountersData, MrouteData};

/// Everything one scrape shows.
#[derive(Debug, Clone)]
pub struct MetricsInput<'a> {
    /// Raw (not cleared) counters.
    pub counters: &'a CountersData,
    pub mroute: &'a MrouteData,
    /// Protocol neighbours by protocol name (`static` has none; listed so dashboards see 0).
    pub neighbors: &'a [(&'a str, usize)],
    /// IGMP groups with members, by interface (empty when IGMP is off).
    pub igmp_groups: &'a [(String, usize)],
    /// Routing mode overlay: the protocol's state (`None` in other modes).
    pub overlay: Option<&'a crate::ctl::OverlayProtocolData>,
    /// Routing mode linkstate: the shortest-path tree cache's counters (`None` otherwise).
    pub trees: Option<crate::linkstate::cache::CacheStats>,
    /// Each configured interface and its state (`up`, `down`, `absent`).
    pub interface_states: &'a [(String, String)],
    pub uptime: Duration,
}

type CounterFn = fn(&crate::ctl::InterfaceCounters) -> u64;

/// Renders the exposition text.
pub fn render(m: &MetricsInput<'_>) -> String {
    let mut out = String::new();
    let ifaces = &m.counters.interfaces;
    let per_iface: [(&str, &str, CounterFn); 5] = [
        ("fanout_interface_rx_packets_total", "Frames received by the data plane.", |c| {
            c.rx_packets
        }),
        ("fanout_interface_rx_bytes_total", "Bytes received by the data plane.", |c| c.rx_bytes),
        ("fanout_interface_tx_packets_total", "Frames transmitted by the data plane.", |c| {
            c.tx_packets
        }),
        ("fanout_interface_tx_bytes_total", "Bytes transmitted by the data plane.", |c| c.tx_bytes),
        ("fanout_interface_punts_total", "No-route packets reported to the control plane.", |c| {
            c.punts
        }),
    ];
    for (name, help, get) in per_iface {
        header(&mut out, name, help, "counter");
        for c in ifaces {
            let _ = writeln!(out, "{name}{{interface=\"{}\"}} {}", escape(&c.name), get(c));
        }
    }
    let name = "fanout_interface_drops_total";
    header(&mut out, name, "Packets or copies dropped by the data plane, by reason.", "counter");
    for c in ifaces {
        for (reason, v) in &c.drops {
            let _ = writeln!(
                out,
                "{name}{{interface=\"{}\",reason=\"{}\"}} {v}",
                escape(&c.name),
                escape(reason)
            );
        }
    }
    let name = "fanout_xdp_packets_total";
    header(&mut out, name, "XDP program verdicts and events, summed over CPUs.", "counter");
    for (counter, v) in &m.counters.xdp {
        let _ = writeln!(out, "{name}{{counter=\"{}\"}} {v}", escape(counter));
    }
    let routes = &m.mroute.routes;
    for (name, help, bytes) in [
        ("fanout_route_packets_total", "Packets forwarded per multicast route.", false),
        ("fanout_route_bytes_total", "Bytes forwarded per multicast route.", true),
    ] {
        header(&mut out, name, help, "counter");
        for r in routes {
            let source = r.source.map_or_else(|| "*".to_owned(), |s| s.to_string());
            let v = if bytes { r.bytes } else { r.packets };
            let _ = writeln!(
                out,
                "{name}{{source=\"{source}\",group=\"{}\",iif=\"{}\"}} {v}",
                r.group,
                escape(&r.iif)
            );
        }
    }
    header(&mut out, "fanout_routes", "Multicast routes in the forwarding table.", "gauge");
    let _ = writeln!(out, "fanout_routes {}", routes.len());
    let name = "fanout_protocol_neighbors";
    header(&mut out, name, "Routing-protocol neighbours, by protocol.", "gauge");
    for (proto, n) in m.neighbors {
        let _ = writeln!(out, "{name}{{protocol=\"{}\"}} {n}", escape(proto));
    }
    if !m.igmp_groups.is_empty() {
        let name = "fanout_igmp_groups";
        header(&mut out, name, "Multicast groups with members (IGMP), by interface.", "gauge");
        for (iface, n) in m.igmp_groups {
            let _ = writeln!(out, "{name}{{interface=\"{}\"}} {n}", escape(iface));
        }
    }
    let name = "fanout_interface_up";
    header(
        &mut out,
        name,
        "1 if the interface is up in the data plane, by state (up/down/absent).",
        "gauge",
    );
    for (iface, state) in m.interface_states {
        let up = u8::from(state == "up");
        let _ = writeln!(
            out,
            "{name}{{interface=\"{}\",state=\"{}\"}} {up}",
            escape(iface),
            escape(state)
        );
    }
    if let Some(t) = m.trees {
        let name = "fanout_tree_computations_total";
        header(
            &mut out,
            name,
            "Link-state shortest-path tree work, by kind (dijkstra, entry, cache_hit).",
            "counter",
        );
        for (kind, v) in [
            ("dijkstra", t.tree_computations),
            ("entry", t.entry_computations),
            ("cache_hit", t.hits),
        ] {
            let _ = writeln!(out, "{name}{{kind=\"{kind}\"}} {v}");
        }
    }
    let c = &m.counters.control;
    let name = "fanout_control_messages_total";
    header(&mut out, name, "Control-plane messages handled by fanoutd, by kind.", "counter");
    for (kind, v) in [
        ("ctl_request", c.ctl_requests),
        ("reload_ok", c.reloads_ok),
        ("reload_failed", c.reloads_failed),
        ("punt", c.punts_received),
        ("mfib_update", c.mfib_updates),
        ("mfib_error", c.mfib_errors),
        ("igmp_rejected", c.igmp_rejected),
        ("dvmrp_rejected", c.dvmrp_rejected),
    ] {
        let _ = writeln!(out, "{name}{{kind=\"{kind}\"}} {v}");
    }
    if let Some(o) = m.overlay {
        render_overlay(&mut out, o);
    }
    header(&mut out, "fanout_uptime_seconds", "Seconds since fanoutd started.", "gauge");
    let _ = writeln!(out, "fanout_uptime_seconds {}", m.uptime.as_secs());
    out
}

/// Overlay members and up neighbours per group, the protocol counters per group (refused
/// joins, authentication failures, ...) and the control channel's counters.
fn render_overlay(out: &mut String, o: &crate::ctl::OverlayProtocolData) {
    let name = "fanout_overlay_members";
    header(out, name, "Members of each overlay group as this node knows them.", "gauge");
    for g in &o.groups {
        let _ = writeln!(out, "{name}{{group=\"{}\"}} {}", g.group, g.members.len());
    }
    let name = "fanout_overlay_neighbors";
    header(out, name, "Overlay neighbours that are up, by group.", "gauge");
    for g in &o.groups {
        let up = g.neighbors.iter().filter(|n| n.up).count();
        let _ = writeln!(out, "{name}{{group=\"{}\"}} {up}", g.group);
    }
    let name = "fanout_overlay_events_total";
    header(out, name, "Overlay protocol events and refusals, by group and counter.", "counter");
    for g in &o.groups {
        // Every counter of the core, by its serialised name: new counters appear unchanged.
        let Ok(serde_json::Value::Object(fields)) = serde_json::to_value(g.counters) else {
            continue;
        };
        for (counter, v) in fields {
            let v = v.as_u64().unwrap_or(0);
            let _ = writeln!(out, "{name}{{group=\"{}\",counter=\"{counter}\"}} {v}", g.group);
        }
    }
    let name = "fanout_overlay_control_total";
    header(out, name, "Overlay control channel (UDP 7411) datagrams, by kind.", "counter");
    let c = &o.counters;
    for (kind, v) in [
        ("received", c.received),
        ("sent", c.sent),
        ("send_error", c.send_errors),
        ("unknown_group", c.unknown_group),
        ("unresolved_next_hop", c.unresolved),
    ] {
        let _ = writeln!(out, "{name}{{kind=\"{kind}\"}} {v}");
    }
}

fn header(out: &mut String, name: &str, help: &str, kind: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// Label value escaping per the exposition format: backslash, double quote and newline.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// What an HTTP request asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpRequest {
    Metrics,
    /// Another path, or another method than GET/HEAD.
    Other {
        status: u16,
        reason: &'static str,
    },
}

/// Reads one request head (bounded in size and time) and classifies it.
pub fn read_request(stream: &TcpStream) -> std::io::Result<HttpRequest> {
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut reader = BufReader::new(std::io::Read::take(stream, 8192));
    let mut first = String::new();
    reader.read_line(&mut first)?;
    // Drain the header lines so the client does not see a reset before reading our answer.
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 || line == "\r\n" || line == "\n" {
            break;
        }
    }
    Ok(classify(&first))
}

fn classify(request_line: &str) -> HttpRequest {
    let mut parts = request_line.split_whitespace();
    let (Some(method), Some(target)) = (parts.next(), parts.next()) else {
        return HttpRequest::Other { status: 400, reason: "Bad Request" };
    };
    if method != "GET" {
        return HttpRequest::Other { status: 405, reason: "Method Not Allowed" };
    }
    let path = target.split('?').next().unwrap_or(target);
    if path == "/metrics" {
        HttpRequest::Metrics
    } else {
        HttpRequest::Other { status: 404, reason: "Not Found" }
    }
}

/// Writes a complete HTTP/1.0 response and lets the caller close the connection.
pub fn write_response(
    mut stream: &TcpStream,
    status: u16,
    reason: &str,
    body: &str,
) -> std::io::Result<()> {
    stream.set_write_timeout(Some(Duration::from_secs(5)))?;
    let content_type = if status == 200 {
        "text/plain; version=0.0.4; charset=utf-8"
    } else {
        "text/plain; charset=utf-8"
    };
    write!(
        stream,
        "HTTP/1.0 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    stream.flush()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::net::Ipv4Addr;

    use super::*;
    use crate::ctl::{ControlCounters, InterfaceCounters, MrouteEntry, MrouteOif};

    #[test]
    fn exposition() {
        let counters = CountersData {
            interfaces: vec![InterfaceCounters {
                name: "veth0".into(),
                rx_packets: 7,
                drops: BTreeMap::from([("rpf_fail".to_owned(), 2)]),
                ..InterfaceCounters::default()
            }],
            xdp: BTreeMap::from([("redirected".to_owned(), 9)]),
            control: ControlCounters { ctl_requests: 3, ..ControlCounters::default() },
            since_clear_secs: 0,
        };
        let mroute = MrouteData {
            routes: vec![MrouteEntry {
                source: None,
                group: Ipv4Addr::new(239, 1, 1, 1),
                iif: "veth0".into(),
                oifs: vec![MrouteOif { name: "veth1".into(), ttl_threshold: 1 }],
                overlay_next_hops: vec![],
                packets: 4,
                bytes: 400,
            }],
        };
        let text = render(&MetricsInput {
            counters: &counters,
            mroute: &mroute,
            neighbors: &[("static", 0)],
            igmp_groups: &[("veth1".to_owned(), 2)],
            overlay: None,
            trees: Some(crate::linkstate::cache::CacheStats {
                tree_computations: 2,
                entry_computations: 5,
                hits: 40,
            }),
            interface_states: &[
                ("veth0".to_owned(), "up".to_owned()),
                ("veth1".to_owned(), "absent".to_owned()),
            ],
            uptime: Duration::from_secs(12),
        });
        for line in [
            "# TYPE fanout_interface_rx_packets_total counter",
            "fanout_interface_rx_packets_total{interface=\"veth0\"} 7",
            "fanout_interface_drops_total{interface=\"veth0\",reason=\"rpf_fail\"} 2",
            "fanout_xdp_packets_total{counter=\"redirected\"} 9",
            "fanout_route_packets_total{source=\"*\",group=\"239.1.1.1\",iif=\"veth0\"} 4",
            "fanout_route_bytes_total{source=\"*\",group=\"239.1.1.1\",iif=\"veth0\"} 400",
            "fanout_protocol_neighbors{protocol=\"static\"} 0",
            "fanout_control_messages_total{kind=\"ctl_request\"} 3",
            "fanout_uptime_seconds 12",
            "fanout_igmp_groups{interface=\"veth1\"} 2",
            "fanout_tree_computations_total{kind=\"dijkstra\"} 2",
            "fanout_tree_computations_total{kind=\"cache_hit\"} 40",
            "fanout_interface_up{interface=\"veth0\",state=\"up\"} 1",
            "fanout_interface_up{interface=\"veth1\",state=\"absent\"} 0",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line:?} in\n{text}");
        }
        // Every sample line belongs to a declared metric family.
        for l in text.lines().filter(|l| !l.starts_with('#')) {
            let family = l.split(['{', ' ']).next().unwrap();
            assert!(text.contains(&format!("# TYPE {family} ")), "{family} has no TYPE");
        }
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }

    #[test]
    fn overlay_families() {
        let g = Ipv4Addr::new(239, 1, 1, 1);
        let node = Ipv4Addr::new(10, 0, 0, 1);
        let state = crate::ctl::OverlayProtocolData {
            address: node,
            groups: vec![crate::overlay::OverlayState {
                node,
                group: g,
                rendezvous: node,
                joined: true,
                members: vec![node, Ipv4Addr::new(10, 0, 0, 2)],
                neighbors: vec![crate::overlay::NeighborState {
                    addr: Ipv4Addr::new(10, 0, 0, 2),
                    up: true,
                    rtt_ms: Some(3),
                    cost: 3,
                }],
                trees: vec![],
                counters: crate::overlay::Counters { joins_refused: 4, ..Default::default() },
            }],
            counters: crate::ctl::OverlayRuntimeCounters { sent: 9, ..Default::default() },
            unresolved: vec![],
        };
        let mut text = String::new();
        render_overlay(&mut text, &state);
        for line in [
            "fanout_overlay_members{group=\"239.1.1.1\"} 2",
            "fanout_overlay_neighbors{group=\"239.1.1.1\"} 1",
            "fanout_overlay_events_total{group=\"239.1.1.1\",counter=\"joins_refused\"} 4",
            "fanout_overlay_events_total{group=\"239.1.1.1\",counter=\"bad_tag\"} 0",
            "fanout_overlay_control_total{kind=\"sent\"} 9",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line:?} in\n{text}");
        }
    }

    #[test]
    fn request_lines() {
        assert_eq!(classify("GET /metrics HTTP/1.1\r\n"), HttpRequest::Metrics);
        assert_eq!(classify("GET /metrics?x=1 HTTP/1.0\r\n"), HttpRequest::Metrics);
        assert!(matches!(classify("GET / HTTP/1.1\r\n"), HttpRequest::Other { status: 404, .. }));
        assert!(matches!(
            classify("POST /metrics HTTP/1.1\r\n"),
            HttpRequest::Other { status: 405, .. }
        ));
        assert!(matches!(classify("\r\n"), HttpRequest::Other { status: 400, .. }));
    }
}
