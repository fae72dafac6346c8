//! `convnet data`: dataset utilities.

use std::path::PathBuf;

use anyhow::Result;
use clap::Subcommand;
use convnet_data::Source;
use convnet_data::export::export_png;
use convnet_data::info::{SplitInfo, summarize};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Dataset utilities.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Write a dataset split as an image folder: OUT/CLASS/N.png plus OUT/cat_to_name.json.
    Export(ExportArgs),
    /// Download a dataset from its published URLs into the cache (MD5-checked, resumable):
    /// mnist, fashion-mnist, cifar10, cifar100, gtsrb, flowers102.
    Fetch(FetchArgs),
    /// Class counts, image sizes, formats, colour types and unreadable files of a dataset.
    Info(InfoArgs),
}

/// Options of `convnet data fetch`.
#[derive(clap::Args, Debug)]
pub struct FetchArgs {
    /// Dataset: mnist, fashion-mnist, cifar10, cifar100, gtsrb or flowers102.
    pub name: String,
    /// Folder to download into (a NAME sub-folder is made) [default: the cache,
    /// `$CONVNET_CACHE` or ~/.cache/convnet, where `--data NAME` looks].
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

/// Options of `convnet data info`.
#[derive(clap::Args, Debug)]
pub struct InfoArgs {
    /// A folder or a dataset name (as for `--data`).
    pub data: String,
    /// JSON file mapping folder names to class names.
    #[arg(long)]
    pub class_map: Option<PathBuf>,
    /// Read image headers only (fast; truncated files are not found).
    #[arg(long)]
    pub quick: bool,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Options of `convnet data export`.
#[derive(clap::Args, Debug)]
pub struct ExportArgs {
    /// Data: `fashion-mnist`, `mnist`, or a folder.
    #[arg(long, default_value = "fashion-mnist")]
    pub data: String,
    /// Which split: train or test.
    #[arg(long, default_value = "test")]
    pub split: Split,
    /// At most this many images per class [default: all].
    #[arg(long)]
    pub per_class: Option<usize>,
    /// Output folder.
    #[arg(long)]
    pub out: PathBuf,
}

/// A dataset split.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum Split {
    /// The training data.
    Train,
    /// The held-out test data.
    Test,
}

pub fn run(c: Command) -> Result<()> {
    match c {
        Command::Export(a) => {
            let source = Source::parse(&a.data, None)?;
            let ds = match a.split {
                Split::Train => source.train_val(0.0, 0)?.0,
                Split::Test => source.test()?,
            };
            let n = export_png(ds.as_ref(), &a.out, a.per_class)?;
            println!(
                "wrote {n} images in {} class folders under {}",
                ds.classes().len(),
                a.out.display()
            );
            Ok(())
        }
        Command::Fetch(a) => fetch(a),
        Command::Info(a) => info(a),
    }
}

fn fetch(a: FetchArgs) -> Result<()> {
    let dir = a.dir.unwrap_or_else(convnet_data::download::cache_dir);
    let mut bar: Option<(String, ProgressBar)> = None;
    let style = ProgressStyle::with_template(
        "{msg} [{bar:28}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}",
    )?
    .progress_chars("=> ");
    let interactive = super::interactive();
    let root = convnet_data::fetch::fetch_dataset(&a.name, &dir, &mut |file, done, total| {
        if bar.as_ref().is_none_or(|(f, _)| f != file) {
            if let Some((_, b)) = bar.take() {
                b.finish();
            }
            let b = ProgressBar::new(total.unwrap_or(0));
            b.set_style(style.clone());
            b.set_message(file.to_string());
            if !interactive {
                b.set_draw_target(ProgressDrawTarget::hidden());
            }
            bar = Some((file.to_string(), b));
        }
        if let Some((_, b)) = &bar {
            if let Some(t) = total {
                b.set_length(t);
            }
            b.set_position(done);
        }
    });
    if let Some((_, b)) = bar.take() {
        b.finish();
    }
    let root = root?;
    println!("{} is ready in {}", a.name, root.display());
    Ok(())
}

fn info(a: InfoArgs) -> Result<()> {
    let source = Source::parse(&a.data, a.class_map.as_deref())?;
    let splits: Vec<SplitInfo> = source
        .splits()?
        .iter()
        .map(|(name, ds)| summarize(name, ds.as_ref(), !a.quick))
        .collect();
    if a.json {
        let report = serde_json::json!({ "data": a.data, "splits": splits });
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    println!("{}: {}", a.data, source.resolve()?.describe());
    for s in &splits {
        println!(
            "{}: {} images, {} classes",
            s.split,
            s.images,
            s.classes.len()
        );
        let counts: Vec<String> = s.classes.iter().map(|(c, n)| format!("{c} {n}")).collect();
        println!("  classes: {}", counts.join(", "));
        let wh = |[w, h]: [u32; 2]| format!("{w}x{h}");
        println!(
            "  sizes (WxH): min {}, median {}, max {}",
            wh(s.min_size),
            wh(s.median_size),
            wh(s.max_size)
        );
        let tally = |m: &std::collections::BTreeMap<String, usize>| {
            m.iter()
                .map(|(k, n)| format!("{k} {n}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        println!("  formats: {}", tally(&s.formats));
        println!("  colour types: {}", tally(&s.colors));
        if !s.broken.is_empty() {
            println!("  unreadable ({}):", s.broken.len());
            for (path, why) in &s.broken {
                println!("    {path}: {}", why.trim());
            }
        }
    }
    Ok(())
}
