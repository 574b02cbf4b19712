//! Spawning external tools (`ip`, `tc`, `ethtool`, `smcrouted`) with errors that name the command.
//!
//! Invariant: every failure carries the full command line, the exit status and the tool's stderr,
//! so a failed bring-up says exactly which step broke and why.

use std::io::Write;
use std::process::{Command, Stdio};

/// A spawned command failed to start or exited non-zero.
#[derive(Debug, thiserror::Error)]
pub enum CmdError {
    #[error("cannot run `{cmdline}`: {source} (is the tool installed and on PATH?)")]
    Spawn { cmdline: String, source: std::io::Error },
    #[error("`{cmdline}` failed ({status}): {stderr}")]
    Failed { cmdline: String, status: std::process::ExitStatus, stderr: String },
}

/// Renders a command as a shell-like line for error messages and logs.
pub fn cmdline(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

/// Runs `cmd` to completion, optionally feeding `stdin`, and returns its stdout.
pub fn run(cmd: &mut Command, stdin: Option<&str>) -> Result<String, CmdError> {
    let line = cmdline(cmd);
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    cmd.stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() });
    let mut child =
        cmd.spawn().map_err(|source| CmdError::Spawn { cmdline: line.clone(), source })?;
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        // A write error means the tool exited early; its status and stderr explain why.
        let _ = pipe.write_all(input.as_bytes());
    }
    let out = child
        .wait_with_output()
        .map_err(|source| CmdError::Spawn { cmdline: line.clone(), source })?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        let mut stderr = String::from_utf8_lossy(&out.stderr).trim().to_owned();
        if let Some(input) = stdin {
            // `ip -batch` names the failing line number; include the batch so it can be found.
            stderr.push_str("\n--- stdin was ---\n");
            stderr.push_str(input);
        }
        Err(CmdError::Failed { cmdline: line, status: out.status, stderr })
    }
}

/// Builds a `Command` from a program and arguments.
pub fn command<I, S>(program: &str, args: I) -> Command
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let mut c = Command::new(program);
    c.args(args);
    c
}
