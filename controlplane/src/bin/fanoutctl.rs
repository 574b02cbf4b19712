//! fanoutctl: query and control a running fanoutd over its control socket.
//!
//! Human output is aligned tables; `--json` prints the response's `data` object, whose schema is
//! stable and documented in docs/fanoutctl.md.

use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use controlplane::config::DEFAULT_CONTROL_SOCKET;
use controlplane::ctl::{
    self, ClearData, ClearWhat, CountersData, CtlError, InterfacesData, MrouteData, MrouteOif,
    OverlayData, ReloadData, Request, RoutesData, ShowWhat,
};
use controlplane::daemon::dvmrp::DvmrpData;
use controlplane::daemon::igmp::IgmpData;
use controlplane::table::{Align, Table};

/// Query and control the fanout multicast router daemon (fanoutd).
#[derive(Debug, Parser)]
#[command(
    name = "fanoutctl",
    version,
    after_help = "Examples:\n  fanoutctl show mroute\n  fanoutctl show interfaces --json\n  \
                  fanoutctl clear counters\n  fanoutctl reload\n  \
                  fanoutctl debug pcap eth1 /tmp/eth1.pcap 10\n\nSee docs/fanoutctl.md for the JSON schema."
)]
struct Cli {
    /// fanoutd's control socket.
    #[arg(short = 'u', long, value_name = "PATH", default_value = DEFAULT_CONTROL_SOCKET, env = "FANOUT_SOCKET")]
    socket: PathBuf,
    /// Seconds to wait for fanoutd's answer.
    #[arg(short = 't', long, value_name = "SECS", default_value_t = 10)]
    timeout: u64,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Show daemon state.
    Show {
        #[arg(value_enum)]
        what: ShowWhat,
        /// `show spt` only: the source S of the (S,G).
        #[arg(value_name = "S")]
        source: Option<Ipv4Addr>,
        /// `show spt` only: the group G of the (S,G).
        #[arg(value_name = "G")]
        group: Option<Ipv4Addr>,
        /// Print the JSON data instead of a table.
        #[arg(short, long)]
        json: bool,
    },
    /// Reset state (counters as shown by fanoutctl; Prometheus counters keep growing).
    Clear {
        #[arg(value_enum)]
        what: ClearWhat,
        #[arg(short, long)]
        json: bool,
    },
    /// Make fanoutd re-read its configuration file (like SIGHUP), reporting errors here.
    Reload {
        #[arg(short, long)]
        json: bool,
    },
    /// Debugging aids.
    Debug {
        #[command(subcommand)]
        what: DebugCommand,
    },
}

#[derive(Debug, Subcommand)]
enum DebugCommand {
    /// Capture what the data plane sees on INTERFACE for SECONDS into FILE, a classic pcap
    /// file (Ethernet) that tcpdump -r and wireshark read. FILE must not exist. Frames the data
    /// plane receives there (routable multicast and overlay traffic: what XDP steers to it,
    /// not the kernel's traffic) and the copies it transmits there.
    #[command(
        after_help = "Example:\n  fanoutctl debug pcap eth1 /tmp/eth1.pcap 10 && tcpdump -nr /tmp/eth1.pcap"
    )]
    Pcap {
        /// A data-plane interface of fanoutd's configuration.
        interface: String,
        /// The pcap file to create (it must not exist).
        file: PathBuf,
        /// How long to capture (1..=300).
        #[arg(value_parser = clap::value_parser!(u32).range(1..=i64::from(ctl::MAX_PCAP_SECONDS)))]
        seconds: u32,
        /// Bytes kept per frame (64..=2048).
        #[arg(long, default_value_t = ctl::MAX_PCAP_SNAPLEN,
              value_parser = clap::value_parser!(u32).range(64..=i64::from(ctl::MAX_PCAP_SNAPLEN)))]
        snaplen: u32,
        /// Only the frames received on INTERFACE, not the copies transmitted there.
        #[arg(long)]
        no_tx: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let (request, json) = match cli.command {
        Command::Show { what: ShowWhat::Spt, source, group, json } => {
            let (Some(source), Some(group)) = (source, group) else {
                eprintln!("fanoutctl: show spt needs a source and a group: show spt <S> <G>");
                return ExitCode::from(2);
            };
            (Request::ShowSpt { source, group }, json)
        }
        Command::Show { what, source: None, group: None, json } => (Request::Show { what }, json),
        Command::Show { what, .. } => {
            eprintln!("fanoutctl: show {} takes no addresses", what.as_str());
            return ExitCode::from(2);
        }
        Command::Clear { what, json } => (Request::Clear { what }, json),
        Command::Reload { json } => (Request::Reload, json),
        Command::Debug {
            what: DebugCommand::Pcap { interface, file, seconds, snaplen, no_tx },
        } => {
            let timeout = Duration::from_secs(cli.timeout);
            let request =
                Request::PcapStart { interface, seconds, snaplen: Some(snaplen), tx: !no_tx };
            return match pcap::capture(&cli.socket, timeout, &request, &file) {
                Ok(summary) => {
                    print!("{summary}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("fanoutctl: debug pcap: {e}");
                    match e {
                        pcap::PcapError::Ctl(CtlError::Daemon(_))
                        | pcap::PcapError::File { .. } => ExitCode::from(1),
                        pcap::PcapError::Ctl(_) => ExitCode::from(2),
                    }
                }
            };
        }
    };
    match run(&cli.socket, Duration::from_secs(cli.timeout), &request, json) {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("fanoutctl: {e}");
            match e {
                CtlError::Daemon(_) => ExitCode::from(1),
                _ => ExitCode::from(2),
            }
        }
    }
}

fn run(
    socket: &std::path::Path,
    timeout: Duration,
    request: &Request,
    json: bool,
) -> Result<String, CtlError> {
    let response = ctl::request(socket, request, timeout)?;
    if json {
        let data: serde_json::Value = response.into_data()?;
        let mut text =
            serde_json::to_string_pretty(&data).map_err(|e| CtlError::Protocol(e.to_string()))?;
        text.push('\n');
        return Ok(text);
    }
    Ok(match request {
        Request::Show { what: ShowWhat::Interfaces } => interfaces(&response.into_data()?),
        Request::Show { what: ShowWhat::Mroute } => mroute(&response.into_data()?),
        Request::Show { what: ShowWhat::Counters } => counters(&response.into_data()?),
        Request::Show { what: ShowWhat::Routes } => {
            // Static mode answers with configured routes, DVMRP mode with its routing table.
            let data: serde_json::Value = response.into_data()?;
            if data.get("mode").and_then(serde_json::Value::as_str) == Some("dvmrp") {
                dvmrp_routes(&decode(data)?)
            } else {
                routes(&decode(data)?)
            }
        }
        Request::Show { what: ShowWhat::Overlay } => overlay(&response.into_data()?),
        Request::Show { what: ShowWhat::Igmp } => igmp(&response.into_data()?),
        Request::Show { what: ShowWhat::Neighbors } => {
            let data: serde_json::Value = response.into_data()?;
            if data.get("mode").and_then(serde_json::Value::as_str) == Some("linkstate") {
                ls_neighbors(&data)
            } else {
                dvmrp_neighbors(&decode(data)?)
            }
        }
        Request::Show { what: ShowWhat::Lsdb } => lsdb(&response.into_data()?),
        Request::Show { what: ShowWhat::Spt } | Request::ShowSpt { .. } => {
            spt(&response.into_data()?)
        }
        Request::Clear { .. } => {
            let d: ClearData = response.into_data()?;
            format!("cleared {}\n", d.cleared)
        }
        Request::Reload => {
            let d: ReloadData = response.into_data()?;
            format!(
                "configuration reloaded: {} routes installed, {} removed\n",
                d.routes_installed, d.routes_removed
            )
        }
        // `debug pcap` runs its own exchange (mod pcap).
        Request::PcapStart { .. } | Request::PcapRead { .. } | Request::PcapStop { .. } => {
            let data: serde_json::Value = response.into_data()?;
            format!("{data}\n")
        }
    })
}

/// `fanoutctl debug pcap`: fanoutctl, not fanoutd, writes the file. fanoutd runs as root, so a
/// path it opened would be a root-owned write wherever the client points; here the file is
/// created with the client's own rights, and `create_new` (O_EXCL) never follows a planted
/// symlink or truncates an existing file.
mod pcap {
    use std::io::Write as _;
    use std::path::{Path, PathBuf};
    use std::time::{Duration, Instant};

    use controlplane::ctl::{self, CtlError, PcapReadData, PcapStartData, Request};

    /// How often the frames are fetched: the daemon buffers 1024 frames, so this captures up
    /// to ~10 000 frames/s without drops.
    const POLL: Duration = Duration::from_millis(100);
    /// LINKTYPE_ETHERNET.
    const LINKTYPE_ETHERNET: u32 = 1;

    #[derive(Debug, thiserror::Error)]
    pub enum PcapError {
        #[error(transparent)]
        Ctl(#[from] CtlError),
        #[error("{path}: {source}")]
        File { path: PathBuf, source: std::io::Error },
    }

    /// The classic pcap global header (microsecond timestamps, little-endian).
    pub fn header(snaplen: u32) -> [u8; 24] {
        let mut h = [0u8; 24];
        h[0..4].copy_from_slice(&0xa1b2_c3d4_u32.to_le_bytes());
        h[4..6].copy_from_slice(&2u16.to_le_bytes());
        h[6..8].copy_from_slice(&4u16.to_le_bytes());
        // thiszone and sigfigs stay 0.
        h[16..20].copy_from_slice(&snaplen.to_le_bytes());
        h[20..24].copy_from_slice(&LINKTYPE_ETHERNET.to_le_bytes());
        h
    }

    /// One record: header then the bytes.
    pub fn record(out: &mut Vec<u8>, time_us: u64, orig_len: u32, data: &[u8]) {
        let sec = u32::try_from(time_us / 1_000_000).unwrap_or(u32::MAX);
        let usec = (time_us % 1_000_000) as u32;
        for v in [sec, usec, data.len() as u32, orig_len] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.extend_from_slice(data);
    }

    pub fn unhex(text: &str) -> Option<Vec<u8>> {
        if text.len() % 2 != 0 {
            return None;
        }
        (0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
            .collect()
    }

    /// Starts the capture, writes every frame to `file` as it arrives, returns a summary.
    pub fn capture(
        socket: &Path,
        timeout: Duration,
        start: &Request,
        file: &Path,
    ) -> Result<String, PcapError> {
        let file_err = |source| PcapError::File { path: file.to_owned(), source };
        let mut out = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(file)
            .map_err(file_err)?;
        let started: PcapStartData = match ctl::request(socket, start, timeout)?.into_data() {
            Ok(d) => d,
            Err(e) => {
                // Nothing was captured: leave no empty file behind.
                let _ = std::fs::remove_file(file);
                return Err(e.into());
            }
        };
        out.write_all(&header(started.snaplen)).map_err(file_err)?;
        let give_up = Instant::now() + Duration::from_secs(u64::from(started.seconds)) + timeout;
        let (mut rx, mut tx) = (0u64, 0u64);
        let mut dropped: u64;
        loop {
            std::thread::sleep(POLL);
            let stop = Instant::now() >= give_up;
            let req = if stop {
                Request::PcapStop { id: started.id }
            } else {
                Request::PcapRead { id: started.id }
            };
            let data: PcapReadData = ctl::request(socket, &req, timeout)?.into_data()?;
            let mut buf = Vec::with_capacity(data.frames.len() * 128);
            for f in &data.frames {
                let bytes = unhex(&f.data).ok_or_else(|| {
                    CtlError::Protocol(format!("frame data is not hex: {:.40}", f.data))
                })?;
                record(&mut buf, f.time_us, f.orig_len, &bytes);
                if f.tx {
                    tx += 1;
                } else {
                    rx += 1;
                }
            }
            out.write_all(&buf).map_err(file_err)?;
            dropped = data.dropped;
            if data.done || stop {
                break;
            }
        }
        out.flush().map_err(file_err)?;
        Ok(format!(
            "{} frames captured on {} into {} ({rx} received, {tx} transmitted); {dropped} dropped\n",
            rx + tx,
            started.interface,
            file.display()
        ))
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn header_and_record_layout() {
            let h = header(2048);
            assert_eq!(&h[..4], &[0xd4, 0xc3, 0xb2, 0xa1]);
            assert_eq!(u32::from_le_bytes(h[16..20].try_into().unwrap()), 2048);
            assert_eq!(u32::from_le_bytes(h[20..24].try_into().unwrap()), 1);
            let mut r = Vec::new();
            record(&mut r, 3_000_004, 60, &[1, 2, 3]);
            assert_eq!(r.len(), 16 + 3);
            assert_eq!(u32::from_le_bytes(r[0..4].try_into().unwrap()), 3);
            assert_eq!(u32::from_le_bytes(r[4..8].try_into().unwrap()), 4);
            assert_eq!(u32::from_le_bytes(r[8..12].try_into().unwrap()), 3);
            assert_eq!(u32::from_le_bytes(r[12..16].try_into().unwrap()), 60);
        }

        #[test]
        fn hex_is_decoded_and_garbage_refused() {
            assert_eq!(unhex("00ff1a"), Some(vec![0, 255, 26]));
            assert_eq!(unhex("abc"), None);
            assert_eq!(unhex("zz"), None);
        }
    }
}

fn interfaces(d: &InterfacesData) -> String {
    let mut t = Table::new(&[
        ("Interface", Align::Left),
        ("State", Align::Left),
        ("Ifindex", Align::Right),
        ("MAC", Align::Left),
        ("IPv4", Align::Left),
        ("XDP", Align::Left),
        ("AF_XDP", Align::Left),
        ("Queue", Align::Right),
        ("TTL", Align::Right),
        ("RxPkts", Align::Right),
        ("TxPkts", Align::Right),
        ("Drops", Align::Right),
    ]);
    for i in &d.interfaces {
        t.row([
            i.name.clone(),
            i.state.clone(),
            i.ifindex.to_string(),
            i.mac.clone(),
            i.ipv4.to_string(),
            i.xdp_mode.clone(),
            i.bind_mode.clone(),
            i.queue.to_string(),
            i.ttl_threshold.to_string(),
            i.rx_packets.to_string(),
            i.tx_packets.to_string(),
            i.drops.to_string(),
        ]);
    }
    t.render()
}

fn oif_list(oifs: &[MrouteOif]) -> String {
    if oifs.is_empty() {
        return "-".into();
    }
    oifs.iter()
        .map(|o| {
            if o.ttl_threshold > 1 {
                format!("{}(ttl>{})", o.name, o.ttl_threshold)
            } else {
                o.name.clone()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn sg(source: Option<std::net::Ipv4Addr>, group: std::net::Ipv4Addr) -> String {
    format!("({}, {group})", source.map_or_else(|| "*".to_owned(), |s| s.to_string()))
}

fn mroute(d: &MrouteData) -> String {
    let mut t = Table::new(&[
        ("(Source, Group)", Align::Left),
        ("Inbound", Align::Left),
        ("Outbound", Align::Left),
        ("Packets", Align::Right),
        ("Bytes", Align::Right),
    ]);
    for r in &d.routes {
        let mut out = oif_list(&r.oifs);
        for hop in &r.overlay_next_hops {
            let _ = write!(out, " overlay:{hop}");
        }
        t.row([
            sg(r.source, r.group),
            r.iif.clone(),
            out,
            r.packets.to_string(),
            r.bytes.to_string(),
        ]);
    }
    if t.is_empty() {
        return "no multicast routes\n".into();
    }
    t.render()
}

fn counters(d: &CountersData) -> String {
    let mut out = format!("Counters since {} s ago\n\n", d.since_clear_secs);
    let mut t = Table::new(&[
        ("Interface", Align::Left),
        ("RxPkts", Align::Right),
        ("RxBytes", Align::Right),
        ("TxPkts", Align::Right),
        ("TxBytes", Align::Right),
        ("Punts", Align::Right),
        ("Drops", Align::Right),
    ]);
    let mut drops = Table::new(&[
        ("Interface", Align::Left),
        ("Drop reason", Align::Left),
        ("Count", Align::Right),
    ]);
    for i in &d.interfaces {
        t.row([
            i.name.clone(),
            i.rx_packets.to_string(),
            i.rx_bytes.to_string(),
            i.tx_packets.to_string(),
            i.tx_bytes.to_string(),
            i.punts.to_string(),
            i.drops.values().sum::<u64>().to_string(),
        ]);
        for (reason, n) in i.drops.iter().filter(|(_, n)| **n > 0) {
            drops.row([i.name.clone(), reason.clone(), n.to_string()]);
        }
    }
    out.push_str(&t.render());
    out.push('\n');
    if drops.is_empty() {
        out.push_str("No drops.\n");
    } else {
        out.push_str(&drops.render());
    }
    out.push('\n');
    let mut x = Table::new(&[("XDP program", Align::Left), ("Count", Align::Right)]);
    for (k, v) in &d.xdp {
        x.row([k.clone(), v.to_string()]);
    }
    if !x.is_empty() {
        out.push_str(&x.render());
        out.push('\n');
    }
    let c = &d.control;
    let mut ct = Table::new(&[("Control plane", Align::Left), ("Count", Align::Right)]);
    for (k, v) in [
        ("ctl requests", c.ctl_requests),
        ("reloads ok", c.reloads_ok),
        ("reloads failed", c.reloads_failed),
        ("punts received", c.punts_received),
        ("mfib updates", c.mfib_updates),
        ("mfib errors", c.mfib_errors),
        ("igmp rejected", c.igmp_rejected),
        ("dvmrp rejected", c.dvmrp_rejected),
    ] {
        ct.row([k.to_owned(), v.to_string()]);
    }
    out.push_str(&ct.render());
    out
}

fn routes(d: &RoutesData) -> String {
    let mut t = Table::new(&[
        ("(Source, Group)", Align::Left),
        ("Inbound", Align::Left),
        ("Outbound", Align::Left),
        ("Origin", Align::Left),
    ]);
    for r in &d.routes {
        t.row([sg(r.source, r.group), r.iif.clone(), r.oifs.join(" "), r.origin.clone()]);
    }
    let mut out = format!("Routing mode: {}\n\n", d.mode);
    if t.is_empty() {
        out.push_str("no routes\n");
    } else {
        out.push_str(&t.render());
    }
    out
}

fn overlay(d: &OverlayData) -> String {
    let mut out = format!("Overlay UDP port: {}\n\n", d.port);
    let mut t = Table::new(&[
        ("(Origin, Group)", Align::Left),
        ("From", Align::Left),
        ("Deliver", Align::Left),
        ("Next hops", Align::Left),
        ("Packets", Align::Right),
        ("Bytes", Align::Right),
    ]);
    for r in &d.routes {
        t.row([
            sg(Some(r.origin), r.group),
            r.from.map_or_else(|| "any".to_owned(), |f| f.to_string()),
            oif_list(&r.deliver),
            if r.next_hops.is_empty() {
                "-".to_owned()
            } else {
                r.next_hops.iter().map(ToString::to_string).collect::<Vec<_>>().join(" ")
            },
            r.packets.to_string(),
            r.bytes.to_string(),
        ]);
    }
    out.push_str(if t.is_empty() { "no overlay routes\n" } else { "" });
    out.push_str(&if t.is_empty() { String::new() } else { t.render() });
    out.push('\n');
    let mut n =
        Table::new(&[("Neighbor", Align::Left), ("Interface", Align::Left), ("MAC", Align::Left)]);
    for nb in &d.neighbors {
        n.row([nb.addr.to_string(), nb.interface.clone(), nb.mac.clone()]);
    }
    out.push_str(&if n.is_empty() { "no overlay neighbors\n".to_owned() } else { n.render() });
    if let Some(p) = &d.protocol {
        out.push_str(&overlay_protocol(p));
    }
    out
}

/// Routing mode overlay: per group, members, overlay neighbours and this node's trees.
fn overlay_protocol(data: &controlplane::ctl::OverlayProtocolData) -> String {
    let rc = &data.counters;
    let mut out = format!(
        "\nOverlay node {}: control received {}, sent {}, send errors {}, unknown group {}\n",
        data.address, rc.received, rc.sent, rc.send_errors, rc.unknown_group
    );
    if !data.unresolved.is_empty() {
        let list: Vec<String> = data.unresolved.iter().map(ToString::to_string).collect();
        let _ = writeln!(out, "Unresolved next hops: {}", list.join(" "));
    }
    for g in &data.groups {
        let members: Vec<String> = g.members.iter().map(ToString::to_string).collect();
        let _ = write!(
            out,
            "\nGroup {} (rendezvous {}, {}): {} members: {}\n",
            g.group,
            g.rendezvous,
            if g.joined { "joined" } else { "not joined" },
            g.members.len(),
            members.join(" ")
        );
        let gc = &g.counters;
        let _ = writeln!(
            out,
            "joins accepted {}, refused {}; rejected {}; auth failures: unknown key {}, bad tag {}, \
             replay {}; neighbours lost {}, replaced {}",
            gc.joins_accepted,
            gc.joins_refused,
            gc.rejected,
            gc.unknown_key,
            gc.bad_tag,
            gc.replays,
            gc.neighbors_lost,
            gc.neighbors_replaced
        );
        let mut nt = Table::new(&[
            ("Neighbor", Align::Left),
            ("State", Align::Left),
            ("RTT ms", Align::Right),
            ("Cost", Align::Right),
        ]);
        for nb in &g.neighbors {
            nt.row([
                nb.addr.to_string(),
                if nb.up { "up" } else { "down" }.to_owned(),
                nb.rtt_ms.map_or_else(|| "-".to_owned(), |r| r.to_string()),
                nb.cost.to_string(),
            ]);
        }
        out.push_str(&if nt.is_empty() {
            "no overlay neighbours\n".to_owned()
        } else {
            nt.render()
        });
        let mut tt = Table::new(&[
            ("Origin", Align::Left),
            ("Parent", Align::Left),
            ("Children", Align::Left),
        ]);
        for tr in &g.trees {
            let children: Vec<String> = tr.children.iter().map(ToString::to_string).collect();
            tt.row([
                tr.origin.to_string(),
                tr.parent.map_or_else(|| "-".to_owned(), |a| a.to_string()),
                if children.is_empty() { "-".to_owned() } else { children.join(" ") },
            ]);
        }
        out.push('\n');
        out.push_str(&if tt.is_empty() { "no trees\n".to_owned() } else { tt.render() });
    }
    out
}

fn igmp(d: &IgmpData) -> String {
    let mut q = Table::new(&[
        ("Interface", Align::Left),
        ("Address", Align::Left),
        ("State", Align::Left),
        ("Querier", Align::Left),
        ("Version", Align::Left),
        ("Groups", Align::Right),
        ("QueriesSent", Align::Right),
        ("Reports", Align::Right),
    ]);
    let mut g = Table::new(&[
        ("Interface", Align::Left),
        ("Group", Align::Left),
        ("Mode", Align::Left),
        ("Compat", Align::Left),
        ("Sources", Align::Left),
        ("Last reporter", Align::Left),
        ("Expires", Align::Right),
        ("Uptime", Align::Right),
    ]);
    let json_name = |v: &dyn erased::Name| v.name();
    for i in &d.interfaces {
        let c = &i.counters;
        q.row([
            i.interface.clone(),
            i.address.to_string(),
            json_name(&i.state),
            i.querier.map_or_else(|| "-".to_owned(), |a| a.to_string()),
            json_name(&i.version),
            i.groups.len().to_string(),
            c.queries_sent().to_string(),
            (c.reports_v1 + c.reports_v2 + c.reports_v3).to_string(),
        ]);
        for grp in &i.groups {
            let sources = if grp.sources.is_empty() {
                "-".to_owned()
            } else {
                grp.sources.iter().map(|s| s.source.to_string()).collect::<Vec<_>>().join(" ")
            };
            g.row([
                i.interface.clone(),
                grp.group.to_string(),
                json_name(&grp.filter_mode),
                json_name(&grp.compat_mode),
                sources,
                grp.last_reporter.map_or_else(|| "-".to_owned(), |a| a.to_string()),
                grp.group_timer_ms
                    .map_or_else(|| "-".to_owned(), |ms| format!("{}s", ms.div_ceil(1000))),
                format!("{}s", grp.uptime_ms / 1000),
            ]);
        }
    }
    let mut out = q.render();
    out.push('\n');
    out.push_str(&if g.is_empty() { "no group members\n".to_owned() } else { g.render() });
    out
}

/// The serde name of a unit enum value (`"querier"`, `"exclude"`, `"v3"`), so the table says
/// exactly what `--json` says.
mod erased {
    pub trait Name {
        fn name(&self) -> String;
    }

    impl<T: serde::Serialize> Name for T {
        fn name(&self) -> String {
            match serde_json::to_value(self) {
                Ok(serde_json::Value::String(s)) => s,
                Ok(other) => other.to_string(),
                Err(_) => "?".to_owned(),
            }
        }
    }
}

fn decode<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> Result<T, CtlError> {
    serde_json::from_value(v)
        .map_err(|e| CtlError::Protocol(format!("unexpected response data: {e}")))
}

fn dvmrp_neighbors(d: &DvmrpData) -> String {
    let mut t = Table::new(&[
        ("Neighbor", Align::Left),
        ("Ifindex", Align::Right),
        ("Version", Align::Left),
        ("Caps", Align::Left),
        ("GenID", Align::Right),
        ("TwoWay", Align::Left),
        ("Uptime", Align::Right),
        ("Expires", Align::Right),
    ]);
    for n in &d.state.neighbors {
        t.row([
            n.addr.to_string(),
            n.ifindex.0.to_string(),
            format!("{}.{}", n.major, n.minor),
            format!("0x{:02x}", n.capabilities),
            format!("{:08x}", n.genid),
            if n.two_way { "yes" } else { "no" }.to_owned(),
            format!("{}s", n.uptime_secs),
            format!("{}s", n.expires_in_secs),
        ]);
    }
    let mut out = format!("DVMRP generation id {:08x}\n\n", d.state.genid);
    out.push_str(&if t.is_empty() { "no neighbors\n".to_owned() } else { t.render() });
    out
}

fn dvmrp_routes(d: &DvmrpData) -> String {
    let mut t = Table::new(&[
        ("Origin", Align::Left),
        ("Metric", Align::Right),
        ("Upstream", Align::Left),
        ("Gateway", Align::Left),
        ("Dependents", Align::Left),
        ("Age", Align::Right),
        ("Expires", Align::Right),
    ]);
    for r in &d.state.routes {
        let deps: Vec<String> =
            r.dependents.iter().map(|x| format!("{}@{}", x.neighbor, x.ifindex.0)).collect();
        t.row([
            format!("{}/{}", r.origin, r.prefix_len),
            r.metric.to_string(),
            r.upstream.map_or_else(|| "-".to_owned(), |i| i.0.to_string()),
            r.gateway.map_or_else(
                || if r.connected { "connected".to_owned() } else { "-".to_owned() },
                |g| g.to_string(),
            ),
            if deps.is_empty() { "-".to_owned() } else { deps.join(" ") },
            format!("{}s", r.age_secs),
            r.expires_in_secs.map_or_else(|| "-".to_owned(), |s| format!("{s}s")),
        ]);
    }
    let mut out = "Routing mode: dvmrp\n\n".to_owned();
    out.push_str(&if t.is_empty() { "no routes\n".to_owned() } else { t.render() });
    out
}

fn jstr(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => "-".into(),
        other => other.to_string(),
    }
}

/// A router id (a u32 in the JSON) as a dotted quad.
fn rid(v: &serde_json::Value) -> String {
    v.as_u64()
        .and_then(|n| u32::try_from(n).ok())
        .map_or_else(|| jstr(v), |n| Ipv4Addr::from(n).to_string())
}

fn items(v: &serde_json::Value, key: &str) -> Vec<serde_json::Value> {
    v.get(key).and_then(serde_json::Value::as_array).cloned().unwrap_or_default()
}

fn ls_neighbor_table(neighbors: &[serde_json::Value]) -> String {
    let mut t = Table::new(&[
        ("RouterID", Align::Left),
        ("Address", Align::Left),
        ("Ifindex", Align::Right),
        ("State", Align::Left),
        ("RetxQueue", Align::Right),
    ]);
    for n in neighbors {
        t.row([
            rid(&n["router_id"]),
            jstr(&n["addr"]),
            jstr(&n["ifindex"]),
            jstr(&n["state"]),
            jstr(&n["retransmit_pending"]),
        ]);
    }
    if t.is_empty() {
        "no neighbors\n".to_owned()
    } else {
        t.render()
    }
}

fn ls_neighbors(d: &serde_json::Value) -> String {
    let mut out = format!("link-state router id {}\n\n", jstr(&d["router_id"]));
    out.push_str(&ls_neighbor_table(&items(d, "neighbors")));
    out
}

fn lsdb(d: &serde_json::Value) -> String {
    let mut out = format!("link-state router id {}\n\nNeighbors:\n", jstr(&d["router_id"]));
    out.push_str(&ls_neighbor_table(&items(d, "neighbors")));
    let mut t = Table::new(&[
        ("Type", Align::Left),
        ("ID", Align::Left),
        ("AdvRouter", Align::Left),
        ("Seq", Align::Right),
        ("Age", Align::Right),
        ("Checksum", Align::Right),
        ("Contents", Align::Left),
    ]);
    for l in items(d, "lsas") {
        let mut contents: Vec<String> = items(&l, "links")
            .iter()
            .map(|x| format!("{} if{} cost {}", jstr(&x[0]), jstr(&x[1]), jstr(&x[2])))
            .collect();
        contents.extend(items(&l, "networks").iter().map(jstr));
        contents.extend(items(&l, "interfaces").iter().map(|i| format!("if{}", jstr(i))));
        t.row([
            jstr(&l["kind"]),
            jstr(&l["id"]),
            jstr(&l["adv_router"]),
            format!("0x{:08x}", l["seq"].as_u64().unwrap_or(0)),
            jstr(&l["age"]),
            format!("0x{:04x}", l["checksum"].as_u64().unwrap_or(0)),
            if contents.is_empty() { "-".into() } else { contents.join(", ") },
        ]);
    }
    out.push_str("\nLSAs:\n");
    out.push_str(&if t.is_empty() { "empty database\n".to_owned() } else { t.render() });
    out
}

fn spt(d: &serde_json::Value) -> String {
    let mut out = format!(
        "({}, {}) rooted at {}\nmembers: {}\n",
        jstr(&d["source"]),
        jstr(&d["group"]),
        if d["root"].is_null() {
            "- (no router advertises the source)".into()
        } else {
            rid(&d["root"])
        },
        items(d, "members").iter().map(rid).collect::<Vec<_>>().join(", "),
    );
    let mut t = Table::new(&[("Router", Align::Left), ("Parent", Align::Left)]);
    for r in items(d, "on_tree") {
        t.row([rid(&r[0]), if r[1].is_null() { "(root)".into() } else { rid(&r[1]) }]);
    }
    out.push_str(&if t.is_empty() { "tree: empty\n".to_owned() } else { t.render() });
    let _ = writeln!(out, "local: {}", d["local"]);
    let _ = writeln!(out, "installed: {}", d["installed"]);
    out
}
