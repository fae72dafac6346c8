//! Training survives faults: a run is killed with SIGKILL at 20 seeded random moments (half of
//! them just after an epoch line, i.e. while history, curves and checkpoints are being
//! written), resumed after each kill, and must end with loadable checkpoints, no temporary
//! files and a history identical to an uninterrupted run's. Also Ctrl-C and `--nan`.
//!
//! A kill before the first `last.ckpt` exists leaves nothing to resume: `--resume` then says
//! so (naming `last.ckpt` or `config.json`) and the test starts the run again from scratch,
//! which is what a user is told to do.

#![cfg(unix)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

const EPOCHS: usize = 12;
const KILLS: usize = 20;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_convnet"))
}

/// splitmix64: a seeded generator, so every kill point is reproducible.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Three noisy, overlapping classes of 28x28 grey PNGs, so the loss stays well above zero and
/// the history comparison means something.
fn make_data(dir: &Path) {
    let mut rng = Rng(7);
    for (c, base) in [(0, 100.0), (1, 128.0), (2, 156.0)] {
        let d = dir.join(format!("class{c}"));
        std::fs::create_dir_all(&d).unwrap();
        for i in 0..30 {
            let img = image::GrayImage::from_fn(28, 28, |_, _| {
                image::Luma([(base + 140.0 * (rng.unit() - 0.5)) as u8])
            });
            img.save(d.join(format!("{i:02}.png"))).unwrap();
        }
    }
}

fn train_args(data: &Path, out: &Path) -> Vec<String> {
    [
        "train",
        "--model",
        "mnist-cnn",
        "--data",
        data.to_str().unwrap(),
        "--epochs",
        &EPOCHS.to_string(),
        "--batch-size",
        "6",
        "--val-split",
        "0.2",
        "--lr-step",
        "4",
        "--lr-gamma",
        "0.5",
        "--seed",
        "5",
        "--threads",
        "1",
        "--workers",
        "1",
        "--out",
        out.to_str().unwrap(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

fn resume_args(out: &Path) -> Vec<String> {
    ["train", "--resume", out.to_str().unwrap(), "--threads", "1"]
        .iter()
        .map(|s| s.to_string())
        .collect()
}

/// Starts the binary; its stdout lines arrive on the receiver as they are printed.
fn spawn(args: &[String]) -> (Child, Receiver<String>) {
    let mut child = bin()
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("convnet starts");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    (child, rx)
}

fn stderr_of(child: &mut Child) -> String {
    let mut s = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut e, &mut s);
    }
    s
}

/// The columns that must not depend on interruptions (not the timings).
fn history_figures(run: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(run.join("history.csv")).unwrap();
    text.lines()
        .skip(1)
        .map(|l| l.split(',').take(6).collect::<Vec<_>>().join(","))
        .collect()
}

fn assert_no_temporaries(run: &Path) {
    let names: Vec<String> = std::fs::read_dir(run)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        names.iter().all(|n| !n.starts_with('.')),
        "temporary files left in {}: {names:?}",
        run.display()
    );
}

/// Every checkpoint present must load: `convnet predict` rebuilds the model from it.
fn assert_checkpoints_load(run: &Path, image: &Path) {
    for name in ["last.ckpt", "best.ckpt"] {
        let p = run.join(name);
        if !p.exists() {
            continue;
        }
        let o = bin()
            .args(["predict", p.to_str().unwrap(), image.to_str().unwrap()])
            .args(["--top", "1"])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(o.status.success(), "{} does not load: {err}", p.display());
    }
}

fn run_to_end(args: &[String]) -> Output {
    bin().args(args).output().unwrap()
}

#[test]
fn sigkill_at_twenty_random_points_then_resume_finishes_identically() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    make_data(&data);
    let image = data.join("class0/00.png");

    // The reference: one uninterrupted run.
    let reference = tmp.path().join("reference");
    let started = Instant::now();
    let o = run_to_end(&train_args(&data, &reference));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let duration = started.elapsed();
    let expected = history_figures(&reference);
    assert_eq!(expected.len(), EPOCHS);

    // Seeded for reproducibility; `KILL_SEED=N` explores other kill points.
    let seed = std::env::var("KILL_SEED").ok().and_then(|s| s.parse().ok());
    let mut rng = Rng(seed.unwrap_or(2026));
    let mut kills = 0;
    let mut fresh_starts = 0;
    let mut rounds = 0;
    while kills < KILLS {
        rounds += 1;
        assert!(rounds <= 10, "the run never got far enough to be killed");
        let run: PathBuf = tmp.path().join(format!("run{rounds}"));
        let mut resume = false;
        loop {
            let args = if resume {
                resume_args(&run)
            } else {
                train_args(&data, &run)
            };
            let (mut child, lines) = spawn(&args);
            if kills < KILLS {
                if kills == 0 {
                    // At once: before any file of the run exists.
                    std::thread::sleep(duration.mul_f64(0.01 * rng.unit()));
                } else if kills % 2 == 0 {
                    // Anywhere: start-up, training, validation or writing.
                    std::thread::sleep(duration.mul_f64(0.2 * rng.unit()));
                } else {
                    // During the writes after an epoch: the epoch line is printed just
                    // before history, curves, best and last are written.
                    let wait = Duration::from_millis((rng.unit() * 40.0) as u64);
                    let deadline = Instant::now() + duration * 2;
                    while Instant::now() < deadline {
                        match lines.recv_timeout(Duration::from_millis(20)) {
                            Ok(l) if l.starts_with("epoch ") => {
                                std::thread::sleep(wait);
                                break;
                            }
                            Ok(_) => {}
                            Err(_) if child.try_wait().unwrap().is_some() => break,
                            Err(_) => {}
                        }
                    }
                }
                if child.try_wait().unwrap().is_none() {
                    child.kill().unwrap(); // SIGKILL
                    kills += 1;
                }
            }
            let status = child.wait().unwrap();
            let err = stderr_of(&mut child);
            assert!(!err.contains("panicked"), "panic:\n{err}");
            if status.success() {
                break;
            }
            if status.code().is_some() {
                // It exited by itself with an error: only "nothing to resume yet" is allowed.
                assert!(resume, "a fresh start failed: {err}");
                assert!(
                    !run.join("last.ckpt").exists()
                        && (err.contains("last.ckpt does not exist")
                            || err.contains("config.json")),
                    "resume failed although there is something to resume:\n{err}"
                );
                fresh_starts += 1;
                resume = false;
                continue;
            }
            // Killed: whatever it left must load, and the next attempt resumes.
            assert_checkpoints_load(&run, &image);
            resume = true;
        }
        // The run completed: complete history, identical to the uninterrupted one.
        assert_eq!(
            history_figures(&run),
            expected,
            "history of {} differs from the uninterrupted run",
            run.display()
        );
        assert_no_temporaries(&run);
        assert_checkpoints_load(&run, &image);
        let o = bin()
            .args(["eval", run.to_str().unwrap(), "--data"])
            .arg(&data)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "eval: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    assert!(
        fresh_starts >= 1,
        "the kill at start-up did not exercise a fresh restart"
    );
    eprintln!(
        "{kills} kills over {rounds} runs ({fresh_starts} restarts before a first checkpoint); reference run {duration:?}"
    );
}

#[test]
fn ctrl_c_stops_after_the_batch_and_says_how_to_resume() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    make_data(&data);
    let run = tmp.path().join("run");
    let (mut child, lines) = spawn(&train_args(&data, &run));
    // Interrupt once an epoch has finished, so there is a `last.ckpt` to resume from.
    loop {
        let l = lines.recv_timeout(Duration::from_secs(120)).unwrap();
        if l.starts_with("epoch ") {
            break;
        }
    }
    while !run.join("last.ckpt").exists() {
        std::thread::sleep(Duration::from_millis(5));
    }
    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .unwrap()
            .success()
    );
    let status = child.wait().unwrap();
    let err = stderr_of(&mut child);
    assert!(!status.success(), "the run ignored Ctrl-C");
    assert!(!err.contains("panicked"), "{err}");
    assert!(err.contains("interrupted during epoch"), "{err}");
    assert!(
        err.contains(&format!("convnet train --resume {}", run.display())),
        "{err}"
    );
    let o = run_to_end(&resume_args(&run));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(history_figures(&run).len(), EPOCHS);
}

#[test]
fn nan_loss_stops_naming_the_step_or_skips_batches() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    make_data(&data);
    // A learning rate this large drives the weights to infinity within a few batches.
    let huge = |out: &str, nan: Option<&str>| {
        let mut args = train_args(&data, &tmp.path().join(out));
        let e = args.iter().position(|a| a == "--epochs").unwrap();
        args[e + 1] = "3".into();
        args.extend(["--optimizer", "sgd", "--lr", "1e30"].map(String::from));
        if let Some(n) = nan {
            args.extend(["--nan".to_string(), n.to_string()]);
        }
        run_to_end(&args)
    };
    let o = huge("stop", None);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && !err.contains("panicked"), "{err}");
    assert!(err.contains("the training loss became"), "{err}");
    assert!(err.contains("epoch ") && err.contains("batch "), "{err}");
    assert!(err.contains("--nan skip-batch"), "{err}");

    let o = huge("skip", Some("skip-batch"));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && !err.contains("panicked"), "{err}");
    assert!(err.contains("skipped this batch"), "{err}");
    assert!(err.contains("10 batches in a row"), "{err}");

    let o = bin()
        .args(["train", "--nan", "sometimes"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("skip-batch"), "{err}");
}

/// Unmounts the tmpfs when the test ends, however it ends.
struct Mounted(PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_names_what_to_change_and_leaves_no_half_file() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    make_data(&data);
    let small = tmp.path().join("small");
    std::fs::create_dir_all(&small).unwrap();
    // A 300 KiB tmpfs holds the config, history and curves but not a checkpoint. Mounting
    // needs root (CI and the dev machines run as root); elsewhere the test says so and passes.
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=300k", "tmpfs"])
        .arg(&small)
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        eprintln!("skipped: cannot mount a tmpfs here (needs root)");
        return;
    }
    let _guard = Mounted(small.clone());
    let run = small.join("run");
    let o = run_to_end(&train_args(&data, &run));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && !err.contains("panicked"), "{err}");
    assert!(err.starts_with("error: "), "{err}");
    assert!(
        err.contains("disk is full") && err.contains("--out"),
        "{err}"
    );
    assert_eq!(err.matches("os error 28").count(), 1, "said twice: {err}");
    assert_no_temporaries(&run);
}
