//! Checkpoint files: one self-describing file holding the weights, the optimizer state and
//! everything needed to rebuild the model and its preprocessing.
//!
//! Layout: magic `CONVNET\0`, format version (u32 LE), then three length-prefixed (u64 LE)
//! sections: JSON metadata, the model record (burnpack), the optimizer record (burnpack,
//! may be empty).

use std::path::Path;

use burn::module::Module;
use burn::optim::ModuleOptimizer;
use burn::store::ModuleRecord;
use burn::tensor::{Bytes, Device};
use convnet_data::Preprocess;
use convnet_nn::{ModelSpec, Network};
use serde::{Deserialize, Serialize};

const MAGIC: &[u8; 8] = b"CONVNET\0";
/// The format this build writes; files of a newer format are refused.
pub const FORMAT_VERSION: u32 = 1;

/// What a checkpoint says about itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckpointMeta {
    /// Format version.
    pub format: u32,
    /// The architecture.
    pub model: ModelSpec,
    /// The preprocessing the weights were trained with.
    pub preprocess: Preprocess,
    /// Class names in label order.
    pub classes: Vec<String>,
    /// Epochs completed.
    pub epoch: usize,
    /// Best validation accuracy so far.
    pub best_accuracy: f64,
    /// When the run was stopped mid-epoch (Ctrl-C): how far into the next epoch it got.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partial: Option<PartialEpoch>,
    /// A float16 run's loss scale, so that a resumed run continues with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loss_scale: Option<crate::grad::LossScale>,
}

/// The state of an epoch interrupted between two optimizer steps, enough to continue it
/// exactly: the batches done and the training figures so far.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PartialEpoch {
    /// Batches of the epoch already trained on.
    pub batches: usize,
    /// Training loss and accuracy totals over those batches.
    pub metrics: convnet_eval::Metrics,
    /// Seconds spent on them.
    pub seconds: f64,
}

/// A loaded checkpoint.
pub struct Checkpoint {
    /// Its metadata.
    pub meta: CheckpointMeta,
    /// The model, on the device asked for.
    pub model: Network,
    /// Raw optimizer state (empty when none was saved).
    optimizer: Vec<u8>,
}

/// Why a checkpoint could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// File system error (with advice when the disk is full or read-only).
    #[error("{path}: {error}{}", advice(error))]
    Io {
        /// The file.
        path: String,
        /// The OS error (shown in the message, not chained, so it is printed once).
        error: std::io::Error,
    },
    /// Not a checkpoint, damaged, of a newer format, or of another architecture.
    #[error("{path}: {why}")]
    Invalid {
        /// The file.
        path: String,
        /// What is wrong.
        why: String,
    },
}

/// `; what to change` for errors a user can fix (full disk…), else nothing.
fn advice(e: &std::io::Error) -> String {
    convnet_data::files::io_advice(e)
        .map(|a| format!("; {a}"))
        .unwrap_or_default()
}

fn invalid(path: &Path, why: impl Into<String>) -> CheckpointError {
    CheckpointError::Invalid {
        path: path.display().to_string(),
        why: why.into(),
    }
}

/// Writes a checkpoint atomically (temporary file, fsync, rename). The weights are taken from
/// `model.valid()`: batch norm's running statistics lag one update until synced (Burn's
/// `RunningState`), and only a sync makes the file hold the ones the model is using.
pub fn save(
    path: &Path,
    meta: &CheckpointMeta,
    model: &Network,
    optim: Option<&ModuleOptimizer>,
) -> Result<(), CheckpointError> {
    let model_bytes = model
        .valid()
        .into_record()
        .into_bytes()
        .map_err(|e| invalid(path, e.to_string()))?;
    let optim_bytes = match optim {
        Some(o) => o
            .into_bytes()
            .map_err(|e| invalid(path, e.to_string()))?
            .to_vec(),
        None => Vec::new(),
    };
    let json = serde_json::to_vec(meta).expect("metadata serialises");
    let mut out = Vec::with_capacity(32 + json.len() + model_bytes.len() + optim_bytes.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    for section in [&json[..], &model_bytes[..], &optim_bytes[..]] {
        out.extend_from_slice(&(section.len() as u64).to_le_bytes());
        out.extend_from_slice(section);
    }
    convnet_data::files::write_atomic(path, &out).map_err(|error| CheckpointError::Io {
        path: path.display().to_string(),
        error,
    })
}

/// Splits a checkpoint file into its metadata and raw sections.
fn read_sections(path: &Path) -> Result<(CheckpointMeta, Vec<u8>, Vec<u8>), CheckpointError> {
    let bytes = std::fs::read(path).map_err(|error| CheckpointError::Io {
        path: path.display().to_string(),
        error,
    })?;
    if bytes.len() < 12 || &bytes[..8] != MAGIC {
        return Err(invalid(
            path,
            "not a convnet checkpoint (bad magic); pass a file written by `convnet train`",
        ));
    }
    let version = u32::from_le_bytes(bytes[8..12].try_into().unwrap());
    if version > FORMAT_VERSION {
        return Err(invalid(
            path,
            format!(
                "checkpoint format {version} is newer than this convnet supports ({FORMAT_VERSION}); upgrade convnet"
            ),
        ));
    }
    let mut pos = 12;
    let mut sections = Vec::new();
    for _ in 0..3 {
        let len = bytes
            .get(pos..pos + 8)
            .map(|b| u64::from_le_bytes(b.try_into().unwrap()) as usize)
            .ok_or_else(|| invalid(path, "truncated checkpoint"))?;
        pos += 8;
        let end = pos
            .checked_add(len)
            .filter(|&e| e <= bytes.len())
            .ok_or_else(|| invalid(path, "truncated checkpoint"))?;
        sections.push(bytes[pos..end].to_vec());
        pos = end;
    }
    let optim = sections.pop().unwrap();
    let model = sections.pop().unwrap();
    let meta: CheckpointMeta = serde_json::from_slice(&sections[0])
        .map_err(|e| invalid(path, format!("damaged metadata: {e}")))?;
    check_meta(&meta).map_err(|why| invalid(path, format!("damaged metadata: {why}")))?;
    Ok((meta, model, optim))
}

/// Largest class count and input side a checkpoint may claim: beyond these the metadata is
/// damaged (and building the model would exhaust memory before the weights are checked).
const MAX_CLASSES: usize = 1 << 20;
const MAX_SIDE: usize = 1 << 14;

/// Refuses metadata that cannot describe a real model: absurd sizes, a class list that does
/// not match the model's outputs, preprocessing that does not match its input.
fn check_meta(m: &CheckpointMeta) -> Result<(), String> {
    let s = &m.model;
    if s.num_classes == 0 || s.num_classes > MAX_CLASSES {
        return Err(format!("{} classes", s.num_classes));
    }
    if s.in_channels == 0 || s.in_channels > 4 {
        return Err(format!("{} input channels", s.in_channels));
    }
    if s.input_size.iter().any(|&x| x == 0 || x > MAX_SIDE) {
        return Err(format!("input {}x{}", s.input_size[0], s.input_size[1]));
    }
    if m.classes.len() != s.num_classes {
        return Err(format!(
            "{} class names for a model with {} outputs",
            m.classes.len(),
            s.num_classes
        ));
    }
    let p = &m.preprocess;
    if p.channels != s.in_channels
        || p.size != s.input_size
        || p.mean.len() != p.channels
        || p.std.len() != p.channels
        || p.std.iter().any(|&x| !(x.is_finite() && x > 0.0))
        || p.mean.iter().any(|x| !x.is_finite())
    {
        return Err("preprocessing does not match the model's input".into());
    }
    Ok(())
}

/// Reads only the metadata of a checkpoint.
pub fn read_meta(path: &Path) -> Result<CheckpointMeta, CheckpointError> {
    Ok(read_sections(path)?.0)
}

impl Checkpoint {
    /// Loads a checkpoint, rebuilding its model on `device`.
    pub fn load(path: &Path, device: &Device) -> Result<Self, CheckpointError> {
        let (meta, model_bytes, optimizer) = read_sections(path)?;
        let model =
            convnet_nn::build(&meta.model, device).map_err(|e| invalid(path, e.to_string()))?;
        let model = load_weights(path, model, model_bytes, &meta.model)?;
        Ok(Self {
            meta,
            model,
            optimizer,
        })
    }

    /// Restores the saved optimizer state into `optim` (unchanged when none was saved).
    pub fn restore_optimizer(
        &self,
        optim: ModuleOptimizer,
        path: &Path,
    ) -> Result<ModuleOptimizer, CheckpointError> {
        if self.optimizer.is_empty() {
            return Ok(optim);
        }
        optim
            .from_bytes(Bytes::from_bytes_vec(self.optimizer.clone()))
            .map_err(|e| invalid(path, format!("damaged optimizer state: {e}")))
    }
}

/// Applies a model record, turning Burn's validation failure into a message that names the
/// architecture the file holds.
fn load_weights(
    path: &Path,
    model: Network,
    bytes: Vec<u8>,
    spec: &ModelSpec,
) -> Result<Network, CheckpointError> {
    let record = ModuleRecord::from_bytes(Bytes::from_bytes_vec(bytes))
        .map_err(|e| invalid(path, format!("damaged weights: {e}")))?;
    model.try_load_record(record).map_err(|e| {
        invalid(
            path,
            format!(
                "weights do not fit a {} ({}x{}x{}, {} classes): {e}",
                spec.name,
                spec.in_channels,
                spec.input_size[0],
                spec.input_size[1],
                spec.num_classes
            ),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Distribution, Tensor};

    fn meta(name: &str) -> CheckpointMeta {
        CheckpointMeta {
            format: FORMAT_VERSION,
            model: ModelSpec::new(name, [1, 28, 28], 10),
            preprocess: Preprocess {
                channels: 1,
                size: [28, 28],
                mean: vec![0.5],
                std: vec![0.5],
            },
            classes: (0..10).map(|i| i.to_string()).collect(),
            epoch: 3,
            best_accuracy: 0.9,
            partial: None,
            loss_scale: None,
        }
    }

    #[test]
    fn save_then_load_gives_identical_logits() {
        let device = Device::flex();
        let m = meta("small-cnn");
        let model = convnet_nn::build(&m.model, &device).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.ckpt");
        save(&path, &m, &model, None).unwrap();
        let back = Checkpoint::load(&path, &device).unwrap();
        assert_eq!(back.meta, m);
        let x = Tensor::<4>::random([3, 1, 28, 28], Distribution::Default, &device);
        let a = model
            .valid()
            .forward(x.clone())
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        let b = back
            .model
            .valid()
            .forward(x)
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn foreign_damaged_and_mismatched_files_are_refused_clearly() {
        let device = Device::flex();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.ckpt");
        std::fs::write(&path, b"PK\x03\x04 some zip").unwrap();
        let e = Checkpoint::load(&path, &device).err().unwrap().to_string();
        assert!(
            e.contains("x.ckpt") && e.contains("not a convnet checkpoint"),
            "{e}"
        );

        // A checkpoint whose metadata claims another architecture than its weights.
        let m = meta("mnist-cnn");
        let model = convnet_nn::build(&m.model, &device).unwrap();
        let mut other = meta("lenet5");
        other.model.input_size = [32, 32];
        other.preprocess.size = [32, 32];
        save(&path, &other, &model, None).unwrap();
        let e = Checkpoint::load(&path, &device).err().unwrap().to_string();
        assert!(
            e.contains("x.ckpt") && e.contains("do not fit a lenet5"),
            "{e}"
        );

        save(&path, &m, &model, None).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
        let e = Checkpoint::load(&path, &device).err().unwrap().to_string();
        assert!(e.contains("truncated"), "{e}");

        // Metadata that cannot describe a real model is refused before anything is built.
        let mut absurd = meta("mnist-cnn");
        absurd.model.num_classes = 1 << 40;
        save(&path, &absurd, &model, None).unwrap();
        let e = Checkpoint::load(&path, &device).err().unwrap().to_string();
        assert!(
            e.contains("damaged metadata") && e.contains("classes"),
            "{e}"
        );
        save(&path, &m, &model, None).unwrap();

        let mut newer = bytes.clone();
        newer[8] = 99;
        std::fs::write(&path, &newer).unwrap();
        let e = Checkpoint::load(&path, &device).err().unwrap().to_string();
        assert!(e.contains("newer"), "{e}");
    }
}
