//! The Internet checksum (RFC 1071) and its incremental update (RFC 1624).
//!
//! Sums here are *folded but not inverted*: [`data`], [`combine`] and [`pseudo_header`] return the
//! 16-bit one's-complement sum, and the caller stores `!sum` in the header. A region whose stored
//! checksum is correct sums to `0xffff` (one's-complement "negative zero").
//!
//! [`update`] is what the data plane uses when it rewrites one 16-bit word of a header (the
//! TTL/protocol word on every forwarded packet): it avoids touching the rest of the header and
//! gives the same bytes as a full recomputation (RFC 1624 eqn. 3 never produces `-0` = `0xffff`
//! from a header that is not all zeros, unlike eqn. 2 of RFC 1141).
//!
//! All functions are allocation-free and never panic.
//!
//! [RFC 1071]: https://www.rfc-editor.org/rfc/rfc1071
//! [RFC 1624]: https://www.rfc-editor.org/rfc/rfc1624

use core::net::Ipv4Addr;

/// Folds a 32-bit accumulator into 16 bits with end-around carry.
#[inline]
const fn fold(mut sum: u32) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

/// One's-complement sum of `bytes` taken as big-endian 16-bit words; an odd trailing byte is
/// padded with a zero byte (RFC 1071 §4.1). Folded, not inverted.
#[inline]
pub fn data(bytes: &[u8]) -> u16 {
    // A u64 accumulator cannot overflow for any slice that fits in memory on 64-bit targets
    // (2^48 words of at most 0xffff each), so the fold happens once at the end.
    let mut sum: u64 = 0;
    let mut chunks = bytes.chunks_exact(2);
    for pair in &mut chunks {
        sum += u64::from(u16::from_be_bytes([pair[0], pair[1]]));
    }
    if let [last] = chunks.remainder() {
        sum += u64::from(u16::from_be_bytes([*last, 0]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

/// One's-complement sum of already-folded partial sums.
#[inline]
pub fn combine(sums: &[u16]) -> u16 {
    let mut sum: u32 = 0;
    for &s in sums {
        // Fold on the way so the accumulator never overflows, whatever the slice length.
        sum = u32::from(fold(sum + u32::from(s)));
    }
    fold(sum)
}

/// One's-complement sum of the IPv4 pseudo header used by UDP/TCP checksums (RFC 768):
/// source, destination, zero + protocol, and the upper-layer length.
#[inline]
pub fn pseudo_header(src: Ipv4Addr, dst: Ipv4Addr, protocol: u8, length: u16) -> u16 {
    let s = src.octets();
    let d = dst.octets();
    let sum = u32::from(u16::from_be_bytes([s[0], s[1]]))
        + u32::from(u16::from_be_bytes([s[2], s[3]]))
        + u32::from(u16::from_be_bytes([d[0], d[1]]))
        + u32::from(u16::from_be_bytes([d[2], d[3]]))
        + u32::from(protocol)
        + u32::from(length);
    fold(sum)
}

/// Incrementally updates a *stored* (inverted) header checksum after one 16-bit word of the
/// covered data changes from `old` to `new`: `HC' = ~(~HC + ~m + m')` (RFC 1624 eqn. 3).
///
/// The result equals `!data(header_with_new_word)` computed from scratch.
#[inline]
pub fn update(checksum: u16, old: u16, new: u16) -> u16 {
    let sum = u32::from(!checksum) + u32::from(!old) + u32::from(new);
    !fold(sum)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn rfc1071_example() {
        // RFC 1071 §3: the sum of 00 01 f2 03 f4 f5 f6 f7 is ddf2.
        assert_eq!(data(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]), 0xddf2);
    }

    #[test]
    fn odd_length_pads_with_zero() {
        assert_eq!(data(&[0x12, 0x34, 0x56]), 0x1234 + 0x5600);
        assert_eq!(data(&[]), 0);
    }

    #[test]
    fn ipv4_header_from_capture_verifies() {
        // IGMP query header captured from mrouted (TOS 0xc0, Router Alert option).
        let hdr = [
            0x46, 0xc0, 0x00, 0x24, 0x55, 0x02, 0x00, 0x00, 0x01, 0x02, 0xd8, 0xc1, 0x0a, 0x4d,
            0x0c, 0x02, 0xe0, 0x00, 0x00, 0x01, 0x94, 0x04, 0x00, 0x00,
        ];
        assert_eq!(data(&hdr), 0xffff);
    }

    #[test]
    fn udp_pseudo_header_from_capture_verifies() {
        // UDP datagram 10.77.1.10:36729 -> 239.1.2.3:5000 captured on the DVMRP link.
        let udp = [
            0x8f, 0x79, 0x13, 0x88, 0x00, 0x11, 0x72, 0x4c, 0x69, 0x6f, 0x70, 0x2d, 0x73, 0x65,
            0x71, 0x20, 0x30,
        ];
        let ph = pseudo_header(Ipv4Addr::new(10, 77, 1, 10), Ipv4Addr::new(239, 1, 2, 3), 17, 17);
        assert_eq!(combine(&[ph, data(&udp)]), 0xffff);
    }

    #[test]
    fn update_rfc1624_example_yields_positive_zero() {
        // RFC 1624 §4: the other fields sum to 0xcd7a, m = 0x5555 so HC = 0xdd2f; m changes to
        // 0x3285 and the sum becomes 0xffff, so the correct HC' is 0x0000. Eqn. 2 (RFC 1141)
        // gives 0xffff here; eqn. 3 must give 0x0000.
        assert_eq!(!combine(&[0xcd7a, 0x5555]), 0xdd2f);
        assert_eq!(update(0xdd2f, 0x5555, 0x3285), 0x0000);
        assert_eq!(update(0xdd2f, 0x5555, 0x3285), !combine(&[0xcd7a, 0x3285]));
    }

    #[test]
    fn update_with_stored_zero_checksum() {
        // A stored checksum of 0x0000 (data sums to 0xffff) stays 0x0000 when nothing changes,
        // and moves like a recomputation otherwise.
        assert_eq!(update(0x0000, 0xffff, 0xffff), 0x0000);
        assert_eq!(update(0x0000, 0xffff, 0x0001), !combine(&[0x0001]));
        assert_eq!(update(0x0000, 0x8000, 0x7fff), !combine(&[0x7fff, 0x7fff]));
    }

    proptest! {
        #[test]
        fn update_equals_recompute(
            mut words in proptest::collection::vec(any::<u16>(), 1..32),
            idx in any::<prop::sample::Index>(),
            new in any::<u16>(),
        ) {
            let i = idx.index(words.len());
            let bytes_of = |w: &[u16]| w.iter().flat_map(|x| x.to_be_bytes()).collect::<Vec<u8>>();
            let hc = !data(&bytes_of(&words));
            let old = words[i];
            words[i] = new;
            let full = !data(&bytes_of(&words));
            // One's-complement has two zeros; RFC 1624 eqn. 3 can only differ from the full
            // recomputation by representing zero as 0xffff vs 0x0000, and only when every word
            // is zero, which a real IPv4 header (version 4) never is.
            if words.iter().any(|&w| w != 0) {
                prop_assert_eq!(update(hc, old, new), full);
            } else {
                prop_assert!(update(hc, old, new) == full || update(hc, old, new) == !full);
            }
        }

        #[test]
        fn combine_matches_concatenation(a in proptest::collection::vec(any::<u8>(), 0..64),
                                         b in proptest::collection::vec(any::<u8>(), 0..64)) {
            // Splitting at an even offset keeps word alignment, so partial sums combine.
            let mut a = a;
            if a.len() % 2 == 1 { a.push(0); }
            let mut whole = a.clone();
            whole.extend_from_slice(&b);
            prop_assert_eq!(combine(&[data(&a), data(&b)]), data(&whole));
        }

        #[test]
        fn filled_checksum_verifies(mut bytes in proptest::collection::vec(any::<u8>(), 2..64)) {
            if bytes.len() % 2 == 1 { bytes.push(0); }
            bytes[0] = 0;
            bytes[1] = 0;
            let c = !data(&bytes);
            bytes[..2].copy_from_slice(&c.to_be_bytes());
            prop_assert_eq!(data(&bytes), 0xffff);
        }
    }
}
