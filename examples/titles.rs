//! The seed program: fetch the `<title>` of several web pages concurrently.
//!
//! ```sh
//! cargo run --example titles                       # offline: serves its own sample pages
//! cargo run --example titles -- --process           # the same block on worker processes
//! cargo run --example titles -- https://example.com https://www.rust-lang.org
//! ```
//!
//! Each download is one `submit` inside a `pool!(Thread => ...)` block; each task reports the process
//! id and the worker that ran it, as the Python original prints `multiprocessing.current_process()`.
//! With `--process` the same block runs as `pool!(Process => ...)`: one word changes, and the trace
//! shows a different process id per worker. A page that fails to load prints its error beside its
//! URL and the others still print.
//!
//! With no arguments it starts a small HTTP server on `127.0.0.1` (an ephemeral port) with a few
//! sample pages, one of them slow and one missing, so it runs without a network.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use executor::{current_worker, pool};
use scraper::{Html, Selector};
use serde::{Deserialize, Serialize};

/// What one task found: the page's title and where the task ran. It crosses from a worker process
/// to the parent with serde, so it derives `Serialize` and `Deserialize`.
#[derive(Serialize, Deserialize)]
struct Fetched {
    title: String,
    /// `WorkerInfo`'s Display: backend, worker index, process id and thread name.
    worker: String,
}

/// Downloads `url` and extracts its `<title>`. Runs on a pool worker.
fn get_title(url: String) -> Result<Fetched, String> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into();
    let body = agent
        .get(&url)
        .call()
        .map_err(|e| e.to_string())?
        .body_mut()
        .read_to_string()
        .map_err(|e| e.to_string())?;
    let document = Html::parse_document(&body);
    let selector = Selector::parse("title").expect("`title` is a valid selector");
    let title = document
        .select(&selector)
        .next()
        .map(|t| t.text().collect::<String>().trim().to_string())
        .unwrap_or_else(|| "(no <title>)".to_string());
    let worker = current_worker()
        .map(|w| w.to_string())
        .unwrap_or_else(|| format!("not a pool worker (pid {})", std::process::id()));
    Ok(Fetched { title, worker })
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let on_processes = args.iter().any(|a| a == "--process");
    args.retain(|a| a != "--process");
    let mut urls = args;
    if urls.is_empty() {
        let base = serve_sample_pages()?;
        urls = ["/", "/rust", "/python", "/slow", "/missing"]
            .iter()
            .map(|path| format!("{base}{path}"))
            .collect();
    }

    println!("main program: pid {}", std::process::id());
    let started = Instant::now();
    // The two blocks differ in one word.
    let pages = if on_processes {
        pool!(Process => {
            let work: Vec<_> = urls.iter().map(|u| submit(get_title, u.clone())).collect();
            println!("waiting for {} downloads...", work.len());
            work.into_iter().map(|f| f.result()).collect::<Vec<_>>()
        })
    } else {
        pool!(Thread => {
            let work: Vec<_> = urls.iter().map(|u| submit(get_title, u.clone())).collect();
            println!("waiting for {} downloads...", work.len());
            work.into_iter().map(|f| f.result()).collect::<Vec<_>>()
        })
    };
    let (mut loaded, mut failed) = (0, 0);
    for (url, page) in urls.iter().zip(pages) {
        // `?` lifts a task failure (TaskError: a panic, or a crashed worker) into main's error.
        match page? {
            Ok(page) => {
                loaded += 1;
                println!("{url} -> {:?}  [{}]", page.title, page.worker);
            }
            Err(error) => {
                failed += 1;
                println!("{url} -> error: {error}");
            }
        }
    }
    println!(
        "{loaded} loaded, {failed} failed, in {:.0} ms",
        started.elapsed().as_secs_f64() * 1e3
    );
    Ok(())
}

/// Starts a tiny HTTP/1.1 server on an ephemeral port and returns its base URL. It serves a handful
/// of pages (`/slow` answers after 300 ms, to show the downloads overlap) and 404 for anything else.
fn serve_sample_pages() -> std::io::Result<String> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let base = format!("http://{}", listener.local_addr()?);
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                // A client that hangs up early is not the server's problem.
                let _ = answer(stream);
            });
        }
    });
    Ok(base)
}

fn answer(mut stream: TcpStream) -> std::io::Result<()> {
    let mut request_line = String::new();
    let mut reader = BufReader::new(stream.try_clone()?);
    reader.read_line(&mut request_line)?;
    // Skip the headers up to the blank line.
    let mut header = String::new();
    while reader.read_line(&mut header)? > 2 {
        header.clear();
    }
    let path = request_line.split_whitespace().nth(1).unwrap_or("/");
    let page = match path {
        "/" => Some("Sample pages for the executor example"),
        "/rust" => Some("Rust: fearless concurrency"),
        "/python" => Some("concurrent.futures — Launching parallel tasks"),
        "/slow" => {
            std::thread::sleep(Duration::from_millis(300));
            Some("A slow page, fetched concurrently with the others")
        }
        _ => None,
    };
    let (status, body) = match page {
        Some(title) => (
            "200 OK",
            format!("<!doctype html><html><head><title>{title}</title></head><body><p>{title}</p></body></html>"),
        ),
        None => ("404 Not Found", "<html><body>no such page</body></html>".to_string()),
    };
    write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    stream.flush()
}
