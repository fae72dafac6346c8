//! Loading weights saved by PyTorch (`torch.save(model.state_dict(), "x.pth")`) or as
//! safetensors (timm / Hugging Face layout) into a [`Network`].
//!
//! Keys are matched by name: convnet's module fields mirror torchvision's `state_dict` keys,
//! enum wrappers (like `Network` itself) are transparent, and `nn.Sequential` indices are kept
//! as they are. Pickled `.pth` files are read as data only; no code from the file runs: Burn's
//! pickle reader rebuilds tensors and plain containers and refuses any other global (tested
//! with a pickle that would run a shell command).
//!
//! For transfer learning, [`load_file_for_transfer`] and [`load_network`] treat the classifier
//! apart: tensors of the head's modules that do not fit (another number of classes) are left
//! freshly initialised and reported in [`LoadReport::head_reset`] instead of failing the load.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use burn::store::{
    ApplyError, ApplyResult, ModuleSnapshot, PyTorchToBurnAdapter, PytorchStore, SafetensorsStore,
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
    /// Head tensors left freshly initialised because the file's did not fit or were absent
    /// (a new classifier for another number of classes).
    pub head_reset: Vec<String>,
    /// File tensors of the pretrained classifier that the new head has no place for (e.g.
    /// torchvision VGG-16's `classifier.6` under seed 001's two-layer head).
    pub head_dropped: Vec<String>,
    /// The tensor path of each entry of `mismatched`.
    mismatched_paths: Vec<String>,
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
            mismatched_paths: r
                .errors
                .iter()
                .map(|e| match e {
                    ApplyError::ShapeMismatch { path, .. }
                    | ApplyError::DTypeMismatch { path, .. }
                    | ApplyError::AdapterError { path, .. }
                    | ApplyError::LoadError { path, .. } => path.clone(),
                })
                .collect(),
            head_reset: Vec::new(),
            head_dropped: Vec::new(),
        }
    }

    /// Moves the problems of tensors owned by `head` modules (store paths such as `fc` or
    /// `classifier.6`) into [`Self::head_reset`].
    fn split_head(mut self, head: &HashSet<String>) -> Self {
        let in_head = |path: &str| match path.rsplit_once('.') {
            Some((m, _)) => head.contains(m),
            None => false,
        };
        let (reset, missing): (Vec<_>, Vec<_>) = self.missing.into_iter().partition(|k| in_head(k));
        self.missing = missing;
        self.head_reset = reset;
        let mut kept = (Vec::new(), Vec::new());
        for (msg, path) in self.mismatched.into_iter().zip(self.mismatched_paths) {
            if in_head(&path) {
                self.head_reset.push(path);
            } else {
                kept.0.push(msg);
                kept.1.push(path);
            }
        }
        (self.mismatched, self.mismatched_paths) = kept;
        // Unused file tensors under a head module's top-level name (`classifier.6` when the
        // head is `classifier.0` and `classifier.3`) belonged to the old classifier.
        let roots: HashSet<&str> = head
            .iter()
            .map(|m| m.split('.').next().unwrap_or(m))
            .collect();
        let (dropped, unused): (Vec<_>, Vec<_>) = self
            .unused
            .into_iter()
            .partition(|k| roots.contains(k.split('.').next().unwrap_or(k)));
        self.unused = unused;
        self.head_dropped = dropped;
        self
    }
}

/// How the head is treated when loading for transfer learning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadPolicy {
    /// The head must load like everything else (`--keep-head`).
    Keep,
    /// Head tensors that do not fit stay freshly initialised (a new classifier).
    Replace,
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
        "{path}: weights do not fit the model ({n} problems); pass --strict-weights false to load what fits\n{details}"
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
    let report = read_file_into(net, path)?;
    check(path, report, strict)
}

/// Like [`load_file`], but the tensors of the `head` modules (store paths, see
/// [`crate::pretrained::module_paths`]) that do not fit are left initialised and listed in
/// [`LoadReport::head_reset`] when `policy` is [`HeadPolicy::Replace`].
pub fn load_file_for_transfer(
    net: &mut Network,
    path: &Path,
    strict: bool,
    head: &HashSet<String>,
    policy: HeadPolicy,
) -> Result<LoadReport, WeightError> {
    let mut report = read_file_into(net, path)?;
    if policy == HeadPolicy::Replace {
        report = report.split_head(head);
    }
    check(path, report, strict)
}

/// Copies the weights of `src` (e.g. a convnet checkpoint's model) into `net` by name, with the
/// same head handling and strictness as [`load_file_for_transfer`]; `path` names `src` in
/// messages.
pub fn load_network(
    net: &mut Network,
    src: &Network,
    path: &Path,
    strict: bool,
    head: &HashSet<String>,
    policy: HeadPolicy,
) -> Result<LoadReport, WeightError> {
    let tensors = src.collect(None, None, true);
    let mut report = LoadReport::from_apply(net.apply(tensors, None, None, true));
    if policy == HeadPolicy::Replace {
        report = report.split_head(head);
    }
    check(path, report, strict)
}

/// With `strict`, any missing, unused or misshapen tensor (outside a replaced head) is an
/// error listing all of them at once.
fn check(path: &Path, report: LoadReport, strict: bool) -> Result<LoadReport, WeightError> {
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

/// Torchvision's DenseNet files from before 0.4 name `norm1` as `norm.1` (torchvision remaps
/// them in `_load_state_dict`); the same renaming here.
const DENSENET_OLD_KEYS: &str =
    r"^(.*denselayer\d+\.(?:norm|relu|conv))\.([12])\.(weight|bias|running_mean|running_var)$";

/// Reads `path` into `net` without judging the result.
fn read_file_into(net: &mut Network, path: &Path) -> Result<LoadReport, WeightError> {
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
            .with_key_remapping(DENSENET_OLD_KEYS, "$1$2.$3")
            .skip_enum_variants(true)
            .map_indices_contiguous(false)
            .allow_partial(true)
            .validate(false);
        net.load_from(&mut store).map_err(|e| read(e.to_string()))?
    };
    Ok(LoadReport::from_apply(result))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_problems_are_set_apart_from_the_others() {
        let report = LoadReport {
            applied: 3,
            missing: vec!["classifier.3.weight".into(), "features.0.bias".into()],
            unused: vec!["classifier.6.weight".into(), "extra.weight".into()],
            mismatched: vec![
                "Shape mismatch for 'classifier.0.weight'".into(),
                "Shape mismatch for 'features.2.weight'".into(),
            ],
            mismatched_paths: vec!["classifier.0.weight".into(), "features.2.weight".into()],
            ..Default::default()
        };
        let head = HashSet::from(["classifier.0".to_string(), "classifier.3".to_string()]);
        let r = report.split_head(&head);
        assert_eq!(r.head_reset, ["classifier.3.weight", "classifier.0.weight"]);
        assert_eq!(r.head_dropped, ["classifier.6.weight"]);
        assert_eq!(r.missing, ["features.0.bias"]);
        assert_eq!(r.unused, ["extra.weight"]);
        assert_eq!(r.mismatched, ["Shape mismatch for 'features.2.weight'"]);
        let err = check(Path::new("w.pth"), r, true).unwrap_err().to_string();
        assert!(err.contains("w.pth") && err.contains("3 problems"), "{err}");
        assert!(err.contains("features.0.bias") && err.contains("extra.weight"));
    }
}
