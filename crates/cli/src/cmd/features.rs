//! `convnet features`: run a (pretrained) convolutional base once over a dataset and save the
//! pooled features with their labels (safetensors), for `convnet train-head`; and
//! `convnet pretrained`: the weights `--pretrained` knows by name.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Result, bail};
use convnet_data::{Loader, Preprocess, Source};
use convnet_nn::ModelSpec;
use convnet_train::transfer::{self, FeatureSet, Pool, Pretrained, TransferConfig};

/// `--pool` on the command line.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum PoolArg {
    /// Global average pooling (C features).
    Avg,
    /// Global max pooling (C features).
    Max,
    /// No pooling: the flattened map (C·H·W features, seed 001's 4·4·512 for VGG-16 at 150x150).
    None,
}

impl From<PoolArg> for Pool {
    fn from(p: PoolArg) -> Self {
        match p {
            PoolArg::Avg => Pool::Avg,
            PoolArg::Max => Pool::Max,
            PoolArg::None => Pool::None,
        }
    }
}

/// Options of `convnet features`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Model whose convolutional base extracts the features (see `convnet models`).
    pub model: String,
    /// Data: a dataset name or a folder of class sub-folders (or of train/ val/ test/).
    #[arg(long)]
    pub data: String,
    /// Output file (safetensors: `train.features`, `train.labels`, `val.…`, `test.…`).
    #[arg(long)]
    pub out: PathBuf,
    /// Weights: a registered name (`vgg16.tv_in1k`), a .pth / .safetensors file or a convnet
    /// checkpoint [default: none, i.e. a randomly initialised base].
    #[arg(long, value_name = "WEIGHTS")]
    pub pretrained: Option<String>,
    /// Global pooling of the feature map.
    #[arg(long, value_enum, default_value_t = PoolArg::Avg)]
    pub pool: PoolArg,
    /// Every tensor of the base must load (false: load what fits).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, value_name = "BOOL")]
    pub strict_weights: bool,
    /// JSON file mapping folder names to class names.
    #[arg(long)]
    pub class_map: Option<PathBuf>,
    /// Input size HxW [default: the model's].
    #[arg(long)]
    pub input_size: Option<String>,
    /// Input channels (1 or 3) [default: the weights', else the model's].
    #[arg(long)]
    pub in_channels: Option<usize>,
    /// Fraction of the training data held out for validation (when the data has no val/).
    #[arg(long, default_value_t = 0.1)]
    pub val_split: f64,
    /// Keep at most N training images per class (seeded, class-balanced).
    #[arg(long, value_name = "N")]
    pub per_class: Option<usize>,
    /// Seed of the validation split and the per-class subset.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Images per forward pass.
    #[arg(long, default_value_t = 64)]
    pub batch_size: usize,
    /// Compute device: cpu, cuda[:N], vulkan[:N] or wgpu[:vulkan|metal|dx12|gl].
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// CPU threads for the tensor kernels [default: one per core].
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Image decoding threads [default: one per core].
    #[arg(long, default_value_t = 0)]
    pub workers: usize,
}

pub fn run(a: Args) -> Result<()> {
    crate::device::in_pool(a.threads, || extract(a))
}

fn extract(a: Args) -> Result<()> {
    let device = crate::device::parse(&a.device)?;
    let entry = convnet_nn::find(&a.model)?;
    if !(0.0..1.0).contains(&a.val_split) {
        bail!("--val-split must be in [0, 1)");
    }
    if a.batch_size == 0 {
        bail!("--batch-size must be at least 1");
    }
    let source = Source::parse(&a.data, a.class_map.as_deref())?.with_per_class(a.per_class);
    let pretrained = match &a.pretrained {
        Some(p) => Some(Pretrained::resolve(p)?),
        None => None,
    };
    let from_weights = match &pretrained {
        Some(p) => p.preprocessing()?,
        None => None,
    };
    let channels = a
        .in_channels
        .or(from_weights.as_ref().map(|(_, _, i)| i[0]))
        .unwrap_or(entry.input[0]);
    if channels != 1 && channels != 3 {
        bail!("--in-channels must be 1 or 3");
    }
    let size = match &a.input_size {
        Some(s) => super::train::parse_size(s)?,
        None => [entry.input[1], entry.input[2]],
    };
    let (mean, std) = match &from_weights {
        Some((m, s, i)) if i[0] == channels => (m.clone(), s.clone()),
        _ => source.stats(channels),
    };
    let (train, val) = source.train_val(a.val_split, a.seed)?;
    let classes = train.classes().to_vec();
    let spec = ModelSpec {
        name: a.model.clone(),
        in_channels: channels,
        input_size: size,
        num_classes: classes.len(),
    };
    let mut model = convnet_nn::build(&spec, &device)?;
    if a.pretrained.is_some() {
        let t = TransferConfig {
            pretrained: a.pretrained.clone(),
            strict: a.strict_weights,
            ..Default::default()
        };
        transfer::load_pretrained(&mut model, &spec, &t, &device)?;
    }
    let pre = Preprocess {
        channels,
        size,
        mean,
        std,
    };
    let has_test = source.splits()?.iter().any(|(n, _)| n == "test");
    let mut sets = vec![("train", train)];
    if let Some(v) = val {
        sets.push(("val", v));
    }
    if has_test {
        sets.push(("test", source.test()?));
    }
    let started = Instant::now();
    let mut splits = Vec::new();
    let mut images = 0;
    for (name, data) in sets {
        let mut loader = Loader::new(data.clone(), pre.clone(), a.batch_size, false, a.seed);
        if a.workers > 0 {
            loader.workers = a.workers;
        }
        let total = data.len();
        let pb = indicatif::ProgressBar::new(total as u64);
        if !super::interactive() {
            pb.set_draw_target(indicatif::ProgressDrawTarget::hidden());
        }
        pb.set_prefix(name);
        let mut split = transfer::extract(&model, &loader, &device, a.pool.into(), &mut |done| {
            pb.set_position(done as u64)
        });
        pb.finish_and_clear();
        split.name = name.to_string();
        println!(
            "{name}: {} images -> {} features each",
            split.labels.len(),
            split.dim
        );
        images += split.labels.len();
        splits.push(split);
    }
    let set = FeatureSet {
        classes,
        model: match &a.pretrained {
            Some(p) => format!("{} ({p})", a.model),
            None => a.model.clone(),
        },
        pool: a.pool.into(),
        splits,
    };
    set.save(&a.out)?;
    let secs = started.elapsed().as_secs_f64();
    println!(
        "wrote {} ({images} images in {secs:.1} s, {:.0} images/s); next: convnet train-head {}",
        a.out.display(),
        images as f64 / secs.max(1e-9),
        a.out.display()
    );
    Ok(())
}

/// `convnet pretrained`: the registered weights.
pub fn list() -> Result<()> {
    println!(
        "{:<24} {:<14} {:>9} {:>7} {:>7}  file (SHA-256 prefix checked)",
        "name", "model", "input", "top-1", "top-5"
    );
    for e in convnet_nn::pretrained::PRETRAINED {
        println!(
            "{:<24} {:<14} {:>9} {:>6.2}% {:>6.2}%  {}",
            e.name,
            e.model,
            format!("{}x{}x{}", e.input[0], e.input[1], e.input[2]),
            e.top1,
            e.top5,
            e.url
        );
    }
    println!(
        "ImageNet-1k val, single {}-crop after resizing the shorter side to 256 (Inception v3: 299 from 342), as torchvision reports them.\nDownloaded once into {} on first use with `convnet train --pretrained NAME`.",
        224,
        convnet_data::download::cache_dir()
            .join("pretrained")
            .display()
    );
    Ok(())
}
