//! The client's address behind a reverse proxy (docs/deploy.md): for a
//! connection from a `[server] trusted_proxies` peer, the address the proxy
//! forwarded; for anyone else, the peer's own, whatever its headers say.
//!
//! [`client_addr`] is the one rule. The [`client`] middleware applies it to
//! every request of the router (so `/ws`, `/sse`, `/api/*` and their logs
//! all see the same address through axum's [`ConnectInfo`]), and counts a
//! trusted proxy's requests against the forwarded address's
//! `max_connections_per_ip`, which the accept loop cannot do: it sees only the
//! proxy.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use ipnet::IpNet;

use super::listener::HttpSlot;
use crate::state::{ApiError, AppState};

/// Is `ip` one of the trusted proxies?
pub(super) fn is_trusted(ip: IpAddr, trusted: &[IpNet]) -> bool {
    // An IPv4 peer on a dual-stack socket arrives as `::ffff:a.b.c.d`.
    let ip = ip.to_canonical();
    trusted.iter().any(|net| net.contains(&ip))
}

/// The client's address: `peer` itself unless it is a trusted proxy; then the
/// right-most hop of `X-Forwarded-For` (every such header, in order) that is
/// not itself a trusted proxy, or, without that header, of `Forwarded`'s
/// `for=` parameters (RFC 7239). Hops right of the client were added by
/// trusted proxies; those left of it were written by the client and are not
/// believed. A hop that is not an address (`unknown`, an obfuscated name)
/// ends the walk at the last trusted hop; so does a proxy that forwarded
/// nothing. A forwarded address without a port gets port 0.
pub(crate) fn client_addr(peer: SocketAddr, headers: &HeaderMap, trusted: &[IpNet]) -> SocketAddr {
    if !is_trusted(peer.ip(), trusted) {
        return peer;
    }
    let mut hops = forwarded_for(headers);
    let mut client = peer;
    while let Some(hop) = hops.pop() {
        let Some(addr) = parse_hop(&hop) else {
            break;
        };
        client = addr;
        if !is_trusted(addr.ip(), trusted) {
            break;
        }
    }
    client
}

/// The hops a request names, left (the first client) to right (the proxy
/// nearest to us): `X-Forwarded-For` if present, else `Forwarded`'s `for=`.
fn forwarded_for(headers: &HeaderMap) -> Vec<String> {
    let values = |name: &str| -> Vec<String> {
        headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(|h| h.trim().to_string())
            .collect()
    };
    let xff = values("x-forwarded-for");
    if !xff.is_empty() {
        return xff;
    }
    values("forwarded")
        .iter()
        .map(|element| {
            element
                .split(';')
                .filter_map(|pair| pair.trim().split_once('='))
                .find(|(k, _)| k.trim().eq_ignore_ascii_case("for"))
                .map_or_else(String::new, |(_, v)| v.trim().trim_matches('"').to_string())
        })
        .collect()
}

/// One hop as an address: `192.0.2.1`, `192.0.2.1:4711`, `2001:db8::1`,
/// `[2001:db8::1]` or `[2001:db8::1]:4711`.
fn parse_hop(hop: &str) -> Option<SocketAddr> {
    if let Ok(addr) = hop.parse::<SocketAddr>() {
        return Some(SocketAddr::new(addr.ip().to_canonical(), addr.port()));
    }
    let bare = hop.strip_prefix('[').and_then(|h| h.strip_suffix(']'));
    let ip = bare.unwrap_or(hop).parse::<IpAddr>().ok()?;
    Some(SocketAddr::new(ip.to_canonical(), 0))
}

/// Puts the client's address ([`client_addr`]) in the request's
/// [`ConnectInfo`] for every handler after it. A trusted proxy's request also
/// holds one of the client's HTTP slots (`max_connections_per_ip`) while it
/// is answered: past the cap it is answered 503, like a direct connection.
pub(super) async fn client(
    State(shared): State<Arc<AppState>>,
    mut req: Request,
    next: Next,
) -> Response {
    let Some(ConnectInfo(peer)) = req.extensions().get::<ConnectInfo<SocketAddr>>().copied() else {
        return next.run(req).await;
    };
    let settings = shared.settings();
    let trusted = &settings.trusted_proxies;
    if !is_trusted(peer.ip(), trusted) {
        return next.run(req).await;
    }
    let client = client_addr(peer, req.headers(), trusted);
    req.extensions_mut().insert(ConnectInfo(client));
    let max = settings.limits.max_connections_per_ip;
    let Some(_slot) = HttpSlot::acquire(&shared, client, max) else {
        let why = super::listener::HTTP_CAP;
        crate::closes::log(Some(client), crate::closes::Limit::Refused(why));
        return ApiError::Unavailable(super::listener::HTTP_CAP).into_response();
    };
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|n| n.parse().unwrap()).collect()
    }

    const PROXY: &str = "127.0.0.1:5000";

    /// From a trusted proxy, the right-most hop that is not a trusted proxy is
    /// the client; what the client wrote left of it is not believed.
    #[test]
    fn right_most_untrusted_hop_of_x_forwarded_for() {
        let trusted = nets(&["127.0.0.1/32", "10.0.0.0/8"]);
        let h = headers(&[("x-forwarded-for", "6.6.6.6, 203.0.113.7, 10.1.2.3")]);
        let got = client_addr(PROXY.parse().unwrap(), &h, &trusted);
        assert_eq!(got, "203.0.113.7:0".parse().unwrap());
        // Several header lines are one list, in order (HAProxy appends a line).
        let h = headers(&[
            ("x-forwarded-for", "6.6.6.6"),
            ("x-forwarded-for", "198.51.100.9"),
        ]);
        let got = client_addr(PROXY.parse().unwrap(), &h, &trusted);
        assert_eq!(got, "198.51.100.9:0".parse().unwrap());
    }

    /// Headers from a peer that is not a trusted proxy change nothing.
    #[test]
    fn untrusted_peers_headers_are_ignored() {
        let trusted = nets(&["127.0.0.1/32"]);
        let peer: SocketAddr = "192.0.2.50:4000".parse().unwrap();
        let h = headers(&[
            ("x-forwarded-for", "203.0.113.7"),
            ("forwarded", "for=203.0.113.8"),
        ]);
        assert_eq!(client_addr(peer, &h, &trusted), peer);
        assert_eq!(client_addr(peer, &h, &[]), peer);
    }

    /// `Forwarded` (RFC 7239) is read when there is no `X-Forwarded-For`:
    /// quoted IPv6 with a port, several elements, `for` in any case.
    #[test]
    fn forwarded_for_parameters() {
        let trusted = nets(&["127.0.0.1/32"]);
        let h = headers(&[(
            "forwarded",
            "for=6.6.6.6, For=\"[2001:db8::1]:4711\";proto=https, for=127.0.0.1",
        )]);
        let got = client_addr(PROXY.parse().unwrap(), &h, &trusted);
        assert_eq!(got, "[2001:db8::1]:4711".parse().unwrap());
    }

    /// A hop that is not an address stops the walk at the last trusted hop;
    /// a trusted proxy that forwarded nothing is the client itself.
    #[test]
    fn unknown_hops_and_missing_headers() {
        let trusted = nets(&["127.0.0.0/8"]);
        let h = headers(&[("x-forwarded-for", "203.0.113.7, unknown, 127.0.0.9")]);
        let got = client_addr(PROXY.parse().unwrap(), &h, &trusted);
        assert_eq!(got, "127.0.0.9:0".parse().unwrap());
        let got = client_addr(PROXY.parse().unwrap(), &HeaderMap::new(), &trusted);
        assert_eq!(got, PROXY.parse().unwrap());
    }

    /// An IPv4 proxy seen on a dual-stack socket (`::ffff:127.0.0.1`) is
    /// still the trusted `127.0.0.1`.
    #[test]
    fn mapped_ipv4_peers_match_ipv4_networks() {
        let trusted = nets(&["127.0.0.1/32"]);
        let peer: SocketAddr = "[::ffff:127.0.0.1]:5000".parse().unwrap();
        let h = headers(&[("x-forwarded-for", "203.0.113.7")]);
        assert_eq!(
            client_addr(peer, &h, &trusted),
            "203.0.113.7:0".parse().unwrap()
        );
    }
}
