//! Static routes: configuration → [`MfibRoute`]s, [`OverlayRoute`]s and [`Neighbor`]s, and the
//! difference between two configurations as the [`MfibUpdate`]s that turn one forwarding table
//! into the other (used on reload, so unchanged entries are not touched and their counters keep
//! running).
//!
//! Invariant of [`diff`]'s output order: removals of routes come before anything else, and
//! neighbours are set before the routes that use them and removed only after every route
//! naming them is gone, so no prefix of a batch references a missing neighbour.
//!
//! Pure functions: interface names are resolved through a caller-supplied lookup.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use dataplane_api::{IfIndex, MfibRoute, MfibUpdate, Neighbor, Oif, OverlayRoute};

use crate::config::Config;

/// The key of a route: (source or `None` for (*,G), group).
pub type RouteKey = (Option<Ipv4Addr>, Ipv4Addr);

/// The routes a configuration asks for, by key.
pub type RouteSet = BTreeMap<RouteKey, MfibRoute>;

/// Everything static a configuration installs in the data plane.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StaticTables {
    pub routes: RouteSet,
    /// By (origin, group).
    pub overlay: BTreeMap<(Ipv4Addr, Ipv4Addr), OverlayRoute>,
    /// By neighbour address.
    pub neighbors: BTreeMap<Ipv4Addr, Neighbor>,
}

/// A route or neighbour names an interface the data plane does not run on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{entry} uses interface {name}, which the data plane does not run on")]
pub struct UnresolvedInterface {
    /// The entry, e.g. `route (*, 239.1.1.1)` or `neighbor 10.0.0.2`.
    pub entry: String,
    pub name: String,
}

/// Compiles a configuration's static routes, overlay routes and neighbours. Each oif and
/// delivery interface carries its interface's `ttl_threshold`.
pub fn compile(
    config: &Config,
    ifindex: impl Fn(&str) -> Option<IfIndex>,
) -> Result<StaticTables, UnresolvedInterface> {
    let resolve = |entry: &dyn Fn() -> String, name: &str| {
        ifindex(name).ok_or_else(|| UnresolvedInterface { entry: entry(), name: name.to_owned() })
    };
    let oif = |entry: &dyn Fn() -> String, name: &str| {
        let ttl_threshold = config.interface(name).map_or(1, |i| i.ttl_threshold);
        Ok(Oif { ifindex: resolve(entry, name)?, ttl_threshold })
    };
    let mut out = StaticTables::default();
    for r in &config.static_routes {
        let entry = || {
            format!(
                "route ({}, {})",
                r.source.map_or_else(|| "*".to_owned(), |s| s.to_string()),
                r.group
            )
        };
        let iif = resolve(&entry, &r.iif)?;
        let oifs = r
            .oifs
            .iter()
            .map(|name| oif(&entry, name))
            .collect::<Result<Vec<_>, UnresolvedInterface>>()?;
        out.routes.insert(
            (r.source, r.group),
            MfibRoute {
                source: r.source,
                group: r.group,
                iif,
                oifs,
                overlay_next_hops: r.overlay_next_hops.clone(),
            },
        );
    }
    for r in &config.static_overlay_routes {
        let entry = || format!("overlay route ({}, {})", r.origin, r.group);
        let deliver = r
            .deliver
            .iter()
            .map(|name| oif(&entry, name))
            .collect::<Result<Vec<_>, UnresolvedInterface>>()?;
        out.overlay.insert(
            (r.origin, r.group),
            OverlayRoute {
                origin: r.origin,
                group: r.group,
                from: r.from,
                deliver,
                next_hops: r.next_hops.clone(),
            },
        );
    }
    for n in &config.neighbors {
        let entry = || format!("neighbor {}", n.addr);
        let ifindex = resolve(&entry, &n.interface)?;
        out.neighbors.insert(n.addr, Neighbor { addr: n.addr, ifindex, mac: n.mac });
    }
    Ok(out)
}

/// The updates that turn `old` into `new` (order: see the module docs). Unchanged entries
/// produce nothing.
pub fn diff(old: &StaticTables, new: &StaticTables) -> Vec<MfibUpdate> {
    let mut out = Vec::new();
    out.extend(
        old.routes
            .keys()
            .filter(|k| !new.routes.contains_key(k))
            .map(|&(source, group)| MfibUpdate::Remove { source, group }),
    );
    out.extend(
        old.overlay
            .keys()
            .filter(|k| !new.overlay.contains_key(k))
            .map(|&(origin, group)| MfibUpdate::RemoveOverlay { origin, group }),
    );
    out.extend(
        new.neighbors
            .iter()
            .filter(|(k, n)| old.neighbors.get(k) != Some(n))
            .map(|(_, n)| MfibUpdate::SetNeighbor(*n)),
    );
    out.extend(
        new.routes
            .iter()
            .filter(|(k, r)| old.routes.get(k) != Some(r))
            .map(|(_, r)| MfibUpdate::Install(r.clone())),
    );
    out.extend(
        new.overlay
            .iter()
            .filter(|(k, r)| old.overlay.get(k) != Some(r))
            .map(|(_, r)| MfibUpdate::InstallOverlay(r.clone())),
    );
    out.extend(
        old.neighbors
            .keys()
            .filter(|k| !new.neighbors.contains_key(k))
            .map(|&addr| MfibUpdate::RemoveNeighbor { addr }),
    );
    out
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    const BASE: &str = r#"
[[interface]]
name = "a"
[[interface]]
name = "b"
ttl_threshold = 4
[[interface]]
name = "c"
"#;

    fn config(routes: &str) -> Config {
        Config::parse(&format!("{BASE}{routes}"), Path::new("t.toml")).unwrap()
    }

    fn ifindex(name: &str) -> Option<IfIndex> {
        match name {
            "a" => Some(IfIndex(1)),
            "b" => Some(IfIndex(2)),
            "c" => Some(IfIndex(3)),
            _ => None,
        }
    }

    fn g(last: u8) -> Ipv4Addr {
        Ipv4Addr::new(239, 1, 1, last)
    }

    #[test]
    fn compile_resolves_and_carries_thresholds() {
        let c = config("[[static_route]]\nsource = \"10.0.0.1\"\ngroup = \"239.1.1.1\"\niif = \"a\"\noifs = [\"b\", \"c\"]\n");
        let set = compile(&c, ifindex).unwrap();
        let r = &set.routes[&(Some(Ipv4Addr::new(10, 0, 0, 1)), g(1))];
        assert_eq!(r.iif, IfIndex(1));
        assert_eq!(
            r.oifs,
            vec![
                Oif { ifindex: IfIndex(2), ttl_threshold: 4 },
                Oif { ifindex: IfIndex(3), ttl_threshold: 1 }
            ]
        );
        let err = compile(&c, |n| if n == "c" { None } else { ifindex(n) }).unwrap_err();
        assert_eq!(err.name, "c");
    }

    #[test]
    fn diff_touches_only_changes() {
        let route = |group: u8, iif: &str, oifs: &str| {
            format!(
                "[[static_route]]\ngroup = \"239.1.1.{group}\"\niif = \"{iif}\"\noifs = [{oifs}]\n"
            )
        };
        let old = compile(
            &config(
                &[route(1, "a", "\"b\""), route(2, "a", "\"b\""), route(3, "a", "\"b\"")].concat(),
            ),
            ifindex,
        )
        .unwrap();
        // 1 unchanged, 2 removed, 3 changed (extra oif), 4 new.
        let new = compile(
            &config(
                &[route(1, "a", "\"b\""), route(3, "a", "\"b\", \"c\""), route(4, "c", "\"a\"")]
                    .concat(),
            ),
            ifindex,
        )
        .unwrap();
        let updates = diff(&old, &new);
        assert_eq!(updates.len(), 3, "{updates:?}");
        assert_eq!(updates[0], MfibUpdate::Remove { source: None, group: g(2) });
        assert!(
            matches!(&updates[1], MfibUpdate::Install(r) if r.group == g(3) && r.oifs.len() == 2)
        );
        assert!(
            matches!(&updates[2], MfibUpdate::Install(r) if r.group == g(4) && r.iif == IfIndex(3))
        );
        assert!(diff(&new, &new).is_empty());
        // From nothing: installs everything; to nothing: removes everything.
        assert_eq!(diff(&StaticTables::default(), &new).len(), 3);
        assert!(diff(&new, &StaticTables::default())
            .iter()
            .all(|u| matches!(u, MfibUpdate::Remove { .. })));
    }

    #[test]
    fn threshold_change_reinstalls_only_affected_routes() {
        let routes = "[[static_route]]\ngroup = \"239.1.1.1\"\niif = \"a\"\noifs = [\"b\"]\n\
                      [[static_route]]\ngroup = \"239.1.1.2\"\niif = \"a\"\noifs = [\"c\"]\n";
        let old = compile(&config(routes), ifindex).unwrap();
        let changed = format!("{}{routes}", BASE.replace("ttl_threshold = 4", "ttl_threshold = 9"));
        let new = compile(&Config::parse(&changed, Path::new("t.toml")).unwrap(), ifindex).unwrap();
        let updates = diff(&old, &new);
        assert_eq!(updates.len(), 1);
        assert!(
            matches!(&updates[0], MfibUpdate::Install(r) if r.group == g(1) && r.oifs[0].ttl_threshold == 9)
        );
    }

    #[test]
    fn overlay_entries_compile_and_diff_in_safe_order() {
        let nb = |mac: &str| {
            format!("[[neighbor]]\naddr = \"10.0.0.2\"\ninterface = \"b\"\nmac = \"{mac}\"\n")
        };
        let with = |mac: &str| {
            format!(
                "{}[[static_route]]\ngroup = \"239.1.1.1\"\niif = \"a\"\noifs = []\n\
                 overlay_next_hops = [\"10.0.0.2\"]\n\
                 [[static_overlay_route]]\norigin = \"10.0.9.9\"\ngroup = \"239.1.1.2\"\n\
                 deliver = [\"b\"]\n",
                nb(mac)
            )
        };
        let old = compile(&config(&with("02:00:00:00:00:01")), ifindex).unwrap();
        assert_eq!(old.neighbors[&Ipv4Addr::new(10, 0, 0, 2)].ifindex, IfIndex(2));
        let o = &old.overlay[&(Ipv4Addr::new(10, 0, 9, 9), g(2))];
        assert_eq!(o.deliver, vec![Oif { ifindex: IfIndex(2), ttl_threshold: 4 }]);
        // From nothing: the neighbour comes before the route that uses it.
        let updates = diff(&StaticTables::default(), &old);
        assert!(matches!(updates[0], MfibUpdate::SetNeighbor(_)), "{updates:?}");
        assert_eq!(updates.len(), 3);
        // A changed MAC touches only the neighbour.
        let new = compile(&config(&with("02:00:00:00:00:09")), ifindex).unwrap();
        let updates = diff(&old, &new);
        assert!(
            matches!(updates.as_slice(), [MfibUpdate::SetNeighbor(n)] if n.mac[5] == 9),
            "{updates:?}"
        );
        // To nothing: the neighbour goes last, after every route naming it.
        let updates = diff(&old, &StaticTables::default());
        assert_eq!(updates.len(), 3);
        assert!(matches!(updates[2], MfibUpdate::RemoveNeighbor { .. }), "{updates:?}");
        let err =
            compile(
                &config(&nb("02:00:00:00:00:01")),
                |n| {
                    if n == "b" {
                        None
                    } else {
                        ifindex(n)
                    }
                },
            )
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "neighbor 10.0.0.2 uses interface b, which the data plane does not run on"
        );
    }
}
