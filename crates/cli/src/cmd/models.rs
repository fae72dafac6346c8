//! `convnet models`.

use anyhow::Result;
use convnet_nn::MODELS;

/// Prints the registry: name, native input, classes, parameters, multiply-accumulates, family,
/// paper (figures from the registry's metadata, which the test suite recomputes).
pub fn run() -> Result<()> {
    println!(
        "{:<22} {:<10} {:>7} {:>13} {:>8}  {:<14} paper",
        "model", "input", "classes", "params", "GMACs", "family"
    );
    for m in MODELS {
        let input = format!("{}x{}x{}", m.input[0], m.input[1], m.input[2]);
        println!(
            "{:<22} {:<10} {:>7} {:>13} {:>8.3}  {:<14} {}",
            m.name,
            input,
            m.classes,
            m.params,
            m.macs as f64 / 1e9,
            m.family,
            m.paper
        );
    }
    println!(
        "\nGMACs: multiply-accumulates per image at the native input (what papers call FLOPs)."
    );
    Ok(())
}
