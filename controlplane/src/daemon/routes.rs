//! Static routes: configuration → [`MfibRoute`]s, and the difference between two configurations
//! as the [`MfibUpdate`]s that turn one forwarding table into the other (used on reload, so
//! unchanged routes are not touched and their counters keep running).
//!
//! Pure functions: interface names are resolved through a caller-supplied lookup.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use dataplane_api::{IfIndex, MfibRoute, MfibUpdate, Oif};

use crate::config::Config;

/// The key of a route: (source or `None` for (*,G), group).
pub type RouteKey = (Option<Ipv4Addr>, Ipv4Addr);

/// The routes a configuration asks for, by key.
pub type RouteSet = BTreeMap<RouteKey, MfibRoute>;

/// A route names an interface the data plane does not run on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("route ({}, {group}) uses interface {name}, which the data plane does not run on", src.map_or_else(|| "*".to_owned(), |s| s.to_string()))]
pub struct UnresolvedInterface {
    pub src: Option<Ipv4Addr>,
    pub group: Ipv4Addr,
    pub name: String,
}

/// Compiles a configuration's static routes. Each oif carries its interface's `ttl_threshold`.
pub fn compile(
    config: &Config,
    ifindex: impl Fn(&str) -> Option<IfIndex>,
) -> Result<RouteSet, UnresolvedInterface> {
    let mut out = RouteSet::new();
    for r in &config.static_routes {
        let resolve = |name: &str| {
            ifindex(name).ok_or_else(|| UnresolvedInterface {
                src: r.source,
                group: r.group,
                name: name.to_owned(),
            })
        };
        let iif = resolve(&r.iif)?;
        let oifs = r
            .oifs
            .iter()
            .map(|name| {
                let ttl_threshold = config.interface(name).map_or(1, |i| i.ttl_threshold);
                Ok(Oif { ifindex: resolve(name)?, ttl_threshold })
            })
            .collect::<Result<Vec<_>, UnresolvedInterface>>()?;
        out.insert(
            (r.source, r.group),
            MfibRoute {
                source: r.source,
                group: r.group,
                iif,
                oifs,
                overlay_next_hops: Vec::new(),
            },
        );
    }
    Ok(out)
}

/// The updates that turn `old` into `new`: removals first (so a batch never transiently holds
/// both), then installs of new or changed routes. Unchanged routes produce nothing.
pub fn diff(old: &RouteSet, new: &RouteSet) -> Vec<MfibUpdate> {
    let removes = old
        .keys()
        .filter(|k| !new.contains_key(k))
        .map(|&(source, group)| MfibUpdate::Remove { source, group });
    let installs = new
        .iter()
        .filter(|(k, r)| old.get(k) != Some(r))
        .map(|(_, r)| MfibUpdate::Install(r.clone()));
    removes.chain(installs).collect()
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
        let r = &set[&(Some(Ipv4Addr::new(10, 0, 0, 1)), g(1))];
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
        assert_eq!(diff(&RouteSet::new(), &new).len(), 3);
        assert!(diff(&new, &RouteSet::new())
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
}
