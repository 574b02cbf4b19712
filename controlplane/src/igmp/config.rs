//! IGMP interface configuration with the RFC 3376 §8 defaults, its validation, and the derived
//! intervals (Group Membership Interval, Other Querier Present Interval, ...).
//!
//! Invariant: an [`IgmpConfig`] accepted by [`IgmpConfig::validate`] gives non-zero intervals and
//! counts, so the cores never divide by zero, never spin on a zero-length timer and always send
//! at least one specific query.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use wire::igmp::QueryVersion;

use crate::timer::{serde_millis, serde_millis_opt};

/// The IGMP version this router queries with (RFC 3376 §7.3.1: the querier must use the lowest
/// version present on the link, which is configured, not discovered).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum IgmpVersion {
    V1,
    V2,
    #[default]
    V3,
}

impl IgmpVersion {
    pub fn query_version(self) -> QueryVersion {
        match self {
            IgmpVersion::V1 => QueryVersion::V1,
            IgmpVersion::V2 => QueryVersion::V2,
            IgmpVersion::V3 => QueryVersion::V3,
        }
    }

    pub fn of_query(version: QueryVersion) -> IgmpVersion {
        match version {
            QueryVersion::V1 => IgmpVersion::V1,
            QueryVersion::V2 => IgmpVersion::V2,
            QueryVersion::V3 => IgmpVersion::V3,
        }
    }
}

/// Per-interface IGMP settings. Durations serialise as whole milliseconds (`*_ms` keys).
/// `None` for the optional ones means "derived from the others as RFC 3376 §8 says".
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IgmpConfig {
    /// Version of the queries we send (default 3).
    pub version: IgmpVersion,
    /// Robustness Variable (§8.1, default 2). Must be at least 1.
    pub robustness: u8,
    /// Query Interval between general queries (§8.2, default 125 s).
    #[serde(rename = "query_interval_ms", with = "serde_millis")]
    pub query_interval: Duration,
    /// Query Response Interval, the Max Resp Time of general queries (§8.3, default 10 s).
    #[serde(rename = "query_response_interval_ms", with = "serde_millis")]
    pub query_response_interval: Duration,
    /// Startup Query Interval (§8.6, default Query Interval / 4).
    #[serde(rename = "startup_query_interval_ms", with = "serde_millis_opt")]
    pub startup_query_interval: Option<Duration>,
    /// Startup Query Count (§8.7, default Robustness Variable).
    pub startup_query_count: Option<u8>,
    /// Last Member Query Interval, the Max Resp Time of specific queries (§8.8, default 1 s).
    #[serde(rename = "last_member_query_interval_ms", with = "serde_millis")]
    pub last_member_query_interval: Duration,
    /// Last Member Query Count (§8.9, default Robustness Variable).
    pub last_member_query_count: Option<u8>,
    /// Most groups tracked on the interface (`None`: unlimited). Reports for further groups
    /// are counted and dropped, so a flood of joins cannot exhaust memory.
    pub max_groups: Option<usize>,
}

impl Default for IgmpConfig {
    fn default() -> Self {
        IgmpConfig {
            version: IgmpVersion::V3,
            robustness: 2,
            query_interval: Duration::from_secs(125),
            query_response_interval: Duration::from_secs(10),
            startup_query_interval: None,
            startup_query_count: None,
            last_member_query_interval: Duration::from_secs(1),
            last_member_query_count: None,
            max_groups: None,
        }
    }
}

/// Why an [`IgmpConfig`] was rejected; each names the field.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("igmp robustness must be at least 1 (RFC 3376 §8.1), got 0")]
    ZeroRobustness,
    #[error("igmp {field} must be greater than zero")]
    ZeroInterval { field: &'static str },
    #[error("igmp {field} must be at least 1, got 0")]
    ZeroCount { field: &'static str },
    #[error(
        "igmp query_response_interval ({response:?}) must be shorter than query_interval \
         ({interval:?}) (RFC 3376 §8.3)"
    )]
    ResponseNotShorterThanInterval { response: Duration, interval: Duration },
    #[error("igmp {field} ({value:?}) exceeds what a {version:?} query can carry ({max:?})")]
    NotEncodable { field: &'static str, value: Duration, max: Duration, version: IgmpVersion },
}

/// Largest Max Resp Time per version: v2 carries tenths in 8 bits, v3 the §4.1.1 float.
fn max_resp_limit(version: IgmpVersion) -> Duration {
    match version {
        // v1 queries carry no Max Resp Time; hosts use 10 s whatever we configure.
        IgmpVersion::V1 => Duration::MAX,
        IgmpVersion::V2 => Duration::from_millis(25_500),
        IgmpVersion::V3 => Duration::from_millis(31_744 * 100),
    }
}

impl IgmpConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.robustness == 0 {
            return Err(ConfigError::ZeroRobustness);
        }
        for (field, value) in [
            ("query_interval", Some(self.query_interval)),
            ("query_response_interval", Some(self.query_response_interval)),
            ("startup_query_interval", self.startup_query_interval),
            ("last_member_query_interval", Some(self.last_member_query_interval)),
        ] {
            if value.is_some_and(|v| v.is_zero()) {
                return Err(ConfigError::ZeroInterval { field });
            }
        }
        for (field, value) in [
            ("startup_query_count", self.startup_query_count),
            ("last_member_query_count", self.last_member_query_count),
        ] {
            if value == Some(0) {
                return Err(ConfigError::ZeroCount { field });
            }
        }
        if self.query_response_interval >= self.query_interval {
            return Err(ConfigError::ResponseNotShorterThanInterval {
                response: self.query_response_interval,
                interval: self.query_interval,
            });
        }
        let max = max_resp_limit(self.version);
        for (field, value) in [
            ("query_response_interval", self.query_response_interval),
            ("last_member_query_interval", self.last_member_query_interval),
        ] {
            // The wire unit is 100 ms; anything finer would be silently truncated to zero.
            if value > max || value < Duration::from_millis(100) {
                return Err(ConfigError::NotEncodable { field, value, max, version: self.version });
            }
        }
        Ok(())
    }
}

/// The intervals in force on an interface right now: from the configuration, except that a
/// non-querier adopts the querier's Robustness Variable and Query Interval (§4.1.6, §4.1.7).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Timing {
    pub robustness: u8,
    pub query_interval: Duration,
    pub query_response_interval: Duration,
    pub last_member_query_interval: Duration,
    pub last_member_query_count: u8,
}

impl Timing {
    pub fn new(config: &IgmpConfig, robustness: u8, query_interval: Duration) -> Timing {
        Timing {
            robustness,
            query_interval,
            query_response_interval: config.query_response_interval,
            last_member_query_interval: config.last_member_query_interval,
            last_member_query_count: config.last_member_query_count.unwrap_or(robustness),
        }
    }

    /// §8.4: RV * QI + QRI.
    pub fn group_membership_interval(&self) -> Duration {
        self.query_interval * u32::from(self.robustness) + self.query_response_interval
    }

    /// §8.5: RV * QI + QRI / 2.
    pub fn other_querier_present_interval(&self) -> Duration {
        self.query_interval * u32::from(self.robustness) + self.query_response_interval / 2
    }

    /// §8.13: RV * QI + QRI (the same value as the GMI, named separately in the RFC).
    pub fn older_host_present_interval(&self) -> Duration {
        self.group_membership_interval()
    }

    /// §8.11: LMQI * LMQC.
    pub fn last_member_query_time(&self) -> Duration {
        self.last_member_query_interval * u32::from(self.last_member_query_count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_give_the_rfc_intervals() {
        let config = IgmpConfig::default();
        config.validate().unwrap();
        let t = Timing::new(&config, config.robustness, config.query_interval);
        assert_eq!(t.group_membership_interval(), Duration::from_secs(260));
        assert_eq!(t.other_querier_present_interval(), Duration::from_secs(255));
        assert_eq!(t.older_host_present_interval(), Duration::from_secs(260));
        assert_eq!(t.last_member_query_time(), Duration::from_secs(2));
    }

    #[test]
    fn bad_configs_name_the_field() {
        let bad = IgmpConfig { robustness: 0, ..IgmpConfig::default() };
        assert_eq!(bad.validate(), Err(ConfigError::ZeroRobustness));
        let bad = IgmpConfig {
            query_response_interval: Duration::from_secs(125),
            ..IgmpConfig::default()
        };
        assert!(matches!(bad.validate(), Err(ConfigError::ResponseNotShorterThanInterval { .. })));
        let bad = IgmpConfig { last_member_query_count: Some(0), ..IgmpConfig::default() };
        assert_eq!(
            bad.validate(),
            Err(ConfigError::ZeroCount { field: "last_member_query_count" })
        );
        let bad = IgmpConfig {
            version: IgmpVersion::V2,
            query_response_interval: Duration::from_secs(30),
            ..IgmpConfig::default()
        };
        let err = bad.validate().unwrap_err();
        assert!(err.to_string().contains("query_response_interval"), "{err}");
        let bad =
            IgmpConfig { startup_query_interval: Some(Duration::ZERO), ..IgmpConfig::default() };
        assert_eq!(
            bad.validate(),
            Err(ConfigError::ZeroInterval { field: "startup_query_interval" })
        );
    }

    #[test]
    fn serde_uses_millis_and_defaults() {
        let config: IgmpConfig =
            serde_json::from_str(r#"{"robustness":3,"query_interval_ms":60000}"#).unwrap();
        assert_eq!(config.robustness, 3);
        assert_eq!(config.query_interval, Duration::from_secs(60));
        assert_eq!(config.last_member_query_interval, Duration::from_secs(1));
        assert!(serde_json::from_str::<IgmpConfig>(r#"{"robustnes":3}"#).is_err());
    }
}
