//! The server's two addresses from the one a caller gives: `http://host:port`
//! (the base of `/api/*`) and `ws://host:port/ws`, each derived from the other.

use reqwest::Url;

use super::error::ClientError;

/// The server's base URL (`http(s)://host:port/prefix/`) and its WebSocket URL.
#[derive(Debug, Clone)]
pub(super) struct Server {
    pub(super) http: Url,
    pub(super) ws: Url,
}

impl Server {
    /// From `http(s)://host:port[/prefix]`, `ws(s)://host:port[/prefix]/ws`
    /// or `host:port`.
    pub(super) fn parse(given: &str) -> Result<Server, ClientError> {
        let bad = |reason: &str| ClientError::InvalidUrl {
            url: given.to_string(),
            reason: reason.to_string(),
        };
        // `host:port` alone is the server's HTTP address (as `--listen` prints it).
        let full = match given.contains("://") {
            true => given.to_string(),
            false => format!("http://{given}"),
        };
        let mut url = Url::parse(&full).map_err(|e| bad(&e.to_string()))?;
        if url.host_str().is_none() {
            return Err(bad("it names no host"));
        }
        url.set_query(None);
        url.set_fragment(None);
        let (http_scheme, ws_scheme) = match url.scheme() {
            "http" | "ws" => ("http", "ws"),
            "https" | "wss" => ("https", "wss"),
            other => {
                return Err(bad(&format!(
                    "scheme `{other}` is not http, https, ws or wss"
                )))
            }
        };
        let mut path = url.path().to_string();
        if url.scheme().starts_with("ws") {
            path = path.strip_suffix("ws").unwrap_or(&path).to_string();
        }
        if !path.ends_with('/') {
            path.push('/');
        }
        url.set_path(&path);
        let mut http = url.clone();
        let mut ws = url.clone();
        // Both schemes are special in the URL standard, so switching works.
        http.set_scheme(http_scheme)
            .map_err(|()| bad("cannot use http"))?;
        ws.set_scheme(ws_scheme)
            .map_err(|()| bad("cannot use ws"))?;
        ws.set_path(&format!("{path}ws"));
        Ok(Server { http, ws })
    }

    /// An HTTP URL on the server: `api/topics` → `http://host:port/api/topics`.
    pub(super) fn api(&self, path: &str) -> Url {
        self.http.join(path).expect("a relative path joins")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derives_each_url_from_the_other() {
        let s = Server::parse("http://127.0.0.1:8080").unwrap();
        assert_eq!(s.ws.as_str(), "ws://127.0.0.1:8080/ws");
        let s = Server::parse("wss://h.example/live/ws?token=x").unwrap();
        assert_eq!(s.http.as_str(), "https://h.example/live/");
        assert_eq!(
            s.api("api/topics").as_str(),
            "https://h.example/live/api/topics"
        );
        assert!(Server::parse("ftp://h").is_err());
        let s = Server::parse("127.0.0.1:8080").unwrap();
        assert_eq!(s.ws.as_str(), "ws://127.0.0.1:8080/ws");
        assert!(Server::parse("http://").is_err());
    }
}
