//! `convnet augment`: a PNG grid of one image and augmented versions of it, to look at a
//! pipeline before training with it; `--bench` measures the training loader's throughput
//! (decode + augment + normalise into batches) with that pipeline, for `bench/augment.sh`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use convnet_data::augment::{Img, sample_rng};
use convnet_data::{Augment, Loader, Preprocess, Source};
use image::{DynamicImage, RgbImage};

/// Options of `convnet augment`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// A dataset (as `convnet train --data`: a name or a folder) or a single image file.
    #[arg(long)]
    pub data: String,
    /// The pipeline: a spec (`rotate=30,hflip,shift=0.2,zoom=0.2,fill=nearest`) or a preset
    /// (`keras-seed001`, `torchvision-flowers`, `imagenet-train`, `imagenet-eval`, …).
    #[arg(long)]
    pub augment: String,
    /// Output PNG.
    #[arg(long, default_value = "grid.png")]
    pub out: PathBuf,
    /// Which training image of the dataset.
    #[arg(long, default_value_t = 0)]
    pub index: usize,
    /// Augmented versions to draw.
    #[arg(long, default_value_t = 16)]
    pub n: usize,
    /// Seed of the random transforms.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Instead of a grid, time one pass of the training loader over the dataset with this
    /// pipeline (normalised to 3x224x224) and print images/s as JSON.
    #[arg(long, hide = true)]
    pub bench: bool,
    /// Loader threads for --bench [default: one per core].
    #[arg(long, default_value_t = 0, hide = true)]
    pub workers: usize,
    /// Batch size for --bench.
    #[arg(long, default_value_t = 64, hide = true)]
    pub batch_size: usize,
    /// Timed passes over the dataset for --bench (after one untimed warm-up pass).
    #[arg(long, default_value_t = 2, hide = true)]
    pub passes: usize,
}

pub fn run(a: Args) -> Result<()> {
    let aug = Augment::parse(&a.augment)?;
    if a.bench {
        return bench(&a, aug);
    }
    if a.n == 0 || a.n > 1024 {
        bail!(
            "--n {} is out of range; draw between 1 and 1024 versions",
            a.n
        );
    }
    let path = Path::new(&a.data);
    let original = if path.is_file() {
        convnet_data::folder::decode(path)?
    } else {
        let (train, _) = Source::parse(&a.data, None)?.train_val(0.0, 0)?;
        if a.index >= train.len() {
            bail!(
                "--index {} is out of range: {} has {} training images (0..{})",
                a.index,
                a.data,
                train.len(),
                train.len()
            );
        }
        train.image(a.index)?
    };
    let mut cells = vec![Img::from_dynamic(original)];
    for k in 0..a.n {
        let mut rng = sample_rng(a.seed, 0, k);
        cells.push(aug.apply_img(cells[0].clone(), &mut rng));
    }
    let grid = grid(&cells);
    let (gw, gh) = grid.dimensions();
    let mut png = Vec::new();
    DynamicImage::ImageRgb8(grid)
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .context("encoding the grid as PNG")?;
    convnet_data::files::write_atomic(&a.out, &png)
        .with_context(|| format!("cannot write {}", a.out.display()))?;
    println!(
        "wrote {} ({gw}x{gh}): the original, then {} versions by `{}`",
        a.out.display(),
        a.n,
        aug.spec()
    );
    Ok(())
}

/// Gap between cells, pixels.
const GAP: u32 = 4;

/// Lays the images out row by row in a near-square grid of equal cells (the largest image's
/// size), each centred on a gray background.
fn grid(cells: &[Img]) -> RgbImage {
    let cw = cells.iter().map(|c| c.w).max().unwrap_or(1);
    let ch = cells.iter().map(|c| c.h).max().unwrap_or(1);
    let cols = (cells.len() as f64).sqrt().ceil() as u32;
    let rows = (cells.len() as u32).div_ceil(cols);
    let mut out = RgbImage::from_pixel(
        cols * cw + (cols + 1) * GAP,
        rows * ch + (rows + 1) * GAP,
        image::Rgb([128, 128, 128]),
    );
    for (k, cell) in cells.iter().enumerate() {
        let (col, row) = (k as u32 % cols, k as u32 / cols);
        let x0 = GAP + col * (cw + GAP) + (cw - cell.w) / 2;
        let y0 = GAP + row * (ch + GAP) + (ch - cell.h) / 2;
        for y in 0..cell.h {
            for x in 0..cell.w {
                let p = cell.get(x, y);
                let rgb = if cell.c == 1 {
                    [p[0]; 3]
                } else {
                    [p[0], p[1], p[2]]
                };
                out.put_pixel(x0 + x, y0 + y, image::Rgb(rgb));
            }
        }
    }
    out
}

/// Passes of the training loader with `aug` over the dataset (epochs 1..=passes, each with its
/// own order and random draws), timed after an untimed warm-up pass (epoch 0).
fn bench(a: &Args, aug: Augment) -> Result<()> {
    let (train, _) = Source::parse(&a.data, None)?.train_val(0.0, 0)?;
    let pre = Preprocess {
        channels: 3,
        size: [224, 224],
        mean: convnet_data::source::IMAGENET_MEAN.to_vec(),
        std: convnet_data::source::IMAGENET_STD.to_vec(),
    };
    let mut loader = Loader::new(train.clone(), pre, a.batch_size.max(1), true, a.seed);
    if a.workers > 0 {
        loader.workers = a.workers;
    }
    loader.augment = Some(Arc::new(aug));
    let mut n = 0usize;
    let mut checksum = 0f64;
    let mut t = Instant::now();
    for epoch in 0..=a.passes.max(1) {
        if epoch == 1 {
            n = 0;
            t = Instant::now();
        }
        for b in loader.epoch(epoch) {
            n += b.labels.len();
            checksum += b.images.first().copied().unwrap_or(0.0) as f64;
            if let Some((what, why)) = b.skipped.first() {
                bail!("{what}: {why}");
            }
        }
    }
    let secs = t.elapsed().as_secs_f64();
    if n == 0 {
        bail!("{}: no images to time", a.data);
    }
    println!(
        "{{\"impl\": \"convnet\", \"workers\": {}, \"images\": {n}, \"seconds\": {secs:.3}, \"images_per_sec\": {:.1}, \"checksum\": {checksum:.3}}}",
        loader.workers,
        n as f64 / secs
    );
    Ok(())
}
