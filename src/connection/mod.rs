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
use crate::hub::Hub;
use crate::rate::Shaping;
use crate::state::Settings;
use crate::sync::MutexExt;

pub(crate) use limit::RateLimit;
pub(crate) use subscribe::{Refused, Subscribe};

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
    /// What subscribes asked for `max_rate` and `delta` (see [`crate::rate`]).
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

    /// The grant in force: the last refreshed one, else the one connected with.
    pub(crate) fn grant(&self) -> Grant {
        self.grant.lock_or_recover().clone()
    }
}
