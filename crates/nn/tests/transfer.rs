//! Transfer-learning loads: registered weights, head replacement, mismatch reports, pickles
//! read as data only, safetensors (timm layout) and old torchvision DenseNet keys.
//!
//! The PyTorch cases need a Python with torch (see `parity.rs`): skipped with a printed reason
//! without one, failed with `CONVNET_REQUIRE_TORCH=1`.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use burn::module::Module;
use burn::store::{BurnToPyTorchAdapter, ModuleSnapshot, SafetensorsStore};
use burn::tensor::{Device, Distribution, Tensor, TensorData};
use convnet_nn::pretrained::{self, PRETRAINED};
use convnet_nn::weights::{self, HeadPolicy};
use convnet_nn::{ModelSpec, Network, build};

fn python() -> Option<PathBuf> {
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default();
    let candidates = [
        std::env::var_os("CONVNET_PYTHON").map(PathBuf::from),
        Some(home.join(".cache/convnet-torch-venv/bin/python")),
    ];
    let found = candidates.into_iter().flatten().find(|p| {
        Command::new(p)
            .args(["-c", "import torch, torchvision, safetensors"])
            .output()
            .is_ok_and(|o| o.status.success())
    });
    if found.is_none() {
        let msg = "no Python with torch, torchvision and safetensors (set CONVNET_PYTHON or run scripts/test)";
        if std::env::var_os("CONVNET_REQUIRE_TORCH").is_some() {
            panic!("{msg}");
        }
        eprintln!("skipped: {msg}");
    }
    found
}

fn run_py(py: &Path, case: &str, dir: &Path) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/transfer.py");
    let out = Command::new(py)
        .arg(&script)
        .arg(case)
        .arg(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "transfer.py {case}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn read_f32(path: &Path) -> Vec<f32> {
    std::fs::read(path)
        .unwrap()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect()
}

fn spec(name: &str, input: [usize; 3], classes: usize) -> ModelSpec {
    ModelSpec::new(name, input, classes)
}

fn save_safetensors(net: &Network, path: &Path) {
    let mut store = SafetensorsStore::from_file(path)
        .with_to_adapter(BurnToPyTorchAdapter)
        .skip_enum_variants(true)
        .map_indices_contiguous(false);
    net.save_into(&mut store).unwrap();
}

fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().try_to_vec::<f32>().unwrap()
}

/// Max |a - b|.
fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

fn head_of(net: &Network, s: &ModelSpec, device: &Device) -> HashSet<String> {
    pretrained::module_paths(net, &pretrained::head_param_ids(net, s, device))
}

#[test]
fn registered_weights_are_consistent_with_the_zoo() {
    let names: HashSet<&str> = PRETRAINED.iter().map(|e| e.name).collect();
    assert_eq!(names.len(), PRETRAINED.len(), "duplicate names");
    for e in PRETRAINED {
        let model = convnet_nn::find(e.model).unwrap_or_else(|_| panic!("{}: no model", e.name));
        assert_eq!(model.input, e.input, "{}", e.name);
        assert!(
            e.url.starts_with("https://download.pytorch.org/models/"),
            "{}",
            e.url
        );
        // torchvision's file names end in the first 8 hex digits of the SHA-256.
        assert_eq!(e.sha256_prefix.len(), 8, "{}", e.name);
        assert!(e.sha256_prefix.chars().all(|c| c.is_ascii_hexdigit()));
        assert!(
            e.file_name()
                .ends_with(&format!("-{}.pth", e.sha256_prefix)),
            "{}",
            e.file_name()
        );
        assert!(e.top1 > 50.0 && e.top1 < e.top5 && e.top5 < 100.0);
    }
    for n in [
        "resnet18.tv_in1k",
        "resnet50.tv_in1k",
        "vgg16.tv_in1k",
        "inception_v3.tv_in1k",
    ] {
        assert!(pretrained::find_pretrained(n).is_some(), "{n}");
    }
    let classes = pretrained::imagenet_classes();
    assert_eq!(classes.len(), 1000);
    assert_eq!(classes.iter().collect::<HashSet<_>>().len(), 1000);
    assert_eq!(classes[0], "tench");
    assert_eq!(classes[999], "toilet tissue");
}

#[test]
fn head_is_replaced_for_new_classes_and_the_base_loads_exactly() {
    let device = Device::flex();
    let dir = tempfile::tempdir().unwrap();
    let src_spec = spec("resnet20", [3, 32, 32], 10);
    let src = build(&src_spec, &device).unwrap();
    let file = dir.path().join("r20.safetensors");
    save_safetensors(&src, &file);

    let new_spec = spec("resnet20", [3, 32, 32], 5);
    let mut net = build(&new_spec, &device).unwrap();
    let head = head_of(&net, &new_spec, &device);
    assert_eq!(head, HashSet::from(["fc".to_string()]));
    let report =
        weights::load_file_for_transfer(&mut net, &file, true, &head, HeadPolicy::Replace).unwrap();
    let mut reset = report.head_reset.clone();
    reset.sort();
    assert_eq!(reset, ["fc.bias", "fc.weight"]);
    assert!(report.missing.is_empty() && report.mismatched.is_empty());

    let x = Tensor::<4>::random([2, 3, 32, 32], Distribution::Default, &device);
    let (a, b) = (src.valid(), net.valid());
    let fa = values(a.forward_features(x.clone()));
    let fb = values(b.forward_features(x.clone()));
    assert_eq!(fa, fb, "the convolutional base must load bit for bit");
    assert_eq!(b.forward(x).dims(), [2, 5]);

    // --keep-head: the 10-class head cannot fit 5 classes, and says so.
    let mut net = build(&new_spec, &device).unwrap();
    let err = weights::load_file_for_transfer(&mut net, &file, true, &head, HeadPolicy::Keep)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("fc.weight") && err.contains("fc.bias"),
        "{err}"
    );
}

#[test]
fn every_mismatch_is_listed_at_once() {
    let device = Device::flex();
    let dir = tempfile::tempdir().unwrap();
    let src = build(&spec("resnet20", [3, 32, 32], 10), &device).unwrap();
    let file = dir.path().join("r20.safetensors");
    save_safetensors(&src, &file);
    // resnet32 has 5 blocks per stage where resnet20 has 3, and a 1-channel stem.
    let s = spec("resnet32", [1, 32, 32], 10);
    let mut net = build(&s, &device).unwrap();
    let head = head_of(&net, &s, &device);
    let err = weights::load_file_for_transfer(&mut net, &file, true, &head, HeadPolicy::Replace)
        .unwrap_err()
        .to_string();
    assert!(err.contains("--strict-weights false"), "{err}");
    assert!(
        err.contains("conv1.weight"),
        "wrong shape not listed: {err}"
    );
    for block in ["layer1.3.", "layer1.4.", "layer2.3.", "layer3.4."] {
        assert!(err.contains(block), "missing {block}: {err}");
    }
    // Non-strict: loads what fits and reports the rest.
    let mut net = build(&s, &device).unwrap();
    let r = weights::load_file_for_transfer(&mut net, &file, false, &head, HeadPolicy::Replace)
        .unwrap();
    assert!(r.applied > 0 && !r.missing.is_empty() && !r.mismatched.is_empty());
}

#[test]
fn a_checkpoint_network_transfers_by_name() {
    let device = Device::flex();
    let src = build(&spec("small-cnn", [1, 28, 28], 10), &device).unwrap();
    let s = spec("small-cnn", [1, 28, 28], 5);
    let mut net = build(&s, &device).unwrap();
    let head = head_of(&net, &s, &device);
    // small-cnn's head is fc1 + fc2; only fc2 depends on the class count.
    assert_eq!(head, HashSet::from(["fc1".to_string(), "fc2".to_string()]));
    let r = weights::load_network(
        &mut net,
        &src,
        Path::new("src.ckpt"),
        true,
        &head,
        HeadPolicy::Replace,
    )
    .unwrap();
    let mut reset = r.head_reset.clone();
    reset.sort();
    assert_eq!(reset, ["fc2.bias", "fc2.weight"]);
    let x = Tensor::<4>::random([2, 1, 28, 28], Distribution::Default, &device);
    assert_eq!(
        values(src.valid().forward_features(x.clone())),
        values(net.valid().forward_features(x))
    );
}

#[test]
fn a_pickle_that_would_run_code_is_refused_without_running_it() {
    let device = Device::flex();
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("pwned");
    // Protocol-0 pickle: GLOBAL os.system, a string argument, REDUCE.
    let pickle = format!("cos\nsystem\n(S'touch {}'\ntR.", marker.display());
    let file = dir.path().join("evil.pth");
    std::fs::write(&file, pickle).unwrap();
    let mut net = build(&spec("small-cnn", [1, 28, 28], 10), &device).unwrap();
    let r = weights::load_file(&mut net, &file, true);
    assert!(r.is_err(), "a pickle holding no tensors must not load");
    assert!(!marker.exists(), "code from the pickle ran");

    let Some(py) = python() else { return };
    let pdir = tempfile::tempdir().unwrap();
    run_py(&py, "malicious", pdir.path());
    let marker = pdir.path().join("pwned");
    assert!(!marker.exists());
    let mut net = build(&spec("small-cnn", [1, 28, 28], 10), &device).unwrap();
    let r = weights::load_file(&mut net, &pdir.path().join("weights.pth"), true);
    assert!(!marker.exists(), "code from the torch.save'd pickle ran");
    assert!(r.is_err());
}

/// Loads `file` into `name` and compares its logits with PyTorch's.
fn logits_match(dir: &Path, name: &str, file: &str) {
    let device = Device::flex();
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("meta.json")).unwrap()).unwrap();
    let shape: Vec<usize> = meta["shape"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as usize)
        .collect();
    let s = spec(name, [shape[0], shape[1], shape[2]], 1000);
    let mut net = build(&s, &device).unwrap();
    weights::load_file(&mut net, &dir.join(file), true).unwrap_or_else(|e| panic!("{e}"));
    let x = read_f32(&dir.join("input.bin"));
    let x = Tensor::<4>::from_data(
        TensorData::new(x, [2, shape[0], shape[1], shape[2]]),
        &device,
    );
    let got = values(net.valid().forward(x));
    let expected = read_f32(&dir.join("logits.bin"));
    let scale = expected.iter().map(|v| v.abs()).fold(0.0, f32::max);
    let diff = max_diff(&got, &expected);
    eprintln!("{name} ({file}): max |logit difference| {diff:.2e} at scale {scale:.2}");
    assert!(diff <= 1e-4 * scale.max(1.0), "{name}: {diff}");
}

#[test]
fn timm_layout_safetensors_resnet50_matches_pytorch() {
    let Some(py) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    run_py(&py, "resnet50-safetensors", dir.path());
    logits_match(dir.path(), "resnet50", "weights.safetensors");
}

#[test]
fn old_torchvision_densenet_keys_are_renamed() {
    let Some(py) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    run_py(&py, "densenet-old-keys", dir.path());
    logits_match(dir.path(), "densenet121", "weights.pth");
}
