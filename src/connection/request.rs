//! A connection's requests (the `/ws` protocol's ops): each is parsed,
//! rate-limited when its cost grows with the topic count, answered, and its
//! reply queued on the connection's outbox. `/sse` has one request, its
//! query, which goes through the same subscribe checks
//! ([`Connection::check`], [`Connection::join`]).

use std::sync::atomic::Ordering;

use crate::frame::Text;

use super::subscribe::parse_patterns;
use super::{Connection, RateLimit, Subscribe};
use crate::auth::{Grant, Refusal};
use crate::closes::{self, Limit};
use crate::delivery::Outbox;
use crate::hub::{Hub, SubscriberId};
use crate::protocol::{self, ErrorCode, Request};
use crate::sync::MutexExt;

impl Connection {
    /// Answers one request (a text frame's `text`) of subscriber `sub`,
    /// queueing the reply on `outbox`.
    pub(crate) async fn handle(
        &self,
        sub: SubscriberId,
        outbox: &Outbox,
        limit: &mut RateLimit,
        text: &str,
    ) {
        let (id, request) = protocol::parse_request(text);
        let id = id.as_ref();
        let grant = self.grant();
        let expensive = match &request {
            Ok(Request::Topics) => true,
            Ok(Request::Subscribe { topics, .. } | Request::Unsubscribe { topics }) => {
                topics.iter().any(|t| t.contains(['*', '>']))
            }
            _ => false,
        };
        if expensive && !limit.allow() {
            self.hub
                .metrics()
                .rate_limited
                .fetch_add(1, Ordering::Relaxed);
            closes::log(self.peer, Limit::RateLimited);
            let reply = protocol::error(id, ErrorCode::RateLimited, &RateLimit::refusal());
            return outbox.push_control(reply).await;
        }
        let reply = match request {
            Err(e) => protocol::error(id, e.code, &e.message),
            Ok(Request::Ping) => protocol::pong(id),
            Ok(Request::Publish { items }) => self.publish(id, &grant, items).await,
            Ok(Request::Refresh { token }) => self.refresh(sub, id, &token),
            Ok(Request::Topics) => {
                let read = move |hub: &Hub| hub.topics_where(|t| grant.may_read(t));
                let topics = self.hub.offload(read).await;
                protocol::topics(id, &topics, self.settings.limits.max_frame_bytes)
            }
            Ok(Request::Unsubscribe { topics }) => match parse_patterns(&topics) {
                Err(refused) => protocol::error(id, refused.code(), &refused.message),
                Ok(patterns) => {
                    let not_held: Vec<String> = self
                        .hub
                        .leave_patterns(sub, patterns.clone())
                        .await
                        .iter()
                        .map(|p| p.as_str().to_string())
                        .collect();
                    self.shaping.unsubscribe(&patterns);
                    protocol::ack(id, "unsubscribe", &topics, None, &not_held)
                }
            },
            Ok(Request::Subscribe {
                topics,
                since,
                epoch,
                max_rate,
                delta,
            }) => {
                let request = Subscribe {
                    topics,
                    since,
                    epoch,
                    max_rate,
                    delta,
                };
                let joined = match self.check(&request.topics) {
                    Ok(patterns) => self.join(sub, outbox, id, patterns, request).await,
                    Err(refused) => Err(refused),
                };
                match joined {
                    Ok(()) => return, // the ack is queued
                    Err(refused) => protocol::error(id, refused.code(), &refused.message),
                }
            }
        };
        outbox.push_control(reply).await;
    }

    /// The `publish` op: only for a token granted `publish` patterns.
    async fn publish(
        &self,
        id: Option<&serde_json::Value>,
        grant: &Grant,
        items: Vec<serde_json::Value>,
    ) -> Text {
        if !grant.can_publish() {
            let msg = "this connection's token may not publish \
                       (an [[access]] table's `publish` patterns grant it)";
            return protocol::error(id, ErrorCode::Forbidden, msg);
        }
        let items = items.into_iter().map(crate::publish::parse_item);
        let mut results = Vec::new();
        let may_publish = |t: &str| grant.may_publish(t);
        crate::publish::publish_all(&self.hub, items, may_publish, |r| results.push(r)).await;
        protocol::published(id, &results)
    }

    /// `refresh`: a new JWT replaces the connection's grant (and its
    /// expiry), if it is valid and allows every pattern the connection holds.
    /// Only a JWT: a static token (`server.token`, `[[access]]`) has no `exp`,
    /// and a connection refreshed with one would never expire. The answer
    /// does not say whether a refused token is a static one.
    fn refresh(&self, sub: SubscriberId, id: Option<&serde_json::Value>, token: &str) -> Text {
        let new = match self.settings.access.jwt_grant(token) {
            Ok(new) => new,
            Err(Refusal::Unknown) => {
                let msg = "refresh takes a JWT signed by a key of [auth.jwt]; this token is \
                           not one (unknown, forged, or not a JWT)";
                return protocol::error(id, ErrorCode::Unauthorized, msg);
            }
            Err(refusal) => {
                return protocol::error(id, ErrorCode::Unauthorized, &refusal.to_string())
            }
        };
        let held = self.hub.patterns_of(sub);
        if let Some(p) = held.iter().find(|p| !new.may_subscribe(p)) {
            let msg = format!(
                "the new token does not allow `{p}`, which this connection holds \
                 (unsubscribe from it first)"
            );
            return protocol::error(id, ErrorCode::Forbidden, &msg);
        }
        *self.grant.lock_or_recover() = new;
        protocol::ack(id, "refresh", &[], None, &[])
    }
}
