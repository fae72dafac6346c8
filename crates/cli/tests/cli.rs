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

/// Exports `per_class` Fashion-MNIST test images per class as a PNG class folder `d/out`.
fn export_fashion_test(d: &Path, per_class: usize, out: &str) {
    let n = per_class.to_string();
    let args = [
        "data",
        "export",
        "--data",
        "fashion-mnist",
        "--split",
        "test",
    ];
    let o = convnet(&[&args[..], &["--per-class", &n, "--out", out]].concat(), d);
    assert!(o.status.success(), "{:?}", text(&o));
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
    export_fashion_test(d, 80, "imgs");
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

#[test]
fn augment_writes_a_grid_of_the_image_and_its_versions() {
    let dir = tempfile::tempdir().unwrap();
    for (class, shade) in [("a", 40u8), ("b", 200u8)] {
        std::fs::create_dir_all(dir.path().join("data").join(class)).unwrap();
        for i in 0..2u8 {
            let img = image::RgbImage::from_fn(30, 20, |x, y| {
                image::Rgb([shade, (x * 8) as u8, (y * 12 + i as u32) as u8])
            });
            img.save(dir.path().join(format!("data/{class}/{i}.png")))
                .unwrap();
        }
    }
    let o = convnet(
        &[
            "augment",
            "--data",
            "data",
            "--augment",
            "rotate=30,hflip,shift=0.2,zoom=0.2",
            "--n",
            "5",
            "--index",
            "1",
            "--out",
            "grid.png",
        ],
        dir.path(),
    );
    assert!(o.status.success(), "{:?}", text(&o));
    // 6 cells of 30x20 in a 3-column grid with 4-pixel gaps: 3*30+4*4 by 2*20+3*4.
    let grid = image::open(dir.path().join("grid.png")).unwrap();
    assert_eq!((grid.width(), grid.height()), (106, 52));
    // A crop pipeline gives cells of the crop size; the original (30x20) sets the cell size.
    let o = convnet(
        &[
            "augment",
            "--data",
            "data",
            "--augment",
            "rrc=16",
            "--n",
            "3",
            "--out",
            "g2.png",
        ],
        dir.path(),
    );
    assert!(o.status.success(), "{:?}", text(&o));
    let g2 = image::open(dir.path().join("g2.png")).unwrap();
    assert_eq!((g2.width(), g2.height()), (2 * 30 + 3 * 4, 2 * 20 + 3 * 4));
    assert_clean_error(
        &convnet(
            &["augment", "--data", "data", "--augment", "hflip,twirl=3"],
            dir.path(),
        ),
        &["twirl", "valid keys"],
    );
    assert_clean_error(
        &convnet(
            &[
                "augment",
                "--data",
                "data",
                "--augment",
                "hflip",
                "--index",
                "99",
            ],
            dir.path(),
        ),
        &["--index 99", "4 training images"],
    );
}

/// Counts `needle` in `hay`.
fn count(hay: &str, needle: &str) -> usize {
    hay.matches(needle).count()
}

/// The value of `attr="…"` in `html`, if any.
fn attr(html: &str, attr: &str) -> Option<String> {
    let start = html.find(&format!("{attr}=\""))? + attr.len() + 2;
    Some(html[start..].split('"').next()?.to_string())
}

/// Evaluation features end to end on a small Fashion-MNIST folder: the training run's
/// report.html (opened in headless Chromium when installed) and TensorBoard events, eval with
/// ten-crop and an ensemble, dense refused for a flatten head, predict --grid with stdin
/// paths, compare, and both raw-pixel baselines.
#[test]
fn eval_report_tensorboard_tta_grid_compare_baselines() {
    if !fashion_installed() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let ok = |args: &[&str]| {
        let o = convnet(args, d);
        let (out, err) = text(&o);
        assert!(o.status.success(), "{args:?}\n{out}\n{err}");
        out
    };
    export_fashion_test(d, 30, "imgs");
    let out = ok(&[
        "train",
        "--model",
        "mnist-cnn",
        "--data",
        "imgs",
        "--class-map",
        "imgs/cat_to_name.json",
        "--epochs",
        "2",
        "--val-split",
        "0.2",
        "--out",
        "run",
    ]);
    assert!(out.contains("report.html"), "{out}");

    // TensorBoard: one event file whose scalars are the history's.
    let events: Vec<_> = std::fs::read_dir(d.join("run"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .starts_with("events.out.tfevents.")
        })
        .collect();
    assert_eq!(events.len(), 1, "{events:?}");
    let scalars =
        convnet_train::tensorboard::read_scalars(&std::fs::read(&events[0]).unwrap()).unwrap();
    let history = convnet_train::History::from_csv(
        &std::fs::read_to_string(d.join("run/history.csv")).unwrap(),
    )
    .unwrap();
    for r in &history.rows {
        let get = |tag: &str| {
            scalars
                .iter()
                .find(|(s, t, _)| *s == r.epoch as i64 && t == tag)
                .unwrap_or_else(|| panic!("{tag} of epoch {} missing", r.epoch))
                .2
        };
        assert!((get("train/loss") as f64 - r.train_loss).abs() < 1e-4);
        assert!((get("val/acc") as f64 - r.val_acc).abs() < 1e-4);
        assert!((get("lr") as f64 - r.lr).abs() < 1e-9);
    }
    // TensorBoard's own reader, when the Python venv has it.
    let python = std::env::var("CONVNET_PYTHON").unwrap_or_else(|_| {
        format!(
            "{}/.cache/convnet-torch-venv/bin/python",
            std::env::var("HOME").unwrap_or_default()
        )
    });
    let script = "import sys\nfrom tensorboard.backend.event_processing.event_accumulator import EventAccumulator as E\n\
                  a = E(sys.argv[1]); a.Reload(); t = a.Tags()['scalars']\n\
                  print(sorted(t)); print(len(a.Scalars('val/acc')), a.Scalars('val/acc')[-1].value)";
    match Command::new(&python)
        .args(["-c", "import tensorboard"])
        .output()
    {
        Ok(o) if o.status.success() => {
            let o = Command::new(&python)
                .args(["-c", script, d.join("run").to_str().unwrap()])
                .output()
                .unwrap();
            let (out, err) = text(&o);
            assert!(o.status.success(), "{out}\n{err}");
            assert!(
                out.contains("'train/loss'") && out.contains("'lr'"),
                "{out}"
            );
            let last = history.rows.last().unwrap().val_acc;
            let line = out.lines().nth(1).unwrap();
            let v: f64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
            assert!(line.starts_with("2 ") && (v - last).abs() < 1e-4, "{out}");
        }
        _ => eprintln!(
            "skipped: tensorboard is not installed for {python}; event file checked by convnet's own reader only"
        ),
    }

    // report.html: self-contained, three pictures, the per-class table.
    let html = std::fs::read_to_string(d.join("run/report.html")).unwrap();
    let imgs = count(&html, "<img ");
    assert_eq!(imgs, 3, "curves, confusion matrix, sample predictions");
    assert_eq!(count(&html, "src=\"data:image/png;base64,"), imgs);
    assert!(
        !html.contains("src=\"http") && html.contains("Trouser") && html.contains("macro average")
    );
    assert!(html.contains("images/s"));
    let chromium = ["chromium", "chromium-browser"].into_iter().find(|b| {
        Command::new(b)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    });
    match chromium {
        Some(b) => {
            let url = format!("file://{}", d.join("run/report.html").display());
            let o = Command::new(b)
                .args([
                    "--headless",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--virtual-time-budget=5000",
                    "--dump-dom",
                    &url,
                ])
                .output()
                .unwrap();
            let dom = String::from_utf8_lossy(&o.stdout);
            assert_eq!(
                attr(&dom, "data-images-broken").as_deref(),
                Some("0"),
                "{}",
                text(&o).1
            );
            assert_eq!(attr(&dom, "data-images-loaded"), Some(imgs.to_string()));
        }
        None => {
            assert!(
                std::env::var("CONVNET_REQUIRE_BROWSER").as_deref() != Ok("1"),
                "CONVNET_REQUIRE_BROWSER=1 but chromium is not installed"
            );
            eprintln!("skipped: chromium not installed; report.html not opened in a browser");
        }
    }

    // Ten-crop and an ensemble (the same run twice: identical to the single model).
    let out = ok(&[
        "eval", "run", "run", "--tta", "ten-crop", "--tta", "hflip", "--json", "--out", "ens",
    ]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["tta"], "ten-crop");
    let variants = v["variants"].as_array().unwrap();
    assert_eq!(variants.len(), 9, "2 models x 3 modes + the ensemble's 3");
    let acc = |name: &str| {
        variants
            .iter()
            .find(|x| x["name"] == name)
            .unwrap_or_else(|| panic!("{name}"))["top1"]
            .as_f64()
            .unwrap()
    };
    assert!((acc("ensemble of 2 center") - acc("model 1 center")).abs() < 1e-9);
    assert!((acc("ensemble of 2 ten-crop") - v["top1"].as_f64().unwrap()).abs() < 1e-9);
    // Ten-crop of a 2-epoch model is weak (its training never saw crops or flips): ask only
    // for better than chance (macro F1 0.1 for 10 classes) and a valid calibration error.
    let (ece, f1) = (
        v["ece"].as_f64().unwrap(),
        v["macro"]["f1"].as_f64().unwrap(),
    );
    assert!(
        (0.0..=1.0).contains(&ece) && f1 > 0.15,
        "ECE {ece}, macro F1 {f1}"
    );
    for f in ["eval.json", "confusion.png", "samples.png", "report.html"] {
        assert!(d.join("ens").join(f).exists(), "{f}");
    }
    assert_clean_error(
        &convnet(&["eval", "run", "--tta", "dense"], d),
        &["dense", "global average pooling"],
    );
    assert_clean_error(
        &convnet(&["eval", "run", "--tta", "multi-scale=x"], d),
        &["multi-scale"],
    );

    // predict --grid, with paths from stdin.
    let files: Vec<String> = std::fs::read_dir(d.join("imgs/1_Trouser"))
        .unwrap()
        .take(6)
        .map(|e| e.unwrap().path().display().to_string())
        .collect();
    let mut child = Command::new(env!("CARGO_BIN_EXE_convnet"))
        .args(["predict", "run", "-", "--grid", "grid.png", "--top", "2"])
        .current_dir(d)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(files.join("\n").as_bytes())
        .unwrap();
    let o = child.wait_with_output().unwrap();
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}\n{err}");
    assert_eq!(out.lines().count(), 6, "{out}");
    assert!(err.contains("with a known class right"), "{err}");
    let g = image::open(d.join("grid.png")).unwrap().to_rgb8();
    assert_eq!((g.width(), g.height()), (150 * 6, 160));
    let coloured = g
        .pixels()
        .filter(|p| (p[2] > 180 && p[0] < 60) || (p[0] > 180 && p[2] < 60))
        .count();
    assert!(coloured > 50, "blue or red labels expected");

    // compare.
    let out = ok(&["compare", "run", "run"]);
    assert_eq!(count(&out, "mnist-cnn"), 2, "{out}");
    assert!(out.contains("28938"), "{out}");
    assert_clean_error(&convnet(&["compare", "imgs"], d), &["config.json"]);

    // Baselines on a subset of Fashion-MNIST.
    for args in [
        &[
            "baseline",
            "knn",
            "--k",
            "1,3",
            "--distance",
            "l1",
            "--train-limit",
            "2000",
            "--test-limit",
            "300",
            "--json",
        ][..],
        &[
            "baseline",
            "knn",
            "--k",
            "1,5",
            "--train-limit",
            "2000",
            "--test-limit",
            "300",
            "--json",
        ][..],
        &[
            "baseline",
            "linear",
            "--loss",
            "svm",
            "--reg",
            "1e-3",
            "--lr",
            "0.05",
            "--epochs",
            "3",
            "--train-limit",
            "2000",
            "--test-limit",
            "300",
            "--json",
        ][..],
    ] {
        let v: serde_json::Value = serde_json::from_str(&ok(args)).unwrap();
        let a = v["test_accuracy"].as_f64().unwrap();
        assert!(a > 0.6 && a < 1.0, "{args:?}: {a}");
    }
    assert_clean_error(&convnet(&["baseline", "knn", "--k", "0"], d), &["--k"]);
}

/// A class folder of small gray PNGs per class, and one unreadable `broken.png` in the first.
fn folder_with_a_broken_image(root: &Path, per_class: u32) {
    for (c, class) in ["ants", "bees"].iter().enumerate() {
        let d = root.join(class);
        std::fs::create_dir_all(&d).unwrap();
        for i in 0..per_class {
            image::GrayImage::from_pixel(28, 28, image::Luma([(c as u32 * 120 + i * 9) as u8]))
                .save(d.join(format!("{i}.png")))
                .unwrap();
        }
    }
    std::fs::write(root.join("ants/broken.png"), b"\x89PNG\r\n\x1a\nnot really").unwrap();
    std::fs::write(root.join("ants/notes.txt"), b"not an image").unwrap();
}

#[test]
fn data_info_lists_classes_sizes_formats_and_broken_files() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().join("bugs");
    folder_with_a_broken_image(&d, 3);
    let o = convnet(&["data", "info", d.to_str().unwrap()], tmp.path());
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}\n{err}");
    assert!(out.contains("all: 7 images, 2 classes"), "{out}");
    assert!(out.contains("classes: ants 4, bees 3"), "{out}");
    assert!(
        out.contains("sizes (WxH): min 28x28, median 28x28, max 28x28"),
        "{out}"
    );
    assert!(out.contains("formats: Png 6"), "{out}");
    assert!(
        out.contains("unreadable (1)") && out.contains("broken.png"),
        "{out}"
    );
    assert_eq!(
        err.matches("not images").count(),
        1,
        "one summary line: {err}"
    );

    let o = convnet(&["data", "info", d.to_str().unwrap(), "--json"], tmp.path());
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let split = &v["splits"][0];
    assert_eq!(split["images"], 7);
    assert_eq!(split["colors"]["L8"], 6);
    assert!(
        split["broken"][0][0]
            .as_str()
            .unwrap()
            .ends_with("broken.png")
    );

    assert_clean_error(
        &convnet(&["data", "fetch", "imagenet"], tmp.path()),
        &["imagenet", "cifar10", "flowers102"],
    );
}

#[test]
fn data_strict_stops_at_a_broken_image_and_per_class_is_recorded() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().join("bugs");
    folder_with_a_broken_image(&d, 6);
    let data = d.to_str().unwrap();
    let common = [
        "train",
        "--model",
        "mnist-cnn",
        "--data",
        data,
        "--epochs",
        "1",
        "--val-split",
        "0",
        "--batch-size",
        "32",
        "--workers",
        "1",
    ];
    let mut strict = common.to_vec();
    strict.extend(["--strict", "--out", "strict-run"]);
    let o = convnet(&strict, tmp.path());
    let (_, err) = text(&o);
    assert!(!o.status.success() && !err.contains("panicked"), "{err}");
    // One note about notes.txt, then the error; no warning-and-carry-on.
    let last = err.trim_end().lines().last().unwrap();
    assert!(
        last.starts_with("error: ") && last.contains("broken.png"),
        "{err}"
    );
    assert!(
        last.contains("--strict") && !err.contains("warning"),
        "{err}"
    );

    let mut cut = common.to_vec();
    cut.extend(["--per-class", "2", "--out", "cut-run"]);
    let o = convnet(&cut, tmp.path());
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}\n{err}");
    let cfg: serde_json::Value =
        serde_json::from_slice(&std::fs::read(tmp.path().join("cut-run/config.json")).unwrap())
            .unwrap();
    assert_eq!(cfg["data"]["per_class"], 2);
    assert_eq!(cfg["data"]["strict"], false);
    let history = std::fs::read_to_string(tmp.path().join("cut-run/history.csv")).unwrap();
    assert_eq!(history.lines().count(), 2, "{history}");
}

#[test]
fn summary_no_top_and_receptive_fields() {
    let dir = tempfile::tempdir().unwrap();
    let o = convnet(
        &["summary", "vgg16", "--input", "3x150x150", "--no-top"],
        dir.path(),
    );
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    assert!(out.contains("Total params: 14,714,688"), "{out}");
    assert!(
        out.contains("[-1, 512, 4, 4]") && !out.contains("Linear"),
        "{out}"
    );
    // Without --num-classes, the model's own classes (10 for resnet20, not ImageNet's 1000).
    let o = convnet(&["summary", "resnet20"], dir.path());
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    assert!(
        out.contains("10 classes") && out.contains("Trainable params: 269,722"),
        "{out}"
    );
    // LeNet-5: C1 5x5, S2 6x6, C3 14x14, S4 16x16, C5 the whole 32x32 input.
    let o = convnet(&["calc", "rf", "lenet5"], dir.path());
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    for (layer, field) in [
        ("Conv2d-2", "14x14"),
        ("AvgPool2d-2", "16x16"),
        ("Conv2d-3", "≥32x≥32"),
    ] {
        let line = out.lines().find(|l| l.starts_with(layer)).expect(layer);
        assert!(line.contains(field), "{line}");
    }
    assert_clean_error(
        &convnet(&["calc", "rf", "lenet5", "--layer", "Linear-1"], dir.path()),
        &["no layer 'Linear-1'", "Conv2d-1"],
    );
}

#[test]
fn recipe_file_with_command_line_overrides_and_the_training_toolbox() {
    if !fashion_installed() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let recipe = dir.path().join("recipe.toml");
    std::fs::write(
        &recipe,
        "model = \"mnist-cnn\"\nepochs = 3\nper_class = 20\noptimizer = \"adamw\"\nweight_decay = 0.01\n\
         schedule = \"cosine\"\nwarmup_epochs = 0.5\nlabel_smoothing = 0.1\nclip_grad_norm = 1.0\n\
         accumulate = 2\nema = 0.9\nearly_stopping = 1\naugment = \"hflip\"\n",
    )
    .unwrap();
    let o = convnet(
        &[
            "train",
            "--config",
            recipe.to_str().unwrap(),
            "--epochs",
            "1",
            "--augment",
            "none",
            "--out",
            "run",
        ],
        dir.path(),
    );
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}\n{err}");
    assert!(out.contains("EMA (decay 0.9)"), "{out}");
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("run/config.json")).unwrap())
            .unwrap();
    // The command line wins over the recipe; the rest of the recipe is kept.
    assert_eq!(config["epochs"], 1);
    assert!(config["data"]["augment"].is_null(), "{config}");
    assert_eq!(config["model"]["name"], "mnist-cnn");
    assert_eq!(config["optimizer"]["kind"], "adamw");
    assert_eq!(config["schedule"]["kind"], "cosine");
    assert_eq!(config["label_smoothing"], 0.1);
    assert_eq!(config["accumulate"], 2);
    assert_eq!(config["early_stopping"]["patience"], 1);
    assert!(dir.path().join("run/ema.ckpt").exists());
    // The built-in recipes are listed, and an unknown one is one clear error.
    let (out, _) = text(&convnet(&["recipes"], dir.path()));
    assert!(
        out.contains("fashion-small") && out.contains("fashion-resnet"),
        "{out}"
    );
    assert_clean_error(
        &convnet(&["train", "--recipe", "fashion-tiny"], dir.path()),
        &["unknown recipe 'fashion-tiny'", "fashion-small"],
    );
    // The learning-rate range test plots and suggests a rate.
    let o = convnet(
        &[
            "train",
            "--model",
            "mnist-cnn",
            "--per-class",
            "20",
            "--lr-find",
            "--lr-find-steps",
            "40",
            "--out",
            "lrf",
        ],
        dir.path(),
    );
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}\n{err}");
    assert!(out.contains("steepest descent at lr"), "{out}");
    assert!(dir.path().join("lrf/lr_find.png").exists());
}

#[test]
fn transfer_pretrain_freeze_unfreeze_features_and_head() {
    if !fashion_installed() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    export_fashion_test(d, 30, "all");
    // Classes 0-4 to pretrain on, 5-9 to transfer to.
    for entry in std::fs::read_dir(d.join("all")).unwrap() {
        let entry = entry.unwrap();
        if !entry.path().is_dir() {
            continue;
        }
        let name = entry.file_name().into_string().unwrap();
        let part = if name.as_bytes()[0] < b'5' { "a" } else { "b" };
        std::fs::create_dir_all(d.join(part)).unwrap();
        std::fs::rename(entry.path(), d.join(part).join(&name)).unwrap();
    }
    let train = |extra: &[&str]| {
        let mut args = vec![
            "train",
            "--model",
            "small-cnn",
            "--epochs",
            "2",
            "--batch-size",
            "32",
        ];
        args.extend_from_slice(extra);
        convnet(&args, d)
    };
    let o = train(&["--data", "a", "--out", "run-a"]);
    assert!(o.status.success(), "{:?}", text(&o));
    let o = train(&[
        "--data",
        "b",
        "--out",
        "run-b",
        "--pretrained",
        "run-a",
        "--freeze",
        "backbone",
        "--unfreeze-at",
        "2",
        "--backbone-lr-mult",
        "0.1",
    ]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}\n{err}");
    assert!(
        out.contains("new head for 5 classes, re-initialised: fc2"),
        "{out}"
    );
    assert!(
        out.contains("frozen:") && out.contains("unfreezing"),
        "{out}"
    );
    let config = std::fs::read_to_string(d.join("run-b/config.json")).unwrap();
    assert!(config.contains("\"freeze\": \"backbone\""), "{config}");

    let o = convnet(
        &[
            "features",
            "small-cnn",
            "--data",
            "b",
            "--pretrained",
            "run-a/best.ckpt",
            "--out",
            "b.safetensors",
            "--val-split",
            "0.2",
        ],
        d,
    );
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}\n{err}");
    assert!(
        out.contains("train: 120 images -> 64 features each"),
        "{out}"
    );
    let o = convnet(
        &[
            "train-head",
            "b.safetensors",
            "--epochs",
            "3",
            "--hidden",
            "0",
        ],
        d,
    );
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}\n{err}");
    assert!(
        out.contains("epoch   3/3") && out.contains("val loss"),
        "{out}"
    );

    assert_clean_error(
        &train(&["--data", "b", "--pretrained", "nothing-here.pth"]),
        &["nothing-here.pth", "resnet18.tv_in1k"],
    );
    assert_clean_error(
        &train(&[
            "--data",
            "b",
            "--pretrained",
            "run-a",
            "--freeze",
            "until=Conv2d-99",
        ]),
        &["Conv2d-99", "Conv2d-1"],
    );
    assert_clean_error(
        &train(&["--data", "b", "--pretrained", "resnet18.tv_in1k"]),
        &["resnet18", "--model resnet18"],
    );
    assert_clean_error(
        &convnet(&["train-head", "run-a/config.json"], d),
        &["run-a/config.json", "convnet features"],
    );
    let o = convnet(&["pretrained"], d);
    assert!(text(&o).0.contains("vgg16-397923af.pth"), "{:?}", text(&o));
}

/// Output into a pipe whose reader is gone (`convnet models | head`) ends the process quietly,
/// without a panic and its backtrace.
#[cfg(unix)]
#[test]
fn a_closed_output_pipe_ends_quietly() {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let o = Command::new(env!("CARGO_BIN_EXE_convnet"))
        .arg("models")
        .stdout(writer)
        .stderr(std::process::Stdio::piped())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !err.contains("panicked") && !err.contains("backtrace"),
        "{err}"
    );
}

/// `train --help` lists every augmentation key and preset (from the same list as the spec
/// parser's error message); `-h` keeps the one-line summary.
#[test]
fn train_help_lists_the_augment_keys_and_presets() {
    let dir = tempfile::tempdir().unwrap();
    let o = convnet(&["train", "--help"], dir.path());
    let (out, _) = text(&o);
    assert!(o.status.success());
    for needle in [
        "erase=P",
        "rrc=S|HxW",
        "cutmix=ALPHA",
        "keras-seed001",
        "cifar-train",
    ] {
        assert!(out.contains(needle), "train --help lacks {needle}:\n{out}");
    }
    let (short, _) = text(&convnet(&["train", "-h"], dir.path()));
    assert!(short.contains("--augment") && !short.contains("erase=P"));
}
