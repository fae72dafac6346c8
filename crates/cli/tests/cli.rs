//! The `convnet` binary end to end: a real (small) Fashion-MNIST image folder through train,
//! eval and predict, and bad input giving one clear message without a panic.

use std::path::Path;
use std::process::{Command, Output};

fn convnet(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_convnet"))
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("convnet runs")
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// Fails unless the command failed with a message containing every `needle` and no panic.
fn assert_clean_error(o: &Output, needles: &[&str]) {
    let (out, err) = text(o);
    assert!(
        !o.status.success(),
        "expected failure, got success:\n{out}\n{err}"
    );
    assert!(!err.contains("panicked"), "panic:\n{err}");
    assert!(
        err.starts_with("error: "),
        "one error line expected:\n{err}"
    );
    for n in needles {
        assert!(err.contains(n), "'{n}' not in:\n{err}");
    }
}

fn fashion_installed() -> bool {
    let ok = Path::new("/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz").exists();
    if !ok {
        eprintln!(
            "skipped: Debian package dataset-fashion-mnist not installed (scripts/test installs it)"
        );
    }
    ok
}

#[test]
fn bad_paths_and_files_give_one_clear_message() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    assert_clean_error(
        &convnet(&["train", "--data", "/no/such/folder", "--epochs", "1"], d),
        &["/no/such/folder"],
    );
    assert_clean_error(
        &convnet(&["eval", "missing-run"], d),
        &["missing-run", "no such file"],
    );
    std::fs::write(d.join("notes.ckpt"), "hello").unwrap();
    assert_clean_error(
        &convnet(&["eval", "notes.ckpt", "--data", "mnist"], d),
        &["notes.ckpt", "not a convnet checkpoint"],
    );
    assert_clean_error(
        &convnet(&["train", "--model", "resnet9000"], d),
        &["unknown model 'resnet9000'"],
    );
    std::fs::create_dir_all(d.join("data/cat")).unwrap();
    std::fs::create_dir_all(d.join("data/dog")).unwrap();
    image::GrayImage::new(4, 4)
        .save(d.join("data/cat/a.png"))
        .unwrap();
    assert_clean_error(
        &convnet(&["train", "--data", "data"], d),
        &["dog", "no images"],
    );
    assert_clean_error(&convnet(&["train", "--input-size", "big"], d), &["HxW"]);
    assert_clean_error(&convnet(&["train", "--lr=0"], d), &["--lr"]);
    assert_clean_error(
        &convnet(&["train", "--resume", "nowhere"], d),
        &["nowhere", "config.json"],
    );
}

#[test]
fn image_folder_train_eval_predict() {
    if !fashion_installed() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let o = convnet(
        &[
            "data",
            "export",
            "--data",
            "fashion-mnist",
            "--split",
            "test",
            "--per-class",
            "80",
            "--out",
            "imgs",
        ],
        d,
    );
    assert!(o.status.success(), "{:?}", text(&o));
    let o = convnet(
        &[
            "train",
            "--model",
            "mnist-cnn",
            "--data",
            "imgs",
            "--class-map",
            "imgs/cat_to_name.json",
            "--epochs",
            "4",
            "--val-split",
            "0.2",
            "--out",
            "run",
        ],
        d,
    );
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}\n{err}");
    let history = std::fs::read_to_string(d.join("run/history.csv")).unwrap();
    assert_eq!(history.lines().count(), 5, "{history}");
    let last_val_acc: f64 = history
        .lines()
        .last()
        .unwrap()
        .split(',')
        .nth(5)
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        last_val_acc > 0.6,
        "validation accuracy {last_val_acc} after 4 epochs on 640 images"
    );

    let o = convnet(&["eval", "run", "--json"], d);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}\n{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["samples"], 800);
    assert_eq!(v["classes"][0], "T-shirt/top");
    assert!(
        v["top1"].as_f64().unwrap() > 0.6
            && v["top5"].as_f64().unwrap() >= v["top1"].as_f64().unwrap()
    );
    assert!(d.join("run/confusion.png").exists());

    // Predict: a good image, a truncated one (warned about and skipped), JSON output.
    let good = std::fs::read_dir(d.join("imgs/1_Trouser"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let bytes = std::fs::read(&good).unwrap();
    std::fs::write(d.join("broken.png"), &bytes[..bytes.len() / 2]).unwrap();
    let o = convnet(
        &[
            "predict",
            "run",
            good.to_str().unwrap(),
            "broken.png",
            "--top",
            "3",
            "--json",
        ],
        d,
    );
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}\n{err}");
    assert!(
        err.contains("broken.png") && !err.contains("panicked"),
        "{err}"
    );
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 1);
    let top = v[0]["top"].as_array().unwrap();
    assert_eq!(top.len(), 3);
    let total: f64 = top.iter().map(|t| t["probability"].as_f64().unwrap()).sum();
    assert!(total <= 1.0 + 1e-6);

    // Evaluating on data with another class count is refused.
    std::fs::create_dir_all(d.join("two/a")).unwrap();
    std::fs::create_dir_all(d.join("two/b")).unwrap();
    std::fs::copy(&good, d.join("two/a/x.png")).unwrap();
    std::fs::copy(&good, d.join("two/b/x.png")).unwrap();
    assert_clean_error(
        &convnet(&["eval", "run", "--data", "two"], d),
        &["2 classes", "10"],
    );
    // A run folder is not overwritten by a new run.
    assert_clean_error(
        &convnet(&["train", "--data", "imgs", "--out", "run"], d),
        &["--resume"],
    );
}
