//! Publishing over HTTP with the publish token: one value
//! (`POST /api/publish/{topic}`) or many in one request (`POST /api/publish`,
//! one result per item, in order).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::error::{reason_of, ClientError};
use super::url::Server;

/// One published item: its topic, seq (absent only where a cluster has not
/// assigned it yet) and publish time (ms).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Published {
    /// The topic.
    pub topic: String,
    /// The seq it got.
    pub seq: Option<u64>,
    /// Its publish time, ms since the Unix epoch.
    pub ts: u64,
}

/// The outcome of one item of [`Publisher::publish_many`]: published, or the
/// server's reason for refusing that item (the others are published).
pub type ItemOutcome = Result<Published, String>;

/// Publishes to one server with its publish token (`[server] publish_token`).
#[derive(Debug, Clone)]
pub struct Publisher {
    server: Server,
    token: Option<String>,
    http: reqwest::Client,
}

impl Publisher {
    /// A publisher for `server` (`http://host:port`, or its `ws://` URL).
    pub fn new(server: &str, token: Option<String>) -> Result<Publisher, ClientError> {
        Ok(Publisher {
            server: Server::parse(server)?,
            token,
            http: reqwest::Client::new(),
        })
    }

    /// Publishes `data` to `topic`.
    pub async fn publish(
        &self,
        topic: &str,
        data: &impl Serialize,
    ) -> Result<Published, ClientError> {
        let body = serde_json::to_vec(data).map_err(|e| ClientError::Connect {
            url: self.server.http.to_string(),
            reason: format!("the value is not JSON: {e}"),
        })?;
        let text = self.post(&format!("api/publish/{topic}"), body).await?;
        serde_json::from_str(&text).map_err(|e| self.odd(&text, e))
    }

    /// Publishes each `(topic, data)` in order, in one request: one outcome
    /// per item. `Err` only when the request as a whole is refused.
    pub async fn publish_many(
        &self,
        items: &[(String, Value)],
    ) -> Result<Vec<ItemOutcome>, ClientError> {
        let body: Vec<Value> = items
            .iter()
            .map(|(topic, data)| serde_json::json!({"topic": topic, "data": data}))
            .collect();
        let body = serde_json::to_vec(&body).expect("JSON values serialize");
        let text = self.post("api/publish", body).await?;
        let rows: Vec<Value> = serde_json::from_str(&text).map_err(|e| self.odd(&text, e))?;
        Ok(rows
            .into_iter()
            .map(|row| match row.get("error").and_then(Value::as_str) {
                Some(e) => Err(e.to_string()),
                None => serde_json::from_value(row.clone()).map_err(|_| row.to_string()),
            })
            .collect())
    }

    /// POSTs `body` to `path`: the answer's text, or the server's refusal.
    async fn post(&self, path: &str, body: Vec<u8>) -> Result<String, ClientError> {
        let url = self.server.api(path);
        let mut req = self
            .http
            .post(url.clone())
            .header("content-type", "application/json")
            .body(body);
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        let response = req.send().await.map_err(|e| ClientError::Connect {
            url: url.to_string(),
            reason: e.to_string(),
        })?;
        let status = response.status().as_u16();
        let text = response.text().await.map_err(|e| ClientError::Connect {
            url: url.to_string(),
            reason: e.to_string(),
        })?;
        if status != 200 {
            return Err(ClientError::Refused {
                url: url.to_string(),
                status,
                reason: reason_of(&text),
            });
        }
        Ok(text)
    }

    fn odd(&self, text: &str, e: serde_json::Error) -> ClientError {
        ClientError::Connect {
            url: self.server.http.to_string(),
            reason: format!("unexpected answer ({e}): {text}"),
        }
    }
}
