//! `convnet predict`.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Result, bail};
use burn::module::Module;
use convnet_data::{Dataset, ImageFiles, Loader};
use convnet_eval::{logits_of, predict_top_k};
use convnet_train::Checkpoint;
use serde_json::json;

/// Options of `convnet predict`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// A run folder (its best.ckpt is used) or a checkpoint file.
    pub checkpoint: PathBuf,
    /// Image files and/or folders of images.
    #[arg(required = true)]
    pub inputs: Vec<PathBuf>,
    /// How many classes to show per image.
    #[arg(long, default_value_t = 5)]
    pub top: usize,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// Images per forward pass.
    #[arg(long, default_value_t = 64)]
    pub batch_size: usize,
    /// Compute device: cpu, cuda[:N] or vulkan[:N].
    #[arg(long, default_value = "cpu")]
    pub device: String,
}

pub fn run(a: Args) -> Result<()> {
    let device = crate::device::parse(&a.device)?;
    let path = super::resolve_checkpoint(&a.checkpoint)?;
    let ckpt = Checkpoint::load(&path, &device)?;
    let files = ImageFiles::collect(&a.inputs)?;
    if files.is_empty() {
        bail!(
            "no images found in {}",
            a.inputs
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let files = Arc::new(files);
    let loader = Loader::new(
        files.clone(),
        ckpt.meta.preprocess.clone(),
        a.batch_size.max(1),
        false,
        0,
    );
    let model = ckpt.model.valid();
    let classes = &ckpt.meta.classes;
    let k = a.top.clamp(1, classes.len());
    let mut out = Vec::new();
    let mut failed = 0;
    for mut batch in loader.epoch(0) {
        for (_, why) in &batch.skipped {
            eprintln!("warning: skipped {why}");
            failed += 1;
        }
        if batch.labels.is_empty() {
            continue;
        }
        let logits = logits_of(&model, &mut batch, &device);
        for (&i, top) in batch
            .indices
            .iter()
            .zip(predict_top_k(&logits, classes.len(), k))
        {
            let file = files.path(i).display().to_string();
            if a.json {
                out.push(json!({"file": file, "top": top.iter().map(|(c, p)| json!({"class": classes[*c], "index": c, "probability": p})).collect::<Vec<_>>()}));
            } else {
                let text: Vec<String> = top
                    .iter()
                    .map(|(c, p)| format!("{} {:.1}%", classes[*c], 100.0 * p))
                    .collect();
                println!("{file}: {}", text.join(", "));
            }
        }
    }
    if a.json {
        println!("{}", serde_json::to_string_pretty(&out)?);
    }
    if failed > 0 && failed == files.len() {
        bail!("none of the {failed} images could be read");
    }
    Ok(())
}
