//! Serde mirrors of the `wire::igmp` Reprs, so events and actions that carry IGMP messages can be
//! recorded and replayed as JSON (conformance fixtures, the daemon's event log) without the
//! wire crate depending on serde derives.
//!
//! Invariant: each mirror lists exactly the fields/variants of its wire type (serde's `remote`
//! derive checks this at compile time), so a change in `wire` fails the build here instead of
//! silently changing the fixture format.

use std::net::Ipv4Addr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use wire::igmp::{GroupRecord, IgmpRepr, Query, QueryVersion, RecordType};

#[derive(Serialize, Deserialize)]
#[serde(remote = "QueryVersion")]
enum QueryVersionDef {
    V1,
    V2,
    V3,
}

#[derive(Serialize, Deserialize)]
#[serde(remote = "RecordType")]
enum RecordTypeDef {
    ModeIsInclude,
    ModeIsExclude,
    ChangeToInclude,
    ChangeToExclude,
    AllowNewSources,
    BlockOldSources,
    Unknown(u8),
}

#[derive(Serialize, Deserialize)]
#[serde(remote = "Query")]
struct QueryDef {
    #[serde(with = "QueryVersionDef")]
    version: QueryVersion,
    max_resp_code: u8,
    group: Ipv4Addr,
    #[serde(default)]
    suppress_router_processing: bool,
    #[serde(default)]
    qrv: u8,
    #[serde(default)]
    qqic: u8,
    #[serde(default)]
    sources: Vec<Ipv4Addr>,
}

#[derive(Serialize, Deserialize)]
#[serde(remote = "GroupRecord")]
struct GroupRecordDef {
    #[serde(with = "RecordTypeDef")]
    record_type: RecordType,
    group: Ipv4Addr,
    #[serde(default)]
    sources: Vec<Ipv4Addr>,
    #[serde(default)]
    aux_data: Vec<u8>,
}

/// Newtype so a `Vec<GroupRecord>` can go through the remote definition element by element.
#[derive(Serialize, Deserialize)]
struct RecordWrap(#[serde(with = "GroupRecordDef")] GroupRecord);

fn records_ser<S: Serializer>(records: &[GroupRecord], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(records.iter().map(|r| RecordWrap(r.clone())))
}

fn records_de<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<GroupRecord>, D::Error> {
    Ok(Vec::<RecordWrap>::deserialize(d)?.into_iter().map(|RecordWrap(r)| r).collect())
}

#[derive(Serialize, Deserialize)]
#[serde(remote = "IgmpRepr")]
enum IgmpReprDef {
    Query(#[serde(with = "QueryDef")] Query),
    ReportV1 {
        group: Ipv4Addr,
    },
    ReportV2 {
        group: Ipv4Addr,
    },
    Leave {
        group: Ipv4Addr,
    },
    ReportV3 {
        #[serde(serialize_with = "records_ser", deserialize_with = "records_de")]
        records: Vec<GroupRecord>,
    },
}

/// `#[serde(with = "crate::igmp::serde_wire::igmp_repr")]` for an `IgmpRepr` field.
pub mod igmp_repr {
    use serde::{Deserializer, Serializer};
    use wire::igmp::IgmpRepr;

    pub fn serialize<S: Serializer>(repr: &IgmpRepr, s: S) -> Result<S::Ok, S::Error> {
        super::IgmpReprDef::serialize(repr, s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<IgmpRepr, D::Error> {
        super::IgmpReprDef::deserialize(d)
    }
}
