//! The static table of buildable models: name, native input, family and paper.

use burn::tensor::Device;

use crate::models::{Network, lenet, simple, small};
use crate::spec::{ModelError, ModelSpec};

/// One registered architecture.
pub struct ModelEntry {
    /// Name used on the command line.
    pub name: &'static str,
    /// Native input `[C, H, W]` (the data is resized to `[H, W]`; `C` may be overridden).
    pub input: [usize; 3],
    /// Family, e.g. `LeNet`.
    pub family: &'static str,
    /// Where the architecture comes from.
    pub paper: &'static str,
    /// Builds the network.
    pub build: fn(&ModelSpec, &Device) -> Result<Network, ModelError>,
}

/// Every model convnet can build.
pub const MODELS: &[ModelEntry] = &[
    ModelEntry {
        name: "small-cnn",
        input: [1, 28, 28],
        family: "VGG-style",
        paper: "convnet default (conv-BN-ReLU x2, Ioffe & Szegedy 2015)",
        build: |s, d| Ok(Network::SmallCnn(small::SmallCnn::new(s, d)?)),
    },
    ModelEntry {
        name: "lenet5",
        input: [1, 32, 32],
        family: "LeNet",
        paper: "LeCun et al. 1998",
        build: |s, d| Ok(Network::LeNet5(lenet::LeNet5::new(s, d)?)),
    },
    ModelEntry {
        name: "mnist-cnn",
        input: [1, 28, 28],
        family: "simple",
        paper: "seed 003 (PyTorch MNIST tutorial CNN)",
        build: |s, d| Ok(Network::MnistCnn(simple::MnistCnn::new(s, d)?)),
    },
    ModelEntry {
        name: "gtsrb-net",
        input: [3, 32, 32],
        family: "simple",
        paper: "seed 000 (GTSRB traffic-sign net)",
        build: |s, d| Ok(Network::GtsrbNet(simple::GtsrbNet::new(s, d)?)),
    },
];

/// The entry registered under `name`.
pub fn find(name: &str) -> Result<&'static ModelEntry, ModelError> {
    MODELS
        .iter()
        .find(|m| m.name == name)
        .ok_or_else(|| ModelError::Unknown {
            name: name.to_string(),
            known: MODELS.iter().map(|m| m.name).collect::<Vec<_>>().join(", "),
        })
}

/// Builds the model `spec` describes, with fresh weights on `device`.
pub fn build(spec: &ModelSpec, device: &Device) -> Result<Network, ModelError> {
    if spec.num_classes == 0 {
        return Err(ModelError::NoClasses(spec.name.clone()));
    }
    (find(&spec.name)?.build)(spec, device)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::module::Module;
    use burn::tensor::{Distribution, Tensor};

    fn spec(name: &str, input: [usize; 3], classes: usize) -> ModelSpec {
        ModelSpec {
            name: name.into(),
            in_channels: input[0],
            input_size: [input[1], input[2]],
            num_classes: classes,
        }
    }

    #[test]
    fn every_model_gives_logits_of_the_right_shape() {
        let device = Device::flex();
        for entry in MODELS {
            let net = build(&spec(entry.name, entry.input, 7), &device).unwrap();
            let [c, h, w] = entry.input;
            let x = Tensor::<4>::random([2, c, h, w], Distribution::Default, &device);
            let y = net.valid().forward(x);
            assert_eq!(y.dims(), [2, 7], "{}", entry.name);
            let v = y.into_data().try_to_vec::<f32>().unwrap();
            assert!(v.iter().all(|x| x.is_finite()), "{}", entry.name);
        }
    }

    #[test]
    fn parameter_counts_follow_the_architecture() {
        let device = Device::flex();
        // Seed 003: (25*1+1)*16 + (25*16+1)*32 + (1568+1)*10.
        let n = build(&spec("mnist-cnn", [1, 28, 28], 10), &device).unwrap();
        assert_eq!(n.num_params(), 416 + 12_832 + 15_690);
        // LeNet-5 with a convolutional C5: 156 + 2416 + 48120 + 10164 + 850 = 61,706.
        let n = build(&spec("lenet5", [1, 32, 32], 10), &device).unwrap();
        assert_eq!(n.num_params(), 61_706);
        // Seed 000 at 3x32x32 and 43 classes: 168 + 880 + (576+1)*120 + 121*84 + 85*43.
        let n = build(&spec("gtsrb-net", [3, 32, 32], 43), &device).unwrap();
        assert_eq!(n.num_params(), 168 + 880 + 69_240 + 10_164 + 3_655);
    }

    #[test]
    fn too_small_inputs_and_unknown_names_are_errors() {
        let device = Device::flex();
        assert!(matches!(
            build(&spec("lenet5", [1, 16, 16], 10), &device),
            Err(ModelError::BadInput { .. })
        ));
        assert!(matches!(
            build(&spec("nope", [1, 28, 28], 10), &device),
            Err(ModelError::Unknown { .. })
        ));
        assert!(matches!(
            build(&spec("mnist-cnn", [1, 28, 28], 0), &device),
            Err(ModelError::NoClasses(_))
        ));
    }
}
