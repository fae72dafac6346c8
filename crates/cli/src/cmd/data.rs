//! `convnet data`: dataset utilities.

use std::path::PathBuf;

use anyhow::Result;
use clap::Subcommand;
use convnet_data::Source;
use convnet_data::export::export_png;

/// Dataset utilities.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Write a dataset split as an image folder: OUT/CLASS/N.png plus OUT/cat_to_name.json.
    Export(ExportArgs),
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
    }
}
