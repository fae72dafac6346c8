//! The epoch loop: train, validate, record history, checkpoint, resume.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use burn::module::Module;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::GradientsParams;
use burn::tensor::{Device, Int, Tensor, TensorData};
use convnet_data::{Batch, DataError, Loader, Source};
use convnet_eval::{Metrics, evaluate, images_tensor};
use convnet_nn::{ModelError, Network};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::checkpoint::{self, Checkpoint, CheckpointError, CheckpointMeta, FORMAT_VERSION};
use crate::config::TrainingConfig;
use crate::history::{History, HistoryRow};
use crate::optim;

/// The files of a run folder.
#[derive(Debug, Clone)]
pub struct RunPaths {
    /// The run folder.
    pub dir: PathBuf,
}

impl RunPaths {
    /// `config.json`: the resolved training configuration.
    pub fn config(&self) -> PathBuf {
        self.dir.join("config.json")
    }
    /// `last.ckpt`: the state after the last completed epoch.
    pub fn last(&self) -> PathBuf {
        self.dir.join("last.ckpt")
    }
    /// `best.ckpt`: the state with the best validation accuracy.
    pub fn best(&self) -> PathBuf {
        self.dir.join("best.ckpt")
    }
    /// `history.csv`: one row per epoch.
    pub fn history(&self) -> PathBuf {
        self.dir.join("history.csv")
    }
    /// `curves.png`: loss and accuracy per epoch.
    pub fn curves(&self) -> PathBuf {
        self.dir.join("curves.png")
    }
}

/// Why training stopped early.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// Data could not be read.
    #[error(transparent)]
    Data(#[from] DataError),
    /// The model could not be built.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// A checkpoint could not be read or written.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// A run file could not be written or read.
    #[error("{path}: {why}")]
    File {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        why: String,
    },
    /// The configuration does not fit the data or the checkpoint.
    #[error("{0}")]
    Config(String),
    /// The loss became NaN or infinite.
    #[error(
        "the training loss became {value} at epoch {epoch}, batch {batch}; lower --lr (now {lr}) or check the data. {last_good}"
    )]
    NonFinite {
        /// The offending value.
        value: f64,
        /// 1-based epoch.
        epoch: usize,
        /// 1-based batch.
        batch: usize,
        /// The learning rate in use.
        lr: f64,
        /// Where the last good state is.
        last_good: String,
    },
    /// Stopped by the user (Ctrl-C).
    #[error("interrupted during epoch {epoch}; {saved}")]
    Interrupted {
        /// 1-based epoch that was running.
        epoch: usize,
        /// What was saved and how to resume.
        saved: String,
    },
}

fn file_err(path: &Path, why: impl std::fmt::Display) -> TrainError {
    TrainError::File {
        path: path.to_path_buf(),
        why: why.to_string(),
    }
}

/// Runs a training configuration into a run folder.
pub struct Trainer {
    /// The configuration.
    pub config: TrainingConfig,
    /// The run folder.
    pub paths: RunPaths,
    /// The compute device (without autodiff; training adds it).
    pub device: Device,
    /// Set to stop after the current batch (Ctrl-C).
    pub stop: Arc<AtomicBool>,
    /// Draw progress bars (off in tests and when not on a terminal).
    pub progress: bool,
}

/// What a finished run produced.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Per-epoch figures.
    pub history: History,
    /// Best validation accuracy.
    pub best_accuracy: f64,
}

/// The batch as input and target tensors; moves the pixels out of `batch`.
fn to_tensors(batch: &mut Batch, device: &Device) -> (Tensor<4>, Tensor<1, Int>) {
    let x = images_tensor(batch, device);
    let labels: Vec<i64> = batch.labels.iter().map(|&l| l as i64).collect();
    let y = Tensor::<1, Int>::from_data(TensorData::new(labels, [batch.labels.len()]), device);
    (x, y)
}

fn bar(len: usize, prefix: String, visible: bool) -> ProgressBar {
    let pb = ProgressBar::new(len as u64);
    if visible {
        pb.set_style(
            ProgressStyle::with_template(
                "{prefix} [{bar:28}] {pos}/{len} {per_sec} ETA {eta} {msg}",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
    } else {
        pb.set_draw_target(ProgressDrawTarget::hidden());
    }
    pb.set_prefix(prefix);
    pb
}

impl Trainer {
    /// Trains from scratch, or continues the run in [`Self::paths`] when `resume` is set.
    ///
    /// Runs on a thread of its own with a 256 MiB stack: the zoo's networks are large value
    /// types that Burn's module traversal moves around recursively, which overflows the 2 MiB
    /// stacks of ordinary spawned threads.
    pub fn run(&self, resume: bool) -> Result<Outcome, TrainError> {
        std::thread::scope(|scope| {
            std::thread::Builder::new()
                .name("convnet-train".into())
                .stack_size(256 << 20)
                .spawn_scoped(scope, || self.run_here(resume))
                .map_err(|e| TrainError::Config(format!("cannot start the training thread: {e}")))?
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
    }

    fn run_here(&self, resume: bool) -> Result<Outcome, TrainError> {
        let cfg = &self.config;
        let source = Source::parse(&cfg.data.source, cfg.data.class_map.as_deref())?;
        let (train, val) = source.train_val(cfg.data.val_split, cfg.seed)?;
        let classes = train.classes().to_vec();
        if classes.len() != cfg.model.num_classes {
            return Err(TrainError::Config(format!(
                "the model has {} outputs but the data has {} classes",
                cfg.model.num_classes,
                classes.len()
            )));
        }
        std::fs::create_dir_all(&self.paths.dir).map_err(|e| file_err(&self.paths.dir, e))?;
        let train_device = self.device.clone().autodiff();

        let (mut model, mut optim, start, mut best, mut history) = if resume {
            self.restore(&train_device)?
        } else {
            let json = serde_json::to_vec_pretty(cfg).expect("config serialises");
            convnet_data::files::write_atomic(&self.paths.config(), &json)
                .map_err(|e| file_err(&self.paths.config(), e))?;
            self.device.seed(cfg.seed);
            let model = convnet_nn::build(&cfg.model, &train_device)?;
            (
                model,
                optim::build(&cfg.optimizer),
                0,
                f64::NEG_INFINITY,
                History::default(),
            )
        };

        let mut train_loader = Loader::new(
            train.clone(),
            cfg.preprocess.clone(),
            cfg.batch_size,
            true,
            cfg.seed,
        );
        let mut val_loader = val.clone().map(|v| {
            Loader::new(
                v,
                cfg.preprocess.clone(),
                cfg.batch_size.max(256),
                false,
                cfg.seed,
            )
        });
        if cfg.data.workers > 0 {
            train_loader.workers = cfg.data.workers;
            if let Some(l) = val_loader.as_mut() {
                l.workers = cfg.data.workers;
            }
        }
        let loss_fn = CrossEntropyLossConfig::new().init(&train_device);
        let mut reported = std::collections::HashSet::new();

        for epoch in start..cfg.epochs {
            // Seeding per epoch makes dropout masks depend on (seed, epoch) only, so a resumed
            // run replays exactly what an uninterrupted one would.
            self.device.seed(cfg.seed.wrapping_add(1 + epoch as u64));
            let lr = cfg.schedule.lr_at(cfg.optimizer.lr, epoch);
            let pb = bar(
                train_loader.num_batches(),
                format!("epoch {}/{}", epoch + 1, cfg.epochs),
                self.progress,
            );
            let mut m = Metrics::new(classes.len());
            let started = Instant::now();
            for (b, mut batch) in train_loader.epoch(epoch).enumerate() {
                if self.stop.load(Ordering::SeqCst) {
                    pb.abandon();
                    return Err(self.interrupted(epoch));
                }
                self.report_skipped(&batch, &mut reported, &pb);
                if batch.labels.is_empty() {
                    continue;
                }
                let (x, y) = to_tensors(&mut batch, &train_device);
                let logits = model.forward(x);
                let host = logits.to_data().try_to_vec::<f32>().expect("f32 logits");
                m.update(&host, &batch.labels);
                if !m.loss_sum.is_finite() {
                    pb.abandon();
                    return Err(TrainError::NonFinite {
                        value: m.loss_sum,
                        epoch: epoch + 1,
                        batch: b + 1,
                        lr,
                        last_good: self.last_good(),
                    });
                }
                let loss = loss_fn.forward(logits, y);
                let grads = GradientsParams::from_grads(loss.backward(), &model);
                model = optim.step(lr, model, grads);
                pb.inc(1);
                pb.set_message(format!(
                    "loss {:.4} acc {:.2}%",
                    m.loss(),
                    100.0 * m.accuracy()
                ));
            }
            let seconds = started.elapsed().as_secs_f64();
            pb.finish_and_clear();

            let (val_loss, val_acc) = match &val_loader {
                Some(loader) => {
                    let eval_model = model.valid();
                    let vm = evaluate(&eval_model, loader, &self.device, |b, _| {
                        self.report_skipped(b, &mut reported, &pb)
                    });
                    (vm.loss(), vm.accuracy())
                }
                None => (f64::NAN, f64::NAN),
            };
            let row = HistoryRow {
                epoch: epoch + 1,
                lr,
                train_loss: m.loss(),
                train_acc: m.accuracy(),
                val_loss,
                val_acc,
                seconds,
                images_per_sec: m.count as f64 / seconds.max(1e-9),
            };
            println!(
                "epoch {:>3}/{}  lr {:.2e}  train loss {:.4} acc {:.2}%  val loss {:.4} acc {:.2}%  {:.1}s ({:.0} img/s)",
                row.epoch,
                cfg.epochs,
                lr,
                row.train_loss,
                100.0 * row.train_acc,
                row.val_loss,
                100.0 * row.val_acc,
                seconds,
                row.images_per_sec
            );
            history.rows.push(row);
            let monitored = if val_acc.is_nan() {
                m.accuracy()
            } else {
                val_acc
            };
            self.save_epoch(
                &model,
                &optim,
                &history,
                &classes,
                epoch + 1,
                monitored,
                &mut best,
            )?;
        }
        Ok(Outcome {
            history,
            best_accuracy: best,
        })
    }

    /// Writes history, curves and checkpoints after an epoch, in an order that a crash at any
    /// point leaves resumable (history first, `last` last).
    #[allow(clippy::too_many_arguments)]
    fn save_epoch(
        &self,
        model: &Network,
        optim: &burn::optim::ModuleOptimizer,
        history: &History,
        classes: &[String],
        epoch: usize,
        monitored: f64,
        best: &mut f64,
    ) -> Result<(), TrainError> {
        let p = &self.paths;
        convnet_data::files::write_atomic(&p.history(), history.to_csv().as_bytes())
            .map_err(|e| file_err(&p.history(), e))?;
        history
            .plot(&p.curves())
            .map_err(|e| file_err(&p.curves(), e))?;
        let improved = monitored > *best;
        if improved {
            *best = monitored;
        }
        let meta = CheckpointMeta {
            format: FORMAT_VERSION,
            model: self.config.model.clone(),
            preprocess: self.config.preprocess.clone(),
            classes: classes.to_vec(),
            epoch,
            best_accuracy: *best,
        };
        if improved {
            checkpoint::save(&p.best(), &meta, model, None)?;
        }
        checkpoint::save(&p.last(), &meta, model, Some(optim))?;
        Ok(())
    }

    fn restore(
        &self,
        device: &Device,
    ) -> Result<(Network, burn::optim::ModuleOptimizer, usize, f64, History), TrainError> {
        let last = self.paths.last();
        if !last.exists() {
            return Err(TrainError::Config(format!(
                "cannot resume: {} does not exist (no epoch of this run finished yet); start it again without --resume",
                last.display()
            )));
        }
        let ckpt = Checkpoint::load(&last, device)?;
        if ckpt.meta.model != self.config.model {
            return Err(TrainError::Config(format!(
                "cannot resume: {} holds a {:?}, but the configuration asks for a {:?}",
                last.display(),
                ckpt.meta.model,
                self.config.model
            )));
        }
        let optim = ckpt.restore_optimizer(optim::build(&self.config.optimizer), &last)?;
        let text = std::fs::read_to_string(self.paths.history())
            .map_err(|e| file_err(&self.paths.history(), e))?;
        let mut history =
            History::from_csv(&text).map_err(|e| file_err(&self.paths.history(), e))?;
        history.rows.retain(|r| r.epoch <= ckpt.meta.epoch);
        println!(
            "resuming {} after epoch {}",
            self.paths.dir.display(),
            ckpt.meta.epoch
        );
        Ok((
            ckpt.model,
            optim,
            ckpt.meta.epoch,
            ckpt.meta.best_accuracy,
            history,
        ))
    }

    fn last_good(&self) -> String {
        if self.paths.last().exists() {
            format!("The last good state is {}.", self.paths.last().display())
        } else {
            "No epoch had finished, so nothing was saved.".to_string()
        }
    }

    fn interrupted(&self, epoch: usize) -> TrainError {
        let saved = if self.paths.last().exists() {
            format!(
                "{} holds the last completed epoch; continue with `convnet train --resume {}`",
                self.paths.last().display(),
                self.paths.dir.display()
            )
        } else {
            "no epoch had completed, so there is nothing to resume".to_string()
        };
        TrainError::Interrupted {
            epoch: epoch + 1,
            saved,
        }
    }

    fn report_skipped(
        &self,
        batch: &Batch,
        reported: &mut std::collections::HashSet<String>,
        pb: &ProgressBar,
    ) {
        for (what, why) in &batch.skipped {
            if reported.insert(what.clone()) {
                pb.suspend(|| eprintln!("warning: skipped {why}"));
            }
        }
    }
}

/// Reads a run's `config.json`.
pub fn read_config(dir: &Path) -> Result<TrainingConfig, TrainError> {
    let path = RunPaths {
        dir: dir.to_path_buf(),
    }
    .config();
    let text = std::fs::read_to_string(&path).map_err(|e| {
        file_err(
            &path,
            format!("{e}; is this a run folder written by `convnet train`?"),
        )
    })?;
    serde_json::from_str(&text).map_err(|e| file_err(&path, format!("damaged config: {e}")))
}
