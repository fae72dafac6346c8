//! End-to-end training on a tiny synthetic image folder: loss falls, resume replays an
//! uninterrupted run, NaN and Ctrl-C stop cleanly.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use burn::tensor::Device;
use convnet_data::Preprocess;
use convnet_nn::ModelSpec;
use convnet_train::config::{DataConfig, OptimizerConfig, OptimizerKind, ScheduleConfig};
use convnet_train::trainer::{Outcome, TrainError};
use convnet_train::{RunPaths, Trainer, TrainingConfig};
use rand::{Rng, SeedableRng};

/// Three classes of 16x16 grayscale PNGs: bright top half, bright left half, bright diagonal,
/// each with noise.
fn synthetic_folder(root: &Path, per_class: usize) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(5);
    for (c, name) in ["diag", "left", "top"].iter().enumerate() {
        let dir = root.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        for i in 0..per_class {
            let img = image::GrayImage::from_fn(16, 16, |x, y| {
                let on = match c {
                    0 => (x as i32 - y as i32).abs() < 3,
                    1 => x < 8,
                    _ => y < 8,
                };
                let base = if on { 180.0 } else { 60.0 };
                image::Luma([(base + rng.random_range(-50.0..50.0f32)) as u8])
            });
            img.save(dir.join(format!("{i:03}.png"))).unwrap();
        }
    }
}

fn config(data: &Path, model: &str, epochs: usize) -> TrainingConfig {
    TrainingConfig {
        model: ModelSpec::new(model, [1, 16, 16], 3),
        preprocess: Preprocess {
            channels: 1,
            size: [16, 16],
            mean: vec![0.5],
            std: vec![0.5],
        },
        data: DataConfig {
            source: data.display().to_string(),
            class_map: None,
            val_split: 0.25,
            workers: 2,
            augment: None,
            per_class: None,
            strict: false,
        },
        epochs,
        batch_size: 16,
        optimizer: OptimizerConfig {
            kind: OptimizerKind::Adam,
            lr: 2e-3,
            momentum: 0.0,
            weight_decay: 1e-4,
            nesterov: false,
            decoupled: false,
        },
        schedule: ScheduleConfig {
            step: Some(2),
            gamma: 0.5,
            ..Default::default()
        },
        seed: 3,
        nan: Default::default(),
        label_smoothing: 0.0,
        aux_weight: None,
        clip_grad_norm: None,
        accumulate: 1,
        early_stopping: None,
        ema: None,
        transfer: None,
        precision: Default::default(),
    }
}

/// Burn seeds one process-wide generator, so runs that must be reproducible cannot overlap
/// with other tests' runs: every test here holds this lock.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn trainer(cfg: TrainingConfig, dir: &Path) -> Trainer {
    Trainer {
        config: cfg,
        paths: RunPaths {
            dir: dir.to_path_buf(),
        },
        device: Device::flex(),
        stop: Arc::new(AtomicBool::new(false)),
        progress: false,
    }
}

/// `resumed` replays `full` epoch by epoch, to the 6 decimals `history.csv` keeps.
fn assert_replays(full: &Outcome, resumed: &Outcome) {
    assert_eq!(full.history.rows.len(), resumed.history.rows.len());
    for (a, b) in full.history.rows.iter().zip(&resumed.history.rows) {
        assert_eq!(a.epoch, b.epoch);
        assert!((a.train_loss - b.train_loss).abs() < 1e-5, "{a:?} vs {b:?}");
        assert!((a.train_acc - b.train_acc).abs() < 1e-5, "{a:?} vs {b:?}");
        assert!((a.val_loss - b.val_loss).abs() < 1e-5, "{a:?} vs {b:?}");
        assert!((a.val_acc - b.val_acc).abs() < 1e-9, "{a:?} vs {b:?}");
    }
}

#[test]
fn loss_falls_and_files_are_written() {
    let _serial = serial();
    let tmp = tempfile::tempdir().unwrap();
    synthetic_folder(&tmp.path().join("data"), 40);
    let run = tmp.path().join("run");
    let out = trainer(config(&tmp.path().join("data"), "small-cnn", 4), &run)
        .run(false)
        .unwrap();
    let rows = &out.history.rows;
    assert_eq!(rows.len(), 4);
    assert!(rows[3].train_loss < 0.5 * rows[0].train_loss, "{rows:?}");
    assert!(rows[3].val_acc > 0.9, "{rows:?}");
    for f in [
        "config.json",
        "history.csv",
        "curves.png",
        "best.ckpt",
        "last.ckpt",
    ] {
        assert!(run.join(f).exists(), "{f} missing");
    }
    // The step schedule halved the LR after epoch 2.
    assert_eq!(rows[2].lr, rows[0].lr * 0.5);
}

/// Resuming after epoch 2 must replay epochs 3-4 exactly as an uninterrupted run does: same
/// data order (seeded per epoch), same dropout masks (device seeded per epoch), same Adam
/// state (restored from the checkpoint). The CPU backend is deterministic, so the tolerance
/// only absorbs the 6 decimals `history.csv` keeps.
#[test]
fn resume_replays_an_uninterrupted_run() {
    let _serial = serial();
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    synthetic_folder(&data, 24);
    let full = trainer(config(&data, "small-cnn", 4), &tmp.path().join("full"))
        .run(false)
        .unwrap();

    let split = tmp.path().join("split");
    trainer(config(&data, "small-cnn", 2), &split)
        .run(false)
        .unwrap();
    let resumed = trainer(config(&data, "small-cnn", 4), &split)
        .run(true)
        .unwrap();
    assert_eq!(resumed.history.rows.len(), 4);
    assert_replays(&full, &resumed);
}

/// Float16 mixed precision trains (the loss falls), saves its loss scale with the checkpoint,
/// and a run resumed after epoch 2 replays an uninterrupted one.
#[test]
fn half_precision_trains_and_resumes_exactly() {
    let _serial = serial();
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    synthetic_folder(&data, 24);
    let half = |epochs| {
        let mut c = config(&data, "small-cnn", epochs);
        c.precision = convnet_nn::Precision::F16;
        c
    };
    let full = trainer(half(4), &tmp.path().join("full"))
        .run(false)
        .unwrap();
    let rows = &full.history.rows;
    assert!(rows[3].train_loss < 0.5 * rows[0].train_loss, "{rows:?}");
    let split = tmp.path().join("split");
    trainer(half(2), &split).run(false).unwrap();
    let meta = convnet_train::checkpoint::read_meta(&split.join("last.ckpt")).unwrap();
    let scale = meta.loss_scale.expect("a float16 run saves its loss scale");
    assert!(scale.scale > 0.0 && scale.scale <= 65536.0, "{scale:?}");
    let resumed = trainer(half(4), &split).run(true).unwrap();
    assert_replays(&full, &resumed);
    // The scale continued where it was (its count of good steps too), not from the start.
    let ends = |dir: &str| {
        convnet_train::checkpoint::read_meta(&tmp.path().join(dir).join("last.ckpt"))
            .unwrap()
            .loss_scale
    };
    assert_eq!(ends("full"), ends("split"));
}

#[test]
fn resume_without_a_checkpoint_or_with_another_model_is_refused() {
    let _serial = serial();
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    synthetic_folder(&data, 6);
    let run = tmp.path().join("run");
    let e = trainer(config(&data, "mnist-cnn", 1), &run)
        .run(true)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("last.ckpt") && e.contains("does not exist"),
        "{e}"
    );
    trainer(config(&data, "mnist-cnn", 1), &run)
        .run(false)
        .unwrap();
    let e = trainer(config(&data, "small-cnn", 2), &run)
        .run(true)
        .unwrap_err()
        .to_string();
    assert!(e.contains("mnist-cnn") && e.contains("small-cnn"), "{e}");
}

#[test]
fn nan_loss_stops_with_a_message() {
    let _serial = serial();
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    synthetic_folder(&data, 6);
    let mut cfg = config(&data, "mnist-cnn", 3);
    cfg.optimizer = OptimizerConfig {
        kind: OptimizerKind::Sgd,
        lr: 1e30,
        momentum: 0.0,
        weight_decay: 0.0,
        nesterov: false,
        decoupled: false,
    };
    let e = trainer(cfg, &tmp.path().join("run"))
        .run(false)
        .unwrap_err();
    assert!(matches!(e, TrainError::NonFinite { .. }), "{e}");
    assert!(e.to_string().contains("lower --lr"), "{e}");
}

#[test]
fn stop_flag_interrupts_and_says_how_to_resume() {
    let _serial = serial();
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    synthetic_folder(&data, 6);
    let t = trainer(config(&data, "mnist-cnn", 2), &tmp.path().join("run"));
    t.stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let e = t.run(false).unwrap_err();
    assert!(matches!(e, TrainError::Interrupted { epoch: 1, .. }), "{e}");
}

/// Ctrl-C inside an epoch saves `last.ckpt` at that batch; resuming continues the epoch at the
/// next batch with the same figures so far, so the finished run equals an uninterrupted one.
#[test]
fn stopping_mid_epoch_saves_and_resumes_exactly() {
    let _serial = serial();
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    synthetic_folder(&data, 24);
    let small = |epochs| {
        let mut c = config(&data, "small-cnn", epochs);
        c.batch_size = 4;
        c
    };
    let full = trainer(small(2), &tmp.path().join("full"))
        .run(false)
        .unwrap();
    // Press "Ctrl-C" as soon as epoch 1 is saved, so that it lands in epoch 2 (retried: the
    // timing is the operating system's).
    let mut stopped_inside = None;
    for k in 0..20 {
        let run = tmp.path().join(format!("cut{k}"));
        let t = trainer(small(2), &run);
        let stop = t.stop.clone();
        let last = run.join("last.ckpt");
        let setter = std::thread::spawn(move || {
            let t0 = std::time::Instant::now();
            while !last.exists() && t0.elapsed().as_secs() < 30 {
                std::thread::sleep(std::time::Duration::from_micros(200 * (k + 1)));
            }
            std::thread::sleep(std::time::Duration::from_micros(500 * k));
            stop.store(true, std::sync::atomic::Ordering::SeqCst);
        });
        let result = t.run(false);
        setter.join().unwrap();
        if let Err(TrainError::Interrupted { saved, .. }) = &result
            && let Ok(meta) = convnet_train::checkpoint::read_meta(&run.join("last.ckpt"))
            && let Some(p) = &meta.partial
        {
            assert!(
                saved.contains(&format!("after batch {}", p.batches)),
                "{saved}"
            );
            stopped_inside = Some(run);
            break;
        }
    }
    let run = stopped_inside.expect("one of the stops landed inside an epoch");
    let resumed = trainer(small(2), &run).run(true).unwrap();
    assert_eq!(resumed.history.rows.len(), 2);
    assert_replays(&full, &resumed);
}
