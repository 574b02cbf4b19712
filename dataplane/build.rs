//! Compiles bpf/fanout_xdp.bpf.c with clang and generates its libbpf-rs skeleton into OUT_DIR
//! (never into src/: generated code is not committed).

use std::env;
use std::path::PathBuf;
use std::process::Command;

use libbpf_cargo::SkeletonBuilder;

const SRC: &str = "../bpf/fanout_xdp.bpf.c";
const HEADERS: &[&str] = &["../bpf/fanout_shared.h", "../bpf/parsing_helpers.h"];

fn main() {
    println!("cargo:rerun-if-changed={SRC}");
    for header in HEADERS {
        println!("cargo:rerun-if-changed={header}");
    }
    println!("cargo:rerun-if-env-changed=CLANG");

    let clang = env::var_os("CLANG").unwrap_or_else(|| "clang".into());
    assert!(
        Command::new(&clang).arg("--version").output().is_ok(),
        "fanout-dataplane: cannot run {clang:?} to compile the XDP program {SRC}: \
         install clang, libbpf-dev (and linux-libc-dev): run the README setup, \
         or point the CLANG environment variable at a clang binary"
    );

    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let out = out_dir.join("fanout_xdp.skel.rs");
    // The object file is kept too: bpf.rs loads it with ObjectBuilder::open_memory so that the
    // loaded object owns itself (the skeleton would borrow a caller-provided OpenObject slot).
    let obj = out_dir.join("fanout_xdp.bpf.o");
    // Debian puts asm/types.h under the multiarch directory; harmless where it does not exist.
    let multiarch = format!(
        "/usr/include/{}-linux-gnu",
        env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_else(|_| "x86_64".into())
    );
    if let Err(e) = SkeletonBuilder::new()
        .source(SRC)
        .obj(&obj)
        .clang(&clang)
        .clang_args(["-I", multiarch.as_str(), "-Wall", "-Werror"])
        .build_and_generate(&out)
    {
        panic!(
            "fanout-dataplane: building the XDP program {SRC} failed: {e:#}\n\
             (needs clang and libbpf-dev headers <bpf/bpf_helpers.h>: run the README setup)"
        );
    }
}
