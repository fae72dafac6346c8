//! `convnet bench`: training-step or inference throughput on synthetic data, for `bench/`.

use std::time::Instant;

use anyhow::Result;
use burn::module::Module;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::GradientsParams;
use burn::tensor::{Distribution, Int, Tensor};
use convnet_nn::ModelSpec;
use convnet_train::config::{OptimizerConfig, OptimizerKind};

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
    /// Measure inference (forward only) instead of a training step (forward, backward, Adam).
    #[arg(long)]
    pub inference: bool,
    /// Compute device: cpu, ndarray, cuda[:N] or vulkan[:N].
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// CPU threads [default: one per core].
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
}

pub fn run(a: Args) -> Result<()> {
    crate::device::set_threads(a.threads);
    let device = crate::device::parse(&a.device)?;
    let entry = convnet_nn::find(&a.model)?;
    let [c, h, w] = entry.input;
    let spec = ModelSpec::new(&a.model, [c, h, w], 10);
    device.seed(0);
    let n = a.batch_size;
    let seconds = if a.inference {
        let model = convnet_nn::build(&spec, &device)?.valid();
        let x = Tensor::<4>::random([n, c, h, w], Distribution::Default, &device);
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
        let mut optim = convnet_train::optim::build(&OptimizerConfig {
            kind: OptimizerKind::Adam,
            lr: 1e-3,
            momentum: 0.0,
            weight_decay: 0.0,
            nesterov: false,
            decoupled: false,
        });
        let loss_fn = CrossEntropyLossConfig::new().init(&train);
        let x = Tensor::<4>::random([n, c, h, w], Distribution::Default, &train);
        let y = Tensor::<1, Int>::random([n], Distribution::Uniform(0.0, 10.0), &train);
        let mut t = Instant::now();
        for i in 0..a.warmup + a.steps {
            if i == a.warmup {
                t = Instant::now();
            }
            let loss = loss_fn.forward(model.forward(x.clone()), y.clone());
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            model = optim.step(1e-3, model, grads);
            let _ = loss.into_data();
        }
        t.elapsed().as_secs_f64()
    };
    let ips = (a.steps * n) as f64 / seconds;
    println!(
        "{{\"impl\": \"convnet\", \"model\": \"{}\", \"mode\": \"{}\", \"device\": \"{}\", \"batch\": {n}, \"steps\": {}, \"images_per_sec\": {ips:.1}}}",
        a.model,
        if a.inference { "inference" } else { "train" },
        a.device,
        a.steps
    );
    Ok(())
}
