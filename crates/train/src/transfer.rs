//! Transfer learning: pretrained weights in, a new head, frozen layers, a smaller learning rate
//! for the backbone, two-phase fine-tuning; and feature extraction with a head trained on the
//! saved features (seed 001's fast path).
//!
//! The trainer ([`crate::TrainingConfig::transfer`]) calls [`init`] once after building a fresh model, [`for_epoch`] at every epoch
//! start (freezing, and unfreezing at `unfreeze_at`) and [`learning_rate`] at every step.
//! Freezing is Burn's `Module::freeze_group`: frozen parameters stop requiring gradients, so
//! the optimizer never steps them (no update, no weight decay, no state), and frozen batch
//! norms switch to inference mode, so their running statistics stay as loaded.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use burn::module::{Module, ParamGroup, ParamId};
use burn::nn::{Dropout, DropoutConfig, Linear, LinearConfig};
use burn::optim::lr_scheduler::module_lr_scheduler::{ModuleLearningRate, ModuleLrScheduler};
use burn::store::ModuleSnapshot;
use burn::tensor::{Device, Tensor, TensorData};
use convnet_data::download::{Checksum, cache_dir, fetch_checked};
use convnet_data::{DataError, Loader};
use convnet_eval::{Metrics, images_tensor};
use convnet_nn::pretrained::{
    PretrainedEntry, all_param_ids, find_pretrained, group_with_flags, head_param_ids,
    ids_before_layer, module_paths, named_layers, output_layer_ids,
};
use convnet_nn::weights::{self, HeadPolicy, LoadReport};
use convnet_nn::{ModelSpec, Network};
use serde::{Deserialize, Serialize};

use crate::checkpoint::{self, Checkpoint};
use crate::config::{OptimizerConfig, OptimizerKind};
use crate::trainer::TrainError;
use crate::{loss, optim};

/// Which parameters are frozen (`--freeze`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Freeze {
    /// Nothing is frozen.
    #[default]
    None,
    /// Everything but the classifier (feature extraction).
    Backbone,
    /// The layers called before this one (named as `convnet summary` names them, e.g.
    /// `Conv2d-13`): fine-tuning the later blocks only.
    Until(String),
}

impl std::str::FromStr for Freeze {
    type Err = String;

    /// `none`, `backbone` or `until=LAYER`.
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "none" => Ok(Freeze::None),
            "backbone" => Ok(Freeze::Backbone),
            _ => match s.strip_prefix("until=") {
                Some(l) if !l.is_empty() => Ok(Freeze::Until(l.to_string())),
                _ => Err(format!(
                    "--freeze '{s}': use none, backbone or until=LAYER (a layer name from `convnet summary`, e.g. until=Conv2d-11)"
                )),
            },
        }
    }
}

fn yes() -> bool {
    true
}

/// The transfer-learning part of a [`TrainingConfig`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TransferConfig {
    /// `--pretrained`: a registered name (`resnet18.tv_in1k`), a torchvision `.pth`, a
    /// safetensors file or a convnet checkpoint.
    #[serde(default)]
    pub pretrained: Option<String>,
    /// Every tensor outside a replaced head must load (`--strict-weights false`: load what fits).
    #[serde(default = "yes")]
    pub strict: bool,
    /// Keep the pretrained classifier instead of a new one for the data's classes.
    #[serde(default)]
    pub keep_head: bool,
    /// What is frozen.
    #[serde(default)]
    pub freeze: Freeze,
    /// 1-based epoch from which nothing is frozen (two-phase fine-tuning; `--unfreeze-at`).
    #[serde(default)]
    pub unfreeze_at: Option<usize>,
    /// Backbone learning rate = this × the learning rate (the head gets the full rate).
    #[serde(default)]
    pub backbone_lr_mult: Option<f64>,
}

impl Default for TransferConfig {
    fn default() -> Self {
        Self {
            pretrained: None,
            strict: true,
            keep_head: false,
            freeze: Freeze::None,
            unfreeze_at: None,
            backbone_lr_mult: None,
        }
    }
}

/// Normalisation mean and standard deviation per channel, and the input `[C, H, W]`.
pub type Normalisation = (Vec<f32>, Vec<f32>, [usize; 3]);

/// What `--pretrained` names.
#[derive(Debug, Clone)]
pub enum Pretrained {
    /// Registered weights, downloaded once into the cache.
    Registered(&'static PretrainedEntry),
    /// A convnet checkpoint (`.ckpt`, or a run folder's `best.ckpt`).
    Checkpoint(PathBuf),
    /// A torchvision `.pth` or a safetensors file.
    File(PathBuf),
}

impl Pretrained {
    /// Resolves `spec`: a registered name, a run folder, a checkpoint or a weight file.
    pub fn resolve(spec: &str) -> Result<Self, TrainError> {
        if let Some(e) = find_pretrained(spec) {
            return Ok(Pretrained::Registered(e));
        }
        let mut path = PathBuf::from(spec);
        if path.is_dir() {
            path = ["best.ckpt", "last.ckpt"]
                .iter()
                .map(|f| path.join(f))
                .find(|p| p.exists())
                .ok_or_else(|| {
                    TrainError::Config(format!(
                        "--pretrained {spec}: the folder has no best.ckpt or last.ckpt"
                    ))
                })?;
        }
        if !path.exists() {
            let known: Vec<&str> = convnet_nn::pretrained::PRETRAINED
                .iter()
                .map(|e| e.name)
                .collect();
            return Err(TrainError::Config(format!(
                "--pretrained {spec}: no such file, and not a registered name (known: {})",
                known.join(", ")
            )));
        }
        let mut magic = [0u8; 8];
        let is_ckpt = std::fs::File::open(&path)
            .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut magic))
            .is_ok()
            && &magic == b"CONVNET\0";
        Ok(if is_ckpt {
            Pretrained::Checkpoint(path)
        } else {
            Pretrained::File(path)
        })
    }

    /// The preprocessing the weights were trained with, when the source says: registered
    /// weights' mean/std and input `[C, H, W]`, or a checkpoint's.
    pub fn preprocessing(&self) -> Result<Option<Normalisation>, TrainError> {
        Ok(match self {
            Pretrained::Registered(e) => Some((e.mean.to_vec(), e.std.to_vec(), e.input)),
            Pretrained::Checkpoint(p) => {
                let meta = checkpoint::read_meta(p)?;
                let pre = meta.preprocess;
                Some((pre.mean, pre.std, [pre.channels, pre.size[0], pre.size[1]]))
            }
            Pretrained::File(_) => None,
        })
    }
}

/// Downloads `url` into `dir` (once: a file already there whose SHA-256 starts with
/// `sha256_prefix` is reused) and returns its path.
pub fn fetch_weights(url: &str, sha256_prefix: &str, dir: &Path) -> Result<PathBuf, DataError> {
    let name = url.rsplit('/').next().unwrap_or("weights.pth");
    let dest = dir.join(name);
    fetch_checked(
        url,
        &dest,
        Checksum::Sha256Prefix(sha256_prefix),
        &mut |_, _| {},
    )?;
    Ok(dest)
}

/// The cache file of registered weights, downloaded and checked on first use
/// (`$CONVNET_CACHE/pretrained/`).
pub fn fetch_registered(e: &PretrainedEntry) -> Result<PathBuf, DataError> {
    fetch_weights(e.url, e.sha256_prefix, &cache_dir().join("pretrained"))
}

/// Whether registered weights `e` can go into model `name`: the same model, or a variant of it
/// with another head (`vgg16_seed001` takes `vgg16`'s base).
pub fn fits(e: &PretrainedEntry, name: &str) -> bool {
    name == e.model || name.starts_with(&format!("{}_", e.model))
}

/// Loads `t.pretrained` into `model` (built for `spec`): every tensor checked by name and
/// shape; a classifier that does not fit is re-initialised unless `keep_head`.
pub fn load_pretrained(
    model: &mut Network,
    spec: &ModelSpec,
    t: &TransferConfig,
    device: &Device,
) -> Result<Option<LoadReport>, TrainError> {
    let Some(name) = &t.pretrained else {
        return Ok(None);
    };
    let policy = if t.keep_head {
        HeadPolicy::Keep
    } else {
        HeadPolicy::Replace
    };
    let head = module_paths(model, &head_param_ids(model, spec, device));
    // The output layer stays new even where the old one fits (other classes, same count).
    let out_ids: HashSet<u64> = output_layer_ids(model, spec, device)
        .iter()
        .map(|i| i.val())
        .collect();
    let fresh: Vec<_> = model
        .collect(None, None, true)
        .into_iter()
        .filter(|t| t.param_id.is_some_and(|id| out_ids.contains(&id)))
        .collect();
    let werr = |e: weights::WeightError| TrainError::Config(e.to_string());
    let report = match Pretrained::resolve(name)? {
        Pretrained::Registered(e) => {
            if !fits(e, &spec.name) {
                return Err(TrainError::Config(format!(
                    "--pretrained {}: these are {} weights; use --model {}",
                    e.name, e.model, e.model
                )));
            }
            let path = fetch_registered(e)?;
            weights::load_file_for_transfer(model, &path, t.strict, &head, policy).map_err(werr)?
        }
        Pretrained::Checkpoint(path) => {
            let ckpt = Checkpoint::load(&path, &device.clone().without_autodiff())?;
            weights::load_network(model, &ckpt.model, &path, t.strict, &head, policy)
                .map_err(werr)?
        }
        Pretrained::File(path) => {
            weights::load_file_for_transfer(model, &path, t.strict, &head, policy).map_err(werr)?
        }
    };
    let mut report = report;
    if policy == HeadPolicy::Replace {
        let names: Vec<String> = fresh.iter().map(|t| t.name.clone()).collect();
        model.apply(fresh, None, None, true);
        for n in names {
            if !report.head_reset.contains(&n) {
                report.applied = report.applied.saturating_sub(1);
                report.head_reset.push(n);
            }
        }
        report.head_reset.sort();
    }
    let mut line = format!("pretrained: loaded {} tensors from {name}", report.applied);
    if !report.head_reset.is_empty() {
        let keys: Vec<&str> = report.head_reset.iter().map(String::as_str).collect();
        line.push_str(&format!(
            "; new head for {} classes, re-initialised: {}",
            spec.num_classes,
            keys.join(", ")
        ));
    }
    if !report.head_dropped.is_empty() {
        line.push_str(&format!(
            "; dropped from the old head: {}",
            report.head_dropped.join(", ")
        ));
    }
    println!("{line}");
    let left = report.missing.len() + report.mismatched.len();
    if left > 0 || !report.unused.is_empty() {
        println!(
            "warning: {left} model tensors were not loaded and {} file tensors were not used (--strict false)",
            report.unused.len()
        );
    }
    Ok(Some(report))
}

/// The transfer-learning step after a fresh model is built: loads the pretrained weights and
/// checks that a `--freeze until=LAYER` layer exists.
pub fn init(
    mut model: Network,
    spec: &ModelSpec,
    transfer: Option<&TransferConfig>,
    device: &Device,
) -> Result<Network, TrainError> {
    let Some(t) = transfer else {
        return Ok(model);
    };
    load_pretrained(&mut model, spec, t, device)?;
    if let Freeze::Until(layer) = &t.freeze {
        frozen_ids(&model, spec, &t.freeze, device)?;
        println!("freezing the layers before {layer}");
    }
    Ok(model)
}

/// Ids of the parameters `freeze` selects.
fn frozen_ids(
    model: &Network,
    spec: &ModelSpec,
    freeze: &Freeze,
    device: &Device,
) -> Result<HashSet<ParamId>, TrainError> {
    Ok(match freeze {
        Freeze::None => HashSet::new(),
        Freeze::Backbone => backbone_ids(model, spec, device),
        Freeze::Until(layer) => ids_before_layer(model, spec, device, layer).ok_or_else(|| {
            let names: Vec<String> = named_layers(model, spec, device)
                .into_iter()
                .filter(|(_, ids)| !ids.is_empty())
                .map(|(n, _)| n)
                .collect();
            TrainError::Config(format!(
                "--freeze until={layer}: {} has no such layer; layers with parameters: {}",
                spec.name,
                names.join(", ")
            ))
        })?,
    })
}

/// Every parameter that is not the head's.
fn backbone_ids(model: &Network, spec: &ModelSpec, device: &Device) -> HashSet<ParamId> {
    let head = head_param_ids(model, spec, device);
    all_param_ids(model)
        .into_iter()
        .filter(|id| !head.contains(id))
        .collect()
}

/// The backbone's parameter group (with its batch norms' flags), for a separate learning rate.
pub struct LrSplit {
    backbone: ParamGroup,
    mult: f64,
}

/// Applies the freezing that holds at 0-based `epoch` (frozen before 1-based `unfreeze_at`, all
/// trainable from then on) and returns the backbone/head split of the learning rate, if any.
pub fn for_epoch(
    model: Network,
    spec: &ModelSpec,
    transfer: Option<&TransferConfig>,
    epoch: usize,
    device: &Device,
) -> Result<(Network, Option<LrSplit>), TrainError> {
    let Some(t) = transfer else {
        return Ok((model, None));
    };
    let frozen_now = t.freeze != Freeze::None && t.unfreeze_at.is_none_or(|u| epoch + 1 < u);
    let model = if frozen_now {
        let ids = frozen_ids(&model, spec, &t.freeze, device)?;
        let group = group_with_flags(&model, &ids);
        if epoch == 0 {
            let total: usize = all_param_ids(&model).len();
            println!(
                "frozen: {} of {total} parameter tensors ({:?}){}",
                ids.len(),
                t.freeze,
                t.unfreeze_at
                    .map(|u| format!(", until epoch {u}"))
                    .unwrap_or_default()
            );
        }
        model.freeze_group(group)
    } else if t.freeze != Freeze::None {
        if t.unfreeze_at == Some(epoch + 1) {
            println!("epoch {}: unfreezing every layer (fine-tuning)", epoch + 1);
        }
        model.unfreeze_group(ParamGroup::all())
    } else {
        model
    };
    let split = t.backbone_lr_mult.map(|mult| {
        let ids = backbone_ids(&model, spec, device);
        LrSplit {
            backbone: group_with_flags(&model, &ids),
            mult,
        }
    });
    Ok((model, split))
}

/// The per-parameter learning rate: `lr` for the head, `lr × mult` for the backbone.
pub fn learning_rate(lr: f64, split: Option<&LrSplit>) -> ModuleLearningRate {
    match split {
        Some(s) => ModuleLrScheduler::new(lr)
            .with_group(s.backbone.clone(), lr * s.mult)
            .step(),
        None => lr.into(),
    }
}

/// Global pooling of a feature map for feature extraction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Pool {
    /// Global average pooling: `C` features.
    Avg,
    /// Global max pooling: `C` features.
    Max,
    /// The whole map flattened: `C·H·W` features (seed 001: VGG-16 at 150x150 gives 4·4·512).
    None,
}

/// The pooled [`Network::forward_features`] of a batch.
///
/// # Shapes
/// `[N, C, H, W]` → `[N, D]`
pub fn features(model: &Network, x: Tensor<4>, pool: Pool) -> Tensor<2> {
    let f = model.forward_features(x);
    let [n, c, h, w] = f.dims();
    match pool {
        Pool::Avg => f.reshape([n, c, h * w]).mean_dim(2).reshape([n, c]),
        Pool::Max => f.reshape([n, c, h * w]).max_dim(2).reshape([n, c]),
        Pool::None => f.reshape([n, c * h * w]),
    }
}

/// Features and labels of one split.
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureSplit {
    /// `train`, `val` or `test`.
    pub name: String,
    /// `N × dim` floats, row-major.
    pub features: Vec<f32>,
    /// Features per sample.
    pub dim: usize,
    /// `N` labels.
    pub labels: Vec<usize>,
}

/// Extracted features of a dataset's splits, saved as safetensors (`NAME.features` `[N, D]`
/// f32 and `NAME.labels` `[N]` i64 per split; the class names, model and pooling in the
/// metadata).
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureSet {
    /// Class names in label order.
    pub classes: Vec<String>,
    /// The model (and weights) the features come from.
    pub model: String,
    /// The pooling used.
    pub pool: Pool,
    /// The splits.
    pub splits: Vec<FeatureSplit>,
}

/// Runs `model` (inference mode) once over `loader` and returns the pooled features and
/// labels; `on_batch(done)` after each batch. Unreadable images are skipped (reported by the
/// loader's batches).
pub fn extract(
    model: &Network,
    loader: &Loader,
    device: &Device,
    pool: Pool,
    on_batch: &mut dyn FnMut(usize),
) -> FeatureSplit {
    let mut out = Vec::new();
    let mut labels = Vec::new();
    let mut dim = 0;
    for mut batch in loader.epoch(0) {
        if batch.labels.is_empty() {
            continue;
        }
        let x = images_tensor(&mut batch, device);
        let f = features(model, x, pool);
        dim = f.dims()[1];
        out.extend(
            f.into_data()
                .convert::<f32>()
                .try_to_vec::<f32>()
                .unwrap_or_default(),
        );
        labels.extend_from_slice(&batch.labels);
        on_batch(labels.len());
    }
    FeatureSplit {
        name: String::new(),
        features: out,
        dim,
        labels,
    }
}

/// Why a feature file could not be written or read.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {why}")]
pub struct FeatureFileError {
    /// The file.
    pub path: PathBuf,
    /// What went wrong, and what to do.
    pub why: String,
}

impl FeatureSet {
    /// Writes the set as safetensors, atomically.
    pub fn save(&self, path: &Path) -> Result<(), FeatureFileError> {
        let err = |why: String| FeatureFileError {
            path: path.to_path_buf(),
            why,
        };
        let mut buffers: Vec<(String, safetensors::Dtype, Vec<usize>, Vec<u8>)> = Vec::new();
        for s in &self.splits {
            let n = s.labels.len();
            let bytes: Vec<u8> = s.features.iter().flat_map(|v| v.to_le_bytes()).collect();
            buffers.push((
                format!("{}.features", s.name),
                safetensors::Dtype::F32,
                vec![n, s.dim],
                bytes,
            ));
            let labels: Vec<u8> = s
                .labels
                .iter()
                .flat_map(|&l| (l as i64).to_le_bytes())
                .collect();
            buffers.push((
                format!("{}.labels", s.name),
                safetensors::Dtype::I64,
                vec![n],
                labels,
            ));
        }
        let mut views = Vec::new();
        for (name, dtype, shape, bytes) in &buffers {
            let v = safetensors::tensor::TensorView::new(*dtype, shape.clone(), bytes)
                .map_err(|e| err(e.to_string()))?;
            views.push((name.clone(), v));
        }
        let meta = HashMap::from([
            (
                "classes".to_string(),
                serde_json::to_string(&self.classes).expect("strings serialise"),
            ),
            ("model".to_string(), self.model.clone()),
            (
                "pool".to_string(),
                serde_json::to_string(&self.pool).expect("enum serialises"),
            ),
        ]);
        let bytes = safetensors::serialize(views, Some(meta)).map_err(|e| err(e.to_string()))?;
        convnet_data::files::write_atomic(path, &bytes).map_err(|e| err(e.to_string()))
    }

    /// Reads a set written by [`Self::save`].
    pub fn load(path: &Path) -> Result<Self, FeatureFileError> {
        let err = |why: String| FeatureFileError {
            path: path.to_path_buf(),
            why,
        };
        let bytes = std::fs::read(path).map_err(|e| err(e.to_string()))?;
        let not_ours = |what: &str| {
            err(format!(
                "{what}; is this a file written by `convnet features`?"
            ))
        };
        let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes)
            .map_err(|e| not_ours(&format!("not a safetensors file ({e})")))?;
        let info = meta.metadata().clone().unwrap_or_default();
        let classes: Vec<String> = info
            .get("classes")
            .and_then(|c| serde_json::from_str(c).ok())
            .ok_or_else(|| not_ours("no class names in the metadata"))?;
        let pool: Pool = info
            .get("pool")
            .and_then(|c| serde_json::from_str(c).ok())
            .unwrap_or(Pool::Avg);
        let model = info.get("model").cloned().unwrap_or_default();
        let st = safetensors::SafeTensors::deserialize(&bytes)
            .map_err(|e| not_ours(&format!("damaged ({e})")))?;
        let mut splits = Vec::new();
        for name in ["train", "val", "test"] {
            let (Ok(f), Ok(l)) = (
                st.tensor(&format!("{name}.features")),
                st.tensor(&format!("{name}.labels")),
            ) else {
                continue;
            };
            if f.dtype() != safetensors::Dtype::F32
                || l.dtype() != safetensors::Dtype::I64
                || f.shape().len() != 2
                || f.shape()[0] != l.shape().first().copied().unwrap_or(0)
            {
                return Err(not_ours(&format!(
                    "{name}: unexpected tensor types or shapes"
                )));
            }
            let features = f
                .data()
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            let mut labels = Vec::new();
            for b in l.data().chunks_exact(8) {
                let v = i64::from_le_bytes(b.try_into().expect("8 bytes"));
                if v < 0 || v as usize >= classes.len() {
                    return Err(not_ours(&format!("{name}: label {v} out of range")));
                }
                labels.push(v as usize);
            }
            splits.push(FeatureSplit {
                name: name.to_string(),
                features,
                dim: f.shape()[1],
                labels,
            });
        }
        if !splits.iter().any(|s| s.name == "train") {
            return Err(not_ours("no train.features / train.labels"));
        }
        Ok(Self {
            classes,
            model,
            pool,
            splits,
        })
    }

    /// The split called `name`.
    pub fn split(&self, name: &str) -> Option<&FeatureSplit> {
        self.splits.iter().find(|s| s.name == name)
    }
}

/// A classifier on extracted features: optional hidden layer with ReLU and dropout, then the
/// output layer (seed 001: Dense 256 + dropout 0.5 + Dense).
#[derive(Module, Debug)]
pub struct FeatureHead {
    /// Hidden layer.
    pub hidden: Option<Linear>,
    /// Dropout before the output layer.
    pub dropout: Dropout,
    /// Output layer.
    pub out: Linear,
}

impl FeatureHead {
    /// A head from `dim` features to `classes` outputs.
    pub fn new(
        dim: usize,
        hidden: Option<usize>,
        dropout: f64,
        classes: usize,
        device: &Device,
    ) -> Self {
        let h = hidden.filter(|&h| h > 0);
        Self {
            hidden: h.map(|h| LinearConfig::new(dim, h).init(device)),
            dropout: DropoutConfig::new(dropout).init(),
            out: LinearConfig::new(h.unwrap_or(dim), classes).init(device),
        }
    }

    /// # Shapes
    /// `[N, dim]` → `[N, classes]`
    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        let x = match &self.hidden {
            Some(l) => burn::tensor::activation::relu(l.forward(x)),
            None => x,
        };
        self.out.forward(self.dropout.forward(x))
    }
}

/// Settings of [`train_head`].
#[derive(Debug, Clone, PartialEq)]
pub struct HeadConfig {
    /// Hidden units (none: a linear classifier).
    pub hidden: Option<usize>,
    /// Dropout before the output layer.
    pub dropout: f64,
    /// Epochs.
    pub epochs: usize,
    /// Samples per batch.
    pub batch_size: usize,
    /// Optimizer.
    pub optimizer: OptimizerConfig,
    /// Seed of initialisation and shuffling.
    pub seed: u64,
}

impl Default for HeadConfig {
    fn default() -> Self {
        Self {
            hidden: Some(256),
            dropout: 0.5,
            epochs: 30,
            batch_size: 64,
            optimizer: OptimizerConfig {
                kind: OptimizerKind::Adam,
                lr: 1e-3,
                momentum: 0.0,
                weight_decay: 0.0,
                nesterov: false,
                decoupled: false,
            },
            seed: 42,
        }
    }
}

/// One epoch of [`train_head`].
#[derive(Debug, Clone, PartialEq)]
pub struct HeadEpoch {
    /// 1-based epoch.
    pub epoch: usize,
    /// Training loss and accuracy.
    pub train: (f64, f64),
    /// Validation loss and accuracy (NaN without a `val` split).
    pub val: (f64, f64),
}

/// Trains a [`FeatureHead`] on `set`'s `train` features; returns the per-epoch figures and the
/// trained head (inference mode).
pub fn train_head(
    set: &FeatureSet,
    cfg: &HeadConfig,
    device: &Device,
    on_epoch: &mut dyn FnMut(&HeadEpoch),
) -> Result<(FeatureHead, Vec<HeadEpoch>), TrainError> {
    let train = set
        .split("train")
        .ok_or_else(|| TrainError::Config("the feature file has no train split".into()))?;
    if train.labels.is_empty() || train.dim == 0 {
        return Err(TrainError::Config("the train split has no samples".into()));
    }
    let k = set.classes.len();
    let ad = device.clone().autodiff();
    device.seed(cfg.seed);
    let mut head = FeatureHead::new(train.dim, cfg.hidden, cfg.dropout, k, &ad);
    let mut opt = optim::build(&cfg.optimizer);
    let n = train.labels.len();
    let bs = cfg.batch_size.max(1);
    let mut rows = Vec::new();
    for epoch in 0..cfg.epochs {
        device.seed(cfg.seed.wrapping_add(1 + epoch as u64));
        let mut order: Vec<usize> = (0..n).collect();
        {
            use rand::SeedableRng;
            use rand::seq::SliceRandom;
            let mut rng = rand::rngs::StdRng::seed_from_u64(cfg.seed.wrapping_add(epoch as u64));
            order.shuffle(&mut rng);
        }
        let mut m = Metrics::new(k);
        for chunk in order.chunks(bs) {
            let mut xs = Vec::with_capacity(chunk.len() * train.dim);
            let mut ys = Vec::with_capacity(chunk.len());
            for &i in chunk {
                xs.extend_from_slice(&train.features[i * train.dim..(i + 1) * train.dim]);
                ys.push(train.labels[i]);
            }
            let x = Tensor::<2>::from_data(TensorData::new(xs, [chunk.len(), train.dim]), &ad);
            let logits = head.forward(x);
            let host = logits.to_data().try_to_vec::<f32>().unwrap_or_default();
            m.update(&host, &ys);
            let t = loss::targets_tensor(loss::smoothed_targets(&ys, k, 0.0), k, &ad);
            let l = loss::soft_cross_entropy(logits, t);
            let grads = burn::optim::GradientsParams::from_grads(l.backward(), &head);
            head = opt.step(cfg.optimizer.lr, head, grads);
        }
        let val = match set.split("val") {
            Some(v) if !v.labels.is_empty() => {
                let vm = evaluate_head(&head.valid(), v, k, device);
                (vm.loss(), vm.accuracy())
            }
            _ => (f64::NAN, f64::NAN),
        };
        let row = HeadEpoch {
            epoch: epoch + 1,
            train: (m.loss(), m.accuracy()),
            val,
        };
        on_epoch(&row);
        rows.push(row);
    }
    Ok((head.valid(), rows))
}

/// Loss and accuracy of `head` (inference mode) on a split.
pub fn evaluate_head(
    head: &FeatureHead,
    split: &FeatureSplit,
    classes: usize,
    device: &Device,
) -> Metrics {
    let mut m = Metrics::new(classes);
    let rows = split.labels.len();
    for start in (0..rows).step_by(1024) {
        let end = (start + 1024).min(rows);
        let xs = split.features[start * split.dim..end * split.dim].to_vec();
        let x = Tensor::<2>::from_data(TensorData::new(xs, [end - start, split.dim]), device);
        let host = head
            .forward(x)
            .into_data()
            .try_to_vec::<f32>()
            .unwrap_or_default();
        m.update(&host, &split.labels[start..end]);
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn freeze_parses_and_refuses_nonsense() {
        assert_eq!("none".parse::<Freeze>().unwrap(), Freeze::None);
        assert_eq!("backbone".parse::<Freeze>().unwrap(), Freeze::Backbone);
        assert_eq!(
            "until=Conv2d-13".parse::<Freeze>().unwrap(),
            Freeze::Until("Conv2d-13".into())
        );
        assert!("until=".parse::<Freeze>().is_err());
        assert!("all".parse::<Freeze>().unwrap_err().contains("until=LAYER"));
    }

    use std::collections::BTreeMap;
    use std::io::{BufRead, Write};

    use burn::optim::GradientsParams;
    use burn::tensor::Distribution;

    /// Every tensor of `net` (weights, biases and batch-norm running statistics) as bytes.
    fn snapshot(net: &Network) -> BTreeMap<String, Vec<u8>> {
        net.collect(None, None, true)
            .into_iter()
            .map(|t| (t.name.clone(), t.to_bytes().unwrap().to_vec()))
            .collect()
    }

    /// `n` SGD steps (momentum 0.9, L2 weight decay 0.01) on random batches.
    fn train_steps(
        mut model: Network,
        split: Option<&LrSplit>,
        n: usize,
        device: &Device,
    ) -> Network {
        let ad = device.clone().autodiff();
        let mut opt = optim::build(&OptimizerConfig {
            kind: OptimizerKind::Sgd,
            lr: 0.1,
            momentum: 0.9,
            weight_decay: 0.01,
            nesterov: false,
            decoupled: false,
        });
        for i in 0..n {
            let x = Tensor::<4>::random([8, 1, 28, 28], Distribution::Default, &ad);
            let labels: Vec<usize> = (0..8).map(|j| (i + j) % 5).collect();
            let t = loss::targets_tensor(loss::smoothed_targets(&labels, 5, 0.0), 5, &ad);
            let l = loss::soft_cross_entropy(model.forward(x), t);
            let grads = GradientsParams::from_grads(l.backward(), &model);
            model = opt.step(learning_rate(0.1, split), model, grads);
        }
        model
    }

    fn changed(a: &BTreeMap<String, Vec<u8>>, b: &BTreeMap<String, Vec<u8>>) -> Vec<String> {
        a.iter()
            .filter(|(k, v)| b.get(*k) != Some(*v))
            .map(|(k, _)| k.clone())
            .collect()
    }

    fn small(device: &Device) -> (Network, ModelSpec) {
        let spec = ModelSpec::new("small-cnn", [1, 28, 28], 5);
        device.seed(3);
        (
            convnet_nn::build(&spec, &device.clone().autodiff()).unwrap(),
            spec,
        )
    }

    #[test]
    fn a_frozen_backbone_stays_bit_identical_then_unfreezes() {
        let device = Device::flex();
        let (model, spec) = small(&device);
        let t = TransferConfig {
            freeze: Freeze::Backbone,
            unfreeze_at: Some(2),
            ..Default::default()
        };
        let before = snapshot(&model);
        let (model, split) = for_epoch(model, &spec, Some(&t), 0, &device).unwrap();
        assert!(split.is_none());
        let model = train_steps(model, None, 3, &device);
        let after = snapshot(&model);
        let moved = changed(&before, &after);
        // Weights, batch-norm parameters and running statistics of the base: untouched, even
        // with weight decay and momentum; the head (fc1, fc2) trained.
        assert!(
            moved
                .iter()
                .all(|k| k.starts_with("fc1.") || k.starts_with("fc2.")),
            "{moved:?}"
        );
        for k in ["fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"] {
            assert!(moved.iter().any(|m| m == k), "{k} did not train: {moved:?}");
        }
        assert!(before.keys().any(|k| k.contains("running_mean")));

        // Epoch 2 (--unfreeze-at 2): everything trains, batch norm updates its statistics.
        let (model, _) = for_epoch(model, &spec, Some(&t), 1, &device).unwrap();
        let model = train_steps(model, None, 2, &device);
        let moved = changed(&after, &snapshot(&model));
        for k in [
            "block1.conv.weight",
            "block2.bn.running_mean",
            "block2.bn.running_var",
        ] {
            assert!(moved.iter().any(|m| m == k), "{k} stayed frozen: {moved:?}");
        }
    }

    #[test]
    fn frozen_parameters_get_no_optimizer_state() {
        let device = Device::flex();
        let (model, spec) = small(&device);
        let t = TransferConfig {
            freeze: Freeze::Backbone,
            ..Default::default()
        };
        let (model, _) = for_epoch(model, &spec, Some(&t), 0, &device).unwrap();
        let ad = device.clone().autodiff();
        let mut opt = optim::build(&OptimizerConfig {
            kind: OptimizerKind::Adam,
            lr: 1e-3,
            momentum: 0.0,
            weight_decay: 1e-2,
            nesterov: false,
            decoupled: false,
        });
        let x = Tensor::<4>::random([4, 1, 28, 28], Distribution::Default, &ad);
        let t5 = loss::targets_tensor(loss::smoothed_targets(&[0, 1, 2, 3], 5, 0.0), 5, &ad);
        let l = loss::soft_cross_entropy(model.forward(x), t5);
        let grads = GradientsParams::from_grads(l.backward(), &model);
        assert_eq!(grads.len(), 4, "only fc1 and fc2 get gradients");
        let _ = opt.step(1e-3, model, grads);
        let record = String::from_utf8_lossy(&opt.into_bytes().unwrap()).to_string();
        // The record names each parameter with state by its path.
        assert!(record.contains("fc1") && record.contains("fc2"), "{record}");
        assert!(!record.contains("block1") && !record.contains("block2"));
    }

    #[test]
    fn freeze_until_a_layer_freezes_only_the_layers_before_it() {
        let device = Device::flex();
        let (model, spec) = small(&device);
        let t = TransferConfig {
            freeze: Freeze::Until("Conv2d-2".into()),
            ..Default::default()
        };
        let before = snapshot(&model);
        let (model, _) = for_epoch(model, &spec, Some(&t), 0, &device).unwrap();
        let moved = changed(&before, &snapshot(&train_steps(model, None, 2, &device)));
        assert!(moved.iter().all(|k| !k.starts_with("block1.")), "{moved:?}");
        assert!(moved.iter().any(|k| k == "block2.conv.weight"), "{moved:?}");
        let (model, spec) = small(&device);
        let bad = TransferConfig {
            freeze: Freeze::Until("Conv2d-9".into()),
            ..Default::default()
        };
        let err = for_epoch(model, &spec, Some(&bad), 0, &device)
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("Conv2d-9") && err.contains("Conv2d-2"),
            "{err}"
        );
    }

    #[test]
    fn backbone_lr_mult_zero_leaves_the_backbone_weights_alone() {
        let device = Device::flex();
        let (model, spec) = small(&device);
        let t = TransferConfig {
            backbone_lr_mult: Some(0.0),
            ..Default::default()
        };
        let before = snapshot(&model);
        let (model, split) = for_epoch(model, &spec, Some(&t), 0, &device).unwrap();
        let after = snapshot(&train_steps(model, split.as_ref(), 2, &device));
        let moved = changed(&before, &after);
        // lr 0 for the base: its weights stay (batch norm still tracks statistics, as it is
        // not frozen); the head moves at the full rate.
        assert!(
            !moved
                .iter()
                .any(|k| k == "block1.conv.weight" || k == "block2.bn.gamma")
        );
        assert!(
            moved.iter().any(|k| k == "block2.bn.running_mean"),
            "{moved:?}"
        );
        assert!(moved.iter().any(|k| k == "fc2.weight"), "{moved:?}");
    }

    /// Serves `body` for each of `n` connections on 127.0.0.1; returns the base URL and a
    /// counter of requests.
    fn serve(body: Vec<u8>, n: usize) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let count = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let c = count.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().take(n) {
                let mut stream = stream.unwrap();
                let mut reader = std::io::BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                while reader.read_line(&mut line).unwrap() > 2 {
                    line.clear();
                }
                c.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                stream.write_all(head.as_bytes()).unwrap();
                let _ = stream.write_all(&body);
            }
        });
        (url, count)
    }

    #[test]
    fn weights_download_once_and_a_wrong_hash_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let body = b"pretend these are resnet weights".to_vec();
        let probe = dir.path().join("probe");
        std::fs::write(&probe, &body).unwrap();
        let sha = convnet_data::download::sha256_file(&probe).unwrap();
        let (url, count) = serve(body.clone(), 3);
        let file = format!("{url}/net-{}.pth", &sha[..8]);
        let path = fetch_weights(&file, &sha[..8], dir.path()).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), body);
        // Cached: no second request.
        fetch_weights(&file, &sha[..8], dir.path()).unwrap();
        assert_eq!(count.load(std::sync::atomic::Ordering::SeqCst), 1);
        let err = fetch_weights(&format!("{url}/other.pth"), "deadbeef", dir.path())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("checksum mismatch") && err.contains(&sha),
            "{err}"
        );
        assert!(!dir.path().join("other.pth").exists());
    }

    /// Runs `f` on a thread with a large stack (Burn's recursive module traversal of the zoo's
    /// value-typed networks needs more than a test thread's 2 MiB in debug builds).
    fn big_stack(f: impl FnOnce() + Send + 'static) {
        std::thread::Builder::new()
            .stack_size(64 << 20)
            .spawn(f)
            .unwrap()
            .join()
            .unwrap();
    }

    /// Two classes of 16x16 grayscale PNGs (bright top half / bright left half, with noise).
    fn folder(root: &Path, per_class: usize) {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(5);
        for (c, name) in ["left", "top"].iter().enumerate() {
            let dir = root.join(name);
            std::fs::create_dir_all(&dir).unwrap();
            for i in 0..per_class {
                let img = image::GrayImage::from_fn(16, 16, |x, y| {
                    let on = if c == 0 { x < 8 } else { y < 8 };
                    let base = if on { 180.0 } else { 60.0 };
                    image::Luma([(base + rng.random_range(-50.0..50.0f32)) as u8])
                });
                img.save(dir.join(format!("{i:03}.png"))).unwrap();
            }
        }
    }

    fn run_config(data: &Path, transfer: Option<TransferConfig>) -> crate::TrainingConfig {
        use crate::config::{DataConfig, ScheduleConfig};
        crate::TrainingConfig {
            model: ModelSpec::new("small-cnn", [1, 16, 16], 2),
            preprocess: convnet_data::Preprocess {
                channels: 1,
                size: [16, 16],
                mean: vec![0.5],
                std: vec![0.5],
            },
            data: DataConfig {
                source: data.display().to_string(),
                class_map: None,
                val_split: 0.25,
                workers: 2,
                augment: None,
                per_class: None,
                strict: false,
            },
            epochs: 1,
            batch_size: 8,
            optimizer: OptimizerConfig {
                kind: OptimizerKind::Sgd,
                lr: 0.05,
                momentum: 0.9,
                weight_decay: 1e-3,
                nesterov: false,
                decoupled: false,
            },
            schedule: ScheduleConfig::default(),
            seed: 3,
            nan: Default::default(),
            label_smoothing: 0.0,
            aux_weight: None,
            clip_grad_norm: None,
            accumulate: 1,
            early_stopping: None,
            ema: None,
            transfer,
            precision: Default::default(),
        }
    }

    fn run(cfg: crate::TrainingConfig, dir: &Path) {
        let trainer = crate::Trainer {
            config: cfg,
            paths: crate::RunPaths {
                dir: dir.to_path_buf(),
            },
            device: Device::flex(),
            stop: std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false)),
            progress: false,
        };
        trainer.run(false).unwrap();
    }

    #[test]
    fn a_training_epoch_with_a_frozen_backbone_keeps_it_and_its_statistics() {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        folder(&data, 24);
        let first = tmp.path().join("first");
        run(run_config(&data, None), &first);
        let second = tmp.path().join("second");
        let t = TransferConfig {
            pretrained: Some(first.display().to_string()),
            freeze: Freeze::Backbone,
            ..Default::default()
        };
        run(run_config(&data, Some(t)), &second);
        let config = std::fs::read_to_string(second.join("config.json")).unwrap();
        assert!(config.contains("\"freeze\": \"backbone\""), "{config}");
        let d = Device::flex();
        let a = snapshot(
            &Checkpoint::load(&first.join("last.ckpt"), &d)
                .unwrap()
                .model,
        );
        let b = snapshot(
            &Checkpoint::load(&second.join("last.ckpt"), &d)
                .unwrap()
                .model,
        );
        let moved = changed(&a, &b);
        assert!(
            moved
                .iter()
                .all(|k| k.starts_with("fc1.") || k.starts_with("fc2.")),
            "{moved:?}"
        );
        assert!(moved.iter().any(|k| k == "fc1.weight"), "{moved:?}");
        assert!(a.contains_key("block1.bn.running_var"));
    }

    #[test]
    fn a_checkpoint_is_recognised_and_transfers_with_a_new_head() {
        big_stack(checkpoint_transfer);
    }

    fn checkpoint_transfer() {
        let device = Device::flex();
        let dir = tempfile::tempdir().unwrap();
        let src_spec = ModelSpec::new("small-cnn", [1, 28, 28], 10);
        let src = convnet_nn::build(&src_spec, &device).unwrap();
        let meta = checkpoint::CheckpointMeta {
            format: checkpoint::FORMAT_VERSION,
            model: src_spec,
            preprocess: convnet_data::Preprocess {
                channels: 1,
                size: [28, 28],
                mean: vec![0.25],
                std: vec![0.5],
            },
            classes: (0..10).map(|i| i.to_string()).collect(),
            epoch: 1,
            best_accuracy: 0.5,
            loss_scale: None,
            partial: None,
        };
        let path = dir.path().join("a.ckpt");
        checkpoint::save(&path, &meta, &src, None).unwrap();
        let p = Pretrained::resolve(dir.path().to_str().unwrap()).err();
        assert!(
            p.is_some(),
            "a folder without best.ckpt/last.ckpt is refused"
        );
        let resolved = Pretrained::resolve(path.to_str().unwrap()).unwrap();
        assert!(matches!(resolved, Pretrained::Checkpoint(_)));
        assert_eq!(
            resolved.preprocessing().unwrap(),
            Some((vec![0.25], vec![0.5], [1, 28, 28]))
        );
        let spec = ModelSpec::new("small-cnn", [1, 28, 28], 5);
        let mut net = convnet_nn::build(&spec, &device).unwrap();
        let t = TransferConfig {
            pretrained: Some(path.display().to_string()),
            ..Default::default()
        };
        let report = load_pretrained(&mut net, &spec, &t, &device)
            .unwrap()
            .unwrap();
        let mut reset = report.head_reset.clone();
        reset.sort();
        assert_eq!(reset, ["fc2.bias", "fc2.weight"]);
        let x = Tensor::<4>::random([2, 1, 28, 28], Distribution::Default, &device);
        let a = src.valid().forward_features(x.clone()).into_data();
        let b = net.valid().forward_features(x).into_data();
        assert_eq!(a, b);
        // Same number of classes: the output layer is still new (other classes), fc1 loads.
        let same = ModelSpec::new("small-cnn", [1, 28, 28], 10);
        let mut net = convnet_nn::build(&same, &device).unwrap();
        let fresh = snapshot(&net);
        let report = load_pretrained(&mut net, &same, &t, &device)
            .unwrap()
            .unwrap();
        assert_eq!(report.head_reset, ["fc2.bias", "fc2.weight"]);
        let (src_s, now) = (snapshot(&src), snapshot(&net));
        assert_eq!(now["fc2.weight"], fresh["fc2.weight"]);
        assert_eq!(now["fc1.weight"], src_s["fc1.weight"]);
        let keep = TransferConfig {
            keep_head: true,
            ..t.clone()
        };
        let mut net = convnet_nn::build(&same, &device).unwrap();
        let report = load_pretrained(&mut net, &same, &keep, &device)
            .unwrap()
            .unwrap();
        assert!(report.head_reset.is_empty());
        assert_eq!(snapshot(&net)["fc2.weight"], src_s["fc2.weight"]);
        let missing = Pretrained::resolve("no/such/file.pth")
            .unwrap_err()
            .to_string();
        assert!(missing.contains("resnet18.tv_in1k"), "{missing}");
    }

    #[test]
    fn features_round_trip_and_a_head_learns_them() {
        let device = Device::flex();
        let dir = tempfile::tempdir().unwrap();
        // Two Gaussian blobs in 8 dimensions, centred at -1 and +1.
        let blob = |n: usize, seed: u64| {
            use rand::{Rng, SeedableRng};
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
            let mut f = Vec::new();
            let mut l = Vec::new();
            for i in 0..n {
                let c = i % 2;
                for _ in 0..8 {
                    f.push(if c == 0 { -1.0 } else { 1.0 } + rng.random_range(-0.8f32..0.8));
                }
                l.push(c);
            }
            (f, l)
        };
        let mk = |name: &str, n, seed| {
            let (features, labels) = blob(n, seed);
            FeatureSplit {
                name: name.into(),
                features,
                dim: 8,
                labels,
            }
        };
        let set = FeatureSet {
            classes: vec!["a".into(), "b".into()],
            model: "test".into(),
            pool: Pool::Max,
            splits: vec![mk("train", 200, 1), mk("val", 50, 2), mk("test", 100, 3)],
        };
        let path = dir.path().join("f.safetensors");
        set.save(&path).unwrap();
        assert_eq!(FeatureSet::load(&path).unwrap(), set);
        let mut cfg = HeadConfig {
            hidden: None,
            dropout: 0.0,
            epochs: 5,
            ..Default::default()
        };
        cfg.optimizer.lr = 0.05;
        let (head, rows) = train_head(&set, &cfg, &device, &mut |_| {}).unwrap();
        assert_eq!(rows.len(), 5);
        let acc = evaluate_head(&head, set.split("test").unwrap(), 2, &device).accuracy();
        assert!(acc > 0.95, "test accuracy {acc}");
        std::fs::write(&path, b"not a feature file").unwrap();
        let err = FeatureSet::load(&path).unwrap_err().to_string();
        assert!(err.contains("convnet features"), "{err}");
    }
}
