//! Serde mirrors of `wire::dvmrp`'s Reprs (remote derive), so events and actions that carry
//! DVMRP messages can be recorded, replayed and written as conformance fixtures without the
//! `wire` crate depending on serde's derive for its packet types.

use std::net::Ipv4Addr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use wire::dvmrp::{DvmrpRepr, Message, ReportBlock, Route};

#[derive(Serialize, Deserialize)]
#[serde(remote = "DvmrpRepr")]
pub(super) struct DvmrpReprDef {
    capabilities: u8,
    minor: u8,
    major: u8,
    #[serde(with = "MessageDef")]
    message: Message,
}

#[derive(Serialize, Deserialize)]
#[serde(remote = "Message", rename_all = "kebab-case")]
enum MessageDef {
    Probe {
        generation_id: u32,
        neighbors: Vec<Ipv4Addr>,
    },
    Report {
        #[serde(with = "blocks")]
        blocks: Vec<ReportBlock>,
    },
    Prune {
        source: Ipv4Addr,
        group: Ipv4Addr,
        lifetime: u32,
        #[serde(default)]
        source_mask: Option<Ipv4Addr>,
    },
    Graft {
        source: Ipv4Addr,
        group: Ipv4Addr,
    },
    GraftAck {
        source: Ipv4Addr,
        group: Ipv4Addr,
    },
    Other {
        code: u8,
        data: Vec<u8>,
    },
}

#[derive(Serialize, Deserialize)]
struct BlockDef {
    mask: Ipv4Addr,
    routes: Vec<(Ipv4Addr, u8)>,
}

mod blocks {
    use super::{BlockDef, Deserialize, Deserializer, ReportBlock, Route, Serialize, Serializer};

    pub(super) fn serialize<S: Serializer>(
        blocks: &[ReportBlock],
        s: S,
    ) -> Result<S::Ok, S::Error> {
        blocks
            .iter()
            .map(|b| BlockDef {
                mask: b.mask,
                routes: b.routes.iter().map(|r| (r.origin, r.metric)).collect(),
            })
            .collect::<Vec<_>>()
            .serialize(s)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Vec<ReportBlock>, D::Error> {
        let defs = Vec::<BlockDef>::deserialize(d)?;
        Ok(defs
            .into_iter()
            .map(|b| ReportBlock {
                mask: b.mask,
                routes: b
                    .routes
                    .into_iter()
                    .map(|(origin, metric)| Route { origin, metric })
                    .collect(),
            })
            .collect())
    }
}
