//! A tiny HTTP/1.1 server on 127.0.0.1 for delivery tests (this crate's and,
//! with the `test-server` feature, the platform's): it records each request
//! and answers it as the test says, one request per connection.

use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[derive(Debug, Clone)]
pub struct Received {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

pub struct Reply {
    pub status: u16,
    pub body: String,
    /// Wait this long before answering (a stalled partner).
    pub delay: std::time::Duration,
    /// Extra headers; a `Content-Type` here replaces the JSON default.
    pub headers: Vec<(String, String)>,
}

impl Reply {
    pub fn new(status: u16, body: impl Into<String>) -> Self {
        Reply { status, body: body.into(), delay: std::time::Duration::ZERO, headers: Vec::new() }
    }

    /// Adds a header (a page's `Content-Type`, a redirect's `Location`).
    pub fn header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_string(), value.into()));
        self
    }

    /// Answers only after `delay`.
    pub fn after(mut self, delay: std::time::Duration) -> Self {
        self.delay = delay;
        self
    }
}

pub type Log = Arc<Mutex<Vec<Received>>>;

/// Starts the server; `respond` gets the 0-based index of the request and
/// the request. Returns the base URL (`http://127.0.0.1:<port>`) and the log
/// of requests received. The server lives as long as the test's runtime.
pub async fn serve<F>(respond: F) -> (String, Log)
where
    F: Fn(usize, &Received) -> Reply + Send + Sync + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let log: Log = Arc::default();
    let task_log = log.clone();
    let respond = Arc::new(respond);
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let log = task_log.clone();
            let respond = respond.clone();
            tokio::spawn(async move {
                let Some(req) = read_request(&mut stream).await else { return };
                let reply = {
                    let mut log = log.lock().unwrap();
                    let reply = respond(log.len(), &req);
                    log.push(req);
                    reply
                };
                write_reply(stream, reply).await;
            });
        }
    });
    (format!("http://{addr}"), log)
}

async fn read_request(stream: &mut TcpStream) -> Option<Received> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut request_line = lines.next()?.split(' ');
    let method = request_line.next()?.to_owned();
    let path = request_line.next()?.to_owned();
    let headers: Vec<(String, String)> =
        lines.filter_map(|l| l.split_once(':')).map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned())).collect();
    let length: usize = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < length {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => body.extend_from_slice(&chunk[..n]),
        }
    }
    Some(Received { method, path, headers, body })
}

async fn write_reply(mut stream: TcpStream, reply: Reply) {
    tokio::time::sleep(reply.delay).await;
    let typed = reply.headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("content-type"));
    let mut extra = if typed { String::new() } else { "Content-Type: application/json\r\n".to_string() };
    for (k, v) in &reply.headers {
        extra.push_str(&format!("{k}: {v}\r\n"));
    }
    let head = format!(
        "HTTP/1.1 {} X\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n",
        reply.status,
        reply.body.len()
    );
    let _ = stream.write_all(head.as_bytes()).await;
    let _ = stream.write_all(reply.body.as_bytes()).await;
    let _ = stream.shutdown().await;
    // Let the client read the reply before the socket is dropped.
    let mut rest = [0u8; 64];
    let _ = tokio::time::timeout(std::time::Duration::from_secs(2), stream.read(&mut rest)).await;
}
