//! Network namespaces for fanout's testbed and its privileged tests: an RAII guard, running a
//! closure inside one, spawning a command inside one ([`NetNs`]); external tools with errors that
//! name the command ([`cmd`]); and [`testnet::TestNet`], the one throwaway namespace/veth harness
//! every privileged test builds its network with.
//!
//! Namespaces are created the way `ip netns add` does (a bind mount under /run/netns/<name>), so
//! operators can inspect a run with the usual `ip -n <name> ...` tools and a later process (a
//! `down` after a crash) can find and delete them by name.
//!
//! Invariants:
//! - An owned [`NetNs`] deletes its namespace on drop unless [`NetNs::persist`] was called.
//! - [`NetNs::run`] executes the closure on a fresh thread that `setns()`-es into the namespace;
//!   the caller's thread never changes namespace, so concurrent tests cannot leak into each other.
//!   Sockets created inside the closure stay bound to the namespace after it returns.

use std::fs::File;
use std::path::PathBuf;
use std::process::Command;

use nix::sched::{setns, CloneFlags};

use crate::cmd::CmdError;

pub mod cmd;
pub mod testnet;

/// Errors from namespace handling.
#[derive(Debug, thiserror::Error)]
pub enum NetNsError {
    #[error(transparent)]
    Cmd(#[from] CmdError),
    #[error("cannot open namespace {name} at {path}: {source}")]
    Open { name: String, path: PathBuf, source: std::io::Error },
    #[error("setns into namespace {name} failed: {source}")]
    Setns { name: String, source: nix::Error },
    #[error("thread running inside namespace {name} panicked")]
    Panicked { name: String },
}

/// A named network namespace (under /run/netns).
#[derive(Debug)]
pub struct NetNs {
    name: String,
    owned: bool,
}

impl NetNs {
    /// Creates the namespace and brings its loopback up.
    pub fn create(name: &str) -> Result<Self, NetNsError> {
        cmd::run(&mut cmd::command("ip", ["netns", "add", name]), None)?;
        let ns = NetNs { name: name.to_owned(), owned: true };
        cmd::run(&mut cmd::command("ip", ["-n", name, "link", "set", "lo", "up"]), None)?;
        Ok(ns)
    }

    /// Refers to an existing namespace without taking ownership (no delete on drop).
    pub fn existing(name: &str) -> Self {
        NetNs { name: name.to_owned(), owned: false }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn path(&self) -> PathBuf {
        PathBuf::from("/run/netns").join(&self.name)
    }

    /// Keeps the namespace after this guard is dropped (`fanout-testbed up`).
    pub fn persist(&mut self) {
        self.owned = false;
    }

    /// Runs `f` on a thread inside the namespace and returns its result.
    pub fn run<F, R>(&self, f: F) -> Result<R, NetNsError>
    where
        F: FnOnce() -> R + Send,
        R: Send,
    {
        let file = File::open(self.path()).map_err(|source| NetNsError::Open {
            name: self.name.clone(),
            path: self.path(),
            source,
        })?;
        std::thread::scope(|s| {
            s.spawn(|| {
                setns(&file, CloneFlags::CLONE_NEWNET)
                    .map_err(|source| NetNsError::Setns { name: self.name.clone(), source })?;
                Ok(f())
            })
            .join()
            .map_err(|_| NetNsError::Panicked { name: self.name.clone() })?
        })
    }

    /// Spawns a thread that lives inside the namespace for as long as `f` runs.
    pub fn spawn<F, R>(
        &self,
        f: F,
    ) -> Result<std::thread::JoinHandle<Result<R, NetNsError>>, NetNsError>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        let file = File::open(self.path()).map_err(|source| NetNsError::Open {
            name: self.name.clone(),
            path: self.path(),
            source,
        })?;
        let name = self.name.clone();
        Ok(std::thread::spawn(move || {
            setns(&file, CloneFlags::CLONE_NEWNET)
                .map_err(|source| NetNsError::Setns { name, source })?;
            Ok(f())
        }))
    }

    /// A command that runs inside the namespace (`ip netns exec`, which also remounts /sys so
    /// tools see this namespace's interfaces).
    pub fn command(&self, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name, program]);
        c
    }

    /// Deletes the namespace now.
    pub fn delete(mut self) -> Result<(), NetNsError> {
        self.owned = false;
        delete_named(&self.name)
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        if self.owned {
            if let Err(e) = delete_named(&self.name) {
                eprintln!("fanout-testbed: cleanup: {e}");
            }
        }
    }
}

/// Deletes a namespace by name; deleting one that is already gone is not an error.
pub fn delete_named(name: &str) -> Result<(), NetNsError> {
    if !PathBuf::from("/run/netns").join(name).exists() {
        return Ok(());
    }
    cmd::run(&mut cmd::command("ip", ["netns", "del", name]), None)?;
    Ok(())
}

/// Names of all namespaces under /run/netns starting with `prefix`.
pub fn list_with_prefix(prefix: &str) -> Vec<String> {
    let Ok(rd) = std::fs::read_dir("/run/netns") else {
        return Vec::new();
    };
    let mut v: Vec<String> = rd
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| n.starts_with(prefix))
        .collect();
    v.sort();
    v
}

/// Whether this process may create namespaces (tests skip otherwise).
pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}
