//! `convnet bench`: training-step or inference throughput on synthetic data, for `bench/`.
//!
//! Prints one JSON line (images/s, mean step time, peak RSS, and the settings that produced
//! them) so that `bench/run.sh`, `bench/compare.sh` and `bench/suite.sh` can set it beside
//! PyTorch's figure for the same network (`bench/torch_step.py` prints the same fields).

use std::time::Instant;

use anyhow::{Result, bail};
use burn::module::Module;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::GradientsParams;
use burn::tensor::{Distribution, Int, Tensor};
use clap::ValueEnum;
use convnet_nn::precision::{to_f32, to_precision};
use convnet_nn::{ModelSpec, Precision};
use convnet_train::config::OptimizerConfig;
use convnet_train::grad::LossScale;

use super::train::{Optimizer, parse_size};

/// Options of `convnet bench`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Model to measure.
    #[arg(long, default_value = "mnist-cnn")]
    pub model: String,
    /// Samples per batch.
    #[arg(long, default_value_t = 64)]
    pub batch_size: usize,
    /// Timed steps.
    #[arg(long, default_value_t = 30)]
    pub steps: usize,
    /// Untimed warm-up steps.
    #[arg(long, default_value_t = 5)]
    pub warmup: usize,
    /// Measure inference (forward only) instead of a training step (forward, backward,
    /// optimizer update).
    #[arg(long)]
    pub inference: bool,
    /// Input channels [default: the model's].
    #[arg(long)]
    pub in_channels: Option<usize>,
    /// Input size HxW, e.g. 32x32 [default: the model's].
    #[arg(long)]
    pub input_size: Option<String>,
    /// Output classes [default: the model's, e.g. 1000 for ImageNet networks].
    #[arg(long)]
    pub num_classes: Option<usize>,
    /// Optimizer of the training step, built as `convnet train` builds it.
    #[arg(long, value_enum, default_value_t = Optimizer::Adam)]
    pub optimizer: Optimizer,
    /// Learning rate [default: 0.001 for adam, adamw and rmsprop, 0.01 for sgd].
    #[arg(long)]
    pub lr: Option<f64>,
    /// Momentum for SGD (undampened, not Nesterov) and RMSprop [default: 0.9 for sgd, 0 for
    /// rmsprop].
    #[arg(long)]
    pub momentum: Option<f64>,
    /// Compute device: cpu, ndarray, cuda[:N], vulkan[:N] or wgpu[:vulkan|metal|dx12|gl].
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// CPU threads [default: one per core].
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Mixed precision, as `convnet train --precision`: f16 (with its loss scaling) or bf16.
    #[arg(long, default_value = "f32", value_name = "f32|f16|bf16")]
    pub precision: Precision,
}

/// The optimizer settings `convnet train` would use for `--optimizer`, `--lr` and
/// `--momentum`, without weight decay.
fn optimizer_config(opt: Optimizer, lr: Option<f64>, momentum: Option<f64>) -> OptimizerConfig {
    let (kind, lr, momentum) = opt.resolve(lr, momentum);
    OptimizerConfig {
        kind,
        lr,
        momentum,
        weight_decay: 0.0,
        nesterov: false,
        decoupled: false,
    }
}

/// Peak resident memory of this process in MiB (`VmHWM` of `/proc/self/status`; Linux only).
/// PyTorch's side reads the same field, so the two figures are comparable.
fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// Builds the model at the requested input and classes, runs `--warmup` untimed and `--steps`
/// timed steps on one fixed random batch, and prints the JSON line.
pub fn run(a: Args) -> Result<()> {
    crate::device::in_pool(a.threads, || measure(a))
}

fn measure(a: Args) -> Result<()> {
    let device = crate::device::parse(&a.device)?;
    crate::device::check_precision(&device, &a.device, a.precision)?;
    let entry = convnet_nn::find(&a.model)?;
    let c = a.in_channels.unwrap_or(entry.input[0]);
    let [h, w] = match &a.input_size {
        Some(s) => parse_size(s)?,
        None => [entry.input[1], entry.input[2]],
    };
    let classes = a.num_classes.unwrap_or(entry.classes);
    if a.steps == 0 || a.batch_size == 0 || classes == 0 {
        bail!("--steps, --batch-size and --num-classes must be at least 1");
    }
    let spec = ModelSpec::new(&a.model, [c, h, w], classes);
    let optim_cfg = optimizer_config(a.optimizer, a.lr, a.momentum);
    device.seed(0);
    let n = a.batch_size;
    let seconds = if a.inference {
        let model = convnet_nn::build(&spec, &device)?.valid();
        let x = Tensor::<4>::random([n, c, h, w], Distribution::Default, &device);
        let x = to_precision(x, a.precision);
        let mut t = Instant::now();
        for i in 0..a.warmup + a.steps {
            if i == a.warmup {
                t = Instant::now();
            }
            let _ = model.forward(x.clone()).into_data();
        }
        t.elapsed().as_secs_f64()
    } else {
        let train = device.clone().autodiff();
        let mut model = convnet_nn::build(&spec, &train)?;
        let mut optim = convnet_train::optim::build(&optim_cfg);
        let loss_fn = CrossEntropyLossConfig::new().init(&train);
        let x = Tensor::<4>::random([n, c, h, w], Distribution::Default, &train);
        let x = to_precision(x, a.precision);
        let y = Tensor::<1, Int>::random([n], Distribution::Uniform(0.0, classes as f64), &train);
        // Float16 pays for its loss scaling as the trainer (and PyTorch's GradScaler) does.
        let mut loss_scale = (a.precision == Precision::F16).then(LossScale::default);
        let mut t = Instant::now();
        for i in 0..a.warmup + a.steps {
            if i == a.warmup {
                t = Instant::now();
            }
            let loss = loss_fn.forward(to_f32(model.forward(x.clone())), y.clone());
            let scaled = match &loss_scale {
                Some(s) => loss.clone().mul_scalar(s.scale),
                None => loss.clone(),
            };
            let mut grads = GradientsParams::from_grads(scaled.backward(), &model);
            if loss_scale
                .as_mut()
                .is_none_or(|s| s.unscale(&model, &mut grads))
            {
                model = optim.step(optim_cfg.lr, model, grads);
            }
            let _ = loss.into_data();
        }
        t.elapsed().as_secs_f64()
    };
    let optimizer = (!a.inference)
        .then(|| a.optimizer.to_possible_value())
        .flatten()
        .map(|v| v.get_name().to_string());
    let fields: [(&str, serde_json::Value); 15] = [
        ("impl", "convnet".into()),
        ("model", a.model.clone().into()),
        (
            "mode",
            if a.inference { "inference" } else { "train" }.into(),
        ),
        ("optimizer", optimizer.into()),
        ("device", a.device.clone().into()),
        ("precision", a.precision.to_string().into()),
        ("input", serde_json::json!([c, h, w])),
        ("classes", classes.into()),
        ("batch", n.into()),
        ("steps", a.steps.into()),
        ("warmup", a.warmup.into()),
        ("threads", rayon::current_num_threads().into()),
        ("step_ms", round1(1e3 * seconds / a.steps as f64).into()),
        (
            "images_per_sec",
            round2((a.steps * n) as f64 / seconds).into(),
        ),
        ("peak_rss_mb", peak_rss_mib().map(round1).into()),
    ];
    println!("{}", json_line(&fields));
    Ok(())
}

/// One JSON object on one line, written `{"key": value, …}` with a space after each colon and
/// comma, the form `bench/run.sh` and `bench/compare.sh` pick `images_per_sec` out of with `sed`.
fn json_line(fields: &[(&str, serde_json::Value)]) -> String {
    let body: Vec<String> = fields
        .iter()
        .map(|(k, v)| format!("{}: {}", serde_json::Value::from(*k), v))
        .collect();
    format!("{{{}}}", body.join(", "))
}

/// `x` to one decimal, so the JSON line stays short.
fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// `x` to two decimals (images/s of the large networks are single digits on a few cores).
fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}
