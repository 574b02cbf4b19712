//! The privilege check fanoutd runs before touching the data plane, so a missing capability is
//! reported as such instead of as an obscure EPERM from a BPF or socket syscall.
//!
//! Reads the effective capability set from /proc/self/status (`CapEff`), which covers both root
//! (all bits) and a non-root service granted capabilities by systemd's `AmbientCapabilities`.

use std::fmt;

/// Capability bit numbers from linux/capability.h.
const CAP_NET_ADMIN: u32 = 12;
const CAP_NET_RAW: u32 = 13;
const CAP_SYS_ADMIN: u32 = 21;
const CAP_BPF: u32 = 39;

/// Missing capabilities, by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissingCapabilities(pub Vec<&'static str>);

impl fmt::Display for MissingCapabilities {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "fanoutd needs root or the capabilities CAP_NET_ADMIN, CAP_NET_RAW and CAP_BPF \
             (or CAP_SYS_ADMIN on kernels before 5.8); missing: {}. Run it as root, or grant them \
             (see controlplane/etc/fanoutd.service: AmbientCapabilities=)",
            self.0.join(", ")
        )
    }
}

impl std::error::Error for MissingCapabilities {}

/// Checks this process's effective capabilities.
pub fn check() -> Result<(), MissingCapabilities> {
    let status = std::fs::read_to_string("/proc/self/status")
        .map_err(|_| MissingCapabilities(vec!["(cannot read /proc/self/status)"]))?;
    check_status(&status)
}

/// The check on /proc/self/status text (separate for tests).
pub fn check_status(status: &str) -> Result<(), MissingCapabilities> {
    let cap_eff = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .ok_or_else(|| MissingCapabilities(vec!["(no CapEff line in /proc/self/status)"]))?;
    let has = |bit: u32| cap_eff & (1u64 << bit) != 0;
    let mut missing = Vec::new();
    if !has(CAP_NET_ADMIN) {
        missing.push("CAP_NET_ADMIN");
    }
    if !has(CAP_NET_RAW) {
        missing.push("CAP_NET_RAW");
    }
    // CAP_BPF exists since Linux 5.8; before, loading programs needed CAP_SYS_ADMIN.
    if !has(CAP_BPF) && !has(CAP_SYS_ADMIN) {
        missing.push("CAP_BPF");
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(MissingCapabilities(missing))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capability_sets() {
        assert!(check_status("Name:\tx\nCapEff:\t000001ffffffffff\n").is_ok());
        let none = check_status("CapEff:\t0000000000000000\n").unwrap_err();
        assert_eq!(none.0, vec!["CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_BPF"]);
        assert!(none.to_string().contains("needs root"));
        // NET_ADMIN + NET_RAW + SYS_ADMIN (pre-5.8 kernels) is enough.
        let old_kernel = (1u64 << 12) | (1 << 13) | (1 << 21);
        assert!(check_status(&format!("CapEff:\t{old_kernel:016x}\n")).is_ok());
        assert!(check_status("nothing").is_err());
    }
}
