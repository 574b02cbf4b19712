//! HMAC-SHA256 authentication of link-state messages over
//! [`wire::linkstate::LsPacket::authenticated_bytes`] (header and body, checksum included), with
//! the full 32-byte tag, and a per-(interface, sender) replay guard.
//!
//! Invariants: with a key configured, a message is accepted only if it is authenticated with
//! that key id or one of the extra accepted ids (a rotation under way: old and new key are both
//! accepted while every router is moved to send with the new one), its tag verifies (constant-time comparison by `hmac`), and its auth sequence is
//! strictly above the last one accepted from the same router on the same interface. The replay
//! state moves only after the tag verified, so a forged message cannot lock a sender out.
//! Without a key, authenticated messages are refused too (a configuration mismatch).

use std::collections::BTreeMap;
use std::fmt;

use dataplane_api::IfIndex;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use wire::linkstate::{AuthType, LsPacket, HMAC_SHA256_LEN};

type HmacSha256 = Hmac<Sha256>;

/// The shared key of the routing domain. `Debug` does not print the secret.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthKey {
    pub key_id: u8,
    pub secret: String,
}

impl fmt::Debug for AuthKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthKey")
            .field("key_id", &self.key_id)
            .field("secret", &format_args!("<{} bytes>", self.secret.len()))
            .finish()
    }
}

/// Why a message failed authentication.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AuthFailure {
    /// We require authentication and the message has none (or the reverse).
    Missing,
    UnknownKey,
    BadTag,
    Replay,
}

/// The tag of `input` under `secret`.
pub fn compute_tag(secret: &[u8], input: &[u8]) -> [u8; HMAC_SHA256_LEN] {
    let mut tag = [0u8; HMAC_SHA256_LEN];
    // HMAC takes keys of any length, so this cannot fail.
    if let Ok(mut mac) = HmacSha256::new_from_slice(secret) {
        mac.update(input);
        tag.copy_from_slice(&mac.finalize().into_bytes());
    }
    tag
}

/// Checks a packet whose lengths were validated against the configured key.
pub fn verify(
    key: Option<&AuthKey>,
    accept: &[AuthKey],
    last_seen: &mut BTreeMap<(IfIndex, u32), u64>,
    ifindex: IfIndex,
    packet: &LsPacket<&[u8]>,
) -> Result<(), AuthFailure> {
    let authenticated = packet.auth_type() == AuthType::HmacSha256;
    let Some(key) = key else {
        return if authenticated { Err(AuthFailure::Missing) } else { Ok(()) };
    };
    if !authenticated {
        return Err(AuthFailure::Missing);
    }
    let Some(key) = std::iter::once(key).chain(accept).find(|k| k.key_id == packet.key_id()) else {
        return Err(AuthFailure::UnknownKey);
    };
    let Ok(mut mac) = HmacSha256::new_from_slice(key.secret.as_bytes()) else {
        return Err(AuthFailure::BadTag);
    };
    mac.update(packet.authenticated_bytes());
    mac.verify_slice(packet.auth_tag()).map_err(|_| AuthFailure::BadTag)?;
    let sender = (ifindex, packet.router_id());
    let sequence = packet.auth_sequence();
    if last_seen.get(&sender).is_some_and(|&last| sequence <= last) {
        return Err(AuthFailure::Replay);
    }
    last_seen.insert(sender, sequence);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use wire::linkstate::{AuthInfo, LsRepr, Message};

    fn key(id: u8, secret: &str) -> AuthKey {
        AuthKey { key_id: id, secret: secret.into() }
    }

    /// A hello from router 9 signed with `k`, sequence `seq`.
    fn signed(k: &AuthKey, seq: u64) -> Vec<u8> {
        let repr = LsRepr {
            router_id: 9,
            auth: Some(AuthInfo { key_id: k.key_id, sequence: seq }),
            message: Message::Hello {
                hello_interval_ms: 100,
                dead_interval_ms: 400,
                neighbors: vec![],
            },
        };
        let mut bytes = repr.to_bytes();
        let mut p = LsPacket::new_unchecked(&mut bytes[..]);
        let tag = compute_tag(k.secret.as_bytes(), p.authenticated_bytes());
        p.auth_tag_mut().copy_from_slice(&tag);
        bytes
    }

    fn check(
        send: &AuthKey,
        accept: &[AuthKey],
        seen: &mut BTreeMap<(IfIndex, u32), u64>,
        bytes: &[u8],
    ) -> Result<(), AuthFailure> {
        verify(Some(send), accept, seen, IfIndex(1), &LsPacket::new_checked(bytes).unwrap())
    }

    // Rotation: while key 1 is accepted next to the new key 2 both verify; once it is removed a
    // message signed with it is an unknown key, and one signed with a known id but the wrong
    // secret a bad tag. The replay guard spans keys (the sequence is per sender, not per key).
    #[test]
    fn rotation_accepts_listed_keys_only() {
        let (old, new) = (key(1, "old secret"), key(2, "new secret"));
        let mut seen = BTreeMap::new();
        assert_eq!(check(&new, std::slice::from_ref(&old), &mut seen, &signed(&old, 10)), Ok(()));
        assert_eq!(check(&new, std::slice::from_ref(&old), &mut seen, &signed(&new, 11)), Ok(()));
        assert_eq!(
            check(&new, std::slice::from_ref(&old), &mut seen, &signed(&old, 11)),
            Err(AuthFailure::Replay)
        );
        assert_eq!(check(&new, &[], &mut seen, &signed(&old, 12)), Err(AuthFailure::UnknownKey));
        assert_eq!(
            check(&new, &[], &mut seen, &signed(&key(2, "forged"), 13)),
            Err(AuthFailure::BadTag)
        );
        assert_eq!(check(&new, &[], &mut seen, &signed(&new, 12)), Ok(()));
    }
}
