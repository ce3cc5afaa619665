//! A streaming Server-Sent Events client on reqwest, for the `/sse` tests
//! (tests/sse.rs, tests/refusals.rs, and tests/deploy.rs through the proxies).

use serde_json::Value;

use super::within;

/// One event of the stream, or a comment line.
#[derive(Debug)]
pub enum Event {
    Comment(String),
    Frame { id: Option<String>, data: Value },
}

/// A streaming SSE client on reqwest (`resp` for its status and headers).
pub struct Sse {
    pub resp: reqwest::Response,
    buf: String,
}

impl Sse {
    /// Opens `url` with `headers`; a refusal is its status and body.
    pub async fn open(url: &str, headers: &[(&str, &str)]) -> Result<Sse, (u16, String)> {
        Sse::open_with(&reqwest::Client::new(), url, headers).await
    }

    /// [`Sse::open`] on `client` (e.g. one bound to a source address).
    pub async fn open_with(
        client: &reqwest::Client,
        url: &str,
        headers: &[(&str, &str)],
    ) -> Result<Sse, (u16, String)> {
        let mut req = client.get(url);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = within(req.send()).await.unwrap();
        if resp.status() != 200 {
            let status = resp.status().as_u16();
            return Err((status, within(resp.text()).await.unwrap()));
        }
        Ok(Sse {
            resp,
            buf: String::new(),
        })
    }

    /// The next event or comment.
    pub async fn next(&mut self) -> Event {
        within(async {
            loop {
                if let Some(end) = self.buf.find("\n\n") {
                    let block: String = self.buf.drain(..end + 2).collect();
                    let mut id = None;
                    let mut data = String::new();
                    for line in block.lines() {
                        if let Some(c) = line.strip_prefix(':') {
                            return Event::Comment(c.trim().to_string());
                        } else if let Some(v) = line.strip_prefix("id: ") {
                            id = Some(v.to_string());
                        } else if let Some(v) = line.strip_prefix("data: ") {
                            data.push_str(v);
                            data.push('\n');
                        }
                    }
                    let data = serde_json::from_str(&data).expect("event data is JSON");
                    return Event::Frame { id, data };
                }
                let chunk = self.resp.chunk().await.unwrap().expect("stream open");
                self.buf.push_str(std::str::from_utf8(&chunk).unwrap());
            }
        })
        .await
    }

    /// The next frame (comments skipped), with its event id.
    pub async fn frame(&mut self) -> (Option<String>, Value) {
        loop {
            if let Event::Frame { id, data } = self.next().await {
                return (id, data);
            }
        }
    }
}
