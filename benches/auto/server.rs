//! The I/O workload's local HTTP server, and the task that fetches a page from it.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::thread;
use std::time::Duration;

/// How long the server waits before it answers each request.
pub(crate) const DELAY: Duration = Duration::from_millis(50);

/// Starts the server on `127.0.0.1` and gives its port. A thread accepts connections and starts a
/// thread per connection at once, so every client is served after [`DELAY`], however many connect
/// together. It runs until the process ends.
pub(crate) fn start() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a local port to listen on");
    // std listens with a backlog of 128: 256 clients connecting at once would overflow it, and the
    // kernel would drop SYNs that the clients resend only after a second. Linux takes a second
    // `listen` on a listening socket as a new backlog (capped by net.core.somaxconn).
    // SAFETY: the descriptor is the listener's own and stays open for the call.
    let raised = unsafe { libc::listen(listener.as_raw_fd(), 4096) };
    assert_eq!(raised, 0, "listen(4096) on the server's socket");
    let port = listener
        .local_addr()
        .expect("the listener's address")
        .port();
    thread::Builder::new()
        .name("httpd-accept".into())
        .spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                thread::Builder::new()
                    .name("httpd".into())
                    .stack_size(128 * 1024)
                    .spawn(move || serve(stream))
                    .expect("a thread for a connection");
            }
        })
        .expect("the server's accept thread");
    port
}

/// Reads one request, waits [`DELAY`], answers a small page named after the request's path, and
/// closes the connection (HTTP/1.0).
fn serve(mut stream: TcpStream) {
    let mut request = Vec::with_capacity(64);
    let mut buf = [0u8; 512];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => request.extend_from_slice(&buf[..n]),
        }
    }
    let page = String::from_utf8_lossy(&request)
        .split_whitespace()
        .nth(1)
        .map_or("0", |path| path.trim_start_matches('/'))
        .to_string();
    thread::sleep(DELAY);
    let body = format!(
        "<!doctype html>\n<html><head><title>page {page}</title></head>\
         <body><p>This is page {page}.</p></body></html>\n"
    );
    let _ = write!(
        stream,
        "HTTP/1.0 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
}

/// The I/O task: a new connection to the local server, `GET /i`, the whole answer read; gives its
/// length in bytes (as Python's `urllib` would, one connection per fetch).
pub(crate) fn fetch(port: u16, i: u32) -> usize {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("the local server accepts");
    write!(stream, "GET /{i} HTTP/1.0\r\n\r\n").expect("the request is sent");
    let mut page = Vec::with_capacity(256);
    stream.read_to_end(&mut page).expect("the page is read");
    assert!(page.starts_with(b"HTTP/1.0 200 OK"), "the server answered");
    page.len()
}
