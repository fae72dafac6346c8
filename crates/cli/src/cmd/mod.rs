//! One module per subcommand: argument definitions, then a `run` that wires the libraries.

pub mod augment;
pub mod baseline;
pub mod bench;
pub mod calc;
pub mod compare;
pub mod data;
pub mod eval;
pub mod features;
pub mod models;
pub mod predict;
pub mod recipes;
pub mod serve;
pub mod summary;
pub mod train;
pub mod train_head;

use std::path::{Path, PathBuf};

use anyhow::{Result, bail};

/// A run folder resolves to its `best.ckpt` (else `last.ckpt`); a file is taken as it is.
pub fn resolve_checkpoint(path: &Path) -> Result<PathBuf> {
    if path.is_dir() {
        for name in ["best.ckpt", "last.ckpt"] {
            let p = path.join(name);
            if p.exists() {
                return Ok(p);
            }
        }
        bail!(
            "{}: no best.ckpt or last.ckpt in this folder; pass a run folder written by `convnet train`",
            path.display()
        );
    }
    if !path.exists() {
        bail!("{}: no such file or run folder", path.display());
    }
    Ok(path.to_path_buf())
}

/// Whether to draw progress bars: only on a terminal.
pub fn interactive() -> bool {
    use std::io::IsTerminal;
    std::io::stderr().is_terminal()
}
