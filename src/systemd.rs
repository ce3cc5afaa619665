//! systemd's notify protocol (`sd_notify(3)`): the service manager learns
//! when tickerd is ready, reloading, stopping, and still alive.
//!
//! When `$NOTIFY_SOCKET` names a Unix datagram socket (a path, or an abstract
//! name written with a leading `@`), each state is one datagram to it;
//! without it every call here does nothing, so a terminal or an embedder
//! pays nothing. The states, and the one place each is sent from:
//!
//! - `READY=1`: [`serving`], which `Ticker::serve` runs once it listens (its
//!   feeds started with the ticker, before it).
//! - `RELOADING=1` with `MONOTONIC_USEC=`, then `READY=1`: [`Reloading`],
//!   held by `Ticker::reload` and `Ticker::apply`, so a SIGHUP and a reload
//!   of the file watcher alike (systemd's `Type=notify-reload` needs both).
//! - `STOPPING=1`: [`serving`], when shutdown begins.
//! - `WATCHDOG=1`: [`serving`], every half of `$WATCHDOG_USEC` (systemd's
//!   `WatchdogSec=`) until shutdown, from a task of the runtime: a wedged
//!   runtime stops the pings and systemd restarts the service.
//!
//! The states follow one order: nothing before the first `READY=1` (a reload
//! of an embedder's ticker that is not served yet says nothing), and nothing
//! but `STOPPING=1` after shutdown began. A send never blocks (the socket is
//! non-blocking) and never fails its caller: the first failure is a warning,
//! later ones debug lines.

use std::ffi::OsStr;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

/// Where the phase stands: [`STARTING`], [`READY`] or [`STOPPING`].
static PHASE: AtomicU8 = AtomicU8::new(STARTING);
const STARTING: u8 = 0;
const READY: u8 = 1;
const STOPPING: u8 = 2;

/// Whether a failed send was already logged as a warning.
static WARNED: AtomicBool = AtomicBool::new(false);

/// The notify socket of `$NOTIFY_SOCKET`, read once.
fn socket() -> Option<&'static SocketAddr> {
    static TARGET: OnceLock<Option<SocketAddr>> = OnceLock::new();
    TARGET
        .get_or_init(|| std::env::var_os("NOTIFY_SOCKET").and_then(|v| address(&v)))
        .as_ref()
}

/// A `$NOTIFY_SOCKET` value as an address: an absolute path, or `@name` for
/// an abstract socket (Linux). Anything else (e.g. `vsock:`) is not supported
/// and is logged once.
fn address(value: &OsStr) -> Option<SocketAddr> {
    use std::os::unix::ffi::OsStrExt;
    let bytes = value.as_bytes();
    let addr = match bytes.strip_prefix(b"@") {
        #[cfg(target_os = "linux")]
        Some(name) => {
            use std::os::linux::net::SocketAddrExt;
            SocketAddr::from_abstract_name(name)
        }
        #[cfg(not(target_os = "linux"))]
        Some(_) => return None,
        None if bytes.starts_with(b"/") => SocketAddr::from_pathname(value),
        None => {
            warn!(notify_socket = ?value, "NOTIFY_SOCKET is neither an absolute path nor an @abstract name; systemd will not hear from tickerd.");
            return None;
        }
    };
    addr.map_err(|e| warn!(notify_socket = ?value, error = %e, "NOTIFY_SOCKET is not a usable socket address."))
        .ok()
}

/// Sends `state` (newline-separated `KEY=VALUE` lines) to `addr`, without
/// blocking.
fn send_to(addr: &SocketAddr, state: &str) -> std::io::Result<()> {
    let socket = UnixDatagram::unbound()?;
    socket.set_nonblocking(true)?;
    socket.send_to_addr(state.as_bytes(), addr).map(|_| ())
}

/// Sends `state` to `$NOTIFY_SOCKET`, if set.
fn notify(state: &str) {
    let Some(addr) = socket() else { return };
    match send_to(addr, state) {
        Ok(()) => debug!(state, "Told systemd."),
        Err(e) if !WARNED.swap(true, Ordering::Relaxed) => {
            warn!(state, error = %e, "Cannot notify systemd through NOTIFY_SOCKET.");
        }
        Err(e) => debug!(state, error = %e, "Cannot notify systemd through NOTIFY_SOCKET."),
    }
}

/// `READY=1` (first, or again after a reload), unless shutdown began.
fn ready() {
    let was = PHASE.compare_exchange(STARTING, READY, Ordering::AcqRel, Ordering::Acquire);
    if matches!(was, Ok(_) | Err(READY)) {
        notify("READY=1");
    }
}

/// While held, the ticker is reloading: `RELOADING=1` (with the
/// `MONOTONIC_USEC=` systemd asks for) when taken, `READY=1` when dropped,
/// on every way out of the reload. Both only while serving (see the module
/// docs).
pub(crate) struct Reloading(bool);

impl Reloading {
    /// Says the reload began.
    pub(crate) fn begin() -> Self {
        let serving = PHASE.load(Ordering::Acquire) == READY;
        if serving {
            notify(&format!("RELOADING=1\nMONOTONIC_USEC={}", monotonic_usec()));
        }
        Reloading(serving)
    }
}

impl Drop for Reloading {
    fn drop(&mut self) {
        if self.0 {
            ready();
        }
    }
}

/// `CLOCK_MONOTONIC` in microseconds, the clock systemd compares
/// `MONOTONIC_USEC=` with.
fn monotonic_usec() -> u64 {
    use nix::time::{clock_gettime, ClockId};
    clock_gettime(ClockId::CLOCK_MONOTONIC).map_or(0, |t| {
        t.tv_sec() as u64 * 1_000_000 + t.tv_nsec() as u64 / 1_000
    })
}

/// The watchdog period asked for: half of `$WATCHDOG_USEC`, when that is
/// set, above zero, and meant for this process (`$WATCHDOG_PID`, if set, is
/// our pid).
fn watchdog_period() -> Option<Duration> {
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.trim().parse().ok()?;
    if let Ok(pid) = std::env::var("WATCHDOG_PID") {
        if pid.trim().parse::<u32>().ok()? != std::process::id() {
            return None;
        }
    }
    (usec > 0).then(|| Duration::from_micros(usec / 2))
}

/// The service's life while it serves: `READY=1` now, `WATCHDOG=1` every half
/// watchdog period, and `STOPPING=1` as soon as `cancel` fires. Run it as a
/// task beside the accept loop.
pub(crate) async fn serving(cancel: CancellationToken) {
    if socket().is_none() {
        return;
    }
    ready();
    match watchdog_period() {
        Some(period) => {
            let mut tick = tokio::time::interval(period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    () = cancel.cancelled() => break,
                    _ = tick.tick() => notify("WATCHDOG=1"),
                }
            }
        }
        None => cancel.cancelled().await,
    }
    PHASE.store(STOPPING, Ordering::Release);
    notify("STOPPING=1");
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A path and an abstract name are both addresses; a relative path or
    /// another scheme is none.
    #[test]
    fn notify_socket_values() {
        let path = address(OsStr::new("/run/systemd/notify")).unwrap();
        assert_eq!(
            path.as_pathname(),
            Some(std::path::Path::new("/run/systemd/notify"))
        );
        #[cfg(target_os = "linux")]
        {
            use std::os::linux::net::SocketAddrExt;
            let abs = address(OsStr::new("@tickerd/notify")).unwrap();
            assert_eq!(abs.as_abstract_name(), Some(&b"tickerd/notify"[..]));
        }
        assert!(address(OsStr::new("notify")).is_none());
        assert!(address(OsStr::new("vsock:2:1234")).is_none());
    }

    /// A state reaches the socket as one datagram, abstract names included.
    #[cfg(target_os = "linux")]
    #[test]
    fn a_state_is_one_datagram() {
        let name = format!("@tickerd-test-{}", std::process::id());
        use std::os::linux::net::SocketAddrExt;
        let bound = SocketAddr::from_abstract_name(&name.as_bytes()[1..]).unwrap();
        let rx = UnixDatagram::bind_addr(&bound).unwrap();
        send_to(&address(OsStr::new(&name)).unwrap(), "READY=1").unwrap();
        let mut buf = [0u8; 64];
        let n = rx.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1");
    }
}
