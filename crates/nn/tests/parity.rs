//! PyTorch parity: the same weights give the same logits in convnet as in PyTorch.
//!
//! For each model, `parity.py` builds it in PyTorch (torchvision's where torchvision has it)
//! with random weights, saves the `state_dict` and the logits of a random batch; convnet loads
//! the `.pth` strictly (every key used, every parameter set) and must reproduce the logits in
//! inference mode within 1e-4 (float32 summation order differs between the two).
//!
//! Needs a Python with torch and torchvision: `$CONVNET_PYTHON`, else the venv that
//! `scripts/test` creates (`~/.cache/convnet-torch-venv`). Without one the test says so and
//! skips; with `CONVNET_REQUIRE_TORCH=1` (set by `scripts/test` after installing torch) it fails
//! instead.

use std::path::{Path, PathBuf};
use std::process::Command;

use burn::module::Module;
use burn::tensor::{Device, Tensor, TensorData};
use convnet_nn::{ModelSpec, build, weights};

fn python() -> Option<PathBuf> {
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default();
    let candidates = [
        std::env::var_os("CONVNET_PYTHON").map(PathBuf::from),
        Some(home.join(".cache/convnet-torch-venv/bin/python")),
    ];
    candidates.into_iter().flatten().find(|p| {
        Command::new(p)
            .args(["-c", "import torch, torchvision"])
            .output()
            .is_ok_and(|o| o.status.success())
    })
}

fn read_f32(path: &Path) -> Vec<f32> {
    std::fs::read(path)
        .unwrap()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect()
}

/// Runs the parity check for `name`; returns the max abs logit difference and the largest
/// logit magnitude.
fn parity(py: &Path, name: &str) -> (f32, f32) {
    let dir = tempfile::tempdir().unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/parity.py");
    let out = Command::new(py)
        .arg(&script)
        .arg(name)
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "parity.py {name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("meta.json")).unwrap())
            .unwrap();
    let shape: Vec<usize> = meta["shape"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as usize)
        .collect();
    let classes = meta["classes"].as_u64().unwrap() as usize;
    let spec = ModelSpec {
        name: name.into(),
        in_channels: shape[0],
        input_size: [shape[1], shape[2]],
        num_classes: classes,
    };
    let device = Device::flex();
    let mut net = build(&spec, &device).unwrap();
    let report = weights::load_file(&mut net, &dir.path().join("weights.pth"), true)
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    assert!(report.applied > 0);
    let x = read_f32(&dir.path().join("input.bin"));
    let expected = read_f32(&dir.path().join("logits.bin"));
    let x = Tensor::<4>::from_data(
        TensorData::new(x, [2, shape[0], shape[1], shape[2]]),
        &device,
    );
    let got = net
        .valid()
        .forward(x)
        .into_data()
        .try_to_vec::<f32>()
        .unwrap();
    assert_eq!(got.len(), expected.len());
    let diff = got
        .iter()
        .zip(&expected)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max);
    (diff, expected.iter().map(|v| v.abs()).fold(0.0, f32::max))
}

/// convnet models with a PyTorch counterpart in `parity.py` (torchvision's, or the bench's for
/// convnet's own small CNNs and the CIFAR ResNet-20 and wide ResNet, which torchvision lacks).
const PARITY_MODELS: [&str; 24] = [
    "mnist-cnn",
    "small-cnn",
    "resnet20",
    "wrn16_4",
    "alexnet",
    "vgg11",
    "vgg11_bn",
    "vgg13",
    "vgg13_bn",
    "vgg16",
    "vgg16_bn",
    "vgg19",
    "vgg19_bn",
    "resnet18",
    "resnet34",
    "resnet50",
    "resnet101",
    "resnet152",
    "densenet121",
    "squeezenet1_0",
    "squeezenet1_1",
    "mobilenet_v2",
    "googlenet",
    "inception_v3",
];

#[test]
fn logits_match_pytorch() {
    let Some(py) = python() else {
        let msg = "no Python with torch and torchvision (set CONVNET_PYTHON or run scripts/test, which installs them)";
        if std::env::var_os("CONVNET_REQUIRE_TORCH").is_some() {
            panic!("{msg}");
        }
        eprintln!("skipped: {msg}");
        return;
    };
    let registered: Vec<&str> = convnet_nn::MODELS.iter().map(|m| m.name).collect();
    // `CONVNET_PARITY_ONLY=resnet20,wrn16_4` checks only those (while working on a model).
    let only = std::env::var("CONVNET_PARITY_ONLY").ok();
    let only: Option<Vec<&str>> = only.as_deref().map(|v| v.split(',').collect());
    let mut checked = 0;
    for name in PARITY_MODELS {
        if !registered.contains(&name) {
            continue;
        }
        if let Some(only) = &only
            && !only.contains(&name)
        {
            checked += 1;
            continue;
        }
        let (diff, scale) = parity(&py, name);
        eprintln!("{name}: max |logit difference| = {diff:.2e} (largest |logit| {scale:.2})");
        // 1e-4 absolute for logits of unit scale; float32 error grows with the logits' size.
        assert!(
            diff <= 1e-4 * scale.max(1.0),
            "{name}: logits differ by {diff} at scale {scale}"
        );
        checked += 1;
    }
    assert_eq!(
        checked,
        PARITY_MODELS.len(),
        "a listed model is not registered"
    );
}
