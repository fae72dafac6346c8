//! `convnet models`.

use anyhow::Result;
use burn::module::Module;
use burn::tensor::Device;
use convnet_nn::{MODELS, ModelSpec};

/// Prints the registry: name, native input, parameters at 10 classes, family, paper.
pub fn run() -> Result<()> {
    println!(
        "{:<12} {:<10} {:>12}  {:<10} paper",
        "model", "input", "params@10", "family"
    );
    for m in MODELS {
        let spec = ModelSpec {
            name: m.name.into(),
            in_channels: m.input[0],
            input_size: [m.input[1], m.input[2]],
            num_classes: 10,
        };
        let params = convnet_nn::build(&spec, &Device::flex())?.num_params();
        let input = format!("{}x{}x{}", m.input[0], m.input[1], m.input[2]);
        println!(
            "{:<12} {:<10} {:>12}  {:<10} {}",
            m.name, input, params, m.family, m.paper
        );
    }
    Ok(())
}
