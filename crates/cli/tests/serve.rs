//! `convnet serve` end to end: every endpoint and error code, batching of concurrent
//! requests, the bounded queue's 503, and a graceful stop on SIGTERM.

#![cfg(unix)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn convnet(args: &[&str], cwd: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_convnet"))
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("convnet runs")
}

/// A tiny two-class model, trained for one epoch.
fn checkpoint(d: &Path) -> PathBuf {
    for (c, v) in [("dark", 40u8), ("light", 210u8)] {
        std::fs::create_dir_all(d.join("data").join(c)).unwrap();
        for i in 0..6u8 {
            image::GrayImage::from_fn(28, 28, |x, _| image::Luma([v + (x as u8 % 8) + i]))
                .save(d.join("data").join(c).join(format!("{i}.png")))
                .unwrap();
        }
    }
    let o = convnet(
        &[
            "train",
            "--model",
            "mnist-cnn",
            "--data",
            "data",
            "--epochs",
            "1",
            "--out",
            "run",
        ],
        d,
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    d.join("run")
}

/// Starts the server on a free port; returns it and the port it printed.
fn serve(run: &Path, extra: &[&str]) -> (Child, u16) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_convnet"))
        .arg("serve")
        .arg(run)
        .args(["--port", "0"])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port = line
        .split("http://127.0.0.1:")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no port in {line:?}"));
    (child, port)
}

/// One HTTP/1.1 request on a fresh connection: (status, JSON body).
fn http(
    port: u16,
    method: &str,
    path: &str,
    content_type: &str,
    body: &[u8],
) -> (u16, serde_json::Value) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .unwrap();
    // A large body may be refused before it is all sent.
    let _ = s.write_all(body);
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw);
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status in {text:?}"));
    let body = text.split_once("\r\n\r\n").map(|x| x.1).unwrap_or("");
    (
        status,
        serde_json::from_str(body).unwrap_or(serde_json::Value::Null),
    )
}

fn png(d: &Path) -> Vec<u8> {
    std::fs::read(d.join("data/light/0.png")).unwrap()
}

fn sigterm_and_wait(mut child: Child) -> String {
    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "server exited with {status}");
            let mut out = String::new();
            child
                .stdout
                .take()
                .unwrap()
                .read_to_string(&mut out)
                .unwrap();
            return out;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "no exit on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn endpoints_errors_batching_and_graceful_stop() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let run = checkpoint(d);
    let (child, port) = serve(
        &run,
        &[
            "--max-batch",
            "8",
            "--max-wait-ms",
            "30",
            "--max-body-bytes",
            "100000",
        ],
    );
    let image = png(d);

    let (s, v) = http(port, "GET", "/health", "text/plain", b"");
    assert_eq!((s, v["status"].as_str()), (200, Some("ok")));
    let (s, v) = http(port, "GET", "/model", "text/plain", b"");
    assert_eq!(s, 200);
    assert_eq!(v["name"], "mnist-cnn");
    assert_eq!(v["classes"], serde_json::json!(["dark", "light"]));
    assert_eq!(v["input"]["height"], 28);

    let (s, v) = http(port, "POST", "/predict", "image/png", &image);
    assert_eq!(s, 200, "{v}");
    let top = v["top"].as_array().unwrap();
    assert_eq!(top.len(), 2);
    let total: f64 = top.iter().map(|t| t["probability"].as_f64().unwrap()).sum();
    assert!((total - 1.0).abs() < 1e-4, "{v}");
    assert_eq!(top[0]["class"], "light", "{v}");

    let mut form = b"--BOUND\r\nContent-Disposition: form-data; name=\"image\"; filename=\"x.png\"\r\nContent-Type: image/png\r\n\r\n".to_vec();
    form.extend(&image);
    form.extend(b"\r\n--BOUND--\r\n");
    let (s, v) = http(
        port,
        "POST",
        "/predict?top=1",
        "multipart/form-data; boundary=BOUND",
        &form,
    );
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["top"].as_array().unwrap().len(), 1);

    // Malformed and oversized requests: 4xx with a JSON error.
    for (path, ctype, body, want) in [
        ("/predict", "image/png", b"not an image".to_vec(), 400),
        (
            "/predict",
            "image/png",
            image[..image.len() / 2].to_vec(),
            400,
        ),
        ("/predict", "image/png", Vec::new(), 400),
        ("/predict", "multipart/form-data", image.clone(), 400),
        ("/predict?top=0", "image/png", image.clone(), 400),
        ("/predict", "image/png", vec![0u8; 200_000], 413),
        ("/nowhere", "image/png", Vec::new(), 404),
    ] {
        let (s, v) = http(port, "POST", path, ctype, &body);
        assert_eq!(s, want, "{path} {ctype} ({} bytes): {v}", body.len());
        assert!(v["error"].is_string(), "{v}");
    }
    let (s, _) = http(port, "GET", "/predict", "text/plain", b"");
    assert_eq!(s, 405);

    // Concurrent requests share forward passes.
    let batches: Vec<u64> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..16)
            .map(|_| scope.spawn(|| http(port, "POST", "/predict", "image/png", &image)))
            .collect();
        handles
            .into_iter()
            .map(|h| {
                let (s, v) = h.join().unwrap();
                assert_eq!(s, 200, "{v}");
                v["batch"].as_u64().unwrap()
            })
            .collect()
    });
    assert!(batches.iter().any(|&b| b > 1), "never batched: {batches:?}");
    assert!(batches.iter().all(|&b| b <= 8), "{batches:?}");

    let out = sigterm_and_wait(child);
    assert!(out.contains("stopped after 18 predictions"), "{out}");
}

#[test]
fn a_full_queue_answers_503() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let run = checkpoint(d);
    let (child, port) = serve(
        &run,
        &["--max-batch", "1", "--queue", "1", "--http-threads", "24"],
    );
    let image = png(d);
    let mut busy = 0;
    for _ in 0..5 {
        let codes: Vec<u16> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..48)
                .map(|_| scope.spawn(|| http(port, "POST", "/predict", "image/png", &image).0))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert!(codes.iter().all(|c| *c == 200 || *c == 503), "{codes:?}");
        busy += codes.iter().filter(|c| **c == 503).count();
        if busy > 0 {
            break;
        }
    }
    assert!(busy > 0, "the queue of 1 never overflowed");
    let (s, v) = http(port, "GET", "/health", "text/plain", b"");
    assert_eq!(s, 200);
    assert!(v["refused_busy"].as_u64().unwrap() >= busy as u64, "{v}");
    sigterm_and_wait(child);
}
