//! Streamed response bodies that cannot pass for complete when they are not:
//! [`Tally`] counts and digests every byte handed to the client (for a
//! summary the client can check), and a body that fails midway ends its
//! connection ([`Connection::abort`]) instead of ending its chunked encoding.
//!
//! Why the connection: Rocket 0.5 does not forward a body's read error to
//! hyper. On an error it stops copying and drops its channel to hyper, and
//! hyper, seeing the channel end, writes the terminating zero-length chunk as
//! if the body were whole: the client gets a well-formed, truncated file. The
//! only signal HTTP/1.1 has for an incomplete chunked body is a connection
//! that closes before that last chunk, so on failure the response's own TCP
//! socket is shut down first (found by its two addresses among this
//! process's descriptors); what hyper then tries to write fails, and the
//! client's body read reports the error. Knows nothing of what is streamed.

use std::io::{self, Cursor};
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use rocket::request::{FromRequest, Outcome, Request};
use rocket::tokio::io::{AsyncRead, ReadBuf};
use sha2::{Digest, Sha256};

/// One piece of a streamed body, or the failure that ends it.
pub enum Chunk {
    Data(Cursor<Vec<u8>>),
    /// Reading it fails, so Rocket stops sending (after [`Connection::abort`]
    /// this also fails a client that talks to Rocket in-process).
    Failed,
}

impl AsyncRead for Chunk {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Chunk::Data(data) => Pin::new(data).poll_read(cx, buf),
            Chunk::Failed => Poll::Ready(Err(io::Error::other("the response was cut short"))),
        }
    }
}

/// What was handed to the client: records, bytes, SHA-256 of those bytes.
#[derive(Debug, Clone, Default)]
pub struct Tally {
    digest: Sha256,
    pub bytes: u64,
    pub records: u64,
}

impl Tally {
    pub fn new() -> Self {
        Tally::default()
    }

    /// Counts `records` records in `bytes`, digests them, and hands them on.
    pub fn pass(&mut self, bytes: Vec<u8>, records: u64) -> Chunk {
        self.digest.update(&bytes);
        self.bytes += bytes.len() as u64;
        self.records += records;
        Chunk::Data(Cursor::new(bytes))
    }

    /// Lowercase hex SHA-256 of every byte passed so far.
    pub fn sha256_hex(&self) -> String {
        hex::encode(self.digest.clone().finalize())
    }
}

/// The TCP connection a request arrived on, so that its response can be cut
/// off. Always succeeds; without a socket (an in-process client) `abort`
/// finds nothing to shut down.
#[derive(Debug, Clone, Copy)]
pub struct Connection {
    remote: Option<SocketAddr>,
    local_port: u16,
}

#[rocket::async_trait]
impl<'r> FromRequest<'r> for Connection {
    type Error = std::convert::Infallible;

    async fn from_request(req: &'r Request<'_>) -> Outcome<Self, Self::Error> {
        Outcome::Success(Connection { remote: req.remote(), local_port: req.rocket().config().port })
    }
}

impl Connection {
    /// Shuts the connection down in both directions, so the client sees its
    /// response end early rather than end. Whatever was queued in the
    /// kernel still reaches it first. Returns whether a socket was found.
    pub fn abort(&self) -> bool {
        match self.remote {
            Some(remote) => shut_down(remote, self.local_port),
            None => false,
        }
    }
}

#[cfg(target_os = "linux")]
// The one way to reach a socket the server owns by its descriptor; see SAFETY below.
#[allow(unsafe_code)]
fn shut_down(remote: SocketAddr, local_port: u16) -> bool {
    use std::os::fd::{BorrowedFd, RawFd};
    let Ok(entries) = std::fs::read_dir("/proc/self/fd") else { return false };
    for entry in entries.flatten() {
        let Some(raw) = entry.file_name().to_str().and_then(|n| n.parse::<RawFd>().ok()) else { continue };
        if !std::fs::read_link(entry.path()).is_ok_and(|target| target.to_string_lossy().starts_with("socket:")) {
            continue;
        }
        // SAFETY: `raw` was listed as open in this process just now and is
        // only borrowed for the calls below, none of which closes it or
        // keeps it. Had it been closed and its number reused meanwhile, the
        // address checks would see another socket (or none) and skip it.
        let fd = unsafe { BorrowedFd::borrow_raw(raw) };
        let socket = socket2::SockRef::from(&fd);
        let peer = socket.peer_addr().ok().and_then(|a| a.as_socket());
        let local = socket.local_addr().ok().and_then(|a| a.as_socket());
        if peer == Some(remote) && local.map(|l| l.port()) == Some(local_port) {
            return socket.shutdown(std::net::Shutdown::Both).is_ok();
        }
    }
    false
}

#[cfg(not(target_os = "linux"))]
fn shut_down(_remote: SocketAddr, _local_port: u16) -> bool {
    false
}
