#!/usr/bin/env bash
# Idempotent set-up for a fresh Debian 12 machine (as root): the packages fanout builds and
# tests with, bpffs, and checks for the kernel features it needs. Sourced by .ci/demo and .ci/test.
set -euo pipefail

die() { echo "fanout setup: $*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "must run as root (XDP, AF_XDP and network namespaces need CAP_NET_ADMIN + CAP_BPF)"
command -v cargo >/dev/null 2>&1 || die "cargo not found: install the Rust toolchain (rustup) first"

# Packages: clang/llvm build bpf/*.bpf.c; libbpf-dev, libelf-dev, zlib1g-dev, pkg-config, m4 and
# make build the vendored libbpf/libxdp of xsk-rs; iproute2/ethtool/smcroute/tcpdump/bpftool run
# the testbed and its kernel baseline.
PKGS=(clang llvm libbpf-dev libelf-dev zlib1g-dev pkg-config m4 make gcc-multilib linux-libc-dev
      iproute2 ethtool smcroute tcpdump bpftool procps)
missing=()
for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
    echo "fanout setup: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Kernel features.
[ -e /sys/kernel/btf/vmlinux ] || die "kernel has no BTF (/sys/kernel/btf/vmlinux): CONFIG_DEBUG_INFO_BTF is needed"
grep -q '^XDP ' /proc/net/protocols || modprobe xsk 2>/dev/null || true
grep -q '^XDP ' /proc/net/protocols || die "kernel has no AF_XDP sockets (CONFIG_XDP_SOCKETS)"
ip link add fanout-probe0 type veth peer name fanout-probe1 2>/dev/null \
    && ip link del fanout-probe0 \
    || die "cannot create veth pairs (CONFIG_VETH / CAP_NET_ADMIN)"
ip netns list >/dev/null 2>&1 || die "network namespaces unavailable"

# bpffs: libbpf pins and libxdp's dispatcher want it.
if ! mountpoint -q /sys/fs/bpf; then
    mount -t bpf bpf /sys/fs/bpf || die "cannot mount bpffs on /sys/fs/bpf"
fi
