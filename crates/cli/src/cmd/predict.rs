//! `convnet predict`: top-k classes with probabilities for image files, folders or paths read
//! from standard input, as text, JSON, and optionally a picture grid.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use burn::module::Module;
use convnet_data::export::class_folder;
use convnet_data::{Dataset, ImageFiles, Loader};
use convnet_eval::plot::{GridTile, save_prediction_grid};
use convnet_eval::{logits_of, predict_top_k};
use convnet_train::Checkpoint;
use serde_json::json;

/// Most images drawn by `--grid` (the first ones).
const GRID_MAX: usize = 100;

/// Options of `convnet predict`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// A run folder (its best.ckpt is used) or a checkpoint file.
    pub checkpoint: PathBuf,
    /// Image files and/or folders of images; `-` reads one path per line from standard input.
    #[arg(required = true)]
    pub inputs: Vec<PathBuf>,
    /// How many classes to show per image.
    #[arg(long, default_value_t = 5)]
    pub top: usize,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// Also draw the images (the first 100) with their predicted labels into this PNG: blue
    /// when right, red when wrong (when the parent folder names the true class), else black.
    #[arg(long)]
    pub grid: Option<PathBuf>,
    /// Columns of the --grid picture.
    #[arg(long, default_value_t = 8)]
    pub grid_cols: usize,
    /// Images per forward pass.
    #[arg(long, default_value_t = 64)]
    pub batch_size: usize,
    /// Compute device: cpu, cuda[:N], vulkan[:N] or wgpu[:vulkan|metal|dx12|gl].
    #[arg(long, default_value = "cpu")]
    pub device: String,
}

/// The inputs with `-` replaced by the non-empty lines of standard input.
fn expand_stdin(inputs: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for i in inputs {
        if i.as_os_str() == "-" {
            for line in std::io::stdin().lock().lines() {
                let line = line.context("cannot read paths from standard input")?;
                let t = line.trim();
                if !t.is_empty() {
                    out.push(PathBuf::from(t));
                }
            }
        } else {
            out.push(i.clone());
        }
    }
    Ok(out)
}

/// The true class of `file` when its parent folder is named after one: the class name itself
/// or its `convnet data export` folder name (`1_Trouser`).
pub fn class_from_parent(file: &Path, classes: &[String]) -> Option<usize> {
    let parent = file.parent()?.file_name()?.to_str()?;
    classes
        .iter()
        .enumerate()
        .position(|(i, c)| c == parent || class_folder(i, c, classes.len()) == parent)
}

pub fn run(a: Args) -> Result<()> {
    crate::device::in_pool(0, || predict(a))
}

fn predict(a: Args) -> Result<()> {
    let device = crate::device::parse(&a.device)?;
    let path = super::resolve_checkpoint(&a.checkpoint)?;
    let ckpt = Checkpoint::load(&path, &device)?;
    let inputs = expand_stdin(&a.inputs)?;
    let files = ImageFiles::collect(&inputs)?;
    if files.is_empty() {
        bail!(
            "no images found in {}",
            inputs
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
    let mut tiles = Vec::new();
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
            let file = files.path(i);
            let truth = class_from_parent(file, classes);
            if a.grid.is_some() && tiles.len() < GRID_MAX {
                let (c, p) = top[0];
                tiles.push(GridTile {
                    image: files.image(i)?,
                    predicted: format!("{} {:.1}%", classes[c], 100.0 * p),
                    truth: truth.map_or(String::new(), |t| format!("true: {}", classes[t])),
                    correct: truth.map(|t| t == c),
                });
            }
            let name = file.display().to_string();
            if a.json {
                out.push(json!({
                    "file": name,
                    "true_class": truth.map(|t| &classes[t]),
                    "top": top.iter().map(|(c, p)| json!({"class": classes[*c], "index": c, "probability": p})).collect::<Vec<_>>()
                }));
            } else {
                let text: Vec<String> = top
                    .iter()
                    .map(|(c, p)| format!("{} {:.1}%", classes[*c], 100.0 * p))
                    .collect();
                println!("{name}: {}", text.join(", "));
            }
        }
    }
    if a.json {
        println!("{}", serde_json::to_string_pretty(&out)?);
    }
    if failed > 0 && failed == files.len() {
        bail!("none of the {failed} images could be read");
    }
    if let Some(g) = &a.grid {
        save_prediction_grid(g, &tiles, a.grid_cols)?;
        let known: Vec<bool> = tiles.iter().filter_map(|t| t.correct).collect();
        let right = known.iter().filter(|&&c| c).count();
        let summary = if known.is_empty() {
            "no true classes known from folder names".to_string()
        } else {
            format!("{right} of {} with a known class right", known.len())
        };
        eprintln!("wrote {} ({} images; {summary})", g.display(), tiles.len());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn true_class_comes_from_the_parent_folder() {
        let classes: Vec<String> = ["T-shirt/top", "Trouser"].map(String::from).to_vec();
        assert_eq!(
            class_from_parent(Path::new("x/1_Trouser/a.png"), &classes),
            Some(1)
        );
        assert_eq!(
            class_from_parent(Path::new("x/Trouser/a.png"), &classes),
            Some(1)
        );
        assert_eq!(
            class_from_parent(Path::new("x/0_T-shirt_top/a.png"), &classes),
            Some(0)
        );
        assert_eq!(
            class_from_parent(Path::new("x/photos/a.png"), &classes),
            None
        );
        assert_eq!(class_from_parent(Path::new("a.png"), &classes), None);
    }
}
