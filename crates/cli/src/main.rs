//! `convnet`: build, train, evaluate and use CNN image classifiers from one binary.

mod cmd;
mod device;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

/// CNN image classification: train a convolutional network, evaluate it and predict with it.
///
/// With no arguments, `convnet train` trains a small CNN on Fashion-MNIST.
#[derive(Parser)]
#[command(name = "convnet", version, about, long_about = None, args_override_self = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Largest image accepted, in pixels (width x height), checked before decoding.
    #[arg(long, global = true, default_value_t = convnet_data::folder::MAX_PIXELS,
          value_parser = clap::value_parser!(u64).range(1..))]
    max_pixels: u64,
    /// Largest image file read, in bytes.
    #[arg(long, global = true, default_value_t = convnet_data::folder::MAX_IMAGE_BYTES,
          value_parser = clap::value_parser!(u64).range(1..))]
    max_image_bytes: u64,
}

// Parsed once per process; the size of the largest variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// Train a model (from scratch, or resume a run).
    Train(cmd::train::Args),
    /// Evaluate trained models (or an ensemble, with test-time augmentation): loss, top-1/top-5,
    /// per-class precision/recall/F1, calibration, confusion matrix, report.html.
    Eval(cmd::eval::Args),
    /// Predict the classes of image files or folders.
    Predict(cmd::predict::Args),
    /// Serve a trained model over HTTP: POST /predict, GET /model, GET /health.
    Serve(cmd::serve::Args),
    /// List the models convnet can build.
    Models,
    /// List the built-in training recipes (`convnet train --recipe NAME`).
    Recipes,
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
    /// Raw-pixel baselines: k-nearest neighbours and linear (SVM/softmax) classifiers.
    #[command(subcommand)]
    Baseline(cmd::baseline::Command),
    /// Put training runs side by side: accuracy, epochs, time, parameters.
    Compare(cmd::compare::Args),
    /// Write a PNG grid of one image and augmented versions of it (`--augment SPEC`).
    Augment(cmd::augment::Args),
    /// Extract (pretrained) convolutional features of a dataset once, for `train-head`.
    Features(cmd::features::Args),
    /// Train a linear or MLP classifier on features saved by `convnet features`.
    TrainHead(cmd::train_head::Args),
    /// List the pretrained weights `--pretrained` knows by name.
    Pretrained,
}

/// Output into a closed pipe (`convnet models | head`) ends the process quietly, as it does
/// for other Unix tools, instead of a panic on the next `println!`. Not for `serve`, which keeps
/// Rust's default (the signal ignored, a write error on that one connection).
fn quiet_broken_pipe() {
    #[cfg(unix)]
    // SAFETY: restores the default action of one signal before any thread is started; no
    // handler runs Rust code.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// `train --help` for `--augment`: the doc comment plus every key and preset, which live in
/// `convnet_data::augment` (one list for help and error messages).
fn augment_help() -> String {
    use convnet_data::augment::{KEYS, preset_names};
    format!(
        "Training augmentation: a spec (`hflip,shift=0.1,rotate=15`) or a preset; `convnet \
         augment` previews it. `none` turns off a recipe's augmentation.\n\nKeys: {KEYS}\n\n\
         Presets: {}",
        preset_names()
    )
}

fn main() {
    // Before any thread allocates (see the function: one malloc arena, freed memory kept).
    convnet_nn::fast::keep_freed_memory();
    convnet_nn::fast::flush_denormals();
    // `train --recipe/--config` become the recipe's flags, ahead of the ones given.
    let args = cmd::recipes::expand(std::env::args_os().collect()).unwrap_or_else(|e| {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    });
    let matches = Cli::command()
        .mut_subcommand("train", |c| {
            c.mut_arg("augment", |a| a.long_help(augment_help()))
        })
        .get_matches_from(args);
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    if !matches!(cli.command, Command::Serve(_)) {
        quiet_broken_pipe();
    }
    convnet_data::folder::set_limits(Some(cli.max_pixels), Some(cli.max_image_bytes));
    let result = match cli.command {
        Command::Train(a) => cmd::train::run(a),
        Command::Eval(a) => cmd::eval::run(a),
        Command::Predict(a) => cmd::predict::run(a),
        Command::Serve(a) => cmd::serve::run(a),
        Command::Models => cmd::models::run(),
        Command::Recipes => cmd::recipes::run(),
        Command::Summary(a) => cmd::summary::run(a),
        Command::Calc(c) => cmd::calc::run(c),
        Command::Bench(a) => cmd::bench::run(a),
        Command::Baseline(c) => cmd::baseline::run(c),
        Command::Compare(a) => cmd::compare::run(a),
        Command::Augment(a) => cmd::augment::run(a),
        Command::Features(a) => cmd::features::run(a),
        Command::TrainHead(a) => cmd::train_head::run(a),
        Command::Pretrained => cmd::features::list(),
        Command::Data(c) => cmd::data::run(c),
    };
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
