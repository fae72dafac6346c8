//! Building blocks shared by the model families, and the output-size arithmetic they rely on.

use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Initializer, PaddingConfig2d};
use burn::tensor::{Device, Tensor};

use crate::trace::{Layer, conv_bn_relu};

/// Output length of a convolution or pooling window along one axis:
/// `floor((W - F + 2P) / S) + 1`, or `None` when the window does not fit.
pub fn conv_out(w: usize, f: usize, s: usize, p: usize) -> Option<usize> {
    let padded = w + 2 * p;
    if s == 0 || padded < f {
        return None;
    }
    Some((padded - f) / s + 1)
}

/// TensorFlow's `SAME` padding along one axis: output `ceil(W / S)` and the `(before, after)`
/// zeros it needs (the odd one after), as seed 000's `get_paddings` computes.
pub fn same_padding(w: usize, f: usize, s: usize) -> (usize, (usize, usize)) {
    let out = w.div_ceil(s);
    let total = ((out - 1) * s + f).saturating_sub(w);
    (out, (total / 2, total - total / 2))
}

/// A square convolution with zero padding `p`, stride `s` and a bias, initialised like PyTorch.
pub fn conv2d(c_in: usize, c_out: usize, k: usize, s: usize, p: usize, device: &Device) -> Conv2d {
    Conv2dConfig::new([c_in, c_out], [k, k])
        .with_stride([s, s])
        .with_padding(PaddingConfig2d::Explicit(p, p, p, p))
        .init(device)
}

/// A bias-free `k`x`k` convolution padded by `k / 2`, He-normal with ReLU gain over fan-in or
/// (`fan_out`) fan-out: torchvision's `kaiming_normal_` for ResNets (fan-out) and DenseNets
/// (fan-in).
pub fn conv_he(
    c_in: usize,
    c_out: usize,
    k: usize,
    stride: usize,
    fan_out: bool,
    device: &Device,
) -> Conv2d {
    let p = k / 2;
    Conv2dConfig::new([c_in, c_out], [k, k])
        .with_stride([stride, stride])
        .with_padding(PaddingConfig2d::Explicit(p, p, p, p))
        .with_bias(false)
        .with_initializer(Initializer::KaimingNormal {
            gain: 2f64.sqrt(),
            fan_out_only: fan_out,
        })
        .init(device)
}

/// Convolution (no bias) → batch norm → ReLU: the unit of most modern CNNs.
#[derive(Module, Debug)]
pub struct ConvBnRelu {
    /// The convolution, without bias since batch norm re-centres.
    pub conv: Conv2d,
    /// Batch normalisation over the output channels.
    pub bn: BatchNorm,
}

impl ConvBnRelu {
    /// A `k`x`k` convolution with stride `s` and padding `p`.
    pub fn new(c_in: usize, c_out: usize, k: usize, s: usize, p: usize, device: &Device) -> Self {
        let conv = Conv2dConfig::new([c_in, c_out], [k, k])
            .with_stride([s, s])
            .with_padding(PaddingConfig2d::Explicit(p, p, p, p))
            .with_bias(false)
            .init(device);
        Self {
            conv,
            bn: BatchNormConfig::new(c_out).init(device),
        }
    }
}

impl Layer<4> for ConvBnRelu {
    /// # Shapes
    /// `[N, c_in, H, W]` → `[N, c_out, H', W']`
    fn run(&self, x: Tensor<4>) -> Tensor<4> {
        conv_bn_relu(&self.conv, &self.bn, x)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conv_out_matches_the_formula() {
        // Seed 003: 32x32 input, 5x5 filters, stride 1, padding 2 keeps 32.
        assert_eq!(conv_out(32, 5, 1, 2), Some(32));
        // AlexNet conv1: 227, 11x11, stride 4 -> 55.
        assert_eq!(conv_out(227, 11, 4, 0), Some(55));
        // Seed 000: 224 with a 3x3 pool of stride 3 -> 74.
        assert_eq!(conv_out(224, 3, 3, 0), Some(74));
        assert_eq!(conv_out(2, 5, 1, 0), None);
    }

    #[test]
    fn same_padding_as_tensorflow() {
        // Seed 000: 224 with pool 3, stride 3 -> ceil(224/3) = 75, (75-1)*3+3-224 = 1 zero, after.
        assert_eq!(same_padding(224, 3, 3), (75, (0, 1)));
        assert_eq!(same_padding(5, 3, 1), (5, (1, 1)));
        assert_eq!(same_padding(4, 2, 2), (2, (0, 0)));
    }
}
