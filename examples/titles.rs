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
//! Titles print as they arrive (`as_completed`), above a progress bar over the pages.
//! With `--process` the same block runs as `pool!(Process => ...)`: one word changes, and the trace
//! shows a different process id per worker. A page that fails to load prints its error beside its
//! URL and the others still print.
//!
//! With no arguments it starts a small HTTP server on `127.0.0.1` (an ephemeral port) with a few
//! sample pages, one of them slow and one missing, so it runs without a network.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use executor::{as_completed, current_worker, pool, Future, TaskError};
use indicatif::{ProgressBar, ProgressStyle};
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

/// One page's outcome: its URL, and its title or why it failed to load.
type Page = (String, Result<Fetched, String>);

/// Downloads `url` and extracts its `<title>`. Runs on a pool worker.
fn get_page(url: String) -> Page {
    let fetched = get_title(&url);
    (url, fetched)
}

fn get_title(url: &str) -> Result<Fetched, String> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into();
    let body = agent
        .get(url)
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
    let progress = ProgressBar::new(urls.len() as u64).with_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} pages")
            .expect("a valid progress template"),
    );
    // The two blocks differ in one word.
    let (loaded, failed) = if on_processes {
        pool!(Process => {
            let work: Vec<_> = urls.iter().map(|u| submit(get_page, u.clone())).collect();
            report(work, &progress)?
        })
    } else {
        pool!(Thread => {
            let work: Vec<_> = urls.iter().map(|u| submit(get_page, u.clone())).collect();
            report(work, &progress)?
        })
    };
    progress.finish_and_clear();
    println!(
        "{loaded} loaded, {failed} failed, in {:.0} ms",
        started.elapsed().as_secs_f64() * 1e3
    );
    Ok(())
}

/// Prints each page as its download finishes, above the progress bar; counts loaded and failed.
fn report(work: Vec<Future<Page>>, progress: &ProgressBar) -> Result<(usize, usize), TaskError> {
    let (mut loaded, mut failed) = (0, 0);
    for future in as_completed(work, None) {
        // No timeout was given, so the iterator never yields a timeout.
        let future = future.expect("no timeout");
        // `?` lifts a task failure (a panic, or a crashed worker) into main's error.
        let (url, page) = future.result()?;
        match page {
            Ok(page) => {
                loaded += 1;
                say(
                    progress,
                    format!("{url} -> {:?}  [{}]", page.title, page.worker),
                );
            }
            Err(error) => {
                failed += 1;
                say(progress, format!("{url} -> error: {error}"));
            }
        }
        progress.inc(1);
    }
    Ok((loaded, failed))
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
