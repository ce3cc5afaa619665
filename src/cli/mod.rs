//! The client commands of the `tickerd` binary, `tickerd sub` and `tickerd pub`:
//! argument parsing and output only; the protocol is `tickerd::client`'s.

mod publish;
mod sub;
mod view;

pub(crate) use publish::{run as publish, PubArgs};
pub(crate) use sub::{run as sub, SubArgs};

/// Where `--server` points when it is not given.
const DEFAULT_SERVER: &str = "http://127.0.0.1:8080";
