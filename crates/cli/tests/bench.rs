//! `convnet bench`'s JSON line, which `bench/run.sh`, `bench/compare.sh` and `bench/suite.sh`
//! read: one tiny step of each kind, parsed back.

use std::process::Command;

/// Runs `convnet bench ARGS` and returns its last stdout line parsed as JSON.
fn bench(args: &[&str]) -> serde_json::Value {
    let o = Command::new(env!("CARGO_BIN_EXE_convnet"))
        .arg("bench")
        .args(args)
        .output()
        .expect("convnet runs");
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{out}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let last = out.lines().last().expect("one line");
    // The shell runners pick fields out with `sed 's/.*"images_per_sec": \([0-9.]*\).*/\1/'`.
    assert!(last.contains("\"images_per_sec\": "), "{last}");
    serde_json::from_str(last).unwrap_or_else(|e| panic!("{e}: {last}"))
}

/// `bench` of one untimed-warm-up-free step of batch 2 on one thread, plus `args`.
fn tiny(model: &str, args: &[&str]) -> serde_json::Value {
    let mut all = vec!["--model", model, "--steps", "1", "--warmup", "0"];
    all.extend(["--batch-size", "2", "--threads", "1"]);
    all.extend(args);
    bench(&all)
}

#[test]
fn train_step_with_adam_reports_throughput_and_memory() {
    let v = tiny("mnist-cnn", &[]);
    assert_eq!(v["mode"], "train");
    assert_eq!(v["optimizer"], "adam");
    assert_eq!(v["input"], serde_json::json!([1, 28, 28]));
    assert_eq!(v["classes"], 10);
    assert_eq!(v["batch"], 2);
    assert!(v["images_per_sec"].as_f64().unwrap() > 0.0, "{v}");
    assert!(v["step_ms"].as_f64().unwrap() > 0.0, "{v}");
    if cfg!(target_os = "linux") {
        assert!(v["peak_rss_mb"].as_f64().unwrap() > 1.0, "{v}");
    }
}

#[test]
fn input_size_channels_classes_and_sgd_are_honoured() {
    let v = tiny(
        "small-cnn",
        &[
            "--input-size",
            "12x16",
            "--in-channels",
            "3",
            "--num-classes",
            "5",
            "--optimizer",
            "sgd",
            "--momentum",
            "0.9",
        ],
    );
    assert_eq!(v["optimizer"], "sgd");
    assert_eq!(v["input"], serde_json::json!([3, 12, 16]));
    assert_eq!(v["classes"], 5);
    assert!(v["images_per_sec"].as_f64().unwrap() > 0.0, "{v}");

    let v = tiny("small-cnn", &["--inference"]);
    assert_eq!(v["mode"], "inference");
    assert!(v["optimizer"].is_null());
    assert!(v["images_per_sec"].as_f64().unwrap() > 0.0, "{v}");
}

#[test]
fn bad_sizes_are_clean_errors() {
    let o = Command::new(env!("CARGO_BIN_EXE_convnet"))
        .args(["bench", "--steps", "0"])
        .output()
        .expect("convnet runs");
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("--steps") && !err.contains("panicked"),
        "{err}"
    );
    let o = Command::new(env!("CARGO_BIN_EXE_convnet"))
        .args(["bench", "--input-size", "32"])
        .output()
        .expect("convnet runs");
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("HxW"));
}
