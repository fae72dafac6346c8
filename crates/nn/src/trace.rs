//! Layer-by-layer tracing for model summaries (torchsummary style: `Conv2d-1`, `ReLU-2`, …).
//!
//! Models run their layers through [`Layer::run`] and the free functions here instead of
//! calling `forward` directly. Normally that is a plain call; inside [`trace`], each call also
//! records the layer kind, output shape, parameter count and multiply-accumulates, so a
//! summary never has to be written by hand per model.

use std::cell::RefCell;

use burn::module::{Module, ModuleVisitor, Param, ParamId};
use burn::nn::Linear;
use burn::nn::conv::Conv2d;
use burn::nn::pool::{AdaptiveAvgPool2d, AvgPool2d, MaxPool2d};
use burn::nn::{BatchNorm, Dropout, LocalResponseNorm};
use burn::tensor::Tensor;
use burn::tensor::activation;

use crate::precision::{cast_to_input, in_weight_type};

/// One traced layer call.
#[derive(Debug, Clone, PartialEq)]
pub struct TracedLayer {
    /// Layer kind, e.g. `Conv2d`.
    pub kind: &'static str,
    /// Output shape, batch included.
    pub output: Vec<usize>,
    /// Parameters of this layer, running statistics included (0 for stateless ones; counted
    /// once per call).
    pub params: usize,
    /// Ids of this layer's parameters (running statistics excluded), to tell which of them a
    /// model trains.
    pub param_ids: Vec<ParamId>,
    /// Multiply-accumulates per sample.
    pub macs: u64,
    /// Inside [`probe`] only: per sample, whether the output's centre position is non-zero.
    pub centre_hits: Vec<bool>,
}

thread_local! {
    static TRACE: RefCell<Option<Vec<TracedLayer>>> = const { RefCell::new(None) };
    static PROBE: RefCell<bool> = const { RefCell::new(false) };
}

/// Like [`trace`], in receptive-field probing mode: every recorded output is binarised
/// (`> 0` → 1), batch norm and LRN become the identity (they mix channels, never positions), and
/// each layer records whether its centre position fired, per sample. With all weights 1 and
/// biases 0, a layer's centre fires exactly when a lit input pixel lies in its receptive field.
pub fn probe<R>(f: impl FnOnce() -> R) -> (R, Vec<TracedLayer>) {
    PROBE.with(|p| *p.borrow_mut() = true);
    let out = trace(f);
    PROBE.with(|p| *p.borrow_mut() = false);
    out
}

fn probing() -> bool {
    PROBE.with(|p| *p.borrow())
}

/// Per sample: is the centre position of `y` (`[N, C, H, W]`: any channel at `(H/2, W/2)`;
/// other ranks: any element) non-zero?
fn centre_hits<const D: usize>(y: &Tensor<D>) -> Vec<bool> {
    let dims = y.dims();
    let mut ranges = dims.map(|d| 0..d);
    if D == 4 {
        ranges[2] = dims[2] / 2..dims[2] / 2 + 1;
        ranges[3] = dims[3] / 2..dims[3] / 2 + 1;
    }
    let values = y
        .clone()
        .slice(ranges)
        .into_data()
        .try_to_vec::<f32>()
        .unwrap_or_default();
    let per = values.len() / dims[0].max(1);
    values
        .chunks(per.max(1))
        .map(|c| c.iter().any(|v| *v > 0.0))
        .collect()
}

/// Runs `f` with tracing on and returns its result with the layers it called, in order.
pub fn trace<R>(f: impl FnOnce() -> R) -> (R, Vec<TracedLayer>) {
    TRACE.with(|t| *t.borrow_mut() = Some(Vec::new()));
    let r = f();
    let layers = TRACE.with(|t| t.borrow_mut().take()).unwrap_or_default();
    (r, layers)
}

/// Records a layer call when tracing; returns `y` unchanged. `params` are all trainable.
pub fn record<const D: usize>(
    kind: &'static str,
    params: usize,
    macs: u64,
    y: Tensor<D>,
) -> Tensor<D> {
    push(kind, params, Vec::new(), macs, y)
}

/// Records a call of `module` with its parameter count and parameter ids.
fn record_module<M: Module, const D: usize>(
    kind: &'static str,
    module: &M,
    macs: u64,
    y: Tensor<D>,
) -> Tensor<D> {
    let mut ids = Params::default();
    module.visit(&mut ids);
    let ids = ids.0.into_iter().map(|(id, _, _)| id).collect();
    push(kind, module.num_params(), ids, macs, y)
}

fn push<const D: usize>(
    kind: &'static str,
    params: usize,
    param_ids: Vec<ParamId>,
    macs: u64,
    y: Tensor<D>,
) -> Tensor<D> {
    if !tracing() {
        return y;
    }
    let (y, centre_hits) = if probing() {
        let y = y.greater_elem(0.0).float();
        let hits = centre_hits(&y);
        (y, hits)
    } else {
        (y, Vec::new())
    };
    TRACE.with(|t| {
        if let Some(v) = t.borrow_mut().as_mut() {
            v.push(TracedLayer {
                kind,
                output: y.dims().to_vec(),
                params,
                param_ids,
                macs,
                centre_hits,
            });
        }
    });
    y
}

/// Every float parameter of a module: `(id, elements, requires gradient)`.
#[derive(Default)]
pub(crate) struct Params(pub Vec<(ParamId, usize, bool)>);

impl ModuleVisitor for Params {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let t = param.val();
        self.0
            .push((param.id, t.shape().num_elements(), t.is_require_grad()));
    }
}

fn tracing() -> bool {
    TRACE.with(|t| t.borrow().is_some())
}

/// Per-sample element count of a `[N, …]` shape.
fn per_sample(dims: &[usize]) -> u64 {
    dims.iter().skip(1).product::<usize>() as u64
}

/// A Burn layer that models run through [`Layer::run`] so that summaries see it.
pub trait Layer<const D: usize> {
    /// The layer's forward pass, recorded when tracing.
    fn run(&self, x: Tensor<D>) -> Tensor<D>;
}

impl Layer<4> for Conv2d {
    fn run(&self, x: Tensor<4>) -> Tensor<4> {
        let y = match crate::fast::conv2d(self, &x) {
            Some(y) => y,
            None => match cast_to_input(self, &self.weight, &x) {
                Some(half) => half.forward(x),
                None => self.forward(x),
            },
        };
        if !tracing() {
            return y;
        }
        let [c_out, _, _, _] = self.weight.dims();
        let spatial = per_sample(&y.dims()) / c_out as u64;
        let w = self.weight.dims().iter().product::<usize>() as u64;
        record_module("Conv2d", self, spatial * w, y)
    }
}

impl<const D: usize> Layer<D> for Linear {
    fn run(&self, x: Tensor<D>) -> Tensor<D> {
        let y = match cast_to_input(self, &self.weight, &x) {
            Some(half) => half.forward(x),
            None => self.forward(x),
        };
        if !tracing() {
            return y;
        }
        let [d_in, d_out] = self.weight.dims();
        let rows = per_sample(&y.dims()) / d_out as u64;
        record_module("Linear", self, rows * (d_in * d_out) as u64, y)
    }
}

impl<const D: usize> Layer<D> for BatchNorm {
    fn run(&self, x: Tensor<D>) -> Tensor<D> {
        if probing() {
            return record_module("BatchNorm", self, 0, x);
        }
        let y = in_weight_type(&self.gamma, x, |x| {
            match crate::fast::batch_norm(self, &x) {
                Some(y) => y,
                None => self.forward(x),
            }
        });
        if !tracing() {
            return y;
        }
        let n = per_sample(&y.dims());
        record_module("BatchNorm", self, n, y)
    }
}

impl Layer<4> for LocalResponseNorm {
    fn run(&self, x: Tensor<4>) -> Tensor<4> {
        if probing() {
            return record("LocalResponseNorm", 0, 0, x);
        }
        let y = self.forward(x);
        let n = per_sample(&y.dims());
        record("LocalResponseNorm", 0, n, y)
    }
}

impl Layer<4> for MaxPool2d {
    fn run(&self, x: Tensor<4>) -> Tensor<4> {
        let y = match crate::fast::max_pool2d(self, &x) {
            Some(y) => y,
            None => self.forward(x),
        };
        record("MaxPool2d", 0, 0, y)
    }
}

impl Layer<4> for AvgPool2d {
    fn run(&self, x: Tensor<4>) -> Tensor<4> {
        record("AvgPool2d", 0, 0, self.forward(x))
    }
}

impl Layer<4> for AdaptiveAvgPool2d {
    fn run(&self, x: Tensor<4>) -> Tensor<4> {
        record("AdaptiveAvgPool2d", 0, 0, self.forward(x))
    }
}

impl<const D: usize> Layer<D> for Dropout {
    fn run(&self, x: Tensor<D>) -> Tensor<D> {
        record("Dropout", 0, 0, self.forward(x))
    }
}

/// ReLU, recorded.
pub fn relu<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    record("ReLU", 0, 0, activation::relu(x))
}

/// `relu(bn.run(x))`: in training on the CPU one fused kernel pass
/// ([`crate::fast::batch_norm_relu`]), otherwise (and when tracing) the two layers.
pub fn bn_relu<const D: usize>(bn: &BatchNorm, x: Tensor<D>) -> Tensor<D> {
    if may_fuse()
        && let Some(y) = crate::fast::batch_norm_relu(bn, &x)
    {
        return y;
    }
    relu(bn.run(x))
}

/// `bn.run(conv.run(x))`: in inference on the CPU one kernel call ([`crate::fast::conv_bn`]);
/// otherwise (and when tracing) the two layers.
pub fn conv_bn(conv: &Conv2d, bn: &BatchNorm, x: Tensor<4>) -> Tensor<4> {
    match fused(conv, bn, &x, None, false) {
        Some(y) => y,
        None => bn.run(conv.run(x)),
    }
}

/// `relu(conv.run(x))`: on the CPU one kernel call, in training too (the ReLU applied to each
/// output row while it is in cache); otherwise (and when tracing) the two layers.
pub fn conv_relu(conv: &Conv2d, x: Tensor<4>) -> Tensor<4> {
    match may_fuse()
        .then(|| crate::fast::conv_relu(conv, &x))
        .flatten()
    {
        Some(y) => y,
        None => relu(conv.run(x)),
    }
}

/// `relu(bn.run(conv.run(x)))`: in inference on the CPU one kernel call; otherwise (and when
/// tracing) the layers, with [`bn_relu`] (one kernel for both in training).
pub fn conv_bn_relu(conv: &Conv2d, bn: &BatchNorm, x: Tensor<4>) -> Tensor<4> {
    match fused(conv, bn, &x, None, true) {
        Some(y) => y,
        None => bn_relu(bn, conv.run(x)),
    }
}

/// `relu(bn.run(conv.run(x)) + shortcut())`, a ResNet block's tail: in inference on the CPU
/// one kernel call. When tracing, the shortcut runs after the main branch, as in torchvision
/// (the summary's layer order).
pub fn conv_bn_add_relu(
    conv: &Conv2d,
    bn: &BatchNorm,
    x: Tensor<4>,
    shortcut: impl FnOnce() -> Tensor<4>,
) -> Tensor<4> {
    if !may_fuse() {
        let y = bn.run(conv.run(x));
        return relu(add(y, shortcut()));
    }
    let r = shortcut();
    match fused(conv, bn, &x, Some(&r), true) {
        Some(y) => y,
        None => relu(add(bn.run(conv.run(x)), r)),
    }
}

/// Whether layers may run as one fused kernel: not while a summary or a receptive-field
/// probe records each layer.
fn may_fuse() -> bool {
    !tracing() && !probing()
}

/// [`crate::fast::conv_bn`] where [`may_fuse`].
fn fused(
    conv: &Conv2d,
    bn: &BatchNorm,
    x: &Tensor<4>,
    residual: Option<&Tensor<4>>,
    then_relu: bool,
) -> Option<Tensor<4>> {
    may_fuse()
        .then(|| crate::fast::conv_bn(conv, bn, x, residual, then_relu))
        .flatten()
}

/// tanh, recorded.
pub fn tanh<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    record("Tanh", 0, 0, activation::tanh(x))
}

/// Flattens `[N, …]` to `[N, features]`, recorded.
pub fn flatten(x: Tensor<4>) -> Tensor<2> {
    record("Flatten", 0, 0, x.flatten::<2>(1, 3))
}

/// Concatenates along channels (Inception branches), recorded.
pub fn concat(xs: Vec<Tensor<4>>) -> Tensor<4> {
    record("Concat", 0, 0, Tensor::cat(xs, 1))
}

/// Residual addition, recorded.
pub fn add(a: Tensor<4>, b: Tensor<4>) -> Tensor<4> {
    record("Add", 0, 0, a + b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layers::conv2d;
    use burn::nn::LinearConfig;
    use burn::tensor::{Device, Distribution};

    #[test]
    fn records_shapes_params_and_macs_only_inside_trace() {
        let d = Device::flex();
        let conv = conv2d(3, 10, 5, 1, 2, &d);
        let fc = LinearConfig::new(10 * 32 * 32, 7).init(&d);
        let x = Tensor::<4>::random([2, 3, 32, 32], Distribution::Default, &d);
        let (y, layers) = trace(|| fc.run(flatten(relu(conv.run(x.clone())))));
        assert_eq!(y.dims(), [2, 7]);
        let kinds: Vec<_> = layers.iter().map(|l| l.kind).collect();
        assert_eq!(kinds, ["Conv2d", "ReLU", "Flatten", "Linear"]);
        // Seed 003: 32x32x3 with ten 5x5 filters, S=1, P=2 -> 32x32x10, (5*5*3+1)*10 params.
        assert_eq!(layers[0].output, vec![2, 10, 32, 32]);
        assert_eq!(layers[0].params, 760);
        assert_eq!(layers[0].macs, 32 * 32 * 10 * 75);
        assert_eq!(layers[3].macs, 10 * 32 * 32 * 7);
        // Outside `trace` nothing is kept.
        let _ = conv.run(x);
        assert!(trace(|| ()).1.is_empty());
    }
}
