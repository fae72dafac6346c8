//! ImageNet-pretrained weights convnet knows by name, the ImageNet-1k class names, and the
//! split of a network into backbone and head that transfer learning needs.
//!
//! Registered weights are torchvision's published `IMAGENET1K_V1` files. torchvision puts the
//! first 8 hex digits of each file's SHA-256 in its name (`resnet18-f37072fd.pth`) and checks
//! only that prefix when it downloads; convnet stores that same published prefix and checks
//! that the downloaded file's SHA-256 starts with it (the download itself lives in
//! `convnet-data`, which this crate does not depend on).

use std::collections::HashSet;

use burn::module::{Flag, Module, ModuleVisitor, Param, ParamGroup, ParamId};
use burn::store::ModuleSnapshot;
use burn::tensor::{Device, Tensor};

use crate::models::Network;
use crate::spec::ModelSpec;
use crate::trace::trace;

/// ImageNet's per-channel mean (RGB), as torchvision normalises.
pub const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
/// ImageNet's per-channel standard deviation (RGB).
pub const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];

/// The 1000 ImageNet-1k class names in label order, one per line, as torchvision lists them
/// (`ResNet18_Weights.IMAGENET1K_V1.meta["categories"]`).
pub const IMAGENET_CLASSES_TXT: &str = include_str!("../assets/imagenet_classes.txt");

/// The ImageNet-1k class names in label order.
pub fn imagenet_classes() -> Vec<String> {
    IMAGENET_CLASSES_TXT.lines().map(str::to_string).collect()
}

/// One set of published pretrained weights.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PretrainedEntry {
    /// The name `--pretrained` takes, e.g. `resnet18.tv_in1k` (timm's naming).
    pub name: &'static str,
    /// The convnet model the weights fit.
    pub model: &'static str,
    /// Where torchvision publishes the file.
    pub url: &'static str,
    /// The leading hex digits of the file's SHA-256 that torchvision publishes (in the file
    /// name); the downloaded file's SHA-256 must start with them.
    pub sha256_prefix: &'static str,
    /// Input `[C, H, W]` the weights were evaluated at (centre crop).
    pub input: [usize; 3],
    /// Shorter side before the centre crop in torchvision's evaluation.
    pub resize: usize,
    /// Normalisation mean.
    pub mean: [f32; 3],
    /// Normalisation standard deviation.
    pub std: [f32; 3],
    /// Top-1 accuracy (%) on ImageNet-1k val, single crop, from torchvision's docs.
    pub top1: f64,
    /// Top-5 accuracy (%), ditto.
    pub top5: f64,
}

impl PretrainedEntry {
    /// The file name: the URL's last segment.
    pub fn file_name(&self) -> &'static str {
        self.url.rsplit('/').next().unwrap_or(self.url)
    }

    /// The model spec the weights fit: the model at its ImageNet input with 1000 classes.
    pub fn spec(&self) -> ModelSpec {
        ModelSpec::new(self.model, self.input, 1000)
    }
}

macro_rules! tv {
    ($name:literal, $model:literal, $file:literal, $sha:literal, $side:literal, $resize:literal, $top1:literal, $top5:literal) => {
        PretrainedEntry {
            name: $name,
            model: $model,
            url: concat!("https://download.pytorch.org/models/", $file),
            sha256_prefix: $sha,
            input: [3, $side, $side],
            resize: $resize,
            mean: IMAGENET_MEAN,
            std: IMAGENET_STD,
            top1: $top1,
            top5: $top5,
        }
    };
}

/// Every registered set of weights (torchvision `IMAGENET1K_V1`; accuracies from torchvision's
/// model documentation).
pub const PRETRAINED: &[PretrainedEntry] = &[
    tv!(
        "alexnet.tv_in1k",
        "alexnet",
        "alexnet-owt-7be5be79.pth",
        "7be5be79",
        224,
        256,
        56.522,
        79.066
    ),
    tv!(
        "vgg11.tv_in1k",
        "vgg11",
        "vgg11-8a719046.pth",
        "8a719046",
        224,
        256,
        69.02,
        88.628
    ),
    tv!(
        "vgg13.tv_in1k",
        "vgg13",
        "vgg13-19584684.pth",
        "19584684",
        224,
        256,
        69.928,
        89.246
    ),
    tv!(
        "vgg16.tv_in1k",
        "vgg16",
        "vgg16-397923af.pth",
        "397923af",
        224,
        256,
        71.592,
        90.382
    ),
    tv!(
        "vgg16_bn.tv_in1k",
        "vgg16_bn",
        "vgg16_bn-6c64b313.pth",
        "6c64b313",
        224,
        256,
        73.36,
        91.516
    ),
    tv!(
        "vgg19.tv_in1k",
        "vgg19",
        "vgg19-dcbb9e9d.pth",
        "dcbb9e9d",
        224,
        256,
        72.376,
        90.876
    ),
    tv!(
        "resnet18.tv_in1k",
        "resnet18",
        "resnet18-f37072fd.pth",
        "f37072fd",
        224,
        256,
        69.758,
        89.078
    ),
    tv!(
        "resnet34.tv_in1k",
        "resnet34",
        "resnet34-b627a593.pth",
        "b627a593",
        224,
        256,
        73.314,
        91.42
    ),
    tv!(
        "resnet50.tv_in1k",
        "resnet50",
        "resnet50-0676ba61.pth",
        "0676ba61",
        224,
        256,
        76.13,
        92.862
    ),
    tv!(
        "resnet101.tv_in1k",
        "resnet101",
        "resnet101-63fe2227.pth",
        "63fe2227",
        224,
        256,
        77.374,
        93.546
    ),
    tv!(
        "resnet152.tv_in1k",
        "resnet152",
        "resnet152-394f9c45.pth",
        "394f9c45",
        224,
        256,
        78.312,
        94.046
    ),
    tv!(
        "squeezenet1_0.tv_in1k",
        "squeezenet1_0",
        "squeezenet1_0-b66bff10.pth",
        "b66bff10",
        224,
        256,
        58.092,
        80.42
    ),
    tv!(
        "squeezenet1_1.tv_in1k",
        "squeezenet1_1",
        "squeezenet1_1-b8a52dc0.pth",
        "b8a52dc0",
        224,
        256,
        58.178,
        80.624
    ),
    tv!(
        "densenet121.tv_in1k",
        "densenet121",
        "densenet121-a639ec97.pth",
        "a639ec97",
        224,
        256,
        74.434,
        91.972
    ),
    tv!(
        "mobilenet_v2.tv_in1k",
        "mobilenet_v2",
        "mobilenet_v2-b0353104.pth",
        "b0353104",
        224,
        256,
        71.878,
        90.286
    ),
    tv!(
        "googlenet.tv_in1k",
        "googlenet",
        "googlenet-1378be20.pth",
        "1378be20",
        224,
        256,
        69.778,
        89.53
    ),
    tv!(
        "inception_v3.tv_in1k",
        "inception_v3",
        "inception_v3_google-0cc3c7bd.pth",
        "0cc3c7bd",
        299,
        342,
        77.294,
        93.45
    ),
];

/// The registered weights called `name`.
pub fn find_pretrained(name: &str) -> Option<&'static PretrainedEntry> {
    PRETRAINED.iter().find(|e| e.name == name)
}

/// Every float parameter and training flag of a module: `(module path, id, is flag)`. The
/// module path is the dotted field path without the parameter's own name.
#[derive(Default)]
struct Owners {
    path: Vec<String>,
    items: Vec<(String, ParamId, bool)>,
}

impl Owners {
    fn parent(&self) -> String {
        let n = self.path.len().saturating_sub(1);
        self.path[..n].join(".")
    }
}

impl ModuleVisitor for Owners {
    fn enter_module(&mut self, name: &str, _container: &str) {
        self.path.push(name.to_string());
    }
    fn exit_module(&mut self, _name: &str, _container: &str) {
        self.path.pop();
    }
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let p = self.parent();
        self.items.push((p, param.id, false));
    }
    fn visit_flag(&mut self, flag: &Param<Flag>) {
        let p = self.parent();
        self.items.push((p, flag.id, true));
    }
}

/// The parameter group of `ids` and of the training flags (batch norm's) of the modules that
/// own them, so that freezing a batch norm's weights also freezes its statistics.
pub fn group_with_flags(net: &Network, ids: &HashSet<ParamId>) -> ParamGroup {
    let mut owners = Owners::default();
    net.visit(&mut owners);
    let modules: HashSet<&String> = owners
        .items
        .iter()
        .filter(|(_, id, flag)| !flag && ids.contains(id))
        .map(|(m, _, _)| m)
        .collect();
    let all: Vec<ParamId> = owners
        .items
        .iter()
        .filter(|(m, id, flag)| ids.contains(id) || (*flag && modules.contains(m)))
        .map(|(_, id, _)| *id)
        .collect();
    ParamGroup::from_ids(all)
}

/// Ids of every float parameter of `net` (running statistics excluded).
pub fn all_param_ids(net: &Network) -> Vec<ParamId> {
    let mut owners = Owners::default();
    net.visit(&mut owners);
    owners
        .items
        .into_iter()
        .filter(|(_, _, flag)| !flag)
        .map(|(_, id, _)| id)
        .collect()
}

/// The classifier's parameter ids: those of the layers [`Network::forward_head`] calls, plus
/// the auxiliary classifiers' (GoogLeNet, Inception v3), which belong to the head too.
pub fn head_param_ids(net: &Network, spec: &ModelSpec, device: &Device) -> HashSet<ParamId> {
    let [c, h, w] = spec.input_shape();
    let valid = net.valid();
    let x = Tensor::<4>::zeros([1, c, h, w], &device.clone().without_autodiff());
    let features = valid.forward_features(x);
    let (_, layers) = trace(|| valid.forward_head(features));
    let mut ids: HashSet<ParamId> = layers
        .iter()
        .flat_map(|l| l.param_ids.iter().copied())
        .collect();
    let mut owners = Owners::default();
    net.visit(&mut owners);
    ids.extend(
        owners
            .items
            .iter()
            .filter(|(m, _, flag)| !flag && m.to_ascii_lowercase().contains("aux"))
            .map(|(_, id, _)| *id),
    );
    ids
}

/// The output layer's parameter ids: those of the last layer with parameters that
/// [`Network::forward_head`] calls (`fc`, `classifier.6`, `fc2`, SqueezeNet's final conv).
pub fn output_layer_ids(net: &Network, spec: &ModelSpec, device: &Device) -> HashSet<ParamId> {
    let [c, h, w] = spec.input_shape();
    let valid = net.valid();
    let x = Tensor::<4>::zeros([1, c, h, w], &device.clone().without_autodiff());
    let features = valid.forward_features(x);
    let (_, layers) = trace(|| valid.forward_head(features));
    layers
        .iter()
        .rev()
        .find(|l| !l.param_ids.is_empty())
        .map(|l| l.param_ids.iter().copied().collect())
        .unwrap_or_default()
}

/// The layer names of [`crate::summary`] (`Conv2d-13`: the 13th `Conv2d` call of a forward
/// pass) in call order, each with its parameter ids.
pub fn named_layers(
    net: &Network,
    spec: &ModelSpec,
    device: &Device,
) -> Vec<(String, Vec<ParamId>)> {
    let [c, h, w] = spec.input_shape();
    let valid = net.valid();
    let x = Tensor::<4>::zeros([1, c, h, w], &device.clone().without_autodiff());
    let (_, layers) = trace(|| valid.forward(x));
    let mut counts = std::collections::HashMap::new();
    layers
        .into_iter()
        .map(|l| {
            let n = counts.entry(l.kind).or_insert(0);
            *n += 1;
            (format!("{}-{}", l.kind, n), l.param_ids)
        })
        .collect()
}

/// Ids of the parameters of the layers called before layer `name` (as `convnet summary` names
/// it), or `None` when the model has no such layer.
pub fn ids_before_layer(
    net: &Network,
    spec: &ModelSpec,
    device: &Device,
    name: &str,
) -> Option<HashSet<ParamId>> {
    let layers = named_layers(net, spec, device);
    let at = layers.iter().position(|(n, _)| n == name)?;
    Some(
        layers[..at]
            .iter()
            .flat_map(|(_, ids)| ids.iter().copied())
            .collect(),
    )
}

/// The store paths (`fc`, `classifier.6`, …: as weight files name them, without the tensor's
/// own name) of the modules that own the parameters `ids`.
pub fn module_paths(net: &Network, ids: &HashSet<ParamId>) -> HashSet<String> {
    let wanted: HashSet<u64> = ids.iter().map(|i| i.val()).collect();
    net.collect(None, None, true)
        .into_iter()
        .filter(|t| t.param_id.is_some_and(|id| wanted.contains(&id)))
        .map(|t| match t.name.rsplit_once('.') {
            Some((m, _)) => m.to_string(),
            None => String::new(),
        })
        .collect()
}
