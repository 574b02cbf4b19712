//! Declares `cfg(fuzzing)` (set by cargo-fuzz) so rustc's check-cfg knows it; under it the
//! wire parsers skip checksum verification (see the crate docs, "Fuzzing").

fn main() {
    println!("cargo::rustc-check-cfg=cfg(fuzzing)");
}
