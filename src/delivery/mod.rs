//! Delivery: how a frame the hub hands a subscriber reaches its peer.
//!
//! The hub ends at "push this frame to each subscriber's [`Outbox`]". From
//! there:
//!
//! - `outbox`: the subscriber's bounded, conflating queue, never blocking
//!   the publisher; with a direct route into a quiet WebSocket's socket.
//! - `pacer`: writes what gathered within `flush_interval` after a direct
//!   write, for every connection due, from a few shared tasks.
//! - `shaping` (with `delta`): a connection's `max_rate` and field-level
//!   deltas, applied as frames leave the outbox.
//! - `writer`: the one writer discipline — [`take`] (the order frames go
//!   out, shaped), [`hand`] (to a sink, releasing the reply budget) and
//!   [`run`] (the writer task of a socket: batching, pacing, heartbeats,
//!   the write deadline, the Close).
//! - `sink`: what delivery asks of a transport: [`Sink`] (every subscriber),
//!   [`Wire`] (a socket: `ws`, `server::sse`), [`Direct`] (the publisher's
//!   way into a parked WebSocket), and the lock order of all of them.
//!
//! It uses `frame`, `protocol`, `topic`, `metrics`, `closes` and `sync`, and
//! nothing above: the transports implement its traits.

mod delta;
mod lazy_map;
mod outbox;
mod pacer;
mod shaping;
mod sink;
mod writer;

pub(crate) use delta::apply as apply_delta;
pub(crate) use outbox::Outbox;
pub(crate) use pacer::{Pacer, Shard};
pub(crate) use shaping::{Rule, Shaping};
pub(crate) use sink::{Closing, Direct, Sink, Wire, Wrote};
pub(crate) use writer::{hand, run, take, Pacing, Writer};
