//! Configuration loading: the example config parses, and each kind of mistake gives its own
//! message naming the file, line:column and field.

use std::net::Ipv4Addr;
use std::path::Path;
use std::time::Duration;

use controlplane::config::{
    Config, ConfigError, CopyMode, Diagnostic, ErrorKind, RoutingMode, XdpMode,
};

const FILE: &str = "/etc/fanout/test.toml";

const IFACES: &str = r#"[[interface]]
name = "veth0"
[[interface]]
name = "veth1"
ttl_threshold = 8
[[interface]]
name = "veth2"
"#;

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(text, Path::new(FILE))
}

/// The single diagnostic of a bad config.
fn only_error(text: &str) -> Diagnostic {
    let err = parse(text).expect_err("config should be rejected");
    let diags = err.diagnostics();
    assert_eq!(diags.len(), 1, "expected exactly one problem, got:\n{err}");
    diags[0].clone()
}

/// Line number (1-based) of the first line of `text` containing `needle`.
fn line_of(text: &str, needle: &str) -> usize {
    text.lines().position(|l| l.contains(needle)).expect("needle in text") + 1
}

fn route(body: &str) -> String {
    format!("{IFACES}[[static_route]]\n{body}")
}

#[test]
fn example_config_parses() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("etc/fanout.toml");
    let c = Config::load(&path).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.interface_names().collect::<Vec<_>>(), ["veth0", "veth1", "veth2"]);
    assert_eq!(c.static_routes.len(), 2);
    assert_eq!(c.static_routes[0].source, Some(Ipv4Addr::new(10, 1, 0, 2)));
    assert_eq!(c.static_routes[1].source, None);
    assert_eq!(c.interface("veth2").unwrap().ttl_threshold, 16);
    assert_eq!(c.daemon.metrics_listen, Some("127.0.0.1:9477".parse().unwrap()));
    assert_eq!(c.dvmrp.prune_lifetime, Duration::from_secs(7200));
    assert_eq!((c.dataplane.copy_mode, c.dataplane.xdp_mode), (CopyMode::Auto, XdpMode::Auto));
}

#[test]
fn defaults_from_a_minimal_file() {
    let c = parse("[[interface]]\nname = \"eth0\"\n").unwrap();
    assert_eq!(c.daemon.control_socket, Path::new("/run/fanout/fanoutd.sock"));
    assert_eq!(c.daemon.metrics_listen, None);
    assert_eq!(c.igmp.query_interval, Duration::from_secs(125));
    assert_eq!(c.igmp.startup_query_interval, Duration::from_millis(31_250));
    assert_eq!(c.igmp.last_member_query_count, 2);
    assert_eq!(c.overlay.port, 7410);
    assert_eq!(c.dataplane.frame_count, 4096);
    assert_eq!(c.interfaces[0].ttl_threshold, 1);
    assert!(!c.interfaces[0].igmp);
}

#[test]
fn unknown_interface_in_route() {
    let text = route("group = \"239.1.1.1\"\niif = \"veth0\"\noifs = [\"veth1\", \"eth9\"]\n");
    let d = only_error(&text);
    assert_eq!(d.kind, ErrorKind::UnknownInterface("eth9".into()));
    assert_eq!(d.field, "static_route[0].oifs[1]");
    assert_eq!(d.line, line_of(&text, "eth9"));
    assert_eq!(d.col, "oifs = [\"veth1\", ".len() + 1);
    assert_eq!(
        d.to_string(),
        format!("{FILE}:{}:{}: static_route[0].oifs[1]: unknown interface \"eth9\" (not in any [[interface]])", d.line, d.col)
    );

    let text = route("group = \"239.1.1.1\"\niif = \"nope\"\noifs = [\"veth1\"]\n");
    let d = only_error(&text);
    assert_eq!((d.field.as_str(), d.line), ("static_route[0].iif", line_of(&text, "nope")));
    assert_eq!(d.kind, ErrorKind::UnknownInterface("nope".into()));
}

#[test]
fn group_not_multicast() {
    for (group, addr) in
        [("10.0.0.1", Ipv4Addr::new(10, 0, 0, 1)), ("224.0.0.5", Ipv4Addr::new(224, 0, 0, 5))]
    {
        let text = route(&format!("group = \"{group}\"\niif = \"veth0\"\noifs = [\"veth1\"]\n"));
        let d = only_error(&text);
        assert_eq!(d.kind, ErrorKind::NotMulticast(addr));
        assert_eq!(
            (d.field.as_str(), d.line),
            ("static_route[0].group", line_of(&text, "group ="))
        );
        assert!(d.to_string().contains("is not a routable multicast group"), "{d}");
    }
}

#[test]
fn source_multicast() {
    let text = route(
        "source = \"239.9.9.9\"\ngroup = \"239.1.1.1\"\niif = \"veth0\"\noifs = [\"veth1\"]\n",
    );
    let d = only_error(&text);
    assert_eq!(d.kind, ErrorKind::SourceMulticast(Ipv4Addr::new(239, 9, 9, 9)));
    assert_eq!((d.field.as_str(), d.line), ("static_route[0].source", line_of(&text, "source")));
}

#[test]
fn bad_address_text() {
    let text = route(
        "source = \"10.0.0.300\"\ngroup = \"239.1.1.1\"\niif = \"veth0\"\noifs = [\"veth1\"]\n",
    );
    let d = only_error(&text);
    assert!(matches!(&d.kind, ErrorKind::BadAddress { value, .. } if value == "10.0.0.300"), "{d}");
    assert_eq!(d.field, "static_route[0].source");
}

#[test]
fn duplicate_interface() {
    let text = format!("{IFACES}[[interface]]\nname = \"veth1\"\n");
    let d = only_error(&text);
    assert_eq!(d.kind, ErrorKind::DuplicateInterface { name: "veth1".into(), first_line: 4 });
    assert_eq!((d.field.as_str(), d.line), ("interface[3].name", 9));
    assert!(d.to_string().contains("(first defined on line 4)"), "{d}");
}

#[test]
fn bad_interface_name() {
    let d = only_error("[[interface]]\nname = \"a-very-long-ifname0\"\n");
    assert_eq!(d.kind, ErrorKind::BadInterfaceName("a-very-long-ifname0".into()));
    assert_eq!((d.line, d.col), (2, 8));
}

#[test]
fn oif_is_iif() {
    let text = route("group = \"239.1.1.1\"\niif = \"veth0\"\noifs = [\"veth0\", \"veth1\"]\n");
    let d = only_error(&text);
    assert_eq!(d.kind, ErrorKind::OifIsIif("veth0".into()));
    assert_eq!(d.field, "static_route[0].oifs[0]");
}

#[test]
fn duplicate_oif() {
    let text = route("group = \"239.1.1.1\"\niif = \"veth0\"\noifs = [\"veth1\", \"veth1\"]\n");
    assert_eq!(only_error(&text).kind, ErrorKind::DuplicateOif("veth1".into()));
}

#[test]
fn empty_oifs() {
    let text = route("group = \"239.1.1.1\"\niif = \"veth0\"\noifs = []\n");
    let d = only_error(&text);
    assert_eq!(d.kind, ErrorKind::EmptyOifs);
    assert_eq!((d.field.as_str(), d.line), ("static_route[0].oifs", line_of(&text, "oifs")));
}

#[test]
fn duplicate_route() {
    let one = "[[static_route]]\ngroup = \"239.1.1.1\"\niif = \"veth0\"\noifs = [\"veth1\"]\n";
    let text = format!("{IFACES}{one}{one}");
    let d = only_error(&text);
    // Both positions are the `group =` lines of the two routes.
    assert!(matches!(d.kind, ErrorKind::DuplicateRoute { first_line: 9, .. }), "{d}");
    assert_eq!((d.field.as_str(), d.line), ("static_route[1]", 13));
}

#[test]
fn bad_durations() {
    for (value, reason) in [
        ("10", "missing unit"),
        ("10 parsecs", "unknown unit"),
        ("0s", "greater than zero"),
        ("", "empty"),
    ] {
        let text = format!("[igmp]\nquery_interval = \"{value}\"\n");
        let d = only_error(&text);
        assert_eq!((d.field.as_str(), d.line, d.col), ("igmp.query_interval", 2, 18));
        assert!(matches!(&d.kind, ErrorKind::BadDuration { value: v, .. } if v == value), "{d}");
        assert!(d.to_string().contains(reason), "{d}");
    }
    let d = only_error("[dvmrp]\nprune_lifetime = \"2 hours\"\n");
    assert_eq!(d.field, "dvmrp.prune_lifetime");
    // A duration that is valid alone but breaks an RFC relation.
    let d = only_error("[igmp]\nquery_interval = \"5s\"\nquery_response_interval = \"10s\"\n");
    assert_eq!((d.field.as_str(), d.line), ("igmp.query_response_interval", 3));
    assert!(d.to_string().contains("RFC 3376"), "{d}");
}

#[test]
fn bad_key_hex() {
    let d = only_error("[overlay]\nkeys = [{ id = 1, secret = \"xyz0\" }]\n");
    assert_eq!((d.field.as_str(), d.line), ("overlay.keys[0].secret", 2));
    assert!(matches!(&d.kind, ErrorKind::BadKey(m) if m.contains("not a hex digit")), "{d}");
    let d = only_error("[overlay]\nkeys = [{ id = 1, secret = \"abc\" }]\n");
    assert!(d.to_string().contains("odd number of hex digits"), "{d}");
    let d = only_error("[overlay]\nkeys = [{ id = 1, secret = \"abcd\" }]\n");
    assert!(d.to_string().contains("16 to 64 bytes"), "{d}");
    let key = "00".repeat(16);
    let d = only_error(&format!(
        "[overlay]\nkeys = [{{ id = 1, secret = \"{key}\" }}, {{ id = 1, secret = \"{key}\" }}]\n"
    ));
    assert_eq!(d.kind, ErrorKind::DuplicateKeyId(1));
    let ok = parse(&format!(
        "[overlay]\nkeys = [{{ id = 1, secret = \"{key}\" }}, {{ id = 2, secret = \"{key}\" }}]\n"
    ));
    assert_eq!(ok.unwrap().overlay.keys.len(), 2);
}

#[test]
fn unknown_field_and_type_errors_carry_position() {
    let text = format!("{IFACES}[[interface]]\nname = \"veth3\"\nttl_treshold = 4\n");
    let d = only_error(&text);
    assert!(
        matches!(&d.kind, ErrorKind::Syntax(m) if m.contains("unknown field `ttl_treshold`")),
        "{d}"
    );
    assert_eq!(
        (d.line, d.field.as_str()),
        (line_of(&text, "ttl_treshold"), "interface[3].ttl_treshold")
    );

    let d = only_error("[dataplane]\nbatch = \"lots\"\n");
    assert_eq!((d.line, d.field.as_str()), (2, "dataplane.batch"));

    let d = only_error("[deamon]\nlog_level = \"info\"\n");
    assert!(matches!(&d.kind, ErrorKind::Syntax(m) if m.contains("unknown field `deamon`")), "{d}");
    assert_eq!(d.line, 1);

    let d = only_error("[[interface]]\nname = \"veth0\"\nttl_threshold = 300\n");
    assert_eq!((d.line, d.field.as_str()), (3, "interface[0].ttl_threshold"));

    let d = only_error("[[static_route]]\ngroup = \"239.1.1.1\"\noifs = [\"veth1\"]\n");
    assert!(matches!(&d.kind, ErrorKind::Syntax(m) if m.contains("missing field `iif`")), "{d}");

    let d = only_error("[daemon\n");
    assert_eq!(d.line, 1);
}

#[test]
fn enumerations_and_ranges() {
    let d = only_error("[dataplane]\ncopy_mode = \"fast\"\n");
    assert!(d.to_string().contains("expected one of: auto, copy, zerocopy"), "{d}");
    let d = only_error("[dataplane]\nxdp_mode = \"hw\"\n");
    assert_eq!(d.field, "dataplane.xdp_mode");
    let d = only_error("[daemon]\nlog_level = \"loud\"\n");
    assert_eq!(d.field, "daemon.log_level");
    let d = only_error("[daemon]\nmetrics_listen = \"localhost\"\n");
    assert_eq!(d.field, "daemon.metrics_listen");
    let d = only_error("[dataplane]\nframe_count = 1000\n");
    assert!(d.to_string().contains("power of two"), "{d}");
    let d = only_error("[limits]\npunt_rate = 0\n");
    assert_eq!(d.field, "limits.punt_rate");
    let d = only_error("[routing]\nmode = \"pim\"\n");
    assert!(matches!(d.kind, ErrorKind::UnknownValue { .. }), "{d}");
    let text = route(
        "group = \"239.1.1.1\"\niif = \"veth0\"\noifs = [\"veth1\"]\n[limits]\nmax_routes = 0\n",
    );
    assert_eq!(only_error(&text).field, "limits.max_routes");
    let two = "[[static_route]]\ngroup = \"239.1.1.1\"\niif = \"veth0\"\noifs = [\"veth1\"]\n\
               [[static_route]]\ngroup = \"239.1.1.2\"\niif = \"veth0\"\noifs = [\"veth1\"]\n";
    let d = only_error(&format!("{IFACES}{two}[limits]\nmax_routes = 1\n"));
    assert_eq!(d.kind, ErrorKind::TooManyRoutes { count: 2, max: 1 });
}

#[test]
fn all_problems_reported_at_once() {
    let text = route("source = \"239.0.0.1\"\ngroup = \"10.0.0.1\"\niif = \"x\"\noifs = []\n");
    let err = parse(&text).unwrap_err();
    let fields: Vec<&str> = err.diagnostics().iter().map(|d| d.field.as_str()).collect();
    assert_eq!(
        fields,
        [
            "static_route[0].source",
            "static_route[0].group",
            "static_route[0].iif",
            "static_route[0].oifs"
        ]
    );
    // Display: one line per problem, each starting with the location.
    let shown = err.to_string();
    assert_eq!(shown.lines().count(), 4);
    assert!(shown.lines().all(|l| l.starts_with(FILE)), "{shown}");
}

#[test]
fn unreadable_file() {
    let err = Config::load(Path::new("/nonexistent/fanout.toml")).unwrap_err();
    assert!(matches!(err, ConfigError::Io { .. }));
    assert!(err.to_string().starts_with("/nonexistent/fanout.toml: cannot read"), "{err}");
}

#[test]
fn dvmrp_mode_takes_no_static_routes() {
    let c = parse(&format!("[routing]\nmode = \"dvmrp\"\n{IFACES}")).unwrap();
    assert_eq!(c.routing, RoutingMode::Dvmrp);
    let text = format!(
        "[routing]\nmode = \"dvmrp\"\n{IFACES}[[static_route]]\ngroup = \"239.1.1.1\"\niif = \"veth0\"\noifs = [\"veth1\"]\n"
    );
    let d = only_error(&text);
    assert_eq!(d.kind, ErrorKind::StaticRouteInProtocolMode("dvmrp"));
    assert_eq!((d.line, d.field.as_str()), (line_of(&text, "[[static_route]]"), "static_route[0]"));
}

#[test]
fn linkstate_mode_settings() {
    let c = parse(&format!("[routing]\nmode = \"linkstate\"\n{IFACES}")).unwrap();
    assert_eq!(c.routing, RoutingMode::LinkState);
    assert_eq!(c.linkstate.router_id, None);
    assert_eq!(c.linkstate.hello_interval, Duration::from_secs(10));
    assert_eq!(c.linkstate.dead_interval, Duration::from_secs(40));
    assert!(c.linkstate.auth.is_none());
    assert!(c.interfaces.iter().all(|i| i.cost == 10), "default cost 10");

    let text = "[routing]\nmode = \"linkstate\"\n[linkstate]\nrouter_id = \"1.2.3.4\"\n\
                preset = \"fast\"\nretransmit_interval = \"1s\"\nkey_id = 3\nsecret = \"s3cret\"\n\
                [[interface]]\nname = \"veth0\"\ncost = 25\n";
    let c = parse(text).unwrap();
    assert_eq!(c.linkstate.router_id, Some(Ipv4Addr::new(1, 2, 3, 4)));
    // The preset's timers, with the one set key overriding it.
    assert_eq!(c.linkstate.hello_interval, Duration::from_millis(100));
    assert_eq!(c.linkstate.dead_interval, Duration::from_millis(400));
    assert_eq!(c.linkstate.min_ls_arrival, Duration::from_millis(50));
    assert_eq!(c.linkstate.retransmit_interval, Duration::from_secs(1));
    let auth = c.linkstate.auth.as_ref().unwrap();
    assert_eq!((auth.key_id, auth.secret.as_str()), (3, "s3cret"));
    assert_eq!(c.interface("veth0").unwrap().cost, 25);
    // Static routes belong to mode static only.
    let text = format!(
        "[routing]\nmode = \"linkstate\"\n{IFACES}[[static_route]]\ngroup = \"239.1.1.1\"\niif = \"veth0\"\noifs = [\"veth1\"]\n"
    );
    assert_eq!(only_error(&text).kind, ErrorKind::StaticRouteInProtocolMode("linkstate"));
}

#[test]
fn linkstate_mistakes_are_located() {
    let text = "[linkstate]\nhello_interval = \"5s\"\ndead_interval = \"5s\"\n";
    let d = only_error(text);
    assert_eq!((d.field.as_str(), d.line), ("linkstate.dead_interval", 3));
    assert!(d.to_string().contains("longer than linkstate.hello_interval"), "{d}");
    let d = only_error("[linkstate]\npreset = \"turbo\"\n");
    assert_eq!(d.field, "linkstate.preset");
    assert!(d.to_string().contains("expected one of: default, fast"), "{d}");
    let d = only_error("[linkstate]\nrouter_id = \"1.2.3\"\n");
    assert_eq!((d.field.as_str(), d.line), ("linkstate.router_id", 2));
    let d = only_error("[linkstate]\nrouter_id = \"0.0.0.0\"\n");
    assert!(d.to_string().contains("reserved"), "{d}");
    let d = only_error("[linkstate]\nkey_id = 1\n");
    assert_eq!(d.field, "linkstate.key_id");
    assert!(d.to_string().contains("secret is missing"), "{d}");
    let d = only_error("[linkstate]\nkey_id = 1\nsecret = \"\"\n");
    assert_eq!((d.field.as_str(), d.line), ("linkstate.secret", 3));
    let d = only_error("[linkstate]\nmin_ls_interval = \"soon\"\n");
    assert_eq!(d.field, "linkstate.min_ls_interval");
    let text = "[[interface]]\nname = \"veth0\"\ncost = 0\n";
    let d = only_error(text);
    assert_eq!((d.field.as_str(), d.line, d.col), ("interface[0].cost", 3, 8));
    // DVMRP metrics: 1..=31 (32 is infinity); default 1.
    let d = only_error("[[interface]]\nname = \"veth0\"\nmetric = 32\n");
    assert_eq!((d.field.as_str(), d.line, d.col), ("interface[0].metric", 3, 10));
    assert!(d.to_string().contains("DVMRP infinity"), "{d}");
    let c = parse("[[interface]]\nname = \"veth0\"\nmetric = 4\n[[interface]]\nname = \"veth1\"\n")
        .expect("valid");
    assert_eq!(
        (c.interface("veth0").unwrap().metric, c.interface("veth1").unwrap().metric),
        (4, 1)
    );
}

const OVERLAY_KEY: &str = "00112233445566778899aabbccddeeff";

#[test]
fn static_overlay_routes_and_neighbors_parse() {
    let text = format!(
        "{IFACES}[overlay]\nport = 7411\norigin = \"10.0.0.1\"\nsend_key = 2\n\
         keys = [{{ id = 1, secret = \"{OVERLAY_KEY}\" }}, {{ id = 2, secret = \"{OVERLAY_KEY}\" }}]\n\
         [[neighbor]]\naddr = \"10.0.1.2\"\ninterface = \"veth1\"\nmac = \"02:AA:bb:00:00:01\"\n\
         [[static_route]]\ngroup = \"239.1.1.1\"\niif = \"veth0\"\noifs = []\n\
         overlay_next_hops = [\"10.0.1.2\"]\n\
         [[static_overlay_route]]\norigin = \"10.0.9.1\"\ngroup = \"239.1.1.1\"\n\
         from = \"10.0.1.2\"\ndeliver = [\"veth2\"]\nnext_hops = [\"10.0.1.2\"]\n"
    );
    let c = parse(&text).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((c.overlay.port, c.overlay.send_key), (7411, Some(2)));
    assert_eq!(c.neighbors.len(), 1);
    assert_eq!(c.neighbors[0].mac, [0x02, 0xaa, 0xbb, 0, 0, 1]);
    assert_eq!(c.neighbors[0].interface, "veth1");
    assert_eq!(c.static_routes[0].overlay_next_hops, [Ipv4Addr::new(10, 0, 1, 2)]);
    assert!(c.static_routes[0].oifs.is_empty());
    let r = &c.static_overlay_routes[0];
    assert_eq!(r.origin, Ipv4Addr::new(10, 0, 9, 1));
    assert_eq!(r.from, Some(Ipv4Addr::new(10, 0, 1, 2)));
    assert_eq!(r.deliver, ["veth2"]);
    assert!(c.uses_overlay());
    assert!(!parse(IFACES).unwrap().uses_overlay());
}

#[test]
fn overlay_mistakes_are_located() {
    let nb =
        "[[neighbor]]\naddr = \"10.0.1.2\"\ninterface = \"veth1\"\nmac = \"02:00:00:00:00:01\"\n";
    // A next hop without a neighbour entry.
    let text = route(
        "group = \"239.1.1.1\"\niif = \"veth0\"\noifs = []\noverlay_next_hops = [\"10.0.1.3\"]\n",
    );
    let d = only_error(&text);
    assert_eq!(d.kind, ErrorKind::NoNeighbor(Ipv4Addr::new(10, 0, 1, 3)));
    assert_eq!(
        (d.field.as_str(), d.line),
        ("static_route[0].overlay_next_hops[0]", line_of(&text, "overlay_next_hops"))
    );
    // Both oifs and next hops empty.
    let d = only_error(&route("group = \"239.1.1.1\"\niif = \"veth0\"\noifs = []\n"));
    assert_eq!(d.kind, ErrorKind::EmptyOifs);
    // Bad MAC, unknown interface of a neighbour.
    let text = format!("{IFACES}[[neighbor]]\naddr = \"10.0.1.2\"\ninterface = \"veth1\"\nmac = \"02:00:00:00:00\"\n");
    let d = only_error(&text);
    assert_eq!((d.field.as_str(), d.line), ("neighbor[0].mac", line_of(&text, "mac =")));
    assert!(matches!(d.kind, ErrorKind::BadMac(_)));
    let d = only_error(&format!("{IFACES}{}", nb.replace("veth1", "eth9")));
    assert_eq!(d.kind, ErrorKind::UnknownInterface("eth9".into()));
    let d = only_error(&format!("{IFACES}{nb}{nb}"));
    assert!(
        matches!(d.kind, ErrorKind::DuplicateNeighbor { first_line, .. } if first_line == line_of(IFACES, "veth2") + 2)
    );
    // Overlay routes: multicast origin, empty, duplicate, duplicate next hop.
    let ovr = |body: &str| format!("{IFACES}{nb}[[static_overlay_route]]\n{body}");
    let text = ovr("origin = \"239.0.0.1\"\ngroup = \"239.1.1.1\"\ndeliver = [\"veth2\"]\n");
    let d = only_error(&text);
    assert_eq!(
        (d.field.as_str(), d.line),
        ("static_overlay_route[0].origin", line_of(&text, "origin"))
    );
    let d = only_error(&ovr("origin = \"10.0.9.1\"\ngroup = \"239.1.1.1\"\n"));
    assert_eq!(d.kind, ErrorKind::EmptyOverlayRoute);
    let one = "origin = \"10.0.9.1\"\ngroup = \"239.1.1.1\"\ndeliver = [\"veth2\"]\n";
    let d = only_error(&ovr(&format!("{one}[[static_overlay_route]]\n{one}")));
    assert!(matches!(d.kind, ErrorKind::DuplicateOverlayRoute { first_line: 14, .. }), "{d}");
    let d = only_error(&ovr(
        "origin = \"10.0.9.1\"\ngroup = \"239.1.1.1\"\nnext_hops = [\"10.0.1.2\", \"10.0.1.2\"]\n",
    ));
    assert_eq!(d.field, "static_overlay_route[0].next_hops[1]");
    let d =
        only_error(&ovr("origin = \"10.0.9.1\"\ngroup = \"239.1.1.1\"\ndeliver = [\"nope\"]\n"));
    assert_eq!(d.kind, ErrorKind::UnknownInterface("nope".into()));
    // send_key must name a configured key.
    let d = only_error(&format!(
        "[overlay]\nsend_key = 3\nkeys = [{{ id = 1, secret = \"{OVERLAY_KEY}\" }}]\n"
    ));
    assert_eq!(
        (d.field.as_str(), d.line, d.kind),
        ("overlay.send_key", 2, ErrorKind::UnknownSendKey(3))
    );
}

const OVERLAY_SECRET: &str = "000102030405060708090a0b0c0d0e0f";

fn overlay_mode(extra: &str) -> String {
    format!(
        "[routing]\nmode = \"overlay\"\n{IFACES}[overlay]\naddress = \"10.0.1.1\"\n\
         rendezvous = \"10.0.2.1\"\nlocal_interface = \"veth1\"\ngroups = [\"239.7.7.7\"]\n\
         keys = [{{ id = 1, secret = \"{OVERLAY_SECRET}\" }}]\n{extra}"
    )
}

#[test]
fn overlay_mode_settings() {
    use controlplane::overlay::{TopologyMode, TreeMode};
    let c = parse(&overlay_mode(
        "topology = \"self-organising\"\ntarget_degree = 2\nmax_degree = 4\n\
         probe_interval = \"1s\"\nhysteresis_percent = 10\ntree = \"shared-core\"\n\
         core = \"10.0.2.1\"\nheartbeat_interval = \"200ms\"\ndead_multiplier = 4\n\
         max_members = 16\n",
    ))
    .unwrap();
    assert_eq!(c.routing, RoutingMode::Overlay);
    assert!(c.uses_overlay(), "the data port must be steered to the data plane");
    let p = c.overlay.protocol.as_ref().expect("protocol settings");
    assert_eq!(p.address, Ipv4Addr::new(10, 0, 1, 1));
    assert_eq!(c.overlay.origin, Some(p.address), "the origin is the node's address");
    assert_eq!((p.rendezvous, p.local_interface.as_str()), (Ipv4Addr::new(10, 0, 2, 1), "veth1"));
    assert_eq!(p.groups, [Ipv4Addr::new(239, 7, 7, 7)]);
    let TopologyMode::SelfOrganising(so) = &p.topology else { panic!("{:?}", p.topology) };
    assert_eq!((so.target_degree, so.max_degree, so.hysteresis_percent), (2, 4, 10));
    assert_eq!(so.probe_interval, Duration::from_secs(1));
    assert_eq!(p.tree, TreeMode::SharedCore { core: Ipv4Addr::new(10, 0, 2, 1) });
    assert_eq!((p.heartbeat_interval, p.dead_multiplier), (Duration::from_millis(200), 4));
    assert_eq!(p.max_members, Some(16));

    let c =
        parse(&overlay_mode("[[overlay.link]]\na = \"10.0.1.1\"\nb = \"10.0.2.1\"\ncost = 5\n"))
            .unwrap();
    let p = c.overlay.protocol.unwrap();
    let TopologyMode::Static { links } = &p.topology else { panic!("{:?}", p.topology) };
    assert_eq!((links.len(), links[0].cost), (1, 5));
    assert_eq!(p.tree, TreeMode::ShortestPath);
    // Other modes carry no protocol settings.
    assert_eq!(parse(IFACES).unwrap().overlay.protocol, None);
}

#[test]
fn overlay_mode_mistakes_are_located() {
    // Everything missing: one diagnostic per required key, at the [overlay] header.
    let text = format!("[routing]\nmode = \"overlay\"\n{IFACES}[overlay]\nport = 7410\n");
    let err = parse(&text).unwrap_err();
    let fields: Vec<&str> = err.diagnostics().iter().map(|d| d.field.as_str()).collect();
    for f in [
        "overlay.address",
        "overlay.rendezvous",
        "overlay.local_interface",
        "overlay.groups",
        "overlay.link",
        "overlay.keys",
    ] {
        assert!(fields.contains(&f), "{f} missing from {fields:?}");
    }
    let header = line_of(&text, "[overlay]");
    assert!(err.diagnostics().iter().all(|d| d.line == header), "{err}");
    assert!(err.to_string().contains("routing mode \"overlay\" needs overlay.rendezvous"), "{err}");

    let link = "[[overlay.link]]\na = \"10.0.1.1\"\nb = \"10.0.2.1\"\n";
    let cases: [(&str, &str, &str); 7] = [
        ("groups = [\"10.1.1.1\"]\n", "overlay.groups[0]", "groups = [\"10.1"),
        ("topology = \"mesh\"\n", "overlay.topology", "mesh"),
        (
            "topology = \"self-organising\"\ntarget_degree = 5\nmax_degree = 2\n",
            "overlay.max_degree",
            "max_degree",
        ),
        ("tree = \"shared-core\"\n", "overlay.core", "[overlay]"),
        ("heartbeat_interval = \"1\"\n", "overlay.heartbeat_interval", "heartbeat_interval"),
        ("origin = \"10.9.9.9\"\n", "overlay.origin", "origin ="),
        (
            "[[overlay.link]]\na = \"10.0.1.1\"\nb = \"10.0.1.1\"\n",
            "overlay.link[0].b",
            "b = \"10.0.1.1",
        ),
    ];
    for (extra, field, needle) in cases {
        // The replacement of `groups` keeps one definition of the key.
        let text = if extra.starts_with("groups") {
            overlay_mode(link).replace("groups = [\"239.7.7.7\"]\n", extra)
        } else if extra.starts_with("[[overlay.link]]") {
            overlay_mode(extra)
        } else {
            overlay_mode(&format!("{extra}{link}"))
        };
        let d = only_error(&text);
        assert_eq!((d.field.as_str(), d.line), (field, line_of(&text, needle)), "{d}");
    }
    let text =
        overlay_mode(link).replace("local_interface = \"veth1\"", "local_interface = \"eth9\"");
    let d = only_error(&text);
    assert_eq!(d.kind, ErrorKind::UnknownInterface("eth9".into()));

    // Protocol keys outside routing mode overlay would do nothing: refused.
    let d = only_error(&format!("{IFACES}[overlay]\nrendezvous = \"10.0.2.1\"\n"));
    assert_eq!(d.kind, ErrorKind::OverlayKeyOutsideOverlayMode("overlay.rendezvous".into()));
}
