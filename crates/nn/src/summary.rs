//! Keras-style model summaries: each layer's output shape and parameters, totals, trainable
//! vs frozen, multiply-accumulates and memory, from one traced forward pass.

use std::fmt;

use burn::module::Module;
use burn::tensor::{Device, Distribution, Tensor};

use crate::models::Network;
use crate::spec::ModelSpec;
use crate::trace::{Params, TracedLayer, trace};

/// The summary of one model at one input size.
#[derive(Debug, Clone)]
pub struct Summary {
    /// The model's spec (input and classes).
    pub spec: ModelSpec,
    /// Layers in call order (batch dimension 1).
    pub layers: Vec<TracedLayer>,
    /// All parameters.
    pub total_params: usize,
    /// Parameters that receive gradients.
    pub trainable_params: usize,
    /// Multiply-accumulates of one forward pass of one image (what the papers call FLOPs).
    pub macs: u64,
    /// Whether the classifier is included (`false`: the convolutional base only).
    pub top: bool,
}

/// Traces `net` (in inference mode) on one random image of `spec`'s input size; with
/// `top == false`, only its convolutional base ([`Network::forward_features`], Keras'
/// `include_top=False`). `net` should live on an autodiff device for the trainable count to
/// mean anything.
pub fn summarize(net: &Network, spec: &ModelSpec, device: &Device, top: bool) -> Summary {
    let [c, h, w] = spec.input_shape();
    let x = Tensor::<4>::random(
        [1, c, h, w],
        Distribution::Default,
        &device.clone().without_autodiff(),
    );
    let valid = net.valid();
    let (layers, total_params) = if top {
        (trace(|| valid.forward(x)).1, net.num_params())
    } else {
        // The base's parameters are those of the layers it calls; the head's are left out.
        let layers = trace(|| valid.forward_features(x)).1;
        let total = layers.iter().map(|l| l.params).sum();
        (layers, total)
    };
    // Inference mode drops gradients, so which parameters train is read from `net` itself.
    let mut params = Params::default();
    net.visit(&mut params);
    let called: std::collections::HashSet<_> =
        layers.iter().flat_map(|l| l.param_ids.iter()).collect();
    let trainable_params = params
        .0
        .iter()
        .filter(|(id, _, grad)| *grad && (top || called.contains(id)))
        .map(|(_, n, _)| n)
        .sum();
    Summary {
        spec: spec.clone(),
        macs: layers.iter().map(|l| l.macs).sum(),
        layers,
        total_params,
        trainable_params,
        top,
    }
}

impl Summary {
    /// Bytes of the parameters in float32.
    pub fn param_bytes(&self) -> u64 {
        self.total_params as u64 * 4
    }

    /// Bytes of all layer outputs of a forward pass of `batch` images in float32 (what training
    /// keeps for the backward pass, before any reuse).
    pub fn activation_bytes(&self, batch: usize) -> u64 {
        let per: u64 = self
            .layers
            .iter()
            .map(|l| l.output.iter().skip(1).product::<usize>() as u64)
            .sum();
        per * 4 * batch as u64
    }
}

fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [c, h, w] = self.spec.input_shape();
        writeln!(
            f,
            "Model: {} (input {c}x{h}x{w}, {})",
            self.spec.name,
            if self.top {
                format!("{} classes", self.spec.num_classes)
            } else {
                "convolutional base only, no top".to_string()
            }
        )?;
        let rule = "-".repeat(72);
        writeln!(f, "{rule}")?;
        writeln!(
            f,
            "{:<28} {:<26} {:>16}",
            "Layer (type)", "Output Shape", "Param #"
        )?;
        writeln!(f, "{}", "=".repeat(72))?;
        let mut counts = std::collections::HashMap::new();
        for l in &self.layers {
            let n = counts.entry(l.kind).or_insert(0);
            *n += 1;
            let shape = format!(
                "[-1, {}]",
                l.output
                    .iter()
                    .skip(1)
                    .map(|d| d.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            writeln!(
                f,
                "{:<28} {:<26} {:>16}",
                format!("{}-{}", l.kind, n),
                shape,
                thousands(l.params as u64)
            )?;
        }
        writeln!(f, "{}", "=".repeat(72))?;
        writeln!(f, "Total params: {}", thousands(self.total_params as u64))?;
        writeln!(
            f,
            "Trainable params: {}",
            thousands(self.trainable_params as u64)
        )?;
        writeln!(
            f,
            "Non-trainable params: {}",
            thousands((self.total_params - self.trainable_params) as u64)
        )?;
        writeln!(f, "{rule}")?;
        writeln!(
            f,
            "Multiply-accumulates (FLOPs as papers count them): {:.3} G",
            self.macs as f64 / 1e9
        )?;
        writeln!(
            f,
            "Parameter memory (float32): {:.2} MB",
            self.param_bytes() as f64 / 1e6
        )?;
        write!(
            f,
            "Activation memory per image (float32, forward): {:.2} MB",
            self.activation_bytes(1) as f64 / 1e6
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mnist_cnn_summary_adds_up() {
        let device = Device::flex().autodiff();
        let spec = ModelSpec::new("mnist-cnn", [1, 28, 28], 10);
        let net = crate::build(&spec, &device).unwrap();
        let s = summarize(&net, &spec, &device, true);
        let kinds: Vec<_> = s.layers.iter().map(|l| l.kind).collect();
        assert_eq!(
            kinds,
            [
                "Conv2d",
                "ReLU",
                "MaxPool2d",
                "Conv2d",
                "ReLU",
                "MaxPool2d",
                "Flatten",
                "Linear"
            ]
        );
        assert_eq!(s.layers[5].output, vec![1, 32, 7, 7]);
        assert_eq!(
            s.layers.iter().map(|l| l.params).sum::<usize>(),
            s.total_params
        );
        assert_eq!(s.trainable_params, s.total_params);
        // 28*28*16*25 + 14*14*32*16*25 + 1568*10
        assert_eq!(s.macs, 313_600 + 2_508_800 + 15_680);
        let text = s.to_string();
        assert!(
            text.contains("Conv2d-2") && text.contains("Total params: 28,938"),
            "{text}"
        );
    }

    #[test]
    fn no_top_keeps_the_convolutional_base_only() {
        // Keras' VGG16(include_top=False, input_shape=(150, 150, 3)) as in seed 001.
        let device = Device::flex().autodiff();
        let spec = ModelSpec::new("vgg16", [3, 150, 150], 1000);
        let net = crate::build(&spec, &device).unwrap();
        let s = summarize(&net, &spec, &device, false);
        assert_eq!(s.total_params, 14_714_688);
        assert_eq!(s.trainable_params, 14_714_688);
        assert_eq!(s.layers.last().unwrap().output, vec![1, 512, 4, 4]);
        assert!(s.to_string().contains("no top"));
        // Batch norm's running statistics count as non-trainable, as in Keras.
        let spec = ModelSpec::new("mnist-cnn", [1, 28, 28], 10);
        let s = summarize(
            &crate::build(&spec, &device).unwrap(),
            &spec,
            &device,
            false,
        );
        assert_eq!(s.total_params, 16 * 25 + 16 + 32 * 16 * 25 + 32);
        let spec = ModelSpec::new("small-cnn", [1, 28, 28], 10);
        let s = summarize(
            &crate::build(&spec, &device).unwrap(),
            &spec,
            &device,
            false,
        );
        let bn_stats = 2 * (32 + 64);
        assert_eq!(s.total_params - s.trainable_params, bn_stats);
    }
}
