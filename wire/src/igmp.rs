//! IGMP v1, v2 and v3 messages ([RFC 1112] appendix I, [RFC 2236], [RFC 3376] §4).
//!
//! [`IgmpPacket`] is a view over one IGMP message: exactly the IPv4 payload, so the checksum
//! covers the whole buffer. [`GroupRecordPacket`] is a view over one IGMPv3 group record inside a
//! report. [`IgmpRepr`] is the validated message the control plane works with.
//!
//! DVMRP shares IGMP's type space (type 0x13) but has its own header; callers read
//! [`IgmpPacket::msg_type`] first and hand [`MessageType::Dvmrp`] to [`crate::dvmrp`].
//! [`IgmpRepr::parse`] answers [`Error::Unsupported`] for it and for unknown types.
//!
//! # Invariants
//!
//! - After [`IgmpPacket::check_len`] succeeds, the fixed 8-byte header is readable and, for a
//!   query of 12 bytes or more, so is every source its Number of Sources announces. Group records
//!   of a v3 report are checked one by one as [`IgmpPacket::group_records`] walks them, so a
//!   lying count or length yields an error, never a panic.
//! - The query version follows [RFC 3376] §7.1: 8 bytes with Max Resp Code 0 is IGMPv1, 8 bytes
//!   otherwise IGMPv2, 12 bytes or more IGMPv3; 9 to 11 bytes is malformed. Hence a [`Query`]
//!   with version V2 must carry a non-zero `max_resp_code` to survive a round trip.
//! - Bytes after the last field a message defines (allowed by RFC 2236 §2 and RFC 3376 §4.1.10)
//!   count for the checksum and are otherwise ignored, so `emit` does not reproduce them.
//!
//! # Example
//!
//! ```
//! use core::net::Ipv4Addr;
//! use wire::igmp::{GroupRecord, IgmpPacket, IgmpRepr, MessageType, RecordType};
//!
//! // A Linux host joining 239.1.2.4 (TO_EX {}), as captured.
//! let bytes = [0x22, 0, 0xe8, 0xf8, 0, 0, 0, 1, 4, 0, 0, 0, 239, 1, 2, 4];
//! let packet = IgmpPacket::new_checked(&bytes[..])?;
//! assert_eq!(packet.msg_type(), MessageType::MembershipReportV3); // DVMRP would go elsewhere
//! let repr = IgmpRepr::parse(&packet)?;
//! let join = GroupRecord {
//!     record_type: RecordType::ChangeToExclude,
//!     group: Ipv4Addr::new(239, 1, 2, 4),
//!     sources: vec![],
//!     aux_data: vec![],
//! };
//! assert_eq!(repr, IgmpRepr::ReportV3 { records: vec![join] });
//!
//! let mut out = vec![0; repr.buffer_len()];
//! repr.emit(&mut IgmpPacket::new_unchecked(&mut out));
//! assert_eq!(out, bytes);
//! # Ok::<(), wire::Error>(())
//! ```
//!
//! # Fuzzing
//!
//! Under `cfg(fuzzing)` [`IgmpPacket::verify_checksum`] always succeeds.
//!
//! [RFC 1112]: https://www.rfc-editor.org/rfc/rfc1112
//! [RFC 2236]: https://www.rfc-editor.org/rfc/rfc2236
//! [RFC 3376]: https://www.rfc-editor.org/rfc/rfc3376

use core::fmt;
use core::net::Ipv4Addr;
use core::time::Duration;

use crate::{checksum, enum_with_unknown, Error, Result};

/// All hosts on this subnet; general queries go here.
pub const ALL_SYSTEMS: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 1);
/// All routers on this subnet; IGMPv2 leaves go here.
pub const ALL_ROUTERS: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 2);
/// All IGMPv3-capable routers; IGMPv3 reports go here.
pub const ALL_IGMPV3_ROUTERS: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 22);

enum_with_unknown! {
    /// The IGMP Type field (byte 0).
    pub enum MessageType(u8) {
        /// Membership query, every version (the length tells them apart).
        MembershipQuery = 0x11,
        /// IGMPv1 membership report.
        MembershipReportV1 = 0x12,
        /// DVMRP, parsed by [`crate::dvmrp`].
        Dvmrp = 0x13,
        /// IGMPv2 membership report.
        MembershipReportV2 = 0x16,
        /// IGMPv2 leave group.
        LeaveGroup = 0x17,
        /// IGMPv3 membership report.
        MembershipReportV3 = 0x22,
    }
}

enum_with_unknown! {
    /// The Record Type of an IGMPv3 group record ([RFC 3376] §4.2.12).
    ///
    /// [RFC 3376]: https://www.rfc-editor.org/rfc/rfc3376#section-4.2.12
    pub enum RecordType(u8) {
        /// Current-state record: filter mode INCLUDE.
        ModeIsInclude = 1,
        /// Current-state record: filter mode EXCLUDE.
        ModeIsExclude = 2,
        /// Filter-mode change to INCLUDE (`TO_IN`; `TO_IN {}` is a leave).
        ChangeToInclude = 3,
        /// Filter-mode change to EXCLUDE (`TO_EX`; `TO_EX {}` is a join).
        ChangeToExclude = 4,
        /// Source-list change: allow these sources.
        AllowNewSources = 5,
        /// Source-list change: block these sources.
        BlockOldSources = 6,
    }
}

impl fmt::Display for MessageType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MessageType::MembershipQuery => f.write_str("membership query"),
            MessageType::MembershipReportV1 => f.write_str("v1 membership report"),
            MessageType::Dvmrp => f.write_str("DVMRP"),
            MessageType::MembershipReportV2 => f.write_str("v2 membership report"),
            MessageType::LeaveGroup => f.write_str("leave group"),
            MessageType::MembershipReportV3 => f.write_str("v3 membership report"),
            MessageType::Unknown(t) => write!(f, "unknown type {t:#04x}"),
        }
    }
}

mod field {
    use crate::Field;

    pub const TYPE: usize = 0;
    pub const MAX_RESP_CODE: usize = 1;
    pub const CHECKSUM: Field = 2..4;
    pub const GROUP_ADDRESS: Field = 4..8;
    /// Length of the header every IGMP message starts with.
    pub const HEADER_LEN: usize = 8;

    // IGMPv3 query, after the common header.
    /// Resv(4 bits) | S(1 bit) | QRV(3 bits).
    pub const QUERY_FLAGS: usize = 8;
    pub const QQIC: usize = 9;
    pub const QUERY_NUM_SOURCES: Field = 10..12;
    pub const QUERY_SOURCES: usize = 12;
    pub const FLAG_S: u8 = 0x08;
    pub const QRV_MASK: u8 = 0x07;

    // IGMPv3 report: reserved byte 1 and bytes 4..6 replace the v2 Max Resp Time and group.
    pub const REPORT_RESERVED: Field = 4..6;
    pub const REPORT_NUM_RECORDS: Field = 6..8;
    pub const REPORT_RECORDS: usize = 8;

    // One IGMPv3 group record, offsets from its start.
    pub const RECORD_TYPE: usize = 0;
    pub const RECORD_AUX_DATA_LEN: usize = 1;
    pub const RECORD_NUM_SOURCES: Field = 2..4;
    pub const RECORD_GROUP: Field = 4..8;
    pub const RECORD_SOURCES: usize = 8;
}

/// Length of the fixed IGMPv3 query (without sources); shorter non-8-byte queries are malformed.
const V3_QUERY_MIN_LEN: usize = field::QUERY_SOURCES;

fn read_addr(bytes: &[u8], at: usize) -> Ipv4Addr {
    Ipv4Addr::new(bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3])
}

fn read_u16(bytes: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([bytes[at], bytes[at + 1]])
}

// ===== IgmpPacket =====

/// A view over one IGMP message (the whole IPv4 payload).
///
/// IGMPv1/v2 ([RFC 2236] §2; v1 has 4 unused bits of version and 8 unused bits instead of the
/// Max Resp Time):
///
/// ```text
///  0                   1                   2                   3
///  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |      Type     | Max Resp Time |           Checksum            |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                         Group Address                         |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// ```
///
/// IGMPv3 query ([RFC 3376] §4.1):
///
/// ```text
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |  Type = 0x11  | Max Resp Code |           Checksum            |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                         Group Address                         |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// | Resv  |S| QRV |     QQIC      |     Number of Sources (N)     |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                       Source Address [1..N]                   |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// ```
///
/// IGMPv3 report ([RFC 3376] §4.2):
///
/// ```text
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |  Type = 0x22  |    Reserved   |           Checksum            |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |           Reserved            |  Number of Group Records (M)  |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                      Group Record [1..M]                      |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// ```
///
/// [RFC 2236]: https://www.rfc-editor.org/rfc/rfc2236#section-2
/// [RFC 3376]: https://www.rfc-editor.org/rfc/rfc3376#section-4
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IgmpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> IgmpPacket<T> {
    /// Wraps a buffer without checking it; for emission into a buffer the caller sized.
    pub const fn new_unchecked(buffer: T) -> Self {
        IgmpPacket { buffer }
    }

    /// Wraps untrusted bytes, checking that every fixed field is readable.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// Checks that the 8-byte header is present and that a v3 query holds all its sources.
    ///
    /// Returns [`Error::Truncated`] otherwise. Group records are checked while walking them.
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < field::HEADER_LEN {
            return Err(Error::Truncated);
        }
        if self.msg_type() == MessageType::MembershipQuery && len >= V3_QUERY_MIN_LEN {
            let needed = V3_QUERY_MIN_LEN + 4 * usize::from(self.query_num_sources());
            if len < needed {
                return Err(Error::Truncated);
            }
        }
        Ok(())
    }

    /// Returns the underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Length of the message in bytes.
    pub fn len(&self) -> usize {
        self.buffer.as_ref().len()
    }

    /// Whether the buffer is empty (never true once `check_len` passed).
    pub fn is_empty(&self) -> bool {
        self.buffer.as_ref().is_empty()
    }

    /// The Type field.
    pub fn msg_type(&self) -> MessageType {
        MessageType::from(self.buffer.as_ref()[field::TYPE])
    }

    /// The Max Resp Code (queries), Max Resp Time (v2) or unused/reserved byte (reports).
    pub fn max_resp_code(&self) -> u8 {
        self.buffer.as_ref()[field::MAX_RESP_CODE]
    }

    /// The stored Checksum field.
    pub fn checksum(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::CHECKSUM.start)
    }

    /// The Group Address (queries, v1/v2 reports, leaves; reserved + count in v3 reports).
    pub fn group_addr(&self) -> Ipv4Addr {
        read_addr(self.buffer.as_ref(), field::GROUP_ADDRESS.start)
    }

    /// Whether the checksum over the whole message verifies. Always true under `cfg(fuzzing)`.
    pub fn verify_checksum(&self) -> bool {
        if cfg!(fuzzing) {
            return true;
        }
        checksum::data(self.buffer.as_ref()) == 0xffff
    }

    /// Byte `at` of the message, or 0 when the message is shorter (a v1/v2 query has no v3
    /// fields; reading them as zero matches what [`IgmpRepr::parse`] reports for it).
    fn byte_or_zero(&self, at: usize) -> u8 {
        self.buffer.as_ref().get(at).copied().unwrap_or(0)
    }

    /// The v3 query S flag (Suppress Router-Side Processing); false below 12 bytes.
    pub fn query_suppress_flag(&self) -> bool {
        self.byte_or_zero(field::QUERY_FLAGS) & field::FLAG_S != 0
    }

    /// The v3 query QRV (Querier's Robustness Variable); 0 below 12 bytes.
    pub fn query_qrv(&self) -> u8 {
        self.byte_or_zero(field::QUERY_FLAGS) & field::QRV_MASK
    }

    /// The v3 query QQIC (Querier's Query Interval Code); 0 below 12 bytes.
    pub fn query_qqic(&self) -> u8 {
        self.byte_or_zero(field::QQIC)
    }

    /// The v3 query Number of Sources; 0 below 12 bytes.
    pub fn query_num_sources(&self) -> u16 {
        u16::from_be_bytes([
            self.byte_or_zero(field::QUERY_NUM_SOURCES.start),
            self.byte_or_zero(field::QUERY_NUM_SOURCES.start + 1),
        ])
    }

    /// The `index`th source of a v3 query, or `None` past the end of the buffer.
    pub fn query_source(&self, index: usize) -> Option<Ipv4Addr> {
        let at = field::QUERY_SOURCES.checked_add(index.checked_mul(4)?)?;
        let bytes = self.buffer.as_ref();
        (at.checked_add(4)? <= bytes.len()).then(|| read_addr(bytes, at))
    }

    /// The v3 report Number of Group Records.
    pub fn report_num_records(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::REPORT_NUM_RECORDS.start)
    }

    /// Walks the group records of a v3 report; each item is a checked record view, or the error
    /// that stops the walk (a record running past the end of the message).
    pub fn group_records(&self) -> GroupRecords<'_> {
        let bytes = self.buffer.as_ref();
        GroupRecords {
            rest: bytes.get(field::REPORT_RECORDS..).unwrap_or(&[]),
            remaining: self.report_num_records(),
        }
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> IgmpPacket<T> {
    /// Sets the Type field.
    pub fn set_msg_type(&mut self, value: MessageType) {
        self.buffer.as_mut()[field::TYPE] = value.into();
    }

    /// Sets the Max Resp Code byte.
    pub fn set_max_resp_code(&mut self, value: u8) {
        self.buffer.as_mut()[field::MAX_RESP_CODE] = value;
    }

    /// Sets the stored Checksum field.
    pub fn set_checksum(&mut self, value: u16) {
        self.buffer.as_mut()[field::CHECKSUM].copy_from_slice(&value.to_be_bytes());
    }

    /// Sets the Group Address.
    pub fn set_group_addr(&mut self, addr: Ipv4Addr) {
        self.buffer.as_mut()[field::GROUP_ADDRESS].copy_from_slice(&addr.octets());
    }

    /// Sets the v3 query Resv/S/QRV byte; reserved bits are written as zero.
    pub fn set_query_flags(&mut self, suppress: bool, qrv: u8) {
        let s = if suppress { field::FLAG_S } else { 0 };
        self.buffer.as_mut()[field::QUERY_FLAGS] = s | (qrv & field::QRV_MASK);
    }

    /// Sets the v3 query QQIC.
    pub fn set_query_qqic(&mut self, value: u8) {
        self.buffer.as_mut()[field::QQIC] = value;
    }

    /// Sets the v3 query Number of Sources.
    pub fn set_query_num_sources(&mut self, value: u16) {
        self.buffer.as_mut()[field::QUERY_NUM_SOURCES].copy_from_slice(&value.to_be_bytes());
    }

    /// Sets the `index`th source of a v3 query.
    pub fn set_query_source(&mut self, index: usize, addr: Ipv4Addr) {
        let at = field::QUERY_SOURCES + 4 * index;
        self.buffer.as_mut()[at..at + 4].copy_from_slice(&addr.octets());
    }

    /// Writes the v3 report reserved fields (byte 1 and bytes 4..6) as zero.
    pub fn clear_report_reserved(&mut self) {
        let bytes = self.buffer.as_mut();
        bytes[field::MAX_RESP_CODE] = 0;
        bytes[field::REPORT_RESERVED].fill(0);
    }

    /// Sets the v3 report Number of Group Records.
    pub fn set_report_num_records(&mut self, value: u16) {
        self.buffer.as_mut()[field::REPORT_NUM_RECORDS].copy_from_slice(&value.to_be_bytes());
    }

    /// The bytes after the report header, where group records go.
    pub fn records_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::REPORT_RECORDS..]
    }

    /// Computes and stores the checksum over the whole message.
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let sum = !checksum::data(self.buffer.as_ref());
        self.set_checksum(sum);
    }
}

impl<T: AsRef<[u8]>> AsRef<[u8]> for IgmpPacket<T> {
    fn as_ref(&self) -> &[u8] {
        self.buffer.as_ref()
    }
}

/// Iterator over the group records of a v3 report; see [`IgmpPacket::group_records`].
#[derive(Debug, Clone)]
pub struct GroupRecords<'a> {
    rest: &'a [u8],
    remaining: u16,
}

impl<'a> Iterator for GroupRecords<'a> {
    type Item = Result<GroupRecordPacket<&'a [u8]>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.remaining == 0 {
            return None;
        }
        self.remaining -= 1;
        match GroupRecordPacket::new_checked(self.rest) {
            Ok(record) => {
                let len = record.total_len();
                let (this, rest) = self.rest.split_at(len);
                self.rest = rest;
                Some(Ok(GroupRecordPacket::new_unchecked(this)))
            }
            Err(e) => {
                // Nothing after a broken record can be located, so the walk ends here.
                self.remaining = 0;
                Some(Err(e))
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, Some(usize::from(self.remaining)))
    }
}

// ===== GroupRecordPacket =====

/// A view over one IGMPv3 group record ([RFC 3376] §4.2.4). The buffer may extend past the
/// record; [`GroupRecordPacket::total_len`] says where it ends.
///
/// ```text
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |  Record Type  |  Aux Data Len |     Number of Sources (N)     |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                       Multicast Address                       |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                       Source Address [1..N]                   |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |            Auxiliary Data (Aux Data Len 32-bit words)         |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// ```
///
/// [RFC 3376]: https://www.rfc-editor.org/rfc/rfc3376#section-4.2.4
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupRecordPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> GroupRecordPacket<T> {
    /// Wraps a buffer without checking it; for emission into a buffer the caller sized.
    pub const fn new_unchecked(buffer: T) -> Self {
        GroupRecordPacket { buffer }
    }

    /// Wraps untrusted bytes, checking that the record's sources and aux data fit.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let record = Self::new_unchecked(buffer);
        record.check_len()?;
        Ok(record)
    }

    /// [`Error::Truncated`] unless the 8-byte record header, the N sources and the aux data
    /// all lie inside the buffer.
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < field::RECORD_SOURCES || len < self.total_len() {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    /// Returns the underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The Record Type.
    pub fn record_type(&self) -> RecordType {
        RecordType::from(self.buffer.as_ref()[field::RECORD_TYPE])
    }

    /// Aux Data Len, in 32-bit words.
    pub fn aux_data_len(&self) -> u8 {
        self.buffer.as_ref()[field::RECORD_AUX_DATA_LEN]
    }

    /// Number of Sources.
    pub fn num_sources(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::RECORD_NUM_SOURCES.start)
    }

    /// The Multicast Address the record is about.
    pub fn group_addr(&self) -> Ipv4Addr {
        read_addr(self.buffer.as_ref(), field::RECORD_GROUP.start)
    }

    /// Length of the whole record as its header describes it.
    pub fn total_len(&self) -> usize {
        field::RECORD_SOURCES
            + 4 * usize::from(self.num_sources())
            + 4 * usize::from(self.aux_data_len())
    }

    /// The `index`th source address, or `None` past the announced count.
    pub fn source(&self, index: usize) -> Option<Ipv4Addr> {
        (index < usize::from(self.num_sources()))
            .then(|| read_addr(self.buffer.as_ref(), field::RECORD_SOURCES + 4 * index))
    }

    /// The auxiliary data (a whole number of 32-bit words).
    pub fn aux_data(&self) -> &[u8] {
        let start = field::RECORD_SOURCES + 4 * usize::from(self.num_sources());
        &self.buffer.as_ref()[start..self.total_len()]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> GroupRecordPacket<T> {
    /// Sets the Record Type.
    pub fn set_record_type(&mut self, value: RecordType) {
        self.buffer.as_mut()[field::RECORD_TYPE] = value.into();
    }

    /// Sets Aux Data Len (32-bit words).
    pub fn set_aux_data_len(&mut self, words: u8) {
        self.buffer.as_mut()[field::RECORD_AUX_DATA_LEN] = words;
    }

    /// Sets Number of Sources.
    pub fn set_num_sources(&mut self, value: u16) {
        self.buffer.as_mut()[field::RECORD_NUM_SOURCES].copy_from_slice(&value.to_be_bytes());
    }

    /// Sets the Multicast Address.
    pub fn set_group_addr(&mut self, addr: Ipv4Addr) {
        self.buffer.as_mut()[field::RECORD_GROUP].copy_from_slice(&addr.octets());
    }

    /// Sets the `index`th source address.
    pub fn set_source(&mut self, index: usize, addr: Ipv4Addr) {
        let at = field::RECORD_SOURCES + 4 * index;
        self.buffer.as_mut()[at..at + 4].copy_from_slice(&addr.octets());
    }

    /// The auxiliary data region described by the header, for writing.
    pub fn aux_data_mut(&mut self) -> &mut [u8] {
        let start = field::RECORD_SOURCES + 4 * usize::from(self.num_sources());
        let end = self.total_len();
        &mut self.buffer.as_mut()[start..end]
    }
}

// ===== Max Resp Code / QQIC =====

/// Decodes the RFC 3376 §4.1.1 8-bit float: below 128 the value itself, otherwise
/// `(mant | 0x10) << (exp + 3)` with `1 exp(3) mant(4)`.
fn decode_float(code: u8) -> u32 {
    if code < 0x80 {
        u32::from(code)
    } else {
        let exp = u32::from((code >> 4) & 0x07);
        let mant = u32::from(code & 0x0f);
        (mant | 0x10) << (exp + 3)
    }
}

/// Largest encodable value that does not exceed `value` (saturating at 31744).
fn encode_float(value: u64) -> u8 {
    if value < 0x80 {
        return value as u8;
    }
    for exp in 0..8u8 {
        let mant = value >> (exp + 3);
        if mant < 0x20 {
            // mant >= 0x10 here: the previous exponent left a value of at least 0x20 >> 1.
            return 0x80 | (exp << 4) | (mant as u8 & 0x0f);
        }
    }
    0xff
}

/// Max Resp Time of an IGMPv3 Max Resp Code (also right for IGMPv2 codes below 128).
pub fn decode_max_resp_code(code: u8) -> Duration {
    Duration::from_millis(u64::from(decode_float(code)) * 100)
}

/// Max Resp Code for a response time: rounded down to the nearest representable tenth of a
/// second (so hosts never answer later than asked), saturating at 3174.4 s.
pub fn encode_max_resp_code(time: Duration) -> u8 {
    encode_float(u64::try_from(time.as_millis() / 100).unwrap_or(u64::MAX))
}

/// Querier's Query Interval of a QQIC.
pub fn decode_qqic(code: u8) -> Duration {
    Duration::from_secs(u64::from(decode_float(code)))
}

/// QQIC for a query interval: rounded down to the nearest representable second, saturating
/// at 31744 s.
pub fn encode_qqic(interval: Duration) -> u8 {
    encode_float(interval.as_secs())
}

// ===== Repr =====

/// Which IGMP version a query is (RFC 3376 §7.1 length rules).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QueryVersion {
    /// 8 bytes, Max Resp Code 0.
    V1,
    /// 8 bytes, Max Resp Code non-zero.
    V2,
    /// 12 bytes or more.
    V3,
}

/// A membership query of any version.
///
/// `suppress_router_processing`, `qrv`, `qqic` and `sources` exist on the wire only in v3; they
/// parse as `false`/0/0/empty for v1 and v2 and are not emitted for them. `max_resp_code` is
/// always 0 for v1 and must be non-zero for v2 (else the bytes read back as v1).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Query {
    /// Query version, from the message length and Max Resp Code.
    pub version: QueryVersion,
    /// Max Resp Code as on the wire; see [`Query::max_resp_time`].
    pub max_resp_code: u8,
    /// 0.0.0.0 for a general query, else the group asked about.
    pub group: Ipv4Addr,
    /// v3 S flag: routers must not update timers on hearing this query.
    pub suppress_router_processing: bool,
    /// v3 Querier's Robustness Variable (3 bits; 0 means "above 7").
    pub qrv: u8,
    /// v3 Querier's Query Interval Code; see [`Query::querier_query_interval`].
    pub qqic: u8,
    /// v3 source list of a group-and-source-specific query.
    pub sources: Vec<Ipv4Addr>,
}

impl Query {
    /// Maximum time a host may wait before answering: 10 s for v1 (RFC 2236 §4), Max Resp Time
    /// in tenths for v2, the §4.1.1 float in tenths for v3.
    pub fn max_resp_time(&self) -> Duration {
        match self.version {
            QueryVersion::V1 => Duration::from_secs(10),
            QueryVersion::V2 => Duration::from_millis(u64::from(self.max_resp_code) * 100),
            QueryVersion::V3 => decode_max_resp_code(self.max_resp_code),
        }
    }

    /// The querier's query interval announced in QQIC (zero for v1/v2, which do not carry it).
    pub fn querier_query_interval(&self) -> Duration {
        decode_qqic(self.qqic)
    }

    fn buffer_len(&self) -> usize {
        match self.version {
            QueryVersion::V1 | QueryVersion::V2 => field::HEADER_LEN,
            QueryVersion::V3 => V3_QUERY_MIN_LEN + 4 * self.sources.len(),
        }
    }
}

/// One group record of an IGMPv3 report.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct GroupRecord {
    /// What the record says (current state, filter-mode change, source-list change).
    pub record_type: RecordType,
    /// The multicast group.
    pub group: Ipv4Addr,
    /// The sources the record lists (at most 65535).
    pub sources: Vec<Ipv4Addr>,
    /// Auxiliary data; emitted zero-padded to a whole number of 32-bit words (at most 1020 bytes).
    pub aux_data: Vec<u8>,
}

impl GroupRecord {
    fn aux_words(&self) -> usize {
        self.aux_data.len().div_ceil(4)
    }

    /// Bytes this record takes in a report.
    pub fn buffer_len(&self) -> usize {
        field::RECORD_SOURCES + 4 * self.sources.len() + 4 * self.aux_words()
    }

    fn parse<T: AsRef<[u8]>>(record: &GroupRecordPacket<T>) -> Result<Self> {
        let group = record.group_addr();
        if !group.is_multicast() {
            return Err(Error::Malformed);
        }
        Ok(GroupRecord {
            record_type: record.record_type(),
            group,
            sources: (0..usize::from(record.num_sources()))
                .filter_map(|i| record.source(i))
                .collect(),
            aux_data: record.aux_data().to_vec(),
        })
    }

    fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, record: &mut GroupRecordPacket<T>) {
        record.set_record_type(self.record_type);
        record.set_aux_data_len(self.aux_words() as u8);
        record.set_num_sources(self.sources.len() as u16);
        record.set_group_addr(self.group);
        for (i, source) in self.sources.iter().enumerate() {
            record.set_source(i, *source);
        }
        let aux = record.aux_data_mut();
        aux.fill(0);
        aux[..self.aux_data.len()].copy_from_slice(&self.aux_data);
    }
}

/// A validated IGMP message (everything but DVMRP).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum IgmpRepr {
    /// Membership query, v1/v2/v3.
    Query(Query),
    /// IGMPv1 membership report.
    ReportV1 {
        /// The group joined.
        group: Ipv4Addr,
    },
    /// IGMPv2 membership report.
    ReportV2 {
        /// The group joined.
        group: Ipv4Addr,
    },
    /// IGMPv2 leave group.
    Leave {
        /// The group left.
        group: Ipv4Addr,
    },
    /// IGMPv3 membership report.
    ReportV3 {
        /// The group records, in wire order.
        records: Vec<GroupRecord>,
    },
}

impl IgmpRepr {
    /// Parses and validates a message.
    ///
    /// Errors: [`Error::Truncated`] when a count or length runs past the message,
    /// [`Error::Unsupported`] for DVMRP and unknown types, [`Error::BadChecksum`], and
    /// [`Error::Malformed`] for a 9-11 byte query or a group address that is not multicast (a
    /// query may also use 0.0.0.0).
    pub fn parse<T: AsRef<[u8]> + ?Sized>(packet: &IgmpPacket<&T>) -> Result<IgmpRepr> {
        packet.check_len()?;
        let msg_type = packet.msg_type();
        if matches!(msg_type, MessageType::Dvmrp | MessageType::Unknown(_)) {
            return Err(Error::Unsupported);
        }
        if !packet.verify_checksum() {
            return Err(Error::BadChecksum);
        }
        let multicast = |addr: Ipv4Addr| {
            if addr.is_multicast() {
                Ok(addr)
            } else {
                Err(Error::Malformed)
            }
        };
        match msg_type {
            MessageType::MembershipQuery => Self::parse_query(packet).map(IgmpRepr::Query),
            MessageType::MembershipReportV1 => {
                Ok(IgmpRepr::ReportV1 { group: multicast(packet.group_addr())? })
            }
            MessageType::MembershipReportV2 => {
                Ok(IgmpRepr::ReportV2 { group: multicast(packet.group_addr())? })
            }
            MessageType::LeaveGroup => {
                Ok(IgmpRepr::Leave { group: multicast(packet.group_addr())? })
            }
            MessageType::MembershipReportV3 => {
                let records = packet
                    .group_records()
                    .map(|record| GroupRecord::parse(&record?))
                    .collect::<Result<Vec<_>>>()?;
                Ok(IgmpRepr::ReportV3 { records })
            }
            MessageType::Dvmrp | MessageType::Unknown(_) => Err(Error::Unsupported),
        }
    }

    fn parse_query<T: AsRef<[u8]> + ?Sized>(packet: &IgmpPacket<&T>) -> Result<Query> {
        let group = packet.group_addr();
        if !group.is_unspecified() && !group.is_multicast() {
            return Err(Error::Malformed);
        }
        let code = packet.max_resp_code();
        let len = packet.len();
        if len == field::HEADER_LEN {
            return Ok(Query {
                version: if code == 0 { QueryVersion::V1 } else { QueryVersion::V2 },
                max_resp_code: code,
                group,
                suppress_router_processing: false,
                qrv: 0,
                qqic: 0,
                sources: Vec::new(),
            });
        }
        if len < V3_QUERY_MIN_LEN {
            return Err(Error::Malformed);
        }
        // check_len guaranteed every announced source is inside the buffer.
        let sources = (0..usize::from(packet.query_num_sources()))
            .map(|i| packet.query_source(i).ok_or(Error::Truncated))
            .collect::<Result<Vec<_>>>()?;
        Ok(Query {
            version: QueryVersion::V3,
            max_resp_code: code,
            group,
            suppress_router_processing: packet.query_suppress_flag(),
            qrv: packet.query_qrv(),
            qqic: packet.query_qqic(),
            sources,
        })
    }

    /// The message type this Repr is emitted as.
    pub fn msg_type(&self) -> MessageType {
        match self {
            IgmpRepr::Query(_) => MessageType::MembershipQuery,
            IgmpRepr::ReportV1 { .. } => MessageType::MembershipReportV1,
            IgmpRepr::ReportV2 { .. } => MessageType::MembershipReportV2,
            IgmpRepr::Leave { .. } => MessageType::LeaveGroup,
            IgmpRepr::ReportV3 { .. } => MessageType::MembershipReportV3,
        }
    }

    /// Bytes `emit` writes.
    pub fn buffer_len(&self) -> usize {
        match self {
            IgmpRepr::Query(q) => q.buffer_len(),
            IgmpRepr::ReportV1 { .. } | IgmpRepr::ReportV2 { .. } | IgmpRepr::Leave { .. } => {
                field::HEADER_LEN
            }
            IgmpRepr::ReportV3 { records } => {
                field::REPORT_RECORDS + records.iter().map(GroupRecord::buffer_len).sum::<usize>()
            }
        }
    }

    /// Writes the message into the first `buffer_len()` bytes of `packet`, checksum included.
    ///
    /// The buffer should be exactly `buffer_len()` bytes: the checksum covers all of it.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut IgmpPacket<T>) {
        packet.set_msg_type(self.msg_type());
        match self {
            IgmpRepr::Query(q) => {
                packet.set_max_resp_code(match q.version {
                    QueryVersion::V1 => 0,
                    QueryVersion::V2 | QueryVersion::V3 => q.max_resp_code,
                });
                packet.set_group_addr(q.group);
                if q.version == QueryVersion::V3 {
                    packet.set_query_flags(q.suppress_router_processing, q.qrv);
                    packet.set_query_qqic(q.qqic);
                    packet.set_query_num_sources(q.sources.len() as u16);
                    for (i, source) in q.sources.iter().enumerate() {
                        packet.set_query_source(i, *source);
                    }
                }
            }
            IgmpRepr::ReportV1 { group }
            | IgmpRepr::ReportV2 { group }
            | IgmpRepr::Leave { group } => {
                packet.set_max_resp_code(0);
                packet.set_group_addr(*group);
            }
            IgmpRepr::ReportV3 { records } => {
                packet.clear_report_reserved();
                packet.set_report_num_records(records.len() as u16);
                let mut rest = packet.records_mut();
                for record in records {
                    let (this, tail) = rest.split_at_mut(record.buffer_len());
                    record.emit(&mut GroupRecordPacket::new_unchecked(this));
                    rest = tail;
                }
            }
        }
        packet.fill_checksum();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// mrouted's IGMPv3 general query: Max Resp Code 100 (10 s), QRV 2, QQIC 125.
    static GENERAL_QUERY_V3: [u8; 12] =
        [0x11, 0x64, 0xec, 0x1e, 0x00, 0x00, 0x00, 0x00, 0x02, 0x7d, 0x00, 0x00];
    /// mrouted's group-specific query for 239.1.2.4 (last-member query, 1 s).
    static GROUP_QUERY_V3: [u8; 12] =
        [0x11, 0x0a, 0xfb, 0x72, 0xef, 0x01, 0x02, 0x04, 0x02, 0x7d, 0x00, 0x00];
    /// Linux host: TO_EX {} for 239.1.2.4 (a join).
    static REPORT_V3_JOIN: [u8; 16] = [
        0x22, 0x00, 0xe8, 0xf8, 0x00, 0x00, 0x00, 0x01, 0x04, 0x00, 0x00, 0x00, 0xef, 0x01, 0x02,
        0x04,
    ];
    /// IGMPv2 leave of 224.0.6.150 (RFC 2236 framing; checksum computed by hand: ~(0x1700 +
    /// 0xe000 + 0x0696) = 0x0269).
    static LEAVE_V2: [u8; 8] = [0x17, 0x00, 0x02, 0x69, 0xe0, 0x00, 0x06, 0x96];

    fn parse(bytes: &[u8]) -> Result<IgmpRepr> {
        IgmpRepr::parse(&IgmpPacket::new_checked(bytes)?)
    }

    fn emit(repr: &IgmpRepr) -> Vec<u8> {
        let mut bytes = vec![0xa5; repr.buffer_len()];
        repr.emit(&mut IgmpPacket::new_unchecked(&mut bytes));
        bytes
    }

    #[test]
    fn deconstruct_general_query() {
        let packet = IgmpPacket::new_checked(&GENERAL_QUERY_V3[..]).unwrap();
        assert_eq!(packet.msg_type(), MessageType::MembershipQuery);
        assert_eq!(packet.max_resp_code(), 100);
        assert_eq!(packet.checksum(), 0xec1e);
        assert!(packet.verify_checksum());
        assert_eq!(packet.query_qrv(), 2);
        assert_eq!(packet.query_qqic(), 125);
        assert!(!packet.query_suppress_flag());
        let IgmpRepr::Query(q) = IgmpRepr::parse(&packet).unwrap() else { panic!("not a query") };
        assert_eq!(q.version, QueryVersion::V3);
        assert_eq!(q.group, Ipv4Addr::UNSPECIFIED);
        assert_eq!(q.max_resp_time(), Duration::from_secs(10));
        assert_eq!(q.querier_query_interval(), Duration::from_secs(125));
        assert!(q.sources.is_empty());
    }

    #[test]
    fn deconstruct_group_query_and_join() {
        let IgmpRepr::Query(q) = parse(&GROUP_QUERY_V3).unwrap() else { panic!("not a query") };
        assert_eq!(q.group, Ipv4Addr::new(239, 1, 2, 4));
        assert_eq!(q.max_resp_time(), Duration::from_secs(1));

        assert_eq!(
            parse(&REPORT_V3_JOIN).unwrap(),
            IgmpRepr::ReportV3 {
                records: vec![GroupRecord {
                    record_type: RecordType::ChangeToExclude,
                    group: Ipv4Addr::new(239, 1, 2, 4),
                    sources: vec![],
                    aux_data: vec![],
                }]
            }
        );
    }

    #[test]
    fn construct_into_poisoned_buffers() {
        for golden in
            [&GENERAL_QUERY_V3[..], &GROUP_QUERY_V3[..], &REPORT_V3_JOIN[..], &LEAVE_V2[..]]
        {
            let repr = parse(golden).unwrap();
            assert_eq!(repr.buffer_len(), golden.len());
            assert_eq!(emit(&repr), golden, "{repr:?}");
        }
    }

    #[test]
    fn construct_leave_with_setters() {
        let mut bytes = vec![0xa5; 8];
        let mut packet = IgmpPacket::new_unchecked(&mut bytes);
        packet.set_msg_type(MessageType::LeaveGroup);
        packet.set_max_resp_code(0);
        packet.set_group_addr(Ipv4Addr::new(224, 0, 6, 150));
        packet.fill_checksum();
        assert_eq!(&*packet.into_inner(), &LEAVE_V2[..]);
    }

    #[test]
    fn v1_v2_query_versions_by_length_and_code() {
        let mut v1 = [0x11, 0x00, 0, 0, 0, 0, 0, 0];
        let c = !checksum::data(&v1);
        v1[2..4].copy_from_slice(&c.to_be_bytes());
        let IgmpRepr::Query(q) = parse(&v1).unwrap() else { panic!() };
        assert_eq!(q.version, QueryVersion::V1);
        assert_eq!(q.max_resp_time(), Duration::from_secs(10));

        let v2 = emit(&IgmpRepr::Query(Query {
            version: QueryVersion::V2,
            max_resp_code: 200,
            group: Ipv4Addr::UNSPECIFIED,
            suppress_router_processing: false,
            qrv: 0,
            qqic: 0,
            sources: vec![],
        }));
        assert_eq!(v2.len(), 8);
        let IgmpRepr::Query(q) = parse(&v2).unwrap() else { panic!() };
        assert_eq!(q.version, QueryVersion::V2);
        // v2 codes are linear even above 127, unlike v3.
        assert_eq!(q.max_resp_time(), Duration::from_secs(20));
    }

    #[test]
    fn v3_accessors_on_short_messages_read_zero() {
        let packet = IgmpPacket::new_checked(&LEAVE_V2[..]).unwrap();
        assert!(!packet.query_suppress_flag());
        assert_eq!(packet.query_qrv(), 0);
        assert_eq!(packet.query_qqic(), 0);
        assert_eq!(packet.query_num_sources(), 0);
        assert_eq!(packet.query_source(0), None);
        // A leave read as a report announces 0x0696 records and holds none: one error, then
        // the walk stops.
        let mut records = packet.group_records();
        assert_eq!(records.next(), Some(Err(Error::Truncated)));
        assert_eq!(records.next(), None);
    }

    #[test]
    fn query_of_9_to_11_bytes_is_malformed() {
        for len in 9..12 {
            let mut bytes = vec![0u8; len];
            bytes[0] = 0x11;
            bytes[1] = 100;
            let c = !checksum::data(&bytes);
            bytes[2..4].copy_from_slice(&c.to_be_bytes());
            assert_eq!(parse(&bytes), Err(Error::Malformed), "len {len}");
        }
    }

    #[test]
    fn bad_checksum_and_unsupported_types() {
        let mut bytes = GENERAL_QUERY_V3;
        bytes[3] ^= 1;
        assert_eq!(parse(&bytes), Err(Error::BadChecksum));
        for t in [0x13u8, 0x1e, 0x00, 0xff] {
            let mut bytes = [t, 0, 0, 0, 0, 0, 0, 0];
            let c = !checksum::data(&bytes);
            bytes[2..4].copy_from_slice(&c.to_be_bytes());
            assert_eq!(parse(&bytes), Err(Error::Unsupported), "type {t:#x}");
        }
    }

    #[test]
    fn non_multicast_group_is_malformed() {
        for repr in [
            IgmpRepr::ReportV2 { group: Ipv4Addr::new(10, 0, 0, 1) },
            IgmpRepr::ReportV1 { group: Ipv4Addr::UNSPECIFIED },
            IgmpRepr::Leave { group: Ipv4Addr::BROADCAST },
            IgmpRepr::ReportV3 {
                records: vec![GroupRecord {
                    record_type: RecordType::ModeIsExclude,
                    group: Ipv4Addr::new(10, 1, 1, 1),
                    sources: vec![],
                    aux_data: vec![],
                }],
            },
        ] {
            assert_eq!(parse(&emit(&repr)), Err(Error::Malformed), "{repr:?}");
        }
        let mut query = GROUP_QUERY_V3;
        query[4..8].copy_from_slice(&[10, 1, 2, 4]);
        let c = {
            query[2..4].fill(0);
            !checksum::data(&query)
        };
        query[2..4].copy_from_slice(&c.to_be_bytes());
        assert_eq!(parse(&query), Err(Error::Malformed));
    }

    /// Rewrites a message's checksum so only the field under test is wrong.
    fn refill(mut bytes: Vec<u8>) -> Vec<u8> {
        IgmpPacket::new_unchecked(&mut bytes).fill_checksum();
        bytes
    }

    #[test]
    fn lying_counts_are_truncated_not_panics() {
        // Short buffers.
        for len in 0..8 {
            assert_eq!(parse(&GENERAL_QUERY_V3[..len]), Err(Error::Truncated));
        }
        // v3 query announcing 2 sources but carrying 1.
        let mut q = GENERAL_QUERY_V3.to_vec();
        q[11] = 2;
        q.extend_from_slice(&[10, 0, 0, 1]);
        assert_eq!(parse(&refill(q)), Err(Error::Truncated));
        // Report announcing 2 records but carrying 1.
        let mut r = REPORT_V3_JOIN.to_vec();
        r[7] = 2;
        assert_eq!(parse(&refill(r)), Err(Error::Truncated));
        // Record announcing 1 source, none present.
        let mut r = REPORT_V3_JOIN.to_vec();
        r[11] = 1;
        assert_eq!(parse(&refill(r)), Err(Error::Truncated));
        // Record announcing aux data that is not there.
        let mut r = REPORT_V3_JOIN.to_vec();
        r[9] = 3;
        assert_eq!(parse(&refill(r)), Err(Error::Truncated));
        // Maximal counts on a tiny buffer.
        let mut r = REPORT_V3_JOIN.to_vec();
        r[6..8].copy_from_slice(&[0xff, 0xff]);
        r[9..12].copy_from_slice(&[0xff, 0xff, 0xff]);
        assert_eq!(parse(&refill(r)), Err(Error::Truncated));
    }

    #[test]
    fn trailing_bytes_are_ignored() {
        let mut bytes = REPORT_V3_JOIN.to_vec();
        bytes.extend_from_slice(&[1, 2, 3, 4]);
        assert_eq!(parse(&refill(bytes)), parse(&REPORT_V3_JOIN));
    }

    #[test]
    fn group_record_view_accessors() {
        let mut bytes = vec![0xa5; 16];
        let record = GroupRecord {
            record_type: RecordType::AllowNewSources,
            group: Ipv4Addr::new(232, 1, 1, 1),
            sources: vec![Ipv4Addr::new(10, 0, 0, 9)],
            aux_data: vec![1, 2, 3],
        };
        assert_eq!(record.buffer_len(), 16);
        record.emit(&mut GroupRecordPacket::new_unchecked(&mut bytes));
        let view = GroupRecordPacket::new_checked(&bytes[..]).unwrap();
        assert_eq!(view.record_type(), RecordType::AllowNewSources);
        assert_eq!(view.aux_data_len(), 1);
        assert_eq!(view.source(0), Some(Ipv4Addr::new(10, 0, 0, 9)));
        assert_eq!(view.source(1), None);
        // Aux data is padded with zeros to a whole word.
        assert_eq!(view.aux_data(), &[1, 2, 3, 0]);
        assert_eq!(GroupRecordPacket::new_checked(&bytes[..15]), Err(Error::Truncated));
    }

    #[test]
    fn float_codes_match_rfc3376_examples() {
        assert_eq!(decode_max_resp_code(0x7f), Duration::from_millis(12_700));
        // exp 0, mant 0: 0x10 << 3 = 128 tenths.
        assert_eq!(decode_max_resp_code(0x80), Duration::from_millis(12_800));
        // Largest: (0x1f) << 10 = 31744 tenths.
        assert_eq!(decode_max_resp_code(0xff), Duration::from_millis(3_174_400));
        assert_eq!(decode_qqic(0xff), Duration::from_secs(31_744));
        assert_eq!(encode_max_resp_code(Duration::from_secs(10)), 100);
        assert_eq!(encode_qqic(Duration::from_secs(125)), 125);
        assert_eq!(encode_qqic(Duration::from_secs(1_000_000)), 0xff);
        // Between two codes: rounded down.
        assert_eq!(encode_qqic(Duration::from_secs(129)), 0x80);
        assert_eq!(encode_qqic(Duration::from_secs(136)), 0x81);
    }

    #[test]
    fn float_codes_exhaustive() {
        for code in 0..=u8::MAX {
            let t = decode_max_resp_code(code);
            assert_eq!(decode_max_resp_code(encode_max_resp_code(t)), t, "code {code}");
            assert_eq!(encode_max_resp_code(t), code, "code {code}");
            let q = decode_qqic(code);
            assert_eq!(decode_qqic(encode_qqic(q)), q, "code {code}");
            assert_eq!(encode_qqic(q), code, "code {code}");
            // Monotone: one tenth below a code's value encodes no higher than the code.
            if let Some(below) = t.checked_sub(Duration::from_millis(100)) {
                assert!(encode_max_resp_code(below) <= code);
                assert!(decode_max_resp_code(encode_max_resp_code(below)) <= below);
            }
        }
    }

    fn multicast_addr() -> impl Strategy<Value = Ipv4Addr> {
        (224u8..=239, any::<[u8; 3]>()).prop_map(|(a, [b, c, d])| Ipv4Addr::new(a, b, c, d))
    }

    fn any_addr() -> impl Strategy<Value = Ipv4Addr> {
        any::<u32>().prop_map(Ipv4Addr::from)
    }

    fn query() -> impl Strategy<Value = Query> {
        let group = prop_oneof![Just(Ipv4Addr::UNSPECIFIED), multicast_addr()];
        prop_oneof![
            group.clone().prop_map(|group| Query {
                version: QueryVersion::V1,
                max_resp_code: 0,
                group,
                suppress_router_processing: false,
                qrv: 0,
                qqic: 0,
                sources: vec![],
            }),
            (group.clone(), 1u8..).prop_map(|(group, max_resp_code)| Query {
                version: QueryVersion::V2,
                max_resp_code,
                group,
                suppress_router_processing: false,
                qrv: 0,
                qqic: 0,
                sources: vec![],
            }),
            (
                group,
                any::<u8>(),
                any::<bool>(),
                0u8..8,
                any::<u8>(),
                prop::collection::vec(any_addr(), 0..8)
            )
                .prop_map(|(group, max_resp_code, s, qrv, qqic, sources)| Query {
                    version: QueryVersion::V3,
                    max_resp_code,
                    group,
                    suppress_router_processing: s,
                    qrv,
                    qqic,
                    sources,
                }),
        ]
    }

    fn record() -> impl Strategy<Value = GroupRecord> {
        (
            any::<u8>(),
            multicast_addr(),
            prop::collection::vec(any_addr(), 0..6),
            prop::collection::vec(any::<[u8; 4]>(), 0..3),
        )
            .prop_map(|(t, group, sources, aux)| GroupRecord {
                record_type: RecordType::from(t),
                group,
                sources,
                aux_data: aux.concat(),
            })
    }

    fn repr() -> impl Strategy<Value = IgmpRepr> {
        prop_oneof![
            query().prop_map(IgmpRepr::Query),
            multicast_addr().prop_map(|group| IgmpRepr::ReportV1 { group }),
            multicast_addr().prop_map(|group| IgmpRepr::ReportV2 { group }),
            multicast_addr().prop_map(|group| IgmpRepr::Leave { group }),
            prop::collection::vec(record(), 0..5)
                .prop_map(|records| IgmpRepr::ReportV3 { records }),
        ]
    }

    proptest! {
        #[test]
        fn parse_emit_round_trip(repr in repr()) {
            let bytes = emit(&repr);
            prop_assert_eq!(bytes.len(), repr.buffer_len());
            prop_assert_eq!(parse(&bytes), Ok(repr));
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..64),
                                       fix_checksum in any::<bool>()) {
            let bytes = if fix_checksum && bytes.len() >= 8 { refill(bytes) } else { bytes };
            if let Ok(repr) = parse(&bytes) {
                // Whatever parses re-parses identically from its own emission.
                prop_assert_eq!(parse(&emit(&repr)), Ok(repr));
            }
        }
    }
}
