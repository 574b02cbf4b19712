//! Authentication of overlay control messages: HMAC-SHA256 truncated to 128 bits over
//! [`wire::overlay_control::ControlPacket::auth_input`], and a per-sender replay guard.
//!
//! Invariants: a message is accepted only if its key id names a configured key, its tag verifies
//! (compared in constant time by `hmac`), and its auth sequence number is strictly above the last
//! one accepted from the same sender. The replay state is updated only after the tag verified, so
//! a forged message cannot move a sender's window.

use std::collections::BTreeMap;
use std::fmt;
use std::net::Ipv4Addr;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use wire::overlay_control::{ControlPacket, TAG_LEN};

type HmacSha256 = Hmac<Sha256>;

/// A group key. `Debug` does not print the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct GroupKey {
    pub id: u8,
    pub secret: Vec<u8>,
}

impl fmt::Debug for GroupKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GroupKey")
            .field("id", &self.id)
            .field("secret", &format_args!("<{} bytes>", self.secret.len()))
            .finish()
    }
}

/// Why an authenticated message was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthFailure {
    UnknownKey,
    BadTag,
    Replay,
}

/// The tag of `input` under `secret`.
pub fn compute_tag(secret: &[u8], input: &[u8]) -> [u8; TAG_LEN] {
    let mut tag = [0u8; TAG_LEN];
    // HMAC accepts keys of any length, so this cannot fail; an all-zero tag would simply not
    // verify anywhere if it ever did.
    if let Ok(mut mac) = HmacSha256::new_from_slice(secret) {
        mac.update(input);
        tag.copy_from_slice(&mac.finalize().into_bytes()[..TAG_LEN]);
    }
    tag
}

/// Checks key, tag and sequence of a parsed packet from `sender`; on success records the
/// sequence so the same message is refused next time.
pub fn verify(
    keys: &[GroupKey],
    last_seen: &mut BTreeMap<Ipv4Addr, u32>,
    packet: &ControlPacket<&[u8]>,
) -> Result<(), AuthFailure> {
    let key = keys.iter().find(|k| k.id == packet.key_id()).ok_or(AuthFailure::UnknownKey)?;
    let Ok(mut mac) = HmacSha256::new_from_slice(&key.secret) else {
        return Err(AuthFailure::BadTag);
    };
    mac.update(packet.auth_input());
    mac.verify_truncated_left(packet.auth_tag()).map_err(|_| AuthFailure::BadTag)?;
    let sender = packet.sender();
    let sequence = packet.auth_sequence();
    if last_seen.get(&sender).is_some_and(|&last| sequence <= last) {
        return Err(AuthFailure::Replay);
    }
    last_seen.insert(sender, sequence);
    Ok(())
}
