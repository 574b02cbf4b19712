//! The daemon's I/O tasks: the ctl socket server, the metrics listener and the signal thread.
//!
//! Each task owns its socket and only turns what it reads into an [`Input`] for the event loop,
//! then waits on its own reply channel; none of them touches daemon state. Servers stop when
//! their handle is dropped (flag + a self-connection to wake the blocking `accept`), and the
//! ctl server removes its socket file.

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::os::fd::{AsFd as _, AsRawFd as _, BorrowedFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use crossbeam::channel::{bounded, Sender};
use nix::sys::signal::{SigSet, Signal};
use tracing::{debug, info, warn};

use super::{Input, REPLY_TIMEOUT};
use crate::ctl::{Request, Response, MAX_LINE};
use crate::metrics::{self, HttpRequest};

/// Why a server could not start.
#[derive(Debug, thiserror::Error)]
pub enum TaskError {
    #[error("control socket {}: another fanoutd is already listening there", path.display())]
    SocketInUse { path: PathBuf },
    #[error("control socket {}: {step}: {source}", path.display())]
    Socket { path: PathBuf, step: &'static str, source: std::io::Error },
    #[error("metrics listener {addr}: {source}")]
    Metrics { addr: SocketAddr, source: std::io::Error },
    #[error("signal setup: {0}")]
    Signals(nix::Error),
}

/// The ctl unix-socket server. Dropping it stops accepting and removes the socket file.
#[derive(Debug)]
pub struct CtlServer {
    path: PathBuf,
    /// A second handle on the listening socket, to shut it down (which wakes `accept`).
    listener: UnixListener,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl CtlServer {
    /// Binds `path` (mode 0600: the socket can reconfigure the router), replacing a stale socket
    /// file left by a crashed daemon but refusing to steal one a live daemon answers on.
    pub fn start(path: &Path, inputs: Sender<Input>) -> Result<CtlServer, TaskError> {
        let err = |step, source| TaskError::Socket { path: path.to_owned(), step, source };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| err("creating its directory", e))?;
        }
        if path.exists() {
            if UnixStream::connect(path).is_ok() {
                return Err(TaskError::SocketInUse { path: path.to_owned() });
            }
            std::fs::remove_file(path).map_err(|e| err("removing the stale socket", e))?;
            info!(path = %path.display(), "removed stale control socket");
        }
        let listener = UnixListener::bind(path).map_err(|e| err("bind", e))?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| err("chmod 0600", e))?;
        let handle = listener.try_clone().map_err(|e| err("dup", e))?;
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let stop = Arc::clone(&stop);
            std::thread::Builder::new()
                .name("ctl-accept".into())
                .spawn(move || accept_ctl(&listener, &inputs, &stop))
                .map_err(|e| err("spawning the accept thread", e))?
        };
        info!(path = %path.display(), "control socket listening");
        Ok(CtlServer { path: path.to_owned(), listener: handle, stop, thread: Some(thread) })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for CtlServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        wake_accept(self.listener.as_fd());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        if let Err(e) = std::fs::remove_file(&self.path) {
            warn!(path = %self.path.display(), "removing control socket: {e}");
        }
    }
}

/// Wakes a thread blocked in `accept` on this listening socket: on Linux, shutting a listener
/// down makes `accept` fail at once (independent of the socket file still existing, unlike a
/// self-connection).
fn wake_accept(fd: BorrowedFd<'_>) {
    if let Err(e) = nix::sys::socket::shutdown(fd.as_raw_fd(), nix::sys::socket::Shutdown::Both) {
        debug!("shutting down a listener: {e}");
    }
}

fn accept_ctl(listener: &UnixListener, inputs: &Sender<Input>, stop: &AtomicBool) {
    for conn in listener.incoming() {
        if stop.load(Ordering::SeqCst) {
            return;
        }
        match conn {
            Ok(stream) => {
                let inputs = inputs.clone();
                let spawned = std::thread::Builder::new()
                    .name("ctl-conn".into())
                    .spawn(move || serve_ctl(&stream, &inputs));
                if let Err(e) = spawned {
                    warn!("ctl: cannot spawn a connection thread: {e}");
                }
            }
            Err(e) => {
                warn!("ctl: accept: {e}");
                // E.g. EMFILE: back off instead of spinning.
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
        }
    }
}

/// Serves one connection: any number of request lines, each answered by one response line.
fn serve_ctl(stream: &UnixStream, inputs: &Sender<Input>) {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    loop {
        line.clear();
        match (&mut reader).take(MAX_LINE as u64).read_line(&mut line) {
            Ok(0) => return,
            Ok(_) if !line.ends_with('\n') => {
                let _ = write_line(
                    stream,
                    &Response::error(format!("request longer than {MAX_LINE} bytes")),
                );
                return;
            }
            Ok(_) => {}
            Err(e) => {
                debug!("ctl: read: {e}");
                return;
            }
        }
        let response = match serde_json::from_str::<Request>(&line) {
            Ok(request) => ask_loop(inputs, request),
            Err(e) => Response::error(format!("bad request: {e}")),
        };
        if let Err(e) = write_line(stream, &response) {
            debug!("ctl: write: {e}");
            return;
        }
    }
}

fn ask_loop(inputs: &Sender<Input>, request: Request) -> Response {
    let (reply, answer) = bounded(1);
    if inputs.send(Input::Ctl { request, reply }).is_err() {
        return Response::error("fanoutd is shutting down");
    }
    answer
        .recv_timeout(REPLY_TIMEOUT)
        .unwrap_or_else(|_| Response::error("fanoutd did not answer in time"))
}

fn write_line(mut stream: &UnixStream, response: &Response) -> std::io::Result<()> {
    let mut text = serde_json::to_string(response).map_err(std::io::Error::other)?;
    text.push('\n');
    stream.write_all(text.as_bytes())
}

/// The Prometheus listener. Dropping it stops accepting.
#[derive(Debug)]
pub struct MetricsServer {
    addr: SocketAddr,
    listener: TcpListener,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl MetricsServer {
    pub fn start(addr: SocketAddr, inputs: Sender<Input>) -> Result<MetricsServer, TaskError> {
        let listener =
            TcpListener::bind(addr).map_err(|source| TaskError::Metrics { addr, source })?;
        let addr = listener.local_addr().map_err(|source| TaskError::Metrics { addr, source })?;
        let handle = listener.try_clone().map_err(|source| TaskError::Metrics { addr, source })?;
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let stop = Arc::clone(&stop);
            std::thread::Builder::new()
                .name("metrics".into())
                .spawn(move || accept_metrics(&listener, &inputs, &stop))
                .map_err(|source| TaskError::Metrics { addr, source })?
        };
        info!(%addr, "metrics listening on http://{addr}/metrics");
        Ok(MetricsServer { addr, listener: handle, stop, thread: Some(thread) })
    }

    /// The bound address (useful with port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        wake_accept(self.listener.as_fd());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn accept_metrics(listener: &TcpListener, inputs: &Sender<Input>, stop: &AtomicBool) {
    for conn in listener.incoming() {
        if stop.load(Ordering::SeqCst) {
            return;
        }
        let stream = match conn {
            Ok(s) => s,
            Err(e) => {
                warn!("metrics: accept: {e}");
                std::thread::sleep(std::time::Duration::from_millis(100));
                continue;
            }
        };
        // Scrapes are rare and small: served one at a time on this thread, each bounded by
        // the read/write timeouts in `metrics`.
        let result = match metrics::read_request(&stream) {
            Ok(HttpRequest::Metrics) => {
                let (reply, answer) = bounded(1);
                if inputs.send(Input::Metrics { reply }).is_err() {
                    return;
                }
                match answer.recv_timeout(REPLY_TIMEOUT) {
                    Ok(body) => metrics::write_response(&stream, 200, "OK", &body),
                    Err(_) => metrics::write_response(
                        &stream,
                        503,
                        "Service Unavailable",
                        "fanoutd busy\n",
                    ),
                }
            }
            Ok(HttpRequest::Other { status, reason }) => metrics::write_response(
                &stream,
                status,
                reason,
                &format!("{status} {reason}; try GET /metrics\n"),
            ),
            Err(e) if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::TimedOut => {
                continue
            }
            Err(e) => Err(e),
        };
        if let Err(e) = result {
            debug!("metrics: {e}");
        }
    }
}

/// The signals fanoutd handles.
fn handled_signals() -> SigSet {
    let mut set = SigSet::empty();
    set.add(Signal::SIGHUP);
    set.add(Signal::SIGTERM);
    set.add(Signal::SIGINT);
    set
}

/// Blocks SIGHUP/SIGTERM/SIGINT in the calling thread. Call it in `main` before any thread is
/// spawned, so every thread inherits the mask and only [`spawn_signal_thread`] receives them
/// (no async-signal-safety concerns: there is no handler at all).
pub fn block_signals() -> Result<(), TaskError> {
    handled_signals().thread_block().map_err(TaskError::Signals)
}

/// Waits for signals and turns them into inputs: SIGHUP → [`Input::Reload`], SIGTERM/SIGINT →
/// [`Input::Stop`] (after which the thread ends).
pub fn spawn_signal_thread(inputs: Sender<Input>) -> Result<JoinHandle<()>, TaskError> {
    let set = handled_signals();
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || loop {
            match set.wait() {
                Ok(Signal::SIGHUP) => {
                    info!("SIGHUP: reloading configuration");
                    if inputs.send(Input::Reload).is_err() {
                        return;
                    }
                }
                Ok(sig) => {
                    info!(signal = %sig, "stopping");
                    let _ = inputs.send(Input::Stop);
                    return;
                }
                Err(e) => {
                    warn!("sigwait: {e}");
                    return;
                }
            }
        })
        .map_err(|e| {
            TaskError::Signals(nix::Error::from_raw(e.raw_os_error().unwrap_or(libc::EAGAIN)))
        })
}
