//! A streaming `GET /sse` client on reqwest, shared by the tests that read
//! `/sse` (`sse.rs`, `refusals.rs`).

use serde_json::Value;

use super::within;

/// One event of the stream, or a comment line.
#[derive(Debug)]
pub enum Event {
    /// A comment line (`: ping`), its text.
    Comment(String),
    /// A frame, with its event id.
    Frame {
        /// The event's `id`, if any.
        id: Option<String>,
        /// The event's `data`, parsed.
        data: Value,
    },
}

/// A streaming SSE client on reqwest.
pub struct Sse {
    /// The response whose body is the stream.
    pub resp: reqwest::Response,
    buf: String,
}

impl Sse {
    /// Opens `url` with `headers`: the stream, or the refusal's status and body.
    pub async fn open(url: &str, headers: &[(&str, &str)]) -> Result<Sse, (u16, String)> {
        let mut req = reqwest::Client::new().get(url);
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
