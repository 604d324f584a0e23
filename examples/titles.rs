//! The seed program: fetch the `<title>` of several web pages concurrently.
//!
//! ```sh
//! cargo run --example titles                       # offline: serves its own sample pages
//! cargo run --example titles -- --process           # the same block on worker processes
//! cargo run --example titles -- https://example.com https://www.rust-lang.org
//! ```
//!
//! Each download is one call of `get_title(url)`, which returns only the title; the block maps it
//! over the URLs with `map_unordered`, which hands back each title beside its URL as it arrives
//! (Python's course wanted "a way to figure out what the url was"). Titles print above a progress
//! bar over the pages; a page that fails to load prints its error beside its URL and the others
//! still print.
//!
//! The backend has a name, declared once: `Fetch` (threads) or `Isolated` (worker processes). The
//! block is written once and opened under whichever name `--process` picks, so the two runs differ
//! in one word; the last line shows which process ids the workers had. A program that wants one
//! backend for good names it once and puts a `cfg` or a cargo feature on the declaration.
//!
//! With no arguments it starts a small HTTP server on `127.0.0.1` (an ephemeral port) with a few
//! sample pages, one of them slow and one missing, so it runs without a network.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use concurrent_futures::{backend, pool};
use indicatif::{ProgressBar, ProgressStyle};
use scraper::{Html, Selector};

backend!(Fetch = Thread(max_workers = 8));
backend!(Isolated = Process(max_workers = 4));

/// Downloads `url` and extracts its `<title>`. Runs on a pool worker.
fn get_title(url: String) -> Result<String, String> {
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
    Ok(document
        .select(&selector)
        .next()
        .map(|t| t.text().collect::<String>().trim().to_string())
        .unwrap_or_else(|| "(no <title>)".to_string()))
}

/// What the block found: pages loaded and failed, and the process ids of its workers.
struct Report {
    loaded: usize,
    failed: usize,
    worker_pids: BTreeSet<u32>,
}

/// The block, written once for both names: each title prints beside its URL as it arrives.
macro_rules! fetch_titles {
    ($backend:ident, $urls:expr, $progress:ident) => {
        pool!($backend => {
            let (mut loaded, mut failed) = (0, 0);
            for (url, title) in map_unordered(get_title, $urls) {
                // A task that panicked, or a worker that crashed, is an error of its own.
                match title.map_err(|e| e.to_string()).and_then(|t| t) {
                    Ok(title) => {
                        loaded += 1;
                        say(&$progress, format!("{url} -> {title:?}"));
                    }
                    Err(error) => {
                        failed += 1;
                        say(&$progress, format!("{url} -> error: {error}"));
                    }
                }
                $progress.inc(1);
            }
            let pids: Vec<_> = (0..4).map(|_| submit(std::process::id)).collect();
            let worker_pids = pids.into_iter().filter_map(|f| f.result().ok()).collect();
            Report { loaded, failed, worker_pids }
        })
    };
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
    let progress = ProgressBar::new(urls.len() as u64).with_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} pages")
            .expect("a valid progress template"),
    );
    // One block, two names: the runs differ in one word.
    let report = if on_processes {
        fetch_titles!(Isolated, urls, progress)
    } else {
        fetch_titles!(Fetch, urls, progress)
    };
    progress.finish_and_clear();
    println!(
        "{} loaded, {} failed, in {:.0} ms, on workers with process ids {:?}",
        report.loaded,
        report.failed,
        started.elapsed().as_secs_f64() * 1e3,
        report.worker_pids
    );
    Ok(())
}

/// Prints a line above the progress bar; plainly when there is no terminal to draw the bar on
/// (output piped to a file), where indicatif would drop it.
fn say(progress: &ProgressBar, line: String) {
    if progress.is_hidden() {
        println!("{line}");
    } else {
        progress.println(line);
    }
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
