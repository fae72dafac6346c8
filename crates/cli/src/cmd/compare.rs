//! `convnet compare RUN…`: runs side by side (model, epochs, final and best validation
//! accuracy, test accuracy, training time, parameters), from each run folder's files.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use convnet_train::History;
use convnet_train::trainer::read_config;
use serde_json::json;

/// Options of `convnet compare`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Run folders written by `convnet train`.
    #[arg(required = true)]
    pub runs: Vec<PathBuf>,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// One run's figures.
struct Row {
    run: String,
    model: String,
    epochs: usize,
    final_val: f64,
    best_val: f64,
    best_epoch: usize,
    test_top1: Option<f64>,
    seconds: f64,
    images_per_sec: f64,
    params: usize,
}

fn row(dir: &Path) -> Result<Row> {
    if !dir.is_dir() {
        bail!("{}: not a run folder", dir.display());
    }
    let cfg = read_config(dir)?;
    let hpath = dir.join("history.csv");
    let text = std::fs::read_to_string(&hpath).with_context(|| {
        format!(
            "cannot read {}; has this run finished an epoch?",
            hpath.display()
        )
    })?;
    let h = History::from_csv(&text).map_err(|e| anyhow::anyhow!("{}: {e}", hpath.display()))?;
    let last = h
        .rows
        .last()
        .with_context(|| format!("{}: no epoch recorded yet", hpath.display()))?;
    let (best_epoch, best_val) = h
        .rows
        .iter()
        .filter(|r| r.val_acc.is_finite())
        .map(|r| (r.epoch, r.val_acc))
        .fold(
            (0, f64::NAN),
            |b, r| if b.1.is_nan() || r.1 > b.1 { r } else { b },
        );
    // Single-crop test accuracy of the run's own model: `convnet eval` always computes it
    // (first variant), whatever --tta or ensemble gave the main figures.
    let test_top1 = std::fs::read_to_string(dir.join("eval.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .and_then(|v| {
            v["variants"]
                .get(0)
                .and_then(|x| x["top1"].as_f64())
                .or_else(|| v["top1"].as_f64())
        });
    // Parameters of the architecture as configured (head sized for the run's classes).
    let model = convnet_nn::build(&cfg.model, &burn::tensor::Device::flex())?;
    Ok(Row {
        run: dir.display().to_string(),
        model: cfg.model.name.clone(),
        epochs: last.epoch,
        final_val: last.val_acc,
        best_val,
        best_epoch,
        test_top1,
        seconds: h.rows.iter().map(|r| r.seconds).sum(),
        images_per_sec: h.rows.iter().map(|r| r.images_per_sec).sum::<f64>() / h.rows.len() as f64,
        params: convnet_nn::learnable_params(&model),
    })
}

pub fn run(a: Args) -> Result<()> {
    let rows = a.runs.iter().map(|r| row(r)).collect::<Result<Vec<_>>>()?;
    if a.json {
        let v: Vec<_> = rows
            .iter()
            .map(|r| {
                json!({"run": r.run, "model": r.model, "epochs": r.epochs,
                       "final_val_acc": r.final_val, "best_val_acc": r.best_val,
                       "best_epoch": r.best_epoch, "test_top1": r.test_top1,
                       "train_seconds": r.seconds, "images_per_sec": r.images_per_sec,
                       "params": r.params})
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    let pct = |v: f64| {
        if v.is_finite() {
            format!("{:.2}%", 100.0 * v)
        } else {
            "n/a".into()
        }
    };
    let w = rows.iter().map(|r| r.run.len()).max().unwrap_or(3).max(3);
    println!(
        "{:<w$}  {:<14} {:>6} {:>10} {:>16} {:>9} {:>9} {:>8} {:>12}",
        "run", "model", "epochs", "final val", "best val (ep)", "test", "time", "img/s", "params"
    );
    for r in &rows {
        println!(
            "{:<w$}  {:<14} {:>6} {:>10} {:>16} {:>9} {:>8.1}s {:>8.0} {:>12}",
            r.run,
            r.model,
            r.epochs,
            pct(r.final_val),
            format!("{} ({})", pct(r.best_val), r.best_epoch),
            r.test_top1.map_or("n/a".into(), pct),
            r.seconds,
            r.images_per_sec,
            r.params
        );
    }
    Ok(())
}
