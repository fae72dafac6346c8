//! `convnet`: build, train, evaluate and use CNN image classifiers from one binary.

mod cmd;
mod device;

use clap::{Parser, Subcommand};

/// CNN image classification: train a convolutional network, evaluate it and predict with it.
///
/// With no arguments, `convnet train` trains a small CNN on Fashion-MNIST.
#[derive(Parser)]
#[command(name = "convnet", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train a model (from scratch, or resume a run).
    Train(cmd::train::Args),
    /// Evaluate a trained model: loss, top-1/top-5, per-class accuracy, confusion matrix.
    Eval(cmd::eval::Args),
    /// Predict the classes of image files or folders.
    Predict(cmd::predict::Args),
    /// List the models convnet can build.
    Models,
    /// Print a model's layers, output shapes, parameters and multiply-accumulates.
    Summary(cmd::summary::Args),
    /// Output size, padding and parameter arithmetic of convolutions and pooling.
    #[command(subcommand)]
    Calc(cmd::calc::Command),
    /// Dataset utilities (export a split as an image folder).
    #[command(subcommand)]
    Data(cmd::data::Command),
    /// Measure training throughput (images/s) of a model on synthetic data.
    Bench(cmd::bench::Args),
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Train(a) => cmd::train::run(a),
        Command::Eval(a) => cmd::eval::run(a),
        Command::Predict(a) => cmd::predict::run(a),
        Command::Models => cmd::models::run(),
        Command::Summary(a) => cmd::summary::run(a),
        Command::Calc(c) => cmd::calc::run(c),
        Command::Bench(a) => cmd::bench::run(a),
        Command::Data(c) => cmd::data::run(c),
    };
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
