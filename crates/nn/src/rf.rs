//! Receptive fields of every layer of a model's convolutional base, measured by probing the
//! network itself rather than by per-architecture formulas, so that branches (Inception),
//! shortcuts (ResNet) and dense connections are handled as they really are wired.
//!
//! Every weight is set to 1 and every bias to 0, and the network is run on inputs with one
//! row (or one column) lit, binarising after each layer (see [`crate::trace::probe`]). The
//! centre position of a layer fires exactly when the lit row lies in its receptive field; the
//! first and last rows that fire give its extent.

use burn::module::{Module, ModuleMapper, Param};
use burn::tensor::{Device, Tensor, TensorData};

use crate::models::Network;
use crate::spec::ModelSpec;
use crate::trace::probe;

/// The receptive field of one layer's centre position.
#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    /// Layer name as in the summary (`Conv2d-3`).
    pub name: String,
    /// Output shape `[C, H, W]` of the layer at the probed input size.
    pub output: Vec<usize>,
    /// Receptive field height and width, in input pixels.
    pub size: [usize; 2],
    /// Whether the field reaches the input's border (height, width): it may be larger than
    /// `size` on a larger input.
    pub clipped: [bool; 2],
    /// Input pixels between neighbouring output positions (height, width).
    pub jump: [f64; 2],
}

/// Sets weights (rank ≥ 2) to 1 and vectors (biases, norm scales) to 0.
struct Ones;

impl ModuleMapper for Ones {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        param.map(|t| {
            if D >= 2 {
                t.ones_like()
            } else {
                t.zeros_like()
            }
        })
    }
}

/// Probes per forward pass.
const CHUNK: usize = 16;

/// The receptive field of each layer of `net`'s convolutional base that changes it (convolutions
/// and pooling), at `spec`'s input size.
pub fn receptive_fields(net: &Network, spec: &ModelSpec, device: &Device) -> Vec<Field> {
    let device = device.clone().without_autodiff();
    let net = net.valid().to_device(&device).map(&mut Ones);
    let [c, h, w] = spec.input_shape();
    // Probe i < h lights row i; probe h + j lights column j.
    let lit = |i: usize, y: usize, x: usize| if i < h { y == i } else { x == i - h };
    let mut hits: Vec<Vec<bool>> = Vec::new();
    let mut layers = Vec::new();
    for start in (0..h + w).step_by(CHUNK) {
        let probes: Vec<usize> = (start..(start + CHUNK).min(h + w)).collect();
        let mut data = Vec::with_capacity(probes.len() * c * h * w);
        for &i in &probes {
            for _ in 0..c {
                for y in 0..h {
                    data.extend((0..w).map(|x| if lit(i, y, x) { 1.0f32 } else { 0.0 }));
                }
            }
        }
        let x = Tensor::<4>::from_data(TensorData::new(data, [probes.len(), c, h, w]), &device);
        let (_, traced) = probe(|| net.forward_features(x));
        if hits.is_empty() {
            hits = vec![Vec::with_capacity(h + w); traced.len()];
        }
        for (k, l) in traced.iter().enumerate() {
            hits[k].extend(&l.centre_hits);
        }
        layers = traced;
    }
    let mut counts = std::collections::HashMap::new();
    let mut fields: Vec<Field> = Vec::new();
    for (l, hit) in layers.iter().zip(&hits) {
        let n = counts.entry(l.kind).or_insert(0);
        *n += 1;
        let extent = |range: std::ops::Range<usize>| {
            let fired: Vec<usize> = range.clone().filter(|&i| hit[i]).collect();
            match (fired.first(), fired.last()) {
                (Some(&a), Some(&b)) => (b - a + 1, a == range.start || b == range.end - 1),
                _ => (0, false),
            }
        };
        let ((sh, ch), (sw, cw)) = (extent(0..h), extent(h..h + w));
        let out = l.output[1..].to_vec();
        let jump =
            |input: usize, dim: usize| input as f64 / out.get(dim).copied().unwrap_or(1) as f64;
        let field = Field {
            name: format!("{}-{}", l.kind, n),
            jump: [jump(h, 1), jump(w, 2)],
            output: out,
            size: [sh, sw],
            clipped: [ch, cw],
        };
        // Only layers that change the field or the grid are worth a line.
        let changed = fields
            .last()
            .is_none_or(|p| p.size != field.size || p.output[1..] != field.output[1..]);
        if changed {
            fields.push(field);
        }
    }
    fields
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(name: &str, input: [usize; 3]) -> Vec<Field> {
        let d = Device::flex();
        let spec = ModelSpec::new(name, input, 10);
        receptive_fields(&crate::build(&spec, &d).unwrap(), &spec, &d)
    }

    #[test]
    fn alexnet_fields_match_the_textbook_values() {
        // One channel: the field does not depend on the input's depth.
        let f = fields("alexnet_paper", [1, 227, 227]);
        let sizes: Vec<usize> = f
            .iter()
            .filter(|f| f.name.starts_with("Conv2d") || f.name.starts_with("MaxPool"))
            .map(|f| f.size[0])
            .collect();
        // conv1, pool1, conv2, pool2, conv3, conv4, conv5, pool5.
        assert_eq!(sizes, [11, 19, 51, 67, 99, 131, 163, 195]);
        assert!(f.iter().all(|f| f.size[0] == f.size[1]));
        // pool5's field, rows 32..=226, just touches the 227-pixel input's border.
        assert!(!f[f.len() - 2].clipped[0] && f.last().unwrap().clipped[0]);
        assert_eq!(f.last().unwrap().jump, [227.0 / 6.0, 227.0 / 6.0]);
    }

    #[test]
    fn vgg_fields_grow_by_two_per_conv_and_clip_at_the_border() {
        let f = fields("vgg16", [1, 64, 64]);
        let sizes: Vec<usize> = f.iter().map(|f| f.size[0]).take(10).collect();
        // conv1_1, conv1_2, pool1, conv2_1, conv2_2, pool2, conv3_1, conv3_2, conv3_3, pool3.
        assert_eq!(sizes, [3, 5, 6, 10, 14, 16, 24, 32, 40, 44]);
        // Deeper layers see past a 64-pixel input: reported as clipped.
        assert!(f.last().unwrap().clipped[0]);
    }
}
