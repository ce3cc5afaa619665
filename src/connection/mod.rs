//! What a subscriber *is* on the request side, for `/ws` and `/sse` alike:
//! its grant (the one it connected with, or the last `refresh`), its
//! subscriptions' `max_rate`/`delta` rules, the subscribe checks and the
//! resume they plan, the request rate limit, and the error texts of all of
//! them. Each check exists once here; the transports only say how a refusal
//! reaches the client (an `error` frame on `/ws`, an HTTP status on `/sse`).
//!
//! The flow is feed → hub → connection → transport: a [`Connection`] joins
//! the hub by pattern ([`Connection::join`]), and the hub hands each update to
//! the connection's outbox, which its transport (`ws`, `server::sse`) writes.
//! This module uses `hub` (`Hub::plan_resume`, `join_patterns`) and nothing
//! above it: `ws` and `server` use it.

mod limit;
mod request;
mod subscribe;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use crate::auth::Grant;
use crate::delivery::{Closing, Outbox, Pacing, Shaping, Wire, Writer};
use crate::hub::{Hub, Leave, SubscriberId};
use crate::protocol;
use crate::state::Settings;
use crate::sync::MutexExt;

pub(crate) use limit::RateLimit;
pub(crate) use subscribe::{Refused, Subscribe};

/// How a connection whose token (a JWT) expired is closed: Close 4001 on a
/// WebSocket (the client refreshes its token and resumes), the end of an
/// `/sse` stream.
pub(crate) const TOKEN_EXPIRED: Closing = Closing::Code(4001, "token expired");

/// One subscriber's request side, fixed at connect time but for its grant,
/// which a `refresh` replaces.
///
/// Held by every open connection for its whole life (inside its session's
/// reader): each field is paid once per connection.
pub(crate) struct Connection {
    pub(crate) hub: Hub,
    pub(crate) settings: Arc<Settings>,
    /// The grant in force: the one connected with, until an accepted
    /// `refresh` replaces it. One slot, not the first grant beside an
    /// optional newer one: nothing reads the first one after a refresh.
    pub(crate) grant: Mutex<Grant>,
    /// What subscribes asked for `max_rate` and `delta` (see `crate::delivery`).
    pub(crate) shaping: Arc<Shaping>,
    /// The peer's address, for the line logged when a limit stops it.
    pub(crate) peer: Option<SocketAddr>,
}

impl Connection {
    /// A connection with `grant` and no subscription yet.
    pub(crate) fn new(
        hub: Hub,
        settings: Arc<Settings>,
        grant: Grant,
        peer: Option<SocketAddr>,
    ) -> Self {
        Connection {
            hub,
            settings,
            grant: Mutex::new(grant),
            shaping: Default::default(),
            peer,
        }
    }

    /// A new outbox for this connection: `[limits] queue` frames before it
    /// conflates, at most `max_buffered_bytes` of replies waiting.
    pub(crate) fn outbox(&self) -> Outbox {
        let limits = &self.settings.limits;
        Outbox::new(limits.queue, self.hub.metrics().clone()).with_budget(limits.max_buffered_bytes)
    }

    /// Makes `outbox` a hub subscriber (with no topic yet) and queues the
    /// `hello`: the connection's first frame on every transport. It stays a
    /// subscriber until the returned [`Leave`] is dropped.
    pub(crate) fn attach(&self, outbox: Outbox) -> (Arc<Outbox>, SubscriberId, Leave) {
        let outbox = Arc::new(outbox);
        let id = self.hub.add_subscriber(outbox.clone());
        let heartbeat = self.settings.heartbeat.as_millis() as u64;
        // A new outbox has room: this never hands the reply back.
        let _ = outbox.try_push_control(protocol::hello(&self.hub.epoch(), heartbeat));
        (outbox, id, self.hub.leave_on_drop(id))
    }

    /// The writer task's parts for `wire` (`crate::delivery::run`): paced by
    /// `[server] heartbeat` and `flush_interval`, ended through its outbox.
    pub(crate) fn writer<W: Wire>(&self, wire: W, outbox: Arc<Outbox>) -> Writer<W> {
        Writer {
            wire,
            outbox,
            shaping: self.shaping.clone(),
            pacing: Pacing::new(self.settings.heartbeat, self.settings.flush_interval),
            peer: self.peer,
        }
    }

    /// The grant in force: the last refreshed one, else the one connected with.
    pub(crate) fn grant(&self) -> Grant {
        self.grant.lock_or_recover().clone()
    }
}
