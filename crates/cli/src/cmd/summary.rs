//! `convnet summary`: a Keras-style table of a model's layers.

use anyhow::{Result, bail};
use convnet_nn::ModelSpec;
use convnet_nn::summary::summarize;

use super::train::parse_size;

/// Options of `convnet summary`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Model name (see `convnet models`).
    pub model: String,
    /// Input CxHxW [default: the model's native input].
    #[arg(long)]
    pub input: Option<String>,
    /// Number of classes [default: the model's, e.g. 10 for resnet20, 1000 for ImageNet networks].
    #[arg(long)]
    pub num_classes: Option<usize>,
    /// Summarise only the convolutional base, without the classifier (Keras' `include_top=False`).
    #[arg(long)]
    pub no_top: bool,
    /// Batch size for the activation-memory estimate.
    #[arg(long, default_value_t = 1)]
    pub batch_size: usize,
}

/// Parses `--input CxHxW`.
pub fn parse_input(s: &str) -> Result<[usize; 3]> {
    let (c, hw) = s.split_once('x').unwrap_or(("", ""));
    let c: usize = c
        .parse()
        .map_err(|_| anyhow::anyhow!("--input '{s}' is not CxHxW"))?;
    let [h, w] = parse_size(hw).map_err(|_| anyhow::anyhow!("--input '{s}' is not CxHxW"))?;
    if c == 0 {
        bail!("--input needs at least one channel");
    }
    Ok([c, h, w])
}

pub fn run(a: Args) -> Result<()> {
    let entry = convnet_nn::find(&a.model)?;
    let [c, h, w] = match &a.input {
        Some(s) => parse_input(s)?,
        None => entry.input,
    };
    let spec = ModelSpec::new(&a.model, [c, h, w], a.num_classes.unwrap_or(entry.classes));
    let device = burn::tensor::Device::flex().autodiff();
    let net = convnet_nn::build(&spec, &device)?;
    let s = summarize(&net, &spec, &device, !a.no_top);
    println!("{s}");
    if a.batch_size > 1 {
        println!(
            "Activation memory for batch {}: {:.2} MB",
            a.batch_size,
            s.activation_bytes(a.batch_size) as f64 / 1e6
        );
    }
    Ok(())
}
