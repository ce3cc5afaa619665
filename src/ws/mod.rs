//! The WebSocket side of `GET /ws`: the upgrade handler (origin, limits,
//! cluster readiness), the handshake, the socket's read and write sides, and the
//! [`Session`](session::Session) that serves one connection.

mod handshake;
mod read;
mod session;
mod transport;
mod upgrade;

pub(crate) use upgrade::{admit, origin_allowed, upgrade, ConnectionGuard, NOT_READY};
