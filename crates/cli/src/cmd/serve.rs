//! `convnet serve`: an HTTP server for a trained model.
//!
//! `POST /predict` (an image as the raw body or as a multipart form field) answers the top-k
//! classes as JSON; `GET /health`; `GET /model` (name, classes, input spec). HTTP worker
//! threads decode and preprocess the images; one batching thread collects up to `--max-batch`
//! of them (waiting at most `--max-wait-ms` after the first) into one forward pass. The queue
//! in front of it is bounded: when it is full, `503`. SIGTERM or Ctrl-C stops accepting,
//! finishes the requests in flight, and exits.

use std::io::Read;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError, sync_channel};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use burn::module::Module;
use burn::tensor::{Device, Tensor, TensorData};
use convnet_data::Preprocess;
use convnet_eval::predict_top_k;
use convnet_nn::Network;
use convnet_train::Checkpoint;
use serde_json::{Value, json};
use tiny_http::{Header, Method, Request, Response, Server};

/// Options of `convnet serve`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// A run folder (its best.ckpt is used) or a checkpoint file.
    pub checkpoint: PathBuf,
    /// Port to listen on (0: any free port; the one chosen is printed).
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// Address to listen on (0.0.0.0 for every interface).
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Most images per forward pass (1 turns batching off).
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u64).range(1..=4096))]
    pub max_batch: u64,
    /// Longest wait for more requests after the first of a batch, in milliseconds.
    #[arg(long, default_value_t = 5)]
    pub max_wait_ms: u64,
    /// Requests waiting for the model at most; beyond that, 503.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub queue: u64,
    /// Largest request body, in bytes; beyond that, 413.
    #[arg(long, default_value_t = 8 << 20)]
    pub max_body_bytes: u64,
    /// Longest time a request may wait for its prediction, in milliseconds; beyond that, 504.
    #[arg(long, default_value_t = 30_000)]
    pub timeout_ms: u64,
    /// HTTP threads (each reads and decodes one request at a time) [default: 4 per core].
    #[arg(long, default_value_t = 0)]
    pub http_threads: usize,
    /// Classes per answer (`?top=K` overrides it per request).
    #[arg(long, default_value_t = 5)]
    pub top: usize,
    /// Compute device: cpu, cuda[:N], vulkan[:N] or wgpu[:vulkan|metal|dx12|gl].
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// CPU threads for the tensor kernels [default: one per core].
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
}

/// One preprocessed image waiting for the model, and where its answer goes.
struct Job {
    input: Vec<f32>,
    reply: SyncSender<Result<(Vec<f32>, usize), String>>,
}

/// What every HTTP thread shares.
struct Shared {
    preprocess: Preprocess,
    classes: Vec<String>,
    model_json: Value,
    queue: SyncSender<Job>,
    max_body: u64,
    timeout: Duration,
    top: usize,
    served: AtomicU64,
    rejected: AtomicU64,
    /// Prediction requests being read or decoded, not yet queued: the batcher waits for more
    /// only while some are coming, so a lone client pays no batching delay.
    arriving: Arc<AtomicUsize>,
}

/// An HTTP answer: status and JSON body.
type Answer = (u16, Value);

fn error(status: u16, message: impl Into<String>) -> Answer {
    (status, json!({ "error": message.into() }))
}

/// Loads the model once, serves until SIGTERM or Ctrl-C, then finishes what is in flight.
pub fn run(a: Args) -> Result<()> {
    crate::device::set_threads(a.threads);
    let device = crate::device::parse(&a.device)?;
    let path = super::resolve_checkpoint(&a.checkpoint)?;
    let ckpt = Checkpoint::load(&path, &device)?;
    if a.top == 0 {
        bail!("--top must be at least 1");
    }
    let meta = ckpt.meta.clone();
    let model_json = json!({
        "name": meta.model.name,
        "checkpoint": path.display().to_string(),
        "epoch": meta.epoch,
        "classes": meta.classes,
        "input": {
            "channels": meta.preprocess.channels,
            "height": meta.preprocess.size[0],
            "width": meta.preprocess.size[1],
            "mean": meta.preprocess.mean,
            "std": meta.preprocess.std,
        },
        "max_batch": a.max_batch,
        "max_wait_ms": a.max_wait_ms,
    });
    let (tx, rx) = sync_channel::<Job>(a.queue as usize);
    let arriving = Arc::new(AtomicUsize::new(0));
    let shared = Arc::new(Shared {
        preprocess: meta.preprocess.clone(),
        classes: meta.classes.clone(),
        model_json,
        queue: tx,
        max_body: a.max_body_bytes,
        timeout: Duration::from_millis(a.timeout_ms),
        top: a.top,
        served: AtomicU64::new(0),
        rejected: AtomicU64::new(0),
        arriving: arriving.clone(),
    });

    let addr: SocketAddr = format!("{}:{}", a.host, a.port)
        .parse()
        .with_context(|| format!("--host {} --port {}: not an address", a.host, a.port))?;
    let server = Server::http(addr).map_err(|e| {
        anyhow::anyhow!("cannot listen on {addr}: {e}; choose another --port (0 picks a free one)")
    })?;
    let server = Arc::new(server);
    let local = server
        .server_addr()
        .to_ip()
        .map(|a| a.to_string())
        .unwrap_or_else(|| addr.to_string());

    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = stop.clone();
        let _ = ctrlc::set_handler(move || {
            if stop.swap(true, Ordering::SeqCst) {
                std::process::exit(130);
            }
            eprintln!("stopping: finishing the requests in flight");
        });
    }

    let max_batch = a.max_batch as usize;
    let max_wait = Duration::from_millis(a.max_wait_ms);
    let sample = meta.preprocess.sample_len();
    let shape = [
        meta.preprocess.channels,
        meta.preprocess.size[0],
        meta.preprocess.size[1],
    ];
    let classes = meta.classes.len();
    let model = ckpt.model.valid();
    // The zoo's networks are large value types that Burn's module traversal moves around
    // recursively; like training, the forward passes run on a thread with a large stack.
    let batcher = std::thread::Builder::new()
        .name("convnet-batcher".into())
        .stack_size(256 << 20)
        .spawn(move || {
            let limits = BatchLimits {
                max_batch,
                max_wait,
                arriving,
            };
            batch_loop(&model, &device, rx, &limits, sample, shape, classes)
        })
        .context("cannot start the batching thread")?;

    let threads = if a.http_threads > 0 {
        a.http_threads
    } else {
        4 * std::thread::available_parallelism().map_or(2, |n| n.get())
    };
    let workers: Vec<_> = (0..threads)
        .map(|i| {
            let (server, shared, stop) = (server.clone(), shared.clone(), stop.clone());
            std::thread::Builder::new()
                .name(format!("convnet-http-{i}"))
                .spawn(move || http_loop(&server, &shared, &stop))
        })
        .collect::<std::io::Result<_>>()
        .context("cannot start the HTTP threads")?;
    println!(
        "serving {} ({} classes) on http://{local}  (POST /predict, GET /model, GET /health; max batch {max_batch}, max wait {} ms, queue {})",
        meta.model.name, classes, a.max_wait_ms, a.queue
    );

    for w in workers {
        let _ = w.join();
    }
    let served = shared.served.load(Ordering::SeqCst);
    let rejected = shared.rejected.load(Ordering::SeqCst);
    // The HTTP threads held the queue's other senders; this drop ends the batcher.
    drop(shared);
    let _ = batcher.join();
    println!("stopped after {served} predictions ({rejected} requests refused as busy)");
    Ok(())
}

fn http_loop(server: &Server, shared: &Shared, stop: &AtomicBool) {
    while !stop.load(Ordering::SeqCst) {
        match server.recv_timeout(Duration::from_millis(100)) {
            Ok(Some(req)) => handle(req, shared),
            Ok(None) => {}
            Err(_) => break,
        }
    }
}

fn handle(mut req: Request, shared: &Shared) {
    let (path, query) = match req.url().split_once('?') {
        Some((p, q)) => (p.to_string(), q.to_string()),
        None => (req.url().to_string(), String::new()),
    };
    let answer = match (req.method(), path.as_str()) {
        (Method::Get, "/health") => (
            200,
            json!({
                "status": "ok",
                "served": shared.served.load(Ordering::Relaxed),
                "refused_busy": shared.rejected.load(Ordering::Relaxed),
            }),
        ),
        (Method::Get, "/model") => (200, shared.model_json.clone()),
        (Method::Post, "/predict") => {
            shared.arriving.fetch_add(1, Ordering::SeqCst);
            let mut queued = false;
            let answer = predict(&mut req, &query, shared, &mut queued);
            if !queued {
                shared.arriving.fetch_sub(1, Ordering::SeqCst);
            }
            answer
        }
        (_, "/health" | "/model" | "/predict") => error(405, "method not allowed"),
        _ => error(
            404,
            format!("no such endpoint {path}; use POST /predict, GET /model or GET /health"),
        ),
    };
    let (status, body) = answer;
    let mut response = Response::from_string(body.to_string()).with_status_code(status);
    if let Ok(h) = Header::from_bytes("Content-Type", "application/json") {
        response = response.with_header(h);
    }
    if status == 503
        && let Ok(h) = Header::from_bytes("Retry-After", "1")
    {
        response = response.with_header(h);
    }
    let _ = req.respond(response);
}

/// Answers `POST /predict`; sets `queued` once the image is handed to the batcher (and
/// counted out of `arriving`).
fn predict(req: &mut Request, query: &str, shared: &Shared, queued: &mut bool) -> Answer {
    let top = match query
        .split('&')
        .find_map(|kv| kv.strip_prefix("top="))
        .map(str::parse::<usize>)
    {
        None => shared.top,
        Some(Ok(k)) if k > 0 => k,
        Some(_) => return error(400, "top must be a positive integer"),
    }
    .min(shared.classes.len());
    if req
        .body_length()
        .is_some_and(|n| n as u64 > shared.max_body)
    {
        return error(
            413,
            format!(
                "body larger than {} bytes (--max-body-bytes)",
                shared.max_body
            ),
        );
    }
    let mut body = Vec::new();
    if let Err(e) = req
        .as_reader()
        .take(shared.max_body + 1)
        .read_to_end(&mut body)
    {
        return error(400, format!("cannot read the body: {e}"));
    }
    if body.len() as u64 > shared.max_body {
        return error(
            413,
            format!(
                "body larger than {} bytes (--max-body-bytes)",
                shared.max_body
            ),
        );
    }
    let content_type = req
        .headers()
        .iter()
        .find(|h| h.field.equiv("Content-Type"))
        .map(|h| h.value.as_str().to_string())
        .unwrap_or_default();
    let image_bytes = if content_type.starts_with("multipart/form-data") {
        match multipart_file(&body, &content_type) {
            Ok(b) => b,
            Err(e) => return error(400, e),
        }
    } else {
        &body[..]
    };
    if image_bytes.is_empty() {
        return error(
            400,
            "empty body; send an image (raw or as a multipart field)",
        );
    }
    let img = match convnet_data::folder::decode_bytes(image_bytes) {
        Ok(i) => i,
        Err(e) => return error(400, format!("not a readable image: {e}")),
    };
    let mut input = vec![0f32; shared.preprocess.sample_len()];
    shared.preprocess.apply(&img, &mut input);
    let (reply, answer) = sync_channel(1);
    // Counted out of `arriving` before the batcher can see it, so it never waits for itself.
    shared.arriving.fetch_sub(1, Ordering::SeqCst);
    *queued = true;
    match shared.queue.try_send(Job { input, reply }) {
        Ok(()) => {}
        Err(TrySendError::Full(_)) => {
            shared.rejected.fetch_add(1, Ordering::Relaxed);
            return error(503, "busy: the queue is full; retry later");
        }
        Err(TrySendError::Disconnected(_)) => return error(503, "shutting down"),
    }
    match answer.recv_timeout(shared.timeout) {
        Ok(Ok((logits, batch))) => {
            shared.served.fetch_add(1, Ordering::Relaxed);
            let k = shared.classes.len();
            let top = &predict_top_k(&logits, k, top)[0];
            (
                200,
                json!({
                    "top": top.iter().map(|(c, p)| json!({"class": shared.classes[*c], "index": c, "probability": p})).collect::<Vec<_>>(),
                    "batch": batch,
                }),
            )
        }
        Ok(Err(e)) => error(500, e),
        Err(RecvTimeoutError::Timeout) => {
            error(504, "the model did not answer in time (--timeout-ms)")
        }
        Err(RecvTimeoutError::Disconnected) => error(503, "shutting down"),
    }
}

/// The bytes of the file in a `multipart/form-data` body: the first part with a file name
/// (or named `image`/`file`), else the first part.
fn multipart_file<'a>(body: &'a [u8], content_type: &str) -> Result<&'a [u8], String> {
    let boundary = content_type
        .split(';')
        .find_map(|p| p.trim().strip_prefix("boundary="))
        .map(|b| b.trim_matches('"'))
        .filter(|b| !b.is_empty())
        .ok_or("multipart body without a boundary")?;
    let delimiter = format!("--{boundary}");
    let d = delimiter.as_bytes();
    let find = |hay: &[u8], needle: &[u8], from: usize| -> Option<usize> {
        hay.get(from..)?
            .windows(needle.len())
            .position(|w| w == needle)
            .map(|p| p + from)
    };
    let mut parts = Vec::new();
    let mut at = find(body, d, 0).ok_or("multipart body without its boundary")?;
    loop {
        let start = at + d.len();
        if body.get(start..start + 2) == Some(b"--") {
            break;
        }
        let Some(next) = find(body, d, start) else {
            break;
        };
        let part = &body[start..next];
        let part = part.strip_prefix(b"\r\n").unwrap_or(part);
        let part = part.strip_suffix(b"\r\n").unwrap_or(part);
        if let Some(h) = find(part, b"\r\n\r\n", 0) {
            let headers = String::from_utf8_lossy(&part[..h]).to_lowercase();
            parts.push((headers, &part[h + 4..]));
        }
        at = next;
    }
    let chosen = parts
        .iter()
        .find(|(h, _)| {
            h.contains("filename=") || h.contains("name=\"image\"") || h.contains("name=\"file\"")
        })
        .or(parts.first())
        .ok_or("multipart body without a part")?;
    Ok(chosen.1)
}

/// When a batch is complete.
struct BatchLimits {
    max_batch: usize,
    max_wait: Duration,
    arriving: Arc<AtomicUsize>,
}

/// Collects jobs into batches and runs them through the model until every sender is gone.
/// A batch closes at `max_batch` jobs, after `max_wait`, or as soon as the queue is empty and
/// no request is on its way.
fn batch_loop(
    model: &Network,
    device: &Device,
    rx: Receiver<Job>,
    limits: &BatchLimits,
    sample: usize,
    shape: [usize; 3],
    classes: usize,
) {
    while let Ok(first) = rx.recv() {
        let mut jobs = vec![first];
        let deadline = Instant::now() + limits.max_wait;
        while jobs.len() < limits.max_batch {
            if let Ok(j) = rx.try_recv() {
                jobs.push(j);
                continue;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || limits.arriving.load(Ordering::SeqCst) == 0 {
                break;
            }
            if let Ok(j) = rx.recv_timeout(left.min(Duration::from_micros(200))) {
                jobs.push(j);
            }
        }
        let n = jobs.len();
        let mut images = Vec::with_capacity(n * sample);
        for j in &jobs {
            images.extend_from_slice(&j.input);
        }
        let x = Tensor::<4>::from_data(
            TensorData::new(images, [n, shape[0], shape[1], shape[2]]),
            device,
        );
        let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            model.forward(x).into_data().try_to_vec::<f32>()
        }));
        match run {
            Ok(Ok(logits)) => {
                for (j, row) in jobs.into_iter().zip(logits.chunks_exact(classes)) {
                    let _ = j.reply.try_send(Ok((row.to_vec(), n)));
                }
            }
            Ok(Err(e)) => {
                for j in jobs {
                    let _ = j.reply.try_send(Err(format!("model output: {e:?}")));
                }
            }
            Err(_) => {
                for j in jobs {
                    let _ = j.reply.try_send(Err(
                        "the forward pass failed (out of memory?); lower --max-batch".into(),
                    ));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multipart_bodies_yield_the_file_part() {
        let body = b"--XyZ\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nhello\r\n--XyZ\r\nContent-Disposition: form-data; name=\"image\"; filename=\"a.png\"\r\nContent-Type: image/png\r\n\r\n\x89PNG\r\n--XyZ--\r\n";
        let got = multipart_file(body, "multipart/form-data; boundary=XyZ").unwrap();
        assert_eq!(got, b"\x89PNG");
        assert!(multipart_file(body, "multipart/form-data").is_err());
        assert!(multipart_file(b"no parts", "multipart/form-data; boundary=XyZ").is_err());
    }
}
