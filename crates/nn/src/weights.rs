//! Loading weights saved by PyTorch (`torch.save(model.state_dict(), "x.pth")`) or as
//! safetensors (timm / Hugging Face layout) into a [`Network`].
//!
//! Keys are matched by name: convnet's module fields mirror torchvision's `state_dict` keys,
//! enum wrappers (like `Network` itself) are transparent, and `nn.Sequential` indices are kept
//! as they are. Pickled `.pth` files are read as data only; no code from the file runs.

use std::path::{Path, PathBuf};

use burn::store::{
    ApplyResult, ModuleSnapshot, PyTorchToBurnAdapter, PytorchStore, SafetensorsStore,
};

use crate::models::Network;

/// What a load did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LoadReport {
    /// Tensors loaded.
    pub applied: usize,
    /// Model parameters the file did not have.
    pub missing: Vec<String>,
    /// File tensors the model has no place for (PyTorch's `num_batches_tracked` excluded).
    pub unused: Vec<String>,
    /// Tensors whose shape or type did not fit.
    pub mismatched: Vec<String>,
}

impl LoadReport {
    /// Whether every parameter was loaded and every file tensor used.
    pub fn is_exact(&self) -> bool {
        self.missing.is_empty() && self.unused.is_empty() && self.mismatched.is_empty()
    }

    fn from_apply(r: ApplyResult) -> Self {
        Self {
            applied: r.applied.len(),
            missing: r.missing.into_iter().map(|(p, _)| p).collect(),
            unused: r
                .unused
                .into_iter()
                .filter(|k| !k.ends_with("num_batches_tracked"))
                .collect(),
            mismatched: r.errors.iter().map(|e| e.to_string()).collect(),
        }
    }
}

/// Why weights could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum WeightError {
    /// The file could not be read or parsed.
    #[error("{path}: cannot read weights: {why}")]
    Read {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        why: String,
    },
    /// The file's tensors do not fit the model (every problem listed at once).
    #[error(
        "{path}: weights do not fit the model ({n} problems); pass --strict false to load what fits\n{details}"
    )]
    Mismatch {
        /// The file.
        path: PathBuf,
        /// Number of problems.
        n: usize,
        /// One line per problem.
        details: String,
    },
}

/// Loads `path` (`.pth`/`.pt`: PyTorch; `.safetensors`: safetensors) into `net`. With
/// `strict`, any missing, unused or misshapen tensor is an error listing all of them;
/// otherwise what fits is loaded and the report says what did not.
pub fn load_file(net: &mut Network, path: &Path, strict: bool) -> Result<LoadReport, WeightError> {
    let read = |why: String| WeightError::Read {
        path: path.to_path_buf(),
        why,
    };
    let is_safetensors = path.extension().is_some_and(|e| e == "safetensors");
    let result = if is_safetensors {
        let mut store = SafetensorsStore::from_file(path)
            .with_from_adapter(PyTorchToBurnAdapter)
            .skip_enum_variants(true)
            .map_indices_contiguous(false)
            .allow_partial(true)
            .validate(false);
        net.load_from(&mut store).map_err(|e| read(e.to_string()))?
    } else {
        let mut store = PytorchStore::from_file(path)
            .skip_enum_variants(true)
            .map_indices_contiguous(false)
            .allow_partial(true)
            .validate(false);
        net.load_from(&mut store).map_err(|e| read(e.to_string()))?
    };
    let report = LoadReport::from_apply(result);
    if strict && !report.is_exact() {
        let mut lines = Vec::new();
        lines.extend(
            report
                .missing
                .iter()
                .map(|k| format!("  missing in the file: {k}")),
        );
        lines.extend(
            report
                .unused
                .iter()
                .map(|k| format!("  not in the model:    {k}")),
        );
        lines.extend(
            report
                .mismatched
                .iter()
                .map(|k| format!("  does not fit:        {k}")),
        );
        return Err(WeightError::Mismatch {
            path: path.to_path_buf(),
            n: lines.len(),
            details: lines.join("\n"),
        });
    }
    Ok(report)
}
