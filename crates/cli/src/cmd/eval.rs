//! `convnet eval`.

use std::path::PathBuf;

use anyhow::{Result, bail};
use burn::module::Module;
use convnet_data::{Loader, Source};
use convnet_eval::evaluate;
use convnet_eval::plot::plot_confusion;
use convnet_train::Checkpoint;
use convnet_train::trainer::read_config;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::json;

/// Options of `convnet eval`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// A run folder (its best.ckpt is used) or a checkpoint file.
    pub checkpoint: PathBuf,
    /// Data to evaluate on [default: the run's data]; its test split (or test/ folder) is used.
    #[arg(long)]
    pub data: Option<String>,
    /// JSON file mapping folder names to class names.
    #[arg(long)]
    pub class_map: Option<PathBuf>,
    /// Samples per batch.
    #[arg(long, default_value_t = 256)]
    pub batch_size: usize,
    /// Print the results as JSON.
    #[arg(long)]
    pub json: bool,
    /// Folder for confusion.png and eval.json [default: the checkpoint's folder].
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Compute device: cpu, cuda[:N] or vulkan[:N].
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// CPU threads for the tensor kernels [default: one per core].
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
}

pub fn run(a: Args) -> Result<()> {
    crate::device::set_threads(a.threads);
    let device = crate::device::parse(&a.device)?;
    let path = super::resolve_checkpoint(&a.checkpoint)?;
    let ckpt = Checkpoint::load(&path, &device)?;
    let run_dir = path.parent().map(PathBuf::from).unwrap_or_default();
    let (data, class_map) = match (&a.data, read_config(&run_dir)) {
        (Some(d), _) => (d.clone(), a.class_map.clone()),
        (None, Ok(cfg)) => (cfg.data.source, a.class_map.clone().or(cfg.data.class_map)),
        (None, Err(_)) => bail!(
            "{}: no config.json beside the checkpoint; say which data to use with --data",
            path.display()
        ),
    };
    let source = Source::parse(&data, class_map.as_deref())?;
    let test = source.test()?;
    let classes = &ckpt.meta.classes;
    if test.classes().len() != classes.len() {
        bail!(
            "{data} has {} classes but the model was trained on {} ({})",
            test.classes().len(),
            classes.len(),
            classes.join(", ")
        );
    }
    let loader = Loader::new(
        test.clone(),
        ckpt.meta.preprocess.clone(),
        a.batch_size.max(1),
        false,
        0,
    );
    let model = ckpt.model.valid();
    let pb = ProgressBar::new(loader.num_batches() as u64);
    if super::interactive() {
        pb.set_style(
            ProgressStyle::with_template("eval [{bar:28}] {pos}/{len} {per_sec} ETA {eta} {msg}")?
                .progress_chars("=> "),
        );
    } else {
        pb.set_draw_target(ProgressDrawTarget::hidden());
    }
    let mut reported = 0usize;
    let m = evaluate(&model, &loader, &device, |b, m| {
        for (_, why) in &b.skipped {
            pb.suspend(|| eprintln!("warning: skipped {why}"));
            reported += 1;
        }
        pb.inc(1);
        pb.set_message(format!("acc {:.2}%", 100.0 * m.accuracy()));
    });
    pb.finish_and_clear();
    if m.count == 0 {
        bail!("no image of {data} could be evaluated");
    }

    let out = a.out.clone().unwrap_or(run_dir);
    let png = out.join("confusion.png");
    plot_confusion(
        &png,
        &m.confusion_rows(),
        classes,
        &format!(
            "{} on {} (top-1 {:.2}%)",
            ckpt.meta.model.name,
            data,
            100.0 * m.accuracy()
        ),
    )?;
    let per_class = m.per_class_accuracy();
    let report = json!({
        "checkpoint": path,
        "data": data,
        "samples": m.count,
        "skipped": reported,
        "loss": m.loss(),
        "top1": m.accuracy(),
        "top5": m.top5(),
        "top1_error": 1.0 - m.accuracy(),
        "top5_error": 1.0 - m.top5(),
        "per_class_accuracy": classes.iter().zip(&per_class).map(|(c, a)| json!({"class": c, "accuracy": a})).collect::<Vec<_>>(),
        "confusion": m.confusion_rows(),
        "classes": classes,
    });
    convnet_data::files::write_atomic(
        &out.join("eval.json"),
        serde_json::to_string_pretty(&report)?.as_bytes(),
    )?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    println!("{} on {}: {} images", path.display(), data, m.count);
    println!(
        "loss {:.4}   top-1 {:.2}% (error {:.2}%)   top-5 {:.2}% (error {:.2}%)",
        m.loss(),
        100.0 * m.accuracy(),
        100.0 * (1.0 - m.accuracy()),
        100.0 * m.top5(),
        100.0 * (1.0 - m.top5())
    );
    println!("\nper-class accuracy:");
    for (c, acc) in classes.iter().zip(&per_class) {
        match acc {
            Some(acc) => println!("  {c:<20} {:6.2}%", 100.0 * acc),
            None => println!("  {c:<20}    n/a"),
        }
    }
    println!("\nconfusion matrix (rows: true class, columns: predicted):");
    let width = m
        .confusion
        .iter()
        .max()
        .map(|v| v.to_string().len())
        .unwrap_or(1)
        .max(3);
    print!("  {:>20}", "");
    for j in 0..classes.len() {
        print!(" {j:>width$}");
    }
    println!();
    for (i, row) in m.confusion_rows().iter().enumerate() {
        let name: String = classes[i].chars().take(16).collect();
        print!("  {:>16} {i:>3}", name);
        for v in row.iter() {
            print!(" {v:>width$}");
        }
        println!();
    }
    println!(
        "\nwrote {} and {}",
        png.display(),
        out.join("eval.json").display()
    );
    Ok(())
}
