//! The epoch loop: train, validate, record history, checkpoint, resume.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use burn::module::Module;
use burn::optim::GradientsParams;
use burn::tensor::Device;
use convnet_data::{Batch, DataError, Loader, Source};
use convnet_eval::{Metrics, evaluate, images_tensor};
use convnet_nn::precision::{to_f32, to_precision};
use convnet_nn::{ModelError, Network, Precision};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::checkpoint::{
    self, Checkpoint, CheckpointError, CheckpointMeta, FORMAT_VERSION, PartialEpoch,
};
use crate::config::{NanPolicy, TrainingConfig};
use crate::early::DecoupledDecay;
use crate::ema::Ema;
use crate::history::{History, HistoryRow};
use crate::schedule::Position;
use crate::{grad, loss, optim};

/// What resuming restores: model, optimizer, epochs done, best accuracy, history, how far
/// into the next epoch the run got when it was stopped mid-epoch, and a float16 run's loss
/// scale.
type Restored = (
    Network,
    burn::optim::ModuleOptimizer,
    usize,
    f64,
    History,
    Option<PartialEpoch>,
    Option<grad::LossScale>,
);

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

/// With `--nan skip-batch`, this many non-finite batches in a row stop the run anyway.
pub const MAX_NAN_BATCHES_IN_A_ROW: usize = 10;

/// A failed write or read of a run file, with advice when the cause is fixable (full disk…).
fn io_err(path: &Path, e: std::io::Error) -> TrainError {
    match convnet_data::files::io_advice(&e) {
        Some(advice) => file_err(path, format!("{e}; {advice}")),
        None => file_err(path, e),
    }
}

/// A panic's message when it says the process ran out of memory, turned into advice.
fn out_of_memory_advice(panic: &(dyn std::any::Any + Send), batch_size: usize) -> Option<String> {
    let msg = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())?;
    let lower = msg.to_lowercase();
    (lower.contains("out of memory") || lower.contains("outofmemory") || lower.contains("memory allocation"))
        .then(|| {
            format!(
                "out of memory ({msg}); lower --batch-size (now {batch_size}), use a smaller --input-size or model, or continue with --resume after freeing memory"
            )
        })
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
    /// Runs on a thread pool of its own ([`convnet_nn::fast::cpu_pool`], as many threads as
    /// the global one, with 256 MiB stacks), whatever pool the caller is on. The layers'
    /// parallel loops then start from a thread of the pool that runs them, rather than being
    /// handed to the pool by a thread outside it, which woke a sleeping worker and put the
    /// caller to sleep for every one of them (seed 003's CNN, ResNet-18 at 32x32 and ResNet-50
    /// at batch 1: x1.08 to x1.09).
    pub fn run(&self, resume: bool) -> Result<Outcome, TrainError> {
        let pool = convnet_nn::fast::cpu_pool(rayon::current_num_threads())
            .thread_name(|i| format!("convnet-train-{i}"))
            .build()
            .map_err(|e| TrainError::Config(format!("cannot start the training threads: {e}")))?;
        let work = std::panic::AssertUnwindSafe(|| pool.install(|| self.run_here(resume)));
        std::panic::catch_unwind(work).unwrap_or_else(|panic| {
            match out_of_memory_advice(panic.as_ref(), self.config.batch_size) {
                Some(advice) => Err(TrainError::Config(advice)),
                None => std::panic::resume_unwind(panic),
            }
        })
    }

    fn run_here(&self, resume: bool) -> Result<Outcome, TrainError> {
        let cfg = &self.config;
        let source = Source::parse(&cfg.data.source, cfg.data.class_map.as_deref())?
            .with_per_class(cfg.data.per_class);
        let (train, val) = source.train_val(cfg.data.val_split, cfg.seed)?;
        let classes = train.classes().to_vec();
        if classes.len() != cfg.model.num_classes {
            return Err(TrainError::Config(format!(
                "the model has {} outputs but the data has {} classes",
                cfg.model.num_classes,
                classes.len()
            )));
        }
        std::fs::create_dir_all(&self.paths.dir).map_err(|e| io_err(&self.paths.dir, e))?;
        // Half-written files of a killed earlier process; the finished ones are intact.
        convnet_data::files::remove_stale_temporaries(&self.paths.dir)
            .map_err(|e| io_err(&self.paths.dir, e))?;
        let train_device = self.device.clone().autodiff();

        let (mut model, mut optim, start, mut best, mut history, mut partial, saved_scale) =
            if resume {
                self.restore(&train_device)?
            } else {
                let json = serde_json::to_vec_pretty(cfg).expect("config serialises");
                convnet_data::files::write_atomic(&self.paths.config(), &json)
                    .map_err(|e| io_err(&self.paths.config(), e))?;
                self.device.seed(cfg.seed);
                let model = convnet_nn::build(&cfg.model, &train_device)?;
                // Pretrained weights and a new head (transfer learning), when configured.
                let model =
                    crate::transfer::init(model, &cfg.model, cfg.transfer.as_ref(), &train_device)?;
                (
                    model,
                    optim::build(&cfg.optimizer),
                    0,
                    f64::NEG_INFINITY,
                    History::default(),
                    None,
                    None,
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
        if let Some(spec) = &cfg.data.augment {
            let aug = convnet_data::Augment::parse(spec)
                .map_err(|e| TrainError::Config(format!("--augment: {e}")))?;
            train_loader.augment = Some(std::sync::Arc::new(aug));
        }
        if cfg.data.workers > 0 {
            train_loader.workers = cfg.data.workers;
            if let Some(l) = val_loader.as_mut() {
                l.workers = cfg.data.workers;
            }
        }
        let aux_weight = cfg.aux_weight.unwrap_or_else(|| model.aux_loss_weight());
        let mut ema = match cfg.ema {
            Some(decay) => Some(self.ema_start(&model, decay, resume)?),
            None => None,
        };
        // Gradients summed over `--accumulate` batches, and how many batches they hold.
        let mut pending: Option<(GradientsParams, usize)> = None;
        let num_batches = train_loader.num_batches().max(1);
        let mut reported = std::collections::HashSet::new();
        let (mut nan_in_a_row, mut nan_skipped) = (0usize, 0usize);
        // Float16 training scales the loss (bfloat16 has float32's range and needs none).
        let mut loss_scale =
            (cfg.precision == Precision::F16).then(|| saved_scale.unwrap_or_default());

        for epoch in start..cfg.epochs {
            // Seeding per epoch makes dropout masks depend on (seed, epoch) only, so a resumed
            // run replays exactly what an uninterrupted one would.
            self.device.seed(cfg.seed.wrapping_add(1 + epoch as u64));
            // Freezing (and unfreezing at --unfreeze-at) and the backbone's learning rate.
            let (m, split) = crate::transfer::for_epoch(
                model,
                &cfg.model,
                cfg.transfer.as_ref(),
                epoch,
                &train_device,
            )?;
            model = m;
            let lr_split = split;
            let val_losses: Vec<f64> = history.rows.iter().map(|r| r.val_loss).collect();
            let at = crate::schedule::Position {
                epoch,
                frac: 0.0,
                epochs: cfg.epochs,
            };
            let lr = cfg.schedule.lr(cfg.optimizer.lr, at, &val_losses);
            let lr_of_batch = |b: usize| {
                let at = Position {
                    frac: b as f64 / num_batches as f64,
                    ..at
                };
                cfg.schedule.lr(cfg.optimizer.lr, at, &val_losses)
            };
            let pb = bar(
                train_loader.num_batches(),
                format!("epoch {}/{}", epoch + 1, cfg.epochs),
                self.progress,
            );
            // A run stopped mid-epoch continues at the batch it stopped before.
            let (skip, mut m, spent) = match partial.take() {
                Some(p) => (p.batches, p.metrics, p.seconds),
                None => (0, Metrics::new(classes.len()), 0.0),
            };
            pb.set_position(skip as u64);
            let started = Instant::now();
            for (i, mut batch) in train_loader.epoch_from(epoch, skip).enumerate() {
                let b = skip + i;
                // Stop only between optimizer steps, so that what is saved can continue exactly.
                if pending.is_none() && self.stop.load(Ordering::SeqCst) {
                    pb.abandon();
                    let done = PartialEpoch {
                        batches: b,
                        metrics: m,
                        seconds: spent + started.elapsed().as_secs_f64(),
                    };
                    return Err(self.interrupted_in(
                        epoch,
                        done,
                        &model,
                        &optim,
                        best,
                        &classes,
                        &ema,
                        &loss_scale,
                    ));
                }
                // Dropout and other randomness depend on (seed, epoch, batch) only, so a run
                // resumed at any batch replays exactly what an uninterrupted one would.
                self.device.seed(
                    cfg.seed
                        .wrapping_add(1 + epoch as u64)
                        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
                        .wrapping_add(b as u64),
                );
                if cfg.data.strict
                    && let Some(e) = DataError::first_skipped(&batch.skipped)
                {
                    pb.abandon();
                    return Err(e.into());
                }
                self.report_skipped(&batch, &mut reported, &pb);
                if batch.labels.is_empty() {
                    continue;
                }
                let x = to_precision(images_tensor(&mut batch, &train_device), cfg.precision);
                let (logits, aux) = if aux_weight > 0.0 {
                    model.forward_with_aux(x)
                } else {
                    (model.forward(x), Vec::new())
                };
                let (logits, aux): (_, Vec<_>) =
                    (to_f32(logits), aux.into_iter().map(to_f32).collect());
                let host = logits.to_data().try_to_vec::<f32>().expect("f32 logits");
                let mut batch_metrics = Metrics::new(classes.len());
                batch_metrics.update(&host, &batch.labels);
                if !batch_metrics.loss_sum.is_finite() {
                    nan_in_a_row += 1;
                    let give_up = nan_in_a_row >= MAX_NAN_BATCHES_IN_A_ROW;
                    if cfg.nan == NanPolicy::Stop || give_up {
                        pb.abandon();
                        let skipped = if give_up {
                            format!(
                                " ({nan_in_a_row} batches in a row; --nan skip-batch cannot help)"
                            )
                        } else {
                            " (--nan skip-batch skips such batches instead)".to_string()
                        };
                        // Float16's range ends at 65,504: logits beyond it are infinite.
                        let skipped = if cfg.precision == Precision::F16 {
                            format!("{skipped}; float16 overflows at 65,504: try --precision bf16")
                        } else {
                            skipped
                        };
                        return Err(TrainError::NonFinite {
                            value: batch_metrics.loss_sum,
                            epoch: epoch + 1,
                            batch: b + 1,
                            lr,
                            last_good: format!("{}{skipped}", self.last_good()),
                        });
                    }
                    nan_skipped += 1;
                    pb.suspend(|| {
                        eprintln!(
                            "warning: loss is {} at epoch {}, batch {}; skipped this batch ({nan_skipped} skipped so far)",
                            batch_metrics.loss_sum,
                            epoch + 1,
                            b + 1
                        )
                    });
                    continue;
                }
                nan_in_a_row = 0;
                m.update(&host, &batch.labels);
                let k = classes.len();
                // Soft targets: MixUp/CutMix rows, or one-hot labels; then label smoothing.
                let mut targets = batch
                    .soft
                    .take()
                    .unwrap_or_else(|| loss::smoothed_targets(&batch.labels, k, 0.0));
                if cfg.label_smoothing > 0.0 {
                    loss::smooth_soft(&mut targets, k, cfg.label_smoothing);
                }
                let t = loss::targets_tensor(targets, k, &train_device);
                let mut batch_loss = loss::soft_cross_entropy(logits, t.clone());
                for a in aux {
                    batch_loss =
                        batch_loss + loss::soft_cross_entropy(a, t.clone()).mul_scalar(aux_weight);
                }
                if let Some(s) = &loss_scale {
                    batch_loss = batch_loss.mul_scalar(s.scale);
                }
                let grads = GradientsParams::from_grads(batch_loss.backward(), &model);
                let (grads, n) = match pending.take() {
                    Some((mut acc, n)) => {
                        grad::accumulate(&model, &mut acc, grads);
                        (acc, n + 1)
                    }
                    None => (grads, 1),
                };
                if n < cfg.accumulate.max(1) {
                    pending = Some((grads, n));
                } else {
                    model = self.step(
                        model,
                        &mut optim,
                        grads,
                        n,
                        lr_of_batch(b),
                        &mut ema,
                        lr_split.as_ref(),
                        loss_scale.as_mut(),
                    );
                }
                pb.inc(1);
                pb.set_message(format!(
                    "loss {:.4} acc {:.2}%",
                    m.loss(),
                    100.0 * m.accuracy()
                ));
            }
            if let Some((grads, n)) = pending.take() {
                model = self.step(
                    model,
                    &mut optim,
                    grads,
                    n,
                    lr_of_batch(num_batches - 1),
                    &mut ema,
                    lr_split.as_ref(),
                    loss_scale.as_mut(),
                );
            }
            let seconds = spent + started.elapsed().as_secs_f64();
            pb.finish_and_clear();

            let (val_loss, val_acc) = match &val_loader {
                Some(loader) => {
                    let eval_model = model.valid();
                    let mut broken = None;
                    let vm = evaluate(&eval_model, loader, &self.device, |b, _| {
                        self.report_skipped(b, &mut reported, &pb);
                        broken = broken
                            .take()
                            .or_else(|| DataError::first_skipped(&b.skipped));
                    });
                    if cfg.data.strict
                        && let Some(e) = broken
                    {
                        return Err(e.into());
                    }
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
            // Within-epoch schedules (warm-up, cosine per batch) show where the LR went.
            let last_lr = lr_of_batch(num_batches - 1);
            let lr_shown = if (last_lr - lr).abs() > 1e-6 * lr.abs().max(last_lr.abs()) {
                format!("{lr:.2e}→{last_lr:.2e}")
            } else {
                format!("{lr:.2e}")
            };
            println!(
                "epoch {:>3}/{}  lr {}  train loss {:.4} acc {:.2}%  val loss {:.4} acc {:.2}%  {:.1}s ({:.0} img/s)",
                row.epoch,
                cfg.epochs,
                lr_shown,
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
                &loss_scale,
            )?;
            if let Some(ema) = &ema {
                self.save_ema(ema, &val_loader, &classes, epoch + 1)?;
            }
            if let Some(rule) = &cfg.early_stopping {
                let values: Vec<f64> = history
                    .rows
                    .iter()
                    .map(|r| match rule.monitor {
                        crate::early::Monitor::ValAcc => r.val_acc,
                        crate::early::Monitor::ValLoss => r.val_loss,
                    })
                    .collect();
                if values.iter().all(|v| v.is_finite()) && rule.should_stop(&values) {
                    println!(
                        "early stopping after epoch {}: no improvement for {} epochs (best checkpoint: {})",
                        epoch + 1,
                        rule.patience,
                        self.paths.best().display()
                    );
                    break;
                }
            }
        }
        if nan_skipped > 0 {
            println!(
                "skipped {nan_skipped} batches whose loss was NaN or infinite (--nan skip-batch)"
            );
        }
        Ok(Outcome {
            history,
            best_accuracy: best,
        })
    }

    /// One optimizer step with `n` batches' summed gradients: average, unscale (float16), clip,
    /// decoupled weight decay, the optimizer's update, then the EMA.
    #[allow(clippy::too_many_arguments)]
    fn step(
        &self,
        model: Network,
        optim: &mut burn::optim::ModuleOptimizer,
        mut grads: GradientsParams,
        n: usize,
        lr: f64,
        ema: &mut Option<Ema>,
        lr_split: Option<&crate::transfer::LrSplit>,
        loss_scale: Option<&mut grad::LossScale>,
    ) -> Network {
        let cfg = &self.config;
        if n > 1 {
            grad::scale(&model, &mut grads, 1.0 / n as f64);
        }
        // Float16: gradients that overflowed skip the step (and lower the scale).
        if let Some(s) = loss_scale
            && !s.unscale(&model, &mut grads)
        {
            return model;
        }
        if let Some(max) = cfg.clip_grad_norm {
            grad::clip_global_norm(&model, &mut grads, max);
        }
        let model = if cfg.optimizer.decoupled_decay() {
            model.map(&mut DecoupledDecay {
                factor: 1.0 - lr * cfg.optimizer.weight_decay,
            })
        } else {
            model
        };
        let model = optim.step(crate::transfer::learning_rate(lr, lr_split), model, grads);
        if let Some(e) = ema.as_mut() {
            e.update(&model);
        }
        model
    }

    /// The EMA to continue: `ema.ckpt` when resuming a run that has one, else `model`.
    fn ema_start(&self, model: &Network, decay: f64, resume: bool) -> Result<Ema, TrainError> {
        let path = self.ema_path();
        let mut ema = Ema::new(model, decay);
        if resume && path.exists() {
            let ckpt = Checkpoint::load(&path, &self.device)?;
            ema.model = ckpt.model.valid();
            // Past the warm-up: the decay is the target one from here on.
            ema.updates = u64::MAX / 2;
        }
        Ok(ema)
    }

    /// Evaluates the EMA weights on the validation data, prints the figures and saves them as
    /// `ema.ckpt`.
    fn save_ema(
        &self,
        ema: &Ema,
        val: &Option<Loader>,
        classes: &[String],
        epoch: usize,
    ) -> Result<(), TrainError> {
        let acc = match val {
            Some(loader) => {
                let m = evaluate(&ema.model, loader, &self.device, |_, _| {});
                println!(
                    "          EMA (decay {}): val loss {:.4} acc {:.2}%",
                    ema.decay,
                    m.loss(),
                    100.0 * m.accuracy()
                );
                m.accuracy()
            }
            None => f64::NAN,
        };
        let meta = self.meta(classes, epoch, acc, None, &None);
        checkpoint::save(&self.ema_path(), &meta, &ema.model, None)?;
        Ok(())
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
        loss_scale: &Option<grad::LossScale>,
    ) -> Result<(), TrainError> {
        let p = &self.paths;
        convnet_data::files::write_atomic(&p.history(), history.to_csv().as_bytes())
            .map_err(|e| io_err(&p.history(), e))?;
        history.plot(&p.curves()).map_err(|e| match e {
            convnet_eval::plot::PlotError::Io { source, .. } => io_err(&p.curves(), source),
            e => file_err(&p.curves(), e),
        })?;
        // TensorBoard scalars (loss, accuracy, lr per epoch), rewritten from the history.
        crate::tensorboard::write_history(&p.dir, history).map_err(|e| io_err(&p.dir, e))?;
        let improved = monitored > *best;
        if improved {
            *best = monitored;
        }
        let meta = self.meta(classes, epoch, *best, None, loss_scale);
        if improved {
            checkpoint::save(&p.best(), &meta, model, None)?;
        }
        checkpoint::save(&p.last(), &meta, model, Some(optim))?;
        Ok(())
    }

    fn restore(&self, device: &Device) -> Result<Restored, TrainError> {
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
        match &ckpt.meta.partial {
            Some(p) => println!(
                "resuming {} in epoch {} after batch {}",
                self.paths.dir.display(),
                ckpt.meta.epoch + 1,
                p.batches
            ),
            None => println!(
                "resuming {} after epoch {}",
                self.paths.dir.display(),
                ckpt.meta.epoch
            ),
        }
        Ok((
            ckpt.model,
            optim,
            ckpt.meta.epoch,
            ckpt.meta.best_accuracy,
            history,
            ckpt.meta.partial,
            ckpt.meta.loss_scale,
        ))
    }

    /// Ctrl-C inside an epoch: saves `last.ckpt` (and the EMA) at this batch, so that
    /// `--resume` continues from here, and says so.
    #[allow(clippy::too_many_arguments)]
    fn interrupted_in(
        &self,
        epoch: usize,
        done: PartialEpoch,
        model: &Network,
        optim: &burn::optim::ModuleOptimizer,
        best: f64,
        classes: &[String],
        ema: &Option<Ema>,
        loss_scale: &Option<grad::LossScale>,
    ) -> TrainError {
        if done.batches == 0 {
            return self.interrupted(epoch);
        }
        let batches = done.batches;
        let meta = self.meta(classes, epoch, best, Some(done), loss_scale);
        let saved = ema
            .as_ref()
            .map(|e| checkpoint::save(&self.ema_path(), &meta, &e.model, None))
            .unwrap_or(Ok(()))
            .and_then(|()| checkpoint::save(&self.paths.last(), &meta, model, Some(optim)));
        match saved {
            Ok(()) => TrainError::Interrupted {
                epoch: epoch + 1,
                saved: format!(
                    "{} holds the run after batch {batches} of this epoch; continue with `convnet train --resume {}`",
                    self.paths.last().display(),
                    self.paths.dir.display()
                ),
            },
            Err(e) => e.into(),
        }
    }

    /// The metadata of a checkpoint of this run after `epoch` completed epochs.
    fn meta(
        &self,
        classes: &[String],
        epoch: usize,
        best_accuracy: f64,
        partial: Option<PartialEpoch>,
        loss_scale: &Option<grad::LossScale>,
    ) -> CheckpointMeta {
        CheckpointMeta {
            format: FORMAT_VERSION,
            model: self.config.model.clone(),
            preprocess: self.config.preprocess.clone(),
            classes: classes.to_vec(),
            epoch,
            best_accuracy,
            partial,
            loss_scale: loss_scale.clone(),
        }
    }

    fn ema_path(&self) -> PathBuf {
        self.paths.dir.join("ema.ckpt")
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_of_memory_panics_become_advice_and_others_do_not() {
        let oom: Box<dyn std::any::Any + Send> =
            Box::new("memory allocation of 123 bytes failed: out of memory".to_string());
        let advice = out_of_memory_advice(oom.as_ref(), 64).unwrap();
        assert!(advice.contains("--batch-size (now 64)"), "{advice}");
        let other: Box<dyn std::any::Any + Send> = Box::new("index out of bounds");
        assert!(out_of_memory_advice(other.as_ref(), 64).is_none());
        let full = io_err(
            Path::new("runs/x/last.ckpt"),
            std::io::Error::from_raw_os_error(28),
        );
        assert!(full.to_string().contains("disk is full"), "{full}");
    }
}
