//! Wire formats spoken by fanout: a typed view over bytes plus a plain `Repr` for each.
//!
//! Every format follows the same two-layer design (after smoltcp's `wire`):
//!
//! - **`Packet<T: AsRef<[u8]>>`**: a zero-copy view over a buffer with getters (and setters when
//!   `T: AsMut<[u8]>`). Field offsets are named constants in a private `field` module.
//! - **`Repr`**: a validated, plain value with `parse(&Packet) -> Result<Repr>`,
//!   `emit(&self, &mut Packet)` and `buffer_len()`.
//!
//! # Panic contract
//!
//! Untrusted bytes enter only through `Packet::new_checked`. Once it (or `check_len`) has
//! succeeded, no accessor panics and `Repr::parse` never panics. `emit` never panics when the
//! buffer is at least `buffer_len()` bytes long. `new_unchecked` is for emission into buffers the
//! caller sized; using it on untrusted input is a bug.
//!
//! Codes (protocol numbers, message types, record types) convert through enums with an
//! `Unknown(u8)` variant, so an unknown code never fails conversion; a message whose *type* is not
//! understood fails `Repr::parse` with [`Error::Unsupported`], which callers count and drop.
//!
//! # Fuzzing
//!
//! Under `cfg(fuzzing)` checksum verification always succeeds, so the fuzzer reaches the code
//! behind it.

use core::fmt;

pub mod checksum;
pub mod dvmrp;
pub mod ethernet;
pub mod igmp;
pub mod ipv4;
pub mod linkstate;
pub mod overlay;
pub mod overlay_control;
pub mod udp;

/// Why bytes could not be read as a packet. `Copy` and allocation-free, so the data plane can
/// turn it into a drop reason and a counter on the hot path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Error {
    /// The buffer ends before a header or a length field says it should.
    Truncated,
    /// A version field holds a version this code does not speak.
    BadVersion,
    /// A header-length field is smaller than the fixed header or larger than the buffer.
    BadHeaderLength,
    /// A total-length field disagrees with the header length or the buffer.
    BadLength,
    /// The checksum does not verify.
    BadChecksum,
    /// Fields are individually readable but inconsistent (e.g. a source count that does not fit
    /// the length, a non-contiguous netmask, a metric out of range).
    Malformed,
    /// A well-formed message of a type this code does not handle.
    Unsupported,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Error::Truncated => "truncated",
            Error::BadVersion => "bad version",
            Error::BadHeaderLength => "bad header length",
            Error::BadLength => "bad length",
            Error::BadChecksum => "bad checksum",
            Error::Malformed => "malformed",
            Error::Unsupported => "unsupported message type",
        })
    }
}

impl std::error::Error for Error {}

/// Result of parsing wire bytes.
pub type Result<T> = core::result::Result<T, Error>;

/// A byte range of a header field.
pub(crate) type Field = core::ops::Range<usize>;

/// Declares a `u8`/`u16` code enum with an `Unknown` variant, so conversion from the wire never
/// fails (smoltcp's `enum_with_unknown!`).
#[macro_export]
macro_rules! enum_with_unknown {
    (
        $( #[$enum_attr:meta] )*
        pub enum $name:ident($ty:ty) {
            $( $( #[$variant_attr:meta] )* $variant:ident = $value:expr ),+ $(,)?
        }
    ) => {
        $( #[$enum_attr] )*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $( $( #[$variant_attr] )* $variant ),*,
            /// A code this implementation does not know.
            Unknown($ty),
        }

        impl ::core::convert::From<$ty> for $name {
            fn from(value: $ty) -> Self {
                match value {
                    $( $value => $name::$variant ),*,
                    other => $name::Unknown(other),
                }
            }
        }

        impl ::core::convert::From<$name> for $ty {
            fn from(value: $name) -> Self {
                match value {
                    $( $name::$variant => $value ),*,
                    $name::Unknown(other) => other,
                }
            }
        }
    };
}
