//! Hand-written CPU kernels for the training hot spots that Burn's `flex` backend computes
//! slowly (issue 10): 2x2 max pooling and batch normalisation with batch statistics, forward
//! and backward. They are a Burn backend extension ([`CpuKernels`], implemented for `Flex` and
//! `Autodiff<Flex>`), so they are nodes of Burn's autodiff graph like its own ops, and they are
//! used only on the `flex` device (`convnet_nn::fast` decides where they apply).
//!
//! - Max pool 2x2/2: one pass that records each window's argmax (2 bits) as it goes; backward
//!   writes every input gradient once. Burn's pool clips every window's range per output
//!   element and its backward scatters through 64-bit indices.
//! - Batch norm: statistics in one pass per channel (shifted sums, so no cancellation), output
//!   `x * a + b` in a second; backward in two passes (two sums per channel, then
//!   `dx = k1 * dy + k2 * x + k3`). Burn's default composes ~15 tensor ops with three
//!   `swap_dims` copies.
//! - Convolution: im2col tiles and `gemm` products (module `conv`), with the 3x3 stride-1 layers
//!   of 64 channels or more as Winograd F(2x2, 3x3) (module `winograd`) and the stride-1 layers
//!   with at most 32 output channels as a direct convolution (module `direct`), the epilogue
//!   (bias or folded batch norm, residual, ReLU) applied to each output row in the same pass.

use std::sync::Arc;

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::ops::{ActivationOps, FloatTensorOps};
use burn::backend::tensor::FloatTensor;
use burn::backend::{
    Autodiff, AutodiffBackend, Backend, Dispatch, ExtensionType, Flex, TensorMetadata,
    backend_extension,
};
use burn::tensor::{DType, FloatDType, Shape, Tensor, TensorData};
use rayon::prelude::*;

mod awake;
mod direct;
mod winograd;

/// The extension: each method has a `Flex` implementation (inference) and an
/// `Autodiff<Flex>` one that records the backward pass.
#[backend_extension(Flex, Autodiff)]
pub trait CpuKernels: Backend {
    /// Max pool with a 2x2 window and stride 2, no padding, floor mode: `[N, C, H, W]` →
    /// `[N, C, H / 2, W / 2]`.
    fn max_pool2x2(x: FloatTensor<Self>) -> FloatTensor<Self>;

    /// Max pool with any window, stride and symmetric padding (read as -inf), floor mode:
    /// `[N, C, H, W]` → `[N, C, (H + 2 ph - kh) / sh + 1, (W + 2 pw - kw) / sw + 1]`; needs
    /// `H + 2 ph >= kh` and `W + 2 pw >= kw`. On `flex` a kernel for inference (ResNet's and
    /// GoogLeNet's 3x3/2 stems: Burn's is a scalar loop per window); under autodiff the same
    /// windows with each one's argmax recorded for the backward (Burn's op took 4.7 % of
    /// ResNet-18's step at 32x32, for its one stem pool).
    fn max_pool2d(
        x: FloatTensor<Self>,
        kernel: [usize; 2],
        stride: [usize; 2],
        padding: [usize; 2],
    ) -> FloatTensor<Self>;

    /// 2-D convolution (groups 1, dilation 1) as im2col tiles and `gemm` products:
    /// `x` `[N, C, H, W]`, `weight` `[C_out, C, kh, kw]`, `bias` `[C_out]` (zeros for none),
    /// `stride` `[sh, sw]`, `padding` `[top, left, bottom, right]` → `[N, C_out, H', W']`.
    /// With `relu`, the output is `max(0, ·)`, applied to each output row while it is in
    /// cache, and the backward masks the gradient by the output (`> 0`): a ReLU after the
    /// convolution in the same pass, in training too.
    fn conv2d(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        stride: [usize; 2],
        padding: [usize; 4],
        relu: bool,
    ) -> FloatTensor<Self>;

    /// Inference convolution with its per-channel epilogue in the same pass over the output:
    /// `bn(conv(x, weight) + bias)` with an inference batch norm (`gamma`, `beta`, running
    /// `mean` and `var`, `[C_out]` each, and `epsilon`), which is a scale and a shift per
    /// channel, plus `residual` (`[N, C_out, H', W']`) with `add_residual`, then a ReLU with
    /// `relu`: a ResNet block's `relu(bn(conv(x)) + shortcut)` is one call instead of four
    /// passes. The scale and shift are folded here from the parameters (as tensor ops, five
    /// per layer, they took 0.53 ms of ResNet-50's 38 ms pass at batch 1). Under autodiff the
    /// same result is composed from tracked ops (not fused). (`bias` and `residual` are
    /// tensors and flags, not `Option`s: with an `Option` tensor argument Burn 0.22.1's
    /// extension macro generated a call passing `Option<DispatchTensor>` to the backends'
    /// `Option<FlexTensor>`, which does not compile.)
    #[allow(clippy::too_many_arguments)]
    fn conv2d_affine(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        add_bias: bool,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        mean: FloatTensor<Self>,
        var: FloatTensor<Self>,
        epsilon: f64,
        residual: FloatTensor<Self>,
        add_residual: bool,
        stride: [usize; 2],
        padding: [usize; 4],
        relu: bool,
    ) -> FloatTensor<Self>;

    /// Batch normalisation with the batch's own statistics: `x` is `[N, C, ...]`, `gamma` and
    /// `beta` `[C]`; returns the output and the batch mean and biased variance (`[C]`, not
    /// differentiated), as Burn's `batch_norm_train`. With `relu` the output is `max(0, ·)`:
    /// batch norm and the ReLU after it in one pass, the ReLU's mask applied to the gradient
    /// in the backward.
    fn batch_norm_train(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
        relu: bool,
    ) -> BatchNormOut<Self>;

    /// One step of SGD with momentum as `torch.optim.SGD` takes it, with the hyperparameters
    /// `h`, in one pass over the parameter (in place where `param` and `velocity` are not
    /// shared): `g = grad + decay · param`; `v = momentum · v + (1 - dampening) · g`, or `v = g`
    /// on the first step (`first`, when `velocity` is any tensor of the same shape); `param -=
    /// lr · (g + momentum · v)` with `nesterov`, else `param -= lr · v`. An optimizer step: no
    /// gradient flows through it.
    fn sgd_momentum(
        param: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        velocity: FloatTensor<Self>,
        first: bool,
        h: SgdMomentum,
    ) -> SgdOut<Self>;
}

/// What [`CpuKernels::sgd_momentum`] returns.
#[derive(ExtensionType)]
pub struct SgdOut<B: Backend> {
    /// The updated parameter.
    pub param: FloatTensor<B>,
    /// The updated momentum buffer.
    pub velocity: FloatTensor<B>,
}

/// What [`CpuKernels::batch_norm_train`] returns.
#[derive(ExtensionType)]
pub struct BatchNormOut<B: Backend> {
    /// The normalised, scaled and shifted input.
    pub output: FloatTensor<B>,
    /// Per-channel batch mean, `[C]`.
    pub mean: FloatTensor<B>,
    /// Per-channel biased batch variance, `[C]`.
    pub variance: FloatTensor<B>,
}

/// `max_pool2x2` on a [`Tensor`] (any `flex` device, with or without autodiff).
pub fn max_pool2x2(x: Tensor<4>) -> Tensor<4> {
    Tensor::from_dispatch(<Dispatch as CpuKernels>::max_pool2x2(x.into_dispatch()))
}

/// `max_pool2d` on a [`Tensor`] (see [`CpuKernels::max_pool2d`]).
pub fn max_pool2d(
    x: Tensor<4>,
    kernel: [usize; 2],
    stride: [usize; 2],
    padding: [usize; 2],
) -> Tensor<4> {
    Tensor::from_dispatch(<Dispatch as CpuKernels>::max_pool2d(
        x.into_dispatch(),
        kernel,
        stride,
        padding,
    ))
}

/// `conv2d` on [`Tensor`]s (see [`CpuKernels::conv2d`]).
pub fn conv2d(
    x: Tensor<4>,
    weight: Tensor<4>,
    bias: Tensor<1>,
    stride: [usize; 2],
    padding: [usize; 4],
    relu: bool,
) -> Tensor<4> {
    Tensor::from_dispatch(<Dispatch as CpuKernels>::conv2d(
        x.into_dispatch(),
        weight.into_dispatch(),
        bias.into_dispatch(),
        stride,
        padding,
        relu,
    ))
}

/// An inference batch norm's parameters, `[C]` each, for [`conv2d_affine`].
pub struct BatchNormParams {
    pub gamma: Tensor<1>,
    pub beta: Tensor<1>,
    pub mean: Tensor<1>,
    pub var: Tensor<1>,
    pub epsilon: f64,
}

/// `conv2d_affine` on [`Tensor`]s (see [`CpuKernels::conv2d_affine`]).
#[allow(clippy::too_many_arguments)]
pub fn conv2d_affine(
    x: Tensor<4>,
    weight: Tensor<4>,
    bias: Option<Tensor<1>>,
    bn: BatchNormParams,
    residual: Option<Tensor<4>>,
    stride: [usize; 2],
    padding: [usize; 4],
    relu: bool,
) -> Tensor<4> {
    let (add_bias, add_residual) = (bias.is_some(), residual.is_some());
    // Without a bias or a residual any tensor fills the argument; the kernel does not read it.
    let bias = bias.map_or(bn.beta.clone().into_dispatch(), Tensor::into_dispatch);
    let residual = residual.map_or(bn.beta.clone().into_dispatch(), Tensor::into_dispatch);
    Tensor::from_dispatch(<Dispatch as CpuKernels>::conv2d_affine(
        x.into_dispatch(),
        weight.into_dispatch(),
        bias,
        add_bias,
        bn.gamma.into_dispatch(),
        bn.beta.into_dispatch(),
        bn.mean.into_dispatch(),
        bn.var.into_dispatch(),
        bn.epsilon,
        residual,
        add_residual,
        stride,
        padding,
        relu,
    ))
}

/// `batch_norm_train` on [`Tensor`]s (see [`CpuKernels::batch_norm_train`]): (output, mean,
/// variance).
pub fn batch_norm_train<const D: usize>(
    x: Tensor<D>,
    gamma: Tensor<1>,
    beta: Tensor<1>,
    epsilon: f64,
    relu: bool,
) -> (Tensor<D>, Tensor<1>, Tensor<1>) {
    let out = <Dispatch as CpuKernels>::batch_norm_train(
        x.into_dispatch(),
        gamma.into_dispatch(),
        beta.into_dispatch(),
        epsilon,
        relu,
    );
    (
        Tensor::from_dispatch(out.output),
        Tensor::from_dispatch(out.mean),
        Tensor::from_dispatch(out.variance),
    )
}

/// The hyperparameters of [`sgd_momentum`], as in `torch.optim.SGD`.
#[derive(Debug, Clone, Copy)]
pub struct SgdMomentum {
    pub lr: f64,
    pub momentum: f64,
    pub dampening: f64,
    pub nesterov: bool,
    /// L2 penalty added to the gradient (coupled weight decay).
    pub decay: f64,
}

/// `sgd_momentum` on [`Tensor`]s (see [`CpuKernels::sgd_momentum`]): the updated parameter
/// and momentum buffer; `velocity` is `None` on the first step.
pub fn sgd_momentum<const D: usize>(
    param: Tensor<D>,
    grad: Tensor<D>,
    velocity: Option<Tensor<D>>,
    h: SgdMomentum,
) -> (Tensor<D>, Tensor<D>) {
    let first = velocity.is_none();
    // On the first step any tensor of the shape fills the argument; the kernel does not read it.
    let velocity = velocity.unwrap_or_else(|| grad.clone());
    let out = <Dispatch as CpuKernels>::sgd_momentum(
        param.into_dispatch(),
        grad.into_dispatch(),
        velocity.into_dispatch(),
        first,
        h,
    );
    (
        Tensor::from_dispatch(out.param),
        Tensor::from_dispatch(out.velocity),
    )
}

impl CpuKernels for Flex {
    fn max_pool2x2(x: FlexTensor) -> FlexTensor {
        pool_forward(&x, false).0
    }

    fn max_pool2d(
        x: FlexTensor,
        kernel: [usize; 2],
        stride: [usize; 2],
        padding: [usize; 2],
    ) -> FlexTensor {
        max_pool(&x, kernel, stride, padding)
    }

    fn conv2d(
        x: FlexTensor,
        weight: FlexTensor,
        bias: FlexTensor,
        stride: [usize; 2],
        padding: [usize; 4],
        relu: bool,
    ) -> FlexTensor {
        let g = Geometry::new(&x, &weight, stride, padding);
        let bias = contiguous(&bias);
        let epilogue = Epilogue::new(None, bias.as_slice::<f32>().unwrap(), None, relu);
        conv::forward(&x, &weight, &epilogue, g, true)
    }

    fn conv2d_affine(
        x: FlexTensor,
        weight: FlexTensor,
        bias: FlexTensor,
        add_bias: bool,
        gamma: FlexTensor,
        beta: FlexTensor,
        mean: FlexTensor,
        var: FlexTensor,
        epsilon: f64,
        residual: FlexTensor,
        add_residual: bool,
        stride: [usize; 2],
        padding: [usize; 4],
        relu: bool,
    ) -> FlexTensor {
        let g = Geometry::new(&x, &weight, stride, padding);
        let vectors = [gamma, beta, mean, var, bias].map(|t| contiguous(&t));
        let [gamma, beta, mean, var, bias] = std::array::from_fn(|k| {
            let v = vectors[k].as_slice::<f32>().unwrap();
            assert_eq!(v.len(), g.c_out, "conv2d_affine: a batch norm vector");
            v
        });
        // The batch norm's scale and shift, the bias folded into the shift, with the same
        // f32 operations as the tensor ops they replace (`convnet_nn::fast`'s test).
        let scale: Vec<f32> = (gamma.iter().zip(var))
            .map(|(&g, &v)| g / (v + epsilon as f32).sqrt())
            .collect();
        let shift: Vec<f32> = (0..g.c_out)
            .map(|o| {
                let shift = beta[o] - mean[o] * scale[o];
                match add_bias {
                    true => shift + bias[o] * scale[o],
                    false => shift,
                }
            })
            .collect();
        let residual = add_residual.then(|| {
            let r = residual;
            assert_eq!(
                r.shape().dims(),
                [g.n, g.c_out, g.ho, g.wo],
                "conv2d residual"
            );
            contiguous(&r)
        });
        let epilogue = Epilogue::new(
            Some(&scale),
            &shift,
            residual.as_ref().map(|r| r.as_slice::<f32>().unwrap()),
            relu,
        );
        conv::forward(&x, &weight, &epilogue, g, true)
    }

    fn batch_norm_train(
        x: FlexTensor,
        gamma: FlexTensor,
        beta: FlexTensor,
        epsilon: f64,
        relu: bool,
    ) -> BatchNormOut<Self> {
        let (output, stats) = bn_forward(&x, &gamma, &beta, epsilon, relu);
        BatchNormOut {
            output,
            mean: vector(stats.mean.clone()),
            variance: vector(stats.variance.clone()),
        }
    }

    fn sgd_momentum(
        param: FlexTensor,
        grad: FlexTensor,
        velocity: FlexTensor,
        first: bool,
        h: SgdMomentum,
    ) -> SgdOut<Self> {
        let (param, velocity) = sgd_momentum_flex(param, &grad, velocity, first, h);
        SgdOut { param, velocity }
    }
}

/// [`CpuKernels::sgd_momentum`] on `flex`: one pass, chunks of the parameter in parallel.
fn sgd_momentum_flex(
    param: FlexTensor,
    grad: &FlexTensor,
    velocity: FlexTensor,
    first: bool,
    h: SgdMomentum,
) -> (FlexTensor, FlexTensor) {
    awake::keep_awake();
    let grad = contiguous(grad);
    let g = grad.as_slice::<f32>().unwrap();
    let mut p = owned(param);
    let mut v = match first {
        true => FlexTensor::empty(p.shape(), DType::F32),
        false => owned(velocity),
    };
    let (lr, m, d, decay) = (
        h.lr as f32,
        h.momentum as f32,
        (1.0 - h.dampening) as f32,
        h.decay as f32,
    );
    let (ps, vs) = (p.storage_mut::<f32>(), v.storage_mut::<f32>());
    assert!(
        ps.len() == g.len() && vs.len() == g.len(),
        "sgd_momentum: shapes differ"
    );
    // (Chunks of 64 Ki values: a few per core on small layers, no task overhead on the rest.)
    const CHUNK: usize = 1 << 16;
    let nesterov = h.nesterov;
    let update = |((p, v), g): ((&mut [f32], &mut [f32]), &[f32])| {
        sgd_update(p, v, g, [lr, m, d, decay], [first, nesterov]);
    };
    ps.par_chunks_mut(CHUNK)
        .zip(vs.par_chunks_mut(CHUNK))
        .zip(g.par_chunks(CHUNK))
        .for_each(update);
    (p, v)
}

/// `t` as a contiguous float32 tensor whose storage is exactly its values, ready for
/// `storage_mut` (which copies only when the storage is shared).
fn owned(t: FlexTensor) -> FlexTensor {
    assert_eq!(t.dtype(), DType::F32, "convnet's CPU kernels take float32");
    let whole = t.as_slice::<f32>().map(|s| s.len()) == Some(t.storage::<f32>().len());
    match whole {
        true => t,
        false => t.to_contiguous(),
    }
}

type AdTensor<C> = FloatTensor<Autodiff<Flex, C>>;

/// The backward of a max pool: `scatter` sends each output's gradient to its window's argmax
/// (of type `A`, as the forward recorded it).
#[derive(Debug)]
struct ArgmaxPool<A> {
    scatter: fn(&FlexTensor, &[A], Shape) -> FlexTensor,
}

impl<A: std::fmt::Debug + Send + Sync + 'static> Backward<Flex, 1> for ArgmaxPool<A> {
    /// Each output's argmax, and the input shape.
    type State = (Arc<Vec<A>>, Shape);

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [parent] = ops.parents;
        let grad = grads.consume::<Flex>(&ops.node);
        let (argmax, shape) = ops.state;
        if let Some(node) = parent {
            grads.register::<Flex>(node.id, (self.scatter)(&grad, &argmax, shape));
        }
    }
}

/// A max pool under autodiff: `pool(x, record)` gives the output and, with `record`, each
/// output's argmax, which `scatter` uses in the backward.
fn tracked_pool<C: CheckpointStrategy, A: std::fmt::Debug + Send + Sync + 'static>(
    x: AdTensor<C>,
    pool: impl FnOnce(&FlexTensor, bool) -> (FlexTensor, Vec<A>),
    scatter: fn(&FlexTensor, &[A], Shape) -> FlexTensor,
) -> AdTensor<C> {
    let backward = ArgmaxPool { scatter };
    match backward.prepare::<C>([x.node()]).compute_bound().stateful() {
        OpsKind::Tracked(prep) => {
            let shape = x.primitive().shape();
            let (y, argmax) = pool(x.primitive(), true);
            prep.finish((Arc::new(argmax), shape), y)
        }
        OpsKind::UnTracked(prep) => prep.finish(pool(x.primitive(), false).0),
    }
}

impl<C: CheckpointStrategy> CpuKernels for Autodiff<Flex, C> {
    fn max_pool2x2(x: AdTensor<C>) -> AdTensor<C> {
        let pool = |x: &FlexTensor, record| pool_forward(x, record);
        tracked_pool::<C, _>(x, pool, pool_backward)
    }

    fn max_pool2d(
        x: AdTensor<C>,
        kernel: [usize; 2],
        stride: [usize; 2],
        padding: [usize; 2],
    ) -> AdTensor<C> {
        let pool = |x: &FlexTensor, record| match record {
            true => max_pool_argmax(x, kernel, stride, padding),
            false => (max_pool(x, kernel, stride, padding), Vec::new()),
        };
        tracked_pool::<C, _>(x, pool, max_pool_backward)
    }

    fn conv2d(
        x: AdTensor<C>,
        weight: AdTensor<C>,
        bias: AdTensor<C>,
        stride: [usize; 2],
        padding: [usize; 4],
        relu: bool,
    ) -> AdTensor<C> {
        #[derive(Debug)]
        struct Conv;

        impl Backward<Flex, 3> for Conv {
            /// Input, weight, the geometry of the forward pass and, after a ReLU, the output.
            type State = (FlexTensor, FlexTensor, Geometry, Option<FlexTensor>);

            fn backward(
                self,
                ops: Ops<Self::State, 3>,
                grads: &mut Gradients,
                _: &mut Checkpointer,
            ) {
                let [px, pw, pb] = ops.parents;
                let mut grad = grads.consume::<Flex>(&ops.node);
                let (x, w, g, y) = ops.state;
                if let Some(y) = y {
                    grad = owned(grad);
                    let y = contiguous(&y);
                    relu_grad(grad.storage_mut::<f32>(), y.as_slice::<f32>().unwrap());
                }
                let need = [px.is_some(), pw.is_some(), pb.is_some()];
                let (dx, dw, db) = conv::backward(&grad, &x, &w, g, need);
                for (parent, d) in [(px, dx), (pw, dw), (pb, db)] {
                    if let (Some(node), Some(d)) = (parent, d) {
                        grads.register::<Flex>(node.id, d);
                    }
                }
            }
        }

        let nodes = [x.node(), weight.node(), bias.node()];
        let g = Geometry::new(x.primitive(), weight.primitive(), stride, padding);
        let b = contiguous(bias.primitive());
        let epilogue = Epilogue::new(None, b.as_slice::<f32>().unwrap(), None, relu);
        let y = conv::forward(x.primitive(), weight.primitive(), &epilogue, g, false);
        match Conv.prepare::<C>(nodes).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let kept = relu.then(|| y.clone());
                let state = (x.into_primitive(), weight.into_primitive(), g, kept);
                prep.finish(state, y)
            }
            OpsKind::UnTracked(prep) => prep.finish(y),
        }
    }

    fn conv2d_affine(
        x: AdTensor<C>,
        weight: AdTensor<C>,
        bias: AdTensor<C>,
        add_bias: bool,
        gamma: AdTensor<C>,
        beta: AdTensor<C>,
        mean: AdTensor<C>,
        var: AdTensor<C>,
        epsilon: f64,
        residual: AdTensor<C>,
        add_residual: bool,
        stride: [usize; 2],
        padding: [usize; 4],
        relu: bool,
    ) -> AdTensor<C> {
        let [c_out, _, _, _] = weight.shape().dims();
        let std = Self::float_sqrt(Self::float_add_scalar(var, epsilon.into()));
        let scale = Self::float_div(gamma, std);
        let shift = Self::float_sub(beta, Self::float_mul(mean, scale.clone()));
        let shift = match add_bias {
            true => Self::float_add(shift, Self::float_mul(bias, scale.clone())),
            false => shift,
        };
        let zeros = Self::float_zeros(Shape::new([c_out]), &x.device(), FloatDType::F32);
        let y = <Self as CpuKernels>::conv2d(x, weight, zeros, stride, padding, false);
        let per_channel = |t| Self::float_reshape(t, Shape::new([1, c_out, 1, 1]));
        let y = Self::float_mul(y, per_channel(scale));
        let y = Self::float_add(y, per_channel(shift));
        let y = match add_residual {
            true => Self::float_add(y, residual),
            false => y,
        };
        match relu {
            true => Self::relu(y),
            false => y,
        }
    }

    fn batch_norm_train(
        x: AdTensor<C>,
        gamma: AdTensor<C>,
        beta: AdTensor<C>,
        epsilon: f64,
        relu: bool,
    ) -> BatchNormOut<Self> {
        #[derive(Debug)]
        struct Norm;

        impl Backward<Flex, 3> for Norm {
            /// Input, gamma, and the batch statistics of the forward pass.
            type State = (FlexTensor, FlexTensor, Arc<Stats>);

            fn backward(
                self,
                ops: Ops<Self::State, 3>,
                grads: &mut Gradients,
                _: &mut Checkpointer,
            ) {
                let [px, pgamma, pbeta] = ops.parents;
                let grad = grads.consume::<Flex>(&ops.node);
                let (x, gamma, stats) = ops.state;
                let (dx, dgamma, dbeta) = bn_backward(&grad, &x, &gamma, &stats, px.is_some());
                if let (Some(node), Some(dx)) = (px, dx) {
                    grads.register::<Flex>(node.id, dx);
                }
                if let Some(node) = pgamma {
                    grads.register::<Flex>(node.id, dgamma);
                }
                if let Some(node) = pbeta {
                    grads.register::<Flex>(node.id, dbeta);
                }
            }
        }

        let nodes = [x.node(), gamma.node(), beta.node()];
        let (output, stats) = bn_forward(
            x.primitive(),
            gamma.primitive(),
            beta.primitive(),
            epsilon,
            relu,
        );
        let mean = Self::from_inner(vector(stats.mean.clone()));
        let variance = Self::from_inner(vector(stats.variance.clone()));
        let output = match Norm.prepare::<C>(nodes).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let state = (x.into_primitive(), gamma.into_primitive(), Arc::new(stats));
                prep.finish(state, output)
            }
            OpsKind::UnTracked(prep) => prep.finish(output),
        };
        BatchNormOut {
            output,
            mean,
            variance,
        }
    }

    fn sgd_momentum(
        param: AdTensor<C>,
        grad: AdTensor<C>,
        velocity: AdTensor<C>,
        first: bool,
        h: SgdMomentum,
    ) -> SgdOut<Self> {
        let (param, velocity) = sgd_momentum_flex(
            param.into_primitive(),
            grad.primitive(),
            velocity.into_primitive(),
            first,
            h,
        );
        SgdOut {
            param: Self::from_inner(param),
            velocity: Self::from_inner(velocity),
        }
    }
}

/// A contiguous f32 view of `t` (copied only when it is strided or offset).
fn contiguous(t: &FlexTensor) -> FlexTensor {
    assert_eq!(t.dtype(), DType::F32, "convnet's CPU kernels take float32");
    match t.as_slice::<f32>() {
        Some(_) => t.clone(),
        None => t.to_contiguous(),
    }
}

/// `f((i, chunk))` for each `size`-long chunk of `data` (none when `size` is 0), as parallel
/// tasks with `parallel`.
fn for_each_chunk<T: Send, F>(data: &mut [T], size: usize, parallel: bool, f: F)
where
    F: Fn((usize, &mut [T])) + Send + Sync,
{
    if size == 0 {
        return;
    }
    match parallel {
        true => data.par_chunks_mut(size).enumerate().for_each(f),
        false => data.chunks_mut(size).enumerate().for_each(f),
    }
}

/// A new vector of `len` values run through [`for_each_chunk`] (chunks of `size`), each chunk
/// zeroed by the task that then fills it, instead of all of it by the calling thread first:
/// that `memset` ran on one thread while the pool's others went idle and then to sleep
/// (waking them costs more than the zeroing), and it left the output out of cache.
fn zeroed_chunks<F>(len: usize, size: usize, parallel: bool, f: F) -> Vec<f32>
where
    F: Fn((usize, &mut [f32])) + Send + Sync,
{
    let task = |(i, chunk): (usize, &mut [std::mem::MaybeUninit<f32>])| {
        chunk.fill(std::mem::MaybeUninit::new(0.0));
        // SAFETY: every value of the chunk was initialised just above.
        f((i, unsafe { &mut *(chunk as *mut [_] as *mut [f32]) }));
    };
    // SAFETY: `task` initialises its whole chunk.
    unsafe { uninit_chunks(len, size, parallel, task) }
}

/// A new vector of `len` values run through [`for_each_chunk`] (chunks of `size`) with its
/// values not initialised, for tasks that overwrite every value of their chunk anyway.
///
/// # Safety
/// `f` initialises every value of the chunk it is given.
unsafe fn uninit_chunks<F>(len: usize, size: usize, parallel: bool, f: F) -> Vec<f32>
where
    F: Fn((usize, &mut [std::mem::MaybeUninit<f32>])) + Send + Sync,
{
    if size == 0 || len == 0 {
        return vec![0f32; len];
    }
    let mut values: Vec<f32> = Vec::with_capacity(len);
    for_each_chunk(&mut values.spare_capacity_mut()[..len], size, parallel, f);
    // SAFETY: the chunks cover `0..len` (`size > 0`), and `f` initialised each.
    unsafe { values.set_len(len) };
    values
}

/// One sample's output, written by parallel tasks whose values interleave (each task some
/// columns or some rows of every channel's map): a pointer, since their slices would overlap.
#[derive(Clone, Copy)]
struct Out {
    ptr: *mut f32,
    len: usize,
}

// SAFETY: the tasks sharing an `Out` write disjoint values.
unsafe impl Send for Out {}
unsafe impl Sync for Out {}

impl Out {
    fn new(y: &mut [std::mem::MaybeUninit<f32>]) -> Self {
        Out {
            ptr: y.as_mut_ptr().cast(),
            len: y.len(),
        }
    }

    /// Values `range` of the output.
    ///
    /// # Safety
    /// They have been written, and no other task reads or writes them meanwhile.
    unsafe fn span<'a>(self, range: std::ops::Range<usize>) -> &'a mut [f32] {
        assert!(range.start <= range.end && range.end <= self.len);
        unsafe { std::slice::from_raw_parts_mut(self.ptr.add(range.start), range.len()) }
    }
}

/// A slice of values as one of possibly uninitialised values (to be overwritten).
fn as_uninit(y: &mut [f32]) -> &mut [std::mem::MaybeUninit<f32>] {
    // SAFETY: same layout; writing initialised values through it keeps `y` initialised.
    unsafe { &mut *(y as *mut [f32] as *mut [std::mem::MaybeUninit<f32>]) }
}

fn tensor(values: Vec<f32>, shape: Shape) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(values, shape))
}

fn vector(values: Vec<f32>) -> FlexTensor {
    let n = values.len();
    tensor(values, Shape::new([n]))
}

/// Defines `fn $name(args) $body` compiled three times, for AVX-512, for AVX2 + FMA and for
/// baseline x86-64, run as this CPU allows. The element-wise loops here (batch norm,
/// epilogues, pooling, col2im) are plain Rust that the compiler vectorises for the features
/// enabled where it is compiled, and the default build targets baseline x86-64 (SSE2, 4
/// lanes). The body is an `#[inline(always)]` function called directly by each copy (a
/// closure or a call through `FnOnce` stayed one baseline function that the copies only
/// called). The arithmetic is the same in every copy (no fused multiply-adds are formed from
/// separate `*` and `+`), so results do not depend on the CPU.
macro_rules! wide_fn {
    ($(#[$meta:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)? $body:block) => {
        $(#[$meta])*
        $vis fn $name($($arg: $ty),*) $(-> $ret)? {
            #[inline(always)]
            fn body($($arg: $ty),*) $(-> $ret)? $body
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma")]
                fn avx512($($arg: $ty),*) $(-> $ret)? {
                    body($($arg),*)
                }
                #[target_feature(enable = "avx2,fma")]
                fn avx2($($arg: $ty),*) $(-> $ret)? {
                    body($($arg),*)
                }
                match $crate::simd_level() {
                    // SAFETY: the CPU has the features each copy is compiled for.
                    2 => return unsafe { avx512($($arg),*) },
                    1 => return unsafe { avx2($($arg),*) },
                    _ => {}
                }
            }
            body($($arg),*)
        }
    };
}

wide_fn! {
/// [`sgd_momentum_flex`]'s update of one chunk, `k = [lr, momentum, 1 - dampening, decay]`:
/// one loop per `[first, nesterov]` case, with no flag tested per value, which kept the
/// loop scalar (ResNet-18's 11 M parameters: 9 % of its step).
fn sgd_update(p: &mut [f32], v: &mut [f32], g: &[f32], k: [f32; 4], flags: [bool; 2]) {
    let [lr, m, d, decay] = k;
    let values = p.iter_mut().zip(v.iter_mut()).zip(g);
    match flags {
        [true, false] => values.for_each(|((p, v), &g)| {
            let g = g + decay * *p;
            *v = g;
            *p -= lr * *v;
        }),
        [true, true] => values.for_each(|((p, v), &g)| {
            let g = g + decay * *p;
            *v = g;
            *p -= lr * (g + m * *v);
        }),
        [false, false] => values.for_each(|((p, v), &g)| {
            let g = g + decay * *p;
            *v = m * *v + d * g;
            *p -= lr * *v;
        }),
        [false, true] => values.for_each(|((p, v), &g)| {
            let g = g + decay * *p;
            *v = m * *v + d * g;
            *p -= lr * (g + m * *v);
        }),
    }
}
}

/// What [`wide_fn`] and the direct convolution may use on this CPU: 2 for AVX-512 (F, BW,
/// VL), 1 for AVX2 + FMA, else 0; at most what `CONVNET_SIMD` says (`avx512`, `avx2` or
/// `none`), which runs the narrower copies of convnet's own loops on a wider CPU, to compare
/// or to test them (`gemm` picks its kernels itself).
#[inline]
fn simd_level() -> u8 {
    static LEVEL: std::sync::OnceLock<u8> = std::sync::OnceLock::new();
    *LEVEL.get_or_init(|| {
        let cap = std::env::var("CONVNET_SIMD").ok().map(|v| simd_cap(&v));
        detected_simd_level().min(cap.unwrap_or(2))
    })
}

/// The level `CONVNET_SIMD=value` allows (a warning, and no cap, for other values).
fn simd_cap(value: &str) -> u8 {
    match value.to_ascii_lowercase().as_str() {
        "avx512" => 2,
        "avx2" => 1,
        "none" => 0,
        other => {
            eprintln!("warning: CONVNET_SIMD={other} is not avx512, avx2 or none; ignored");
            2
        }
    }
}

/// What this CPU has, as [`simd_level`] counts.
fn detected_simd_level() -> u8 {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::is_x86_feature_detected as has;
        if has!("avx512f") && has!("avx512bw") && has!("avx512vl") {
            return 2;
        }
        if has!("avx2") && has!("fma") {
            return 1;
        }
    }
    0
}

/// 2x2/2 max pool of an `[N, C, H, W]` tensor; with `record`, also each window's argmax
/// (0: top left, 1: top right, 2: bottom left, 3: bottom right; the first of equal maxima, a
/// NaN wins as in PyTorch).
fn pool_forward(x: &FlexTensor, record: bool) -> (FlexTensor, Vec<u8>) {
    awake::keep_awake();
    let x = contiguous(x);
    let [n, c, h, w] = x.shape().dims();
    let (ho, wo) = (h / 2, w / 2);
    let xs = x.as_slice::<f32>().expect("contiguous");
    let plane = ho * wo;
    let mut out = vec![0f32; n * c * plane];
    let mut arg = if record {
        vec![0u8; n * c * plane]
    } else {
        Vec::new()
    };
    if plane > 0 {
        let src = |p: usize| &xs[p * h * w..(p + 1) * h * w];
        // The stack buffers are set up once per task, not zeroed again for every plane.
        let buffers = || ([0f32; POOL_BLOCK], [0u8; POOL_BLOCK]);
        if record {
            out.par_chunks_mut(plane)
                .zip(arg.par_chunks_mut(plane))
                .enumerate()
                .for_each_init(buffers, |b, (p, (o, a))| pool_plane(src(p), w, o, a, b));
        } else {
            out.par_chunks_mut(plane)
                .enumerate()
                .for_each_init(buffers, |b, (p, o)| pool_plane(src(p), w, o, &mut [], b));
        }
    }
    (tensor(out, Shape::new([n, c, ho, wo])), arg)
}

/// Values per block of [`pool_plane`]'s two passes (stack buffers).
const POOL_BLOCK: usize = 1024;

wide_fn! {
/// One plane of [`pool_forward`] (`src` is `H x w`, `out` `H/2 x w/2`), with the argmax into
/// `arg` unless it is empty, `buffers` its two stack buffers. Two passes over blocks of rows, both plain element-wise selects
/// that the compiler vectorises: the larger of each column's two rows, then the larger of each
/// window's two columns, equal values going to the lower index. Blocks span several rows so
/// that short rows (14 or 7 windows) still fill the vectors. Branches on the data were 16 % of
/// a LeNet-style training step, one window at a time 6 %.
fn pool_plane(
    src: &[f32],
    w: usize,
    out: &mut [f32],
    arg: &mut [u8],
    buffers: &mut ([f32; POOL_BLOCK], [u8; POOL_BLOCK]),
) {
    let (m, k) = buffers;
    let wo = w / 2;
    let ho = out.len() / wo;
    if 2 * wo <= POOL_BLOCK {
        let rows = POOL_BLOCK / (2 * wo);
        for oy0 in (0..ho).step_by(rows) {
            let nr = rows.min(ho - oy0);
            for r in 0..nr {
                let (r0, r1) = (&src[2 * (oy0 + r) * w..], &src[(2 * (oy0 + r) + 1) * w..]);
                let at = r * 2 * wo..(r + 1) * 2 * wo;
                pool_rows(&r0[..2 * wo], &r1[..2 * wo], &mut m[at.clone()], &mut k[at]);
            }
            let range = oy0 * wo..(oy0 + nr) * wo;
            let o = &mut out[range.clone()];
            pool_columns(
                &m[..2 * nr * wo],
                &k[..2 * nr * wo],
                o,
                arg.get_mut(range).unwrap_or_default(),
            );
        }
    } else {
        for oy in 0..ho {
            for x0 in (0..wo).step_by(POOL_BLOCK / 2) {
                let nx = (POOL_BLOCK / 2).min(wo - x0);
                let (r0, r1) = (
                    &src[2 * oy * w + 2 * x0..],
                    &src[(2 * oy + 1) * w + 2 * x0..],
                );
                let (m, k) = (&mut m[..2 * nx], &mut k[..2 * nx]);
                pool_rows(&r0[..2 * nx], &r1[..2 * nx], m, k);
                let range = oy * wo + x0..oy * wo + x0 + nx;
                pool_columns(
                    m,
                    k,
                    &mut out[range.clone()],
                    arg.get_mut(range).unwrap_or_default(),
                );
            }
        }
    }
}
}

/// First pass of [`pool_plane`]: the larger of `r0[i]` and `r1[i]` (a NaN wins, the top row
/// on ties) and its row as a window index (0 or 2).
#[inline(always)]
fn pool_rows(r0: &[f32], r1: &[f32], m: &mut [f32], k: &mut [u8]) {
    for (((&a, &b), m), k) in r0.iter().zip(r1).zip(m).zip(k) {
        let take = (b > a) | (b.is_nan() & !a.is_nan());
        *m = if take { b } else { a };
        *k = if take { 2 } else { 0 };
    }
}

/// Second pass of [`pool_plane`]: the larger of each pair `m[2j]`, `m[2j + 1]` (a NaN wins,
/// equal values go to the lower window index), with its index into `arg` unless empty.
#[inline(always)]
fn pool_columns(m: &[f32], k: &[u8], out: &mut [f32], arg: &mut [u8]) {
    let pick = |j: usize| {
        let (a, b) = (m[2 * j], m[2 * j + 1]);
        let (ka, kb) = (k[2 * j], k[2 * j + 1] + 1);
        let tie = (b == a) | (b.is_nan() & a.is_nan());
        let take = (b > a) | (b.is_nan() & !a.is_nan()) | (tie & (kb < ka));
        (if take { b } else { a }, if take { kb } else { ka })
    };
    if arg.is_empty() {
        out.iter_mut().enumerate().for_each(|(j, o)| *o = pick(j).0);
    } else {
        for (j, (o, a)) in out.iter_mut().zip(arg.iter_mut()).enumerate() {
            (*o, *a) = pick(j);
        }
    }
}

/// Max pool of an `[N, C, H, W]` tensor with any window, stride and symmetric padding (read
/// as -inf), floor mode; a NaN in a window wins, as in PyTorch. Per output row, the maximum
/// of the window's input rows first (contiguous, vectorised) into a buffer with -inf margins,
/// then the maximum of each window's columns in it.
fn max_pool(
    x: &FlexTensor,
    [kh, kw]: [usize; 2],
    [sh, sw]: [usize; 2],
    [ph, pw]: [usize; 2],
) -> FlexTensor {
    awake::keep_awake();
    let x = contiguous(x);
    let [n, c, h, w] = x.shape().dims();
    let (ho, wo) = pooled([h, w], [kh, kw], [sh, sw], [ph, pw]);
    let xs = x.as_slice::<f32>().expect("contiguous");
    let pick = |m: f32, v: f32| if wins(v, m) { v } else { m };
    let mut out = vec![0f32; n * c * ho * wo];
    if ho * wo > 0 {
        let buffer = || vec![f32::NEG_INFINITY; w + 2 * pw];
        out.par_chunks_mut(ho * wo)
            .enumerate()
            .for_each_init(buffer, |buf, (plane, o)| {
                let src = &xs[plane * h * w..][..h * w];
                for (oy, o) in o.chunks_mut(wo).enumerate() {
                    let row = &mut buf[pw..pw + w];
                    row.fill(f32::NEG_INFINITY);
                    for y in window(oy, sh, kh, ph, h) {
                        let r = &src[y * w..][..w];
                        row.iter_mut().zip(r).for_each(|(b, &v)| *b = pick(*b, v));
                    }
                    for (ox, o) in o.iter_mut().enumerate() {
                        let window = &buf[ox * sw..ox * sw + kw];
                        *o = window.iter().fold(f32::NEG_INFINITY, |m, &v| pick(m, v));
                    }
                }
            });
    }
    tensor(out, Shape::new([n, c, ho, wo]))
}

/// Whether a pool window's value `v` replaces its maximum so far `m`: a NaN wins, and the
/// first of equal maxima stays (PyTorch's rule).
#[inline(always)]
fn wins(v: f32, m: f32) -> bool {
    v > m || v.is_nan()
}

/// The output size `(H', W')` of a max pool in floor mode; every window must reach the image.
fn pooled(
    [h, w]: [usize; 2],
    [kh, kw]: [usize; 2],
    [sh, sw]: [usize; 2],
    [ph, pw]: [usize; 2],
) -> (usize, usize) {
    assert!(h + 2 * ph >= kh && w + 2 * pw >= kw && sh > 0 && sw > 0);
    assert!(
        2 * ph <= kh && 2 * pw <= kw,
        "padding beyond half the window"
    );
    ((h + 2 * ph - kh) / sh + 1, (w + 2 * pw - kw) / sw + 1)
}

/// The input rows (or columns) that output row `o` of a pool reads: its window `o * s - p ..
/// o * s - p + k`, clipped to the image's `len`.
fn window(o: usize, s: usize, k: usize, p: usize, len: usize) -> std::ops::Range<usize> {
    (o * s).saturating_sub(p)..(o * s + k).saturating_sub(p).min(len)
}

/// [`max_pool`] with each output's argmax, its input's index in the `H x W` plane, for
/// [`max_pool_backward`]; the same values. Per output row, the window rows' maximum and its
/// row per column first (vectorised), then each window's columns, without branches (the
/// stem pool of ResNet-18 at 32x32: 2.5 % of its step, against 3.6 % with branches and 3 %
/// scanning each window). The argmax is PyTorch's, the window scanned row by row: the first
/// maximum, or the last NaN.
fn max_pool_argmax(
    x: &FlexTensor,
    k: [usize; 2],
    s: [usize; 2],
    p: [usize; 2],
) -> (FlexTensor, Vec<u32>) {
    awake::keep_awake();
    let x = contiguous(x);
    let [n, c, h, w] = x.shape().dims();
    let (ho, wo) = pooled([h, w], k, s, p);
    assert!(h * w < u32::MAX as usize, "a plane of 2^32 values or more");
    let xs = x.as_slice::<f32>().expect("contiguous");
    let mut out = vec![0f32; n * c * ho * wo];
    let mut arg = vec![0u32; out.len()];
    // Whether `(v, i)` comes after `(m, at)` in that order: a NaN after every number and the
    // later of two NaNs; of two numbers the larger, or the earlier of equal ones.
    // (`&` and `|`, not branches: with random values `v > m` is a coin toss, and the
    // mispredicted branches made this pass the pool's cost.)
    let later = |v: f32, i: u32, m: f32, at: u32| {
        let (m_nan, v_nan) = (m.is_nan(), v.is_nan());
        (m_nan & v_nan & (i > at)) | (!m_nan & (v_nan | (v > m) | ((v == m) & (i < at))))
    };
    if ho * wo > 0 {
        let buffers = || (vec![0f32; w], vec![0u32; w]);
        let planes = out.par_chunks_mut(ho * wo).zip(arg.par_chunks_mut(ho * wo));
        planes
            .enumerate()
            .for_each_init(buffers, |(m, r), (plane, (o, a))| {
                let src = &xs[plane * h * w..][..h * w];
                for (oy, (o, a)) in o.chunks_mut(wo).zip(a.chunks_mut(wo)).enumerate() {
                    let rows = window(oy, s[0], k[0], p[0], h);
                    m.fill(f32::NEG_INFINITY);
                    r.fill((rows.start * w) as u32);
                    for y in rows {
                        column_maxima(m, r, &src[y * w..][..w], (y * w) as u32);
                    }
                    for (ox, (o, a)) in o.iter_mut().zip(a.iter_mut()).enumerate() {
                        let (mut best, mut at) = (f32::NEG_INFINITY, u32::MAX);
                        for x in window(ox, s[1], k[1], p[1], w) {
                            let i = r[x] + x as u32;
                            if later(m[x], i, best, at) {
                                (best, at) = (m[x], i);
                            }
                        }
                        (*o, *a) = (best, at);
                    }
                }
            });
    }
    (tensor(out, Shape::new([n, c, ho, wo])), arg)
}

wide_fn! {
/// One input row `v` of a pool window (at offset `at` in the plane) into the running column
/// maxima `m` and their rows' offsets `r`.
fn column_maxima(m: &mut [f32], r: &mut [u32], v: &[f32], at: u32) {
    for ((m, r), &v) in m.iter_mut().zip(r.iter_mut()).zip(v) {
        let take = wins(v, *m);
        *m = if take { v } else { *m };
        *r = if take { at } else { *r };
    }
}
}

/// Gradient of [`max_pool_argmax`]: each output gradient added to its window's argmax
/// (overlapping windows may share one).
fn max_pool_backward(grad: &FlexTensor, argmax: &[u32], shape: Shape) -> FlexTensor {
    let grad = contiguous(grad);
    let gs = grad.as_slice::<f32>().expect("contiguous");
    let [n, c, h, w] = shape.dims();
    let mut dx = vec![0f32; n * c * h * w];
    let per_plane = gs.len() / (n * c).max(1);
    if per_plane > 0 && h * w > 0 {
        dx.par_chunks_mut(h * w).enumerate().for_each(|(plane, d)| {
            let g = &gs[plane * per_plane..][..per_plane];
            let a = &argmax[plane * per_plane..][..per_plane];
            g.iter().zip(a).for_each(|(&g, &i)| d[i as usize] += g);
        });
    }
    tensor(dx, shape)
}

/// Gradient of [`pool_forward`]: each output gradient goes to its window's argmax; rows and
/// columns the floor mode dropped get zero.
fn pool_backward(grad: &FlexTensor, argmax: &[u8], shape: Shape) -> FlexTensor {
    let grad = contiguous(grad);
    let gs = grad.as_slice::<f32>().expect("contiguous");
    let [n, c, h, w] = shape.dims();
    let (ho, wo) = (h / 2, w / 2);
    let mut dx = vec![0f32; n * c * h * w];
    if ho * wo > 0 {
        dx.par_chunks_mut(h * w).enumerate().for_each(|(p, d)| {
            let g = &gs[p * ho * wo..(p + 1) * ho * wo];
            let a = &argmax[p * ho * wo..(p + 1) * ho * wo];
            for oy in 0..ho {
                for ox in 0..wo {
                    let k = a[oy * wo + ox] as usize;
                    d[(2 * oy + k / 2) * w + 2 * ox + k % 2] = g[oy * wo + ox];
                }
            }
        });
    }
    tensor(dx, shape)
}

/// Batch statistics of a forward pass: per channel mean, biased variance and 1/sqrt(var + eps).
#[derive(Debug)]
struct Stats {
    mean: Vec<f32>,
    variance: Vec<f32>,
    inv_std: Vec<f32>,
    /// Per channel `a` and `b` of the output `x·a + b`, and whether a ReLU followed it.
    scale: Vec<f32>,
    offset: Vec<f32>,
    relu: bool,
}

/// `[N, C, S]` view of an `[N, C, ...]` shape.
fn ncs(shape: &Shape) -> (usize, usize, usize) {
    let dims = shape.as_slice();
    assert!(dims.len() >= 2, "batch norm needs [N, C, ...]");
    (dims[0], dims[1], dims[2..].iter().product())
}

/// Sums of `row(i)` over the `n` rows of one channel, in f64 (each row summed in f32 lanes).
fn channel_sums(n: usize, mut row: impl FnMut(usize) -> [f32; 2]) -> [f64; 2] {
    let mut total = [0f64; 2];
    for i in 0..n {
        let [a, b] = row(i);
        total[0] += a as f64;
        total[1] += b as f64;
    }
    total
}

/// Whether batch norm's per-channel rows (`S` values each) are too short to vectorise, so
/// that its loops run over a sample's whole `[C, S]` block with the per-channel constants
/// repeated per value ([`per_value`]): ResNet-18's maps at 32x32 from 4x4 down, where the row
/// loops ran scalar.
fn short_rows(s: usize) -> bool {
    s > 0 && s < 16
}

/// Per-channel values repeated `s` times each: `[C]` → `[C * S]`.
fn per_value(v: &[f32], s: usize) -> Vec<f32> {
    v.iter().flat_map(|&x| std::iter::repeat_n(x, s)).collect()
}

/// Per-channel sums over `n` samples of `[C, S]` blocks, for [`short_rows`]: `add(i, a1, a2)`
/// adds sample `i`'s values into two `[C * S]` accumulators (f32, one pair per task, the
/// samples split among the threads); the tasks' sums and then each channel's `S` values are
/// added in f64.
fn sample_sums(
    n: usize,
    c: usize,
    s: usize,
    add: impl Fn(usize, &mut [f32], &mut [f32]) + Sync,
) -> Vec<[f64; 2]> {
    let per_task = n.div_ceil(rayon::current_num_threads()).max(1);
    let channels = |(a1, a2): (Vec<f32>, Vec<f32>)| -> Vec<[f64; 2]> {
        (a1.chunks(s).zip(a2.chunks(s)))
            .map(|(r1, r2)| [r1, r2].map(|r| r.iter().map(|&v| v as f64).sum()))
            .collect()
    };
    (0..n)
        .into_par_iter()
        .with_min_len(per_task)
        .fold(
            || (vec![0f32; c * s], vec![0f32; c * s]),
            |(mut a1, mut a2), i| {
                add(i, &mut a1, &mut a2);
                (a1, a2)
            },
        )
        .map(channels)
        .reduce(
            || vec![[0.0; 2]; c],
            |a, b| {
                a.iter()
                    .zip(&b)
                    .map(|(x, y)| [x[0] + y[0], x[1] + y[1]])
                    .collect()
            },
        )
}

/// Batch norm's output before its ReLU, `x·a + b`: written once, so that the backward's ReLU
/// mask repeats the forward's arithmetic exactly on every path.
#[inline(always)]
fn bn_affine(v: f32, a: f32, b: f32) -> f32 {
    v * a + b
}

/// The gradient after a fused ReLU: `g` where the forward's output was positive, else 0.
#[inline(always)]
fn bn_relu_mask(g: f32, v: f32, a: f32, b: f32) -> f32 {
    if bn_affine(v, a, b) > 0.0 { g } else { 0.0 }
}

/// Batch norm's input gradient per value, `k1·dy + k2·x + k3` ([`bn_backward`]).
#[inline(always)]
fn bn_dx(g: f32, v: f32, k1: f32, k2: f32, k3: f32) -> f32 {
    k1 * g + k2 * v + k3
}

wide_fn! {
/// [`bn_affine`] value by value, then a ReLU if asked.
fn affine(y: &mut [f32], v: &[f32], a: &[f32], b: &[f32], relu: bool) {
    for (((y, &v), &a), &b) in y.iter_mut().zip(v).zip(a).zip(b) {
        *y = bn_affine(v, a, b);
    }
    if relu {
        y.iter_mut().for_each(|y| *y = y.max(0.0));
    }
}
}

wide_fn! {
/// [`affine`] with one channel's constants for the whole row.
fn affine_row(y: &mut [f32], v: &[f32], a: f32, b: f32, relu: bool) {
    y.iter_mut()
        .zip(v)
        .for_each(|(y, &v)| *y = bn_affine(v, a, b));
    if relu {
        y.iter_mut().for_each(|y| *y = y.max(0.0));
    }
}
}

wide_fn! {
/// [`bn_relu_mask`] value by value, the constants per value.
fn relu_mask(o: &mut [f32], g: &[f32], x: &[f32], a: &[f32], b: &[f32]) {
    let vals = g.iter().zip(x).zip(a.iter().zip(b));
    for (o, ((&g, &v), (&a, &b))) in o.iter_mut().zip(vals) {
        *o = bn_relu_mask(g, v, a, b);
    }
}
}

wide_fn! {
/// [`relu_mask`] with one channel's constants for the whole row.
fn relu_mask_row(o: &mut [f32], g: &[f32], x: &[f32], a: f32, b: f32) {
    for ((o, &g), &v) in o.iter_mut().zip(g).zip(x) {
        *o = bn_relu_mask(g, v, a, b);
    }
}
}

/// The gradient `g` through a ReLU whose output was `y`, in place: zero where `y` is not
/// positive (PyTorch's rule), rows in parallel.
fn relu_grad(g: &mut [f32], y: &[f32]) {
    assert_eq!(g.len(), y.len(), "relu_grad: shapes differ");
    const CHUNK: usize = 1 << 14;
    g.par_chunks_mut(CHUNK)
        .zip(y.par_chunks(CHUNK))
        .for_each(|(g, y)| relu_grad_span(g, y));
}

wide_fn! {
/// [`relu_grad`] on one span.
fn relu_grad_span(g: &mut [f32], y: &[f32]) {
    for (g, &y) in g.iter_mut().zip(y) {
        *g = if y > 0.0 { *g } else { 0.0 };
    }
}
}

wide_fn! {
/// [`bn_dx`] value by value, the constants per value.
fn dx_values(d: &mut [f32], g: &[f32], x: &[f32], k: [&[f32]; 3]) {
    let [k1, k2, k3] = k;
    let ks = k1.iter().zip(k2).zip(k3);
    for ((o, (&g, &v)), ((&k1, &k2), &k3)) in d.iter_mut().zip(g.iter().zip(x)).zip(ks) {
        *o = bn_dx(g, v, k1, k2, k3);
    }
}
}

wide_fn! {
/// [`dx_values`] with one channel's constants for the whole row.
fn dx_row(d: &mut [f32], g: &[f32], x: &[f32], k: [f32; 3]) {
    let [k1, k2, k3] = k;
    for (o, (&g, &v)) in d.iter_mut().zip(g.iter().zip(x)) {
        *o = bn_dx(g, v, k1, k2, k3);
    }
}
}

/// Sum of a row in 8 independent f32 lanes, so that it vectorises (a serial f64 sum of the
/// bias gradient's rows was 4 % of a LeNet-style training step).
#[inline(always)]
fn row_sum(a: &[f32]) -> f32 {
    let mut s = [0f32; 8];
    let chunks = a.chunks_exact(8);
    let rest: f32 = chunks.remainder().iter().sum();
    for ch in chunks {
        for k in 0..8 {
            s[k] += ch[k];
        }
    }
    s.iter().sum::<f32>() + rest
}

wide_fn! {
/// Sum of `a` and of `a * a` over a row, in 8 independent lanes so that it vectorises.
fn row_sums(a: &[f32], shift: f32) -> [f32; 2] {
    let mut s1 = [0f32; 8];
    let mut s2 = [0f32; 8];
    let chunks = a.chunks_exact(8);
    let rest = chunks.remainder();
    for ch in chunks {
        for k in 0..8 {
            let d = ch[k] - shift;
            s1[k] += d;
            s2[k] += d * d;
        }
    }
    let mut t1: f32 = s1.iter().sum();
    let mut t2: f32 = s2.iter().sum();
    for &v in rest {
        let d = v - shift;
        t1 += d;
        t2 += d * d;
    }
    [t1, t2]
}
}

wide_fn! {
/// Sum of `g` and of `g * (x - shift)` over a row, in 8 lanes.
fn row_dot(g: &[f32], x: &[f32], shift: f32) -> [f32; 2] {
    let mut s1 = [0f32; 8];
    let mut s2 = [0f32; 8];
    let gc = g.chunks_exact(8);
    let xc = x.chunks_exact(8);
    let (gr, xr) = (gc.remainder(), xc.remainder());
    for (gk, xk) in gc.zip(xc) {
        for k in 0..8 {
            s1[k] += gk[k];
            s2[k] += gk[k] * (xk[k] - shift);
        }
    }
    let mut t1: f32 = s1.iter().sum();
    let mut t2: f32 = s2.iter().sum();
    for (&gv, &xv) in gr.iter().zip(xr) {
        t1 += gv;
        t2 += gv * (xv - shift);
    }
    [t1, t2]
}
}

fn bn_forward(
    x: &FlexTensor,
    gamma: &FlexTensor,
    beta: &FlexTensor,
    eps: f64,
    relu: bool,
) -> (FlexTensor, Stats) {
    awake::keep_awake();
    let x = contiguous(x);
    let (gamma, beta) = (contiguous(gamma), contiguous(beta));
    let shape = x.shape();
    let (n, c, s) = ncs(&shape);
    let xs = x.as_slice::<f32>().expect("contiguous");
    let (gs, bs) = (
        gamma.as_slice::<f32>().unwrap(),
        beta.as_slice::<f32>().unwrap(),
    );
    let m = (n * s) as f64;
    // Shifted sums (shift = the channel's first value) keep E[x²] - E[x]² from cancelling.
    let shift: Vec<f32> = (0..c)
        .map(|ch| xs.get(ch * s).copied().unwrap_or(0.0))
        .collect();
    let sums: Vec<[f64; 2]> = match short_rows(s) {
        true => {
            let shift_e = per_value(&shift, s);
            sample_sums(n, c, s, |i, a1, a2| {
                let xi = &xs[i * c * s..][..c * s];
                for (((&v, &sh), a1), a2) in xi.iter().zip(&shift_e).zip(a1).zip(a2) {
                    let d = v - sh;
                    *a1 += d;
                    *a2 += d * d;
                }
            })
        }
        false => (0..c)
            .into_par_iter()
            .map(|ch| {
                channel_sums(n, |i| {
                    row_sums(&xs[(i * c + ch) * s..(i * c + ch + 1) * s], shift[ch])
                })
            })
            .collect(),
    };
    let moments: Vec<(f32, f32)> = (sums.iter().zip(&shift))
        .map(|(&[s1, s2], &shift)| {
            let mean_d = s1 / m;
            let var = (s2 / m - mean_d * mean_d).max(0.0);
            ((shift as f64 + mean_d) as f32, var as f32)
        })
        .collect();
    let mean: Vec<f32> = moments.iter().map(|m| m.0).collect();
    let variance: Vec<f32> = moments.iter().map(|m| m.1).collect();
    let inv_std: Vec<f32> = variance
        .iter()
        .map(|&v| (1.0 / (v as f64 + eps).sqrt()) as f32)
        .collect();
    let scale: Vec<f32> = (0..c).map(|ch| gs[ch] * inv_std[ch]).collect();
    let offset: Vec<f32> = (0..c).map(|ch| bs[ch] - mean[ch] * scale[ch]).collect();
    let short = short_rows(s).then(|| [per_value(&scale, s), per_value(&offset, s)]);
    let out = zeroed_chunks(n * c * s, c * s, true, |(i, o)| {
        let src = &xs[i * c * s..(i + 1) * c * s];
        match &short {
            Some([a, b]) => affine(o, src, a, b, relu),
            None => {
                let rows = o.chunks_mut(s).zip(src.chunks(s));
                for ((o, src), (&a, &b)) in rows.zip(scale.iter().zip(&offset)) {
                    affine_row(o, src, a, b, relu);
                }
            }
        }
    });
    let stats = Stats {
        mean,
        variance,
        inv_std,
        scale,
        offset,
        relu,
    };
    (tensor(out, shape), stats)
}

/// Gradients of [`bn_forward`] for `x` (when `need_dx`), `gamma` and `beta`.
fn bn_backward(
    grad: &FlexTensor,
    x: &FlexTensor,
    gamma: &FlexTensor,
    stats: &Stats,
    need_dx: bool,
) -> (Option<FlexTensor>, FlexTensor, FlexTensor) {
    awake::keep_awake();
    let (grad, x, gamma) = (contiguous(grad), contiguous(x), contiguous(gamma));
    let shape = x.shape();
    let (n, c, s) = ncs(&shape);
    let (gs, xs) = (
        grad.as_slice::<f32>().unwrap(),
        x.as_slice::<f32>().unwrap(),
    );
    // Short rows ([`short_rows`]) run over whole samples with the constants per value.
    let short = short_rows(s);
    let per = |v: &[f32]| per_value(v, s);
    // After a fused ReLU: the gradient where the output was positive (the forward's own
    // arithmetic, so the mask is exactly its), zero elsewhere.
    let masked: Vec<f32>;
    let gs = match stats.relu {
        false => gs,
        true => {
            let mut m = vec![0f32; gs.len()];
            if short {
                let (a, b) = (per(&stats.scale), per(&stats.offset));
                m.par_chunks_mut(c * s).enumerate().for_each(|(i, o)| {
                    let r = i * c * s..(i + 1) * c * s;
                    relu_mask(o, &gs[r.clone()], &xs[r], &a, &b);
                });
            } else if s > 0 {
                m.par_chunks_mut(s).enumerate().for_each(|(row, o)| {
                    let (ch, r) = (row % c, row * s..(row + 1) * s);
                    let (a, b) = (stats.scale[ch], stats.offset[ch]);
                    relu_mask_row(o, &gs[r.clone()], &xs[r], a, b);
                });
            }
            masked = m;
            &masked
        }
    };
    let gm = gamma.as_slice::<f32>().unwrap();
    let sums: Vec<[f64; 2]> = match short {
        true => {
            let mean = per(&stats.mean);
            sample_sums(n, c, s, |i, a1, a2| {
                let r = i * c * s..(i + 1) * c * s;
                let vals = gs[r.clone()].iter().zip(&xs[r]).zip(&mean);
                for (((&g, &x), &mu), (a1, a2)) in vals.zip(a1.iter_mut().zip(a2)) {
                    *a1 += g;
                    *a2 += g * (x - mu);
                }
            })
        }
        false => (0..c)
            .into_par_iter()
            .map(|ch| {
                channel_sums(n, |i| {
                    let r = (i * c + ch) * s..(i * c + ch + 1) * s;
                    row_dot(&gs[r.clone()], &xs[r], stats.mean[ch])
                })
            })
            .collect(),
    };
    let dbeta: Vec<f32> = sums.iter().map(|s| s[0] as f32).collect();
    let dgamma: Vec<f32> = (sums.iter().zip(&stats.inv_std))
        .map(|(s, &inv_std)| (s[1] * inv_std as f64) as f32)
        .collect();
    let dx = need_dx.then(|| {
        let m = (n * s) as f32;
        // dx = g·σ⁻¹ (dy − Σdy/M − x̂ Σ(dy x̂)/M) = k1 dy + k2 x + k3 per channel.
        let (mut k1, mut k2, mut k3) = (vec![0f32; c], vec![0f32; c], vec![0f32; c]);
        for ch in 0..c {
            k1[ch] = gm[ch] * stats.inv_std[ch];
            k2[ch] = -k1[ch] * stats.inv_std[ch] * dgamma[ch] / m;
            k3[ch] = -k1[ch] * dbeta[ch] / m - k2[ch] * stats.mean[ch];
        }
        let ks = short.then(|| [per(&k1), per(&k2), per(&k3)]);
        let mut dx = vec![0f32; n * c * s];
        if s > 0 {
            dx.par_chunks_mut(c * s).enumerate().for_each(|(i, d)| {
                let r = i * c * s..(i + 1) * c * s;
                let (g, x) = (&gs[r.clone()], &xs[r]);
                match &ks {
                    Some([k1, k2, k3]) => dx_values(d, g, x, [k1, k2, k3]),
                    None => {
                        let rows = d.chunks_mut(s).zip(g.chunks(s).zip(x.chunks(s)));
                        for (ch, (d, (g, x))) in rows.enumerate() {
                            dx_row(d, g, x, [k1[ch], k2[ch], k3[ch]]);
                        }
                    }
                }
            });
        }
        tensor(dx, shape.clone())
    });
    (dx, vector(dgamma), vector(dbeta))
}

/// Shapes of one convolution.
#[derive(Debug, Clone, Copy)]
struct Geometry {
    n: usize,
    c: usize,
    h: usize,
    w: usize,
    c_out: usize,
    kh: usize,
    kw: usize,
    stride: [usize; 2],
    /// Top and left padding (bottom and right only shape `ho`, `wo`).
    pad: [usize; 2],
    ho: usize,
    wo: usize,
}

impl Geometry {
    fn new(x: &FlexTensor, w: &FlexTensor, stride: [usize; 2], padding: [usize; 4]) -> Self {
        let [n, c, h, wi] = x.shape().dims();
        let [c_out, cw, kh, kw] = w.shape().dims();
        assert_eq!(c, cw, "conv2d: input has {c} channels, the weight {cw}");
        let [top, left, bottom, right] = padding;
        let ho = (h + top + bottom - kh) / stride[0] + 1;
        let wo = (wi + left + right - kw) / stride[1] + 1;
        Geometry {
            n,
            c,
            h,
            w: wi,
            c_out,
            kh,
            kw,
            stride,
            pad: [top, left],
            ho,
            wo,
        }
    }

    /// Rows of the im2col matrix (`C * kh * kw`) and output pixels per sample.
    fn ck(&self) -> usize {
        self.c * self.kh * self.kw
    }

    fn p(&self) -> usize {
        self.ho * self.wo
    }

    /// Whether the im2col matrix of a sample is the sample itself (1x1, stride 1, no padding).
    fn identity_col(&self) -> bool {
        self.kh == 1
            && self.kw == 1
            && self.stride == [1, 1]
            && self.pad == [0, 0]
            && self.ho == self.h
            && self.wo == self.w
    }

    /// Whether samples are grouped into one product (small output maps, where a product per
    /// sample would be a thin matrix): at most 64 output pixels (8x8). Measured: ResNet-18 at
    /// 32x32 (maps 8x8 down to 1x1) trains 1.7x faster so; at 14x14 (small-cnn's second
    /// layer) one product per sample is 1.4x faster.
    fn batched(&self) -> bool {
        self.p() <= 64
    }

    /// Output pixels per im2col tile: the tile (`C * kh * kw` rows) stays about 1 MiB, and
    /// when the map is cut, a multiple of 64 pixels (the rows of `gemm`'s widest kernel): tiles
    /// of 227 left a 35-row tail each (ResNet-50's 128-channel stride-2 layer at batch 1: x1.09).
    fn tile(&self) -> usize {
        ((1 << 18) / self.ck().max(1) / 64 * 64)
            .max(64)
            .min(self.p().max(1))
    }

    /// Output pixels per tile when one sample's tiles are shared among `threads`: at most
    /// [`Self::tile`], and at most a `threads`-th of the map (a multiple of 16, the vector
    /// width of `gemm`'s kernel) so that every thread gets a tile.
    fn shared_tile(&self, threads: usize) -> usize {
        let share = self.p().div_ceil(threads.max(1)).next_multiple_of(16);
        self.tile().min(share)
    }
}

/// What a convolution does to each output row after its product, in the same pass:
/// `y * scale + shift` (a bias is a shift with no scale), `+ residual`, then a ReLU.
struct Epilogue<'a> {
    scale: Option<&'a [f32]>,
    shift: &'a [f32],
    /// `[N, C_out, P]`, added after the shift.
    residual: Option<&'a [f32]>,
    relu: bool,
    /// Nothing to do: a zero bias alone (the bias-free convolutions of training). Set by
    /// [`Epilogue::new`], the only constructor.
    noop: bool,
}

impl<'a> Epilogue<'a> {
    fn new(
        scale: Option<&'a [f32]>,
        shift: &'a [f32],
        residual: Option<&'a [f32]>,
        relu: bool,
    ) -> Self {
        let noop =
            scale.is_none() && residual.is_none() && !relu && shift.iter().all(|&b| b == 0.0);
        Epilogue {
            scale,
            shift,
            residual,
            relu,
            noop,
        }
    }

    /// The bias alone (training and plain convolutions).
    fn bias(bias: &'a [f32]) -> Self {
        Self::new(None, bias, None, false)
    }

    /// Finishes output row `o` of sample `s` in place (`row` holds the product).
    fn apply(&self, s: usize, o: usize, row: &mut [f32]) {
        self.apply_span(s, o, 0, row.len(), row);
    }

    /// Finishes the values `start..start + row.len()` of output row `o` (`p` long) of sample
    /// `s` in place.
    fn apply_span(&self, s: usize, o: usize, start: usize, p: usize, row: &mut [f32]) {
        if self.noop {
            return;
        }
        epilogue_span(self, s, o, start, p, row)
    }
}

wide_fn! {
/// [`Epilogue::apply_span`].
fn epilogue_span(ep: &Epilogue, s: usize, o: usize, start: usize, p: usize, row: &mut [f32]) {
    let t = ep.shift[o];
    match ep.scale {
        Some(scale) => row.iter_mut().for_each(|v| *v = *v * scale[o] + t),
        None => row.iter_mut().for_each(|v| *v += t),
    }
    if let Some(r) = ep.residual {
        let c_out = ep.shift.len();
        let r = &r[(s * c_out + o) * p + start..][..row.len()];
        row.iter_mut().zip(r).for_each(|(v, &r)| *v += r);
    }
    if ep.relu {
        // `x < 0`, not `max`: a NaN stays NaN, as in Burn's and PyTorch's ReLU.
        row.iter_mut()
            .for_each(|v| *v = if *v < 0.0 { 0.0 } else { *v });
    }
}
}

/// Convolution as im2col + `gemm`, one sample per task (or, for batches smaller than the
/// thread count, one sample at a time with the threads inside `gemm`).
mod conv {
    use super::{
        Epilogue, FlexTensor, Geometry, Out, Shape, as_uninit, contiguous, row_sum, tensor,
        zeroed_chunks,
    };
    use gemm::{Parallelism, gemm};
    use rayon::prelude::*;
    use std::cell::RefCell;

    thread_local! {
        static POOL: RefCell<Vec<Vec<f32>>> = const { RefCell::new(Vec::new()) };
    }

    /// A scratch buffer (im2col matrices, reordered gradients) from a per-thread pool, handed
    /// back when dropped: allocated, page-faulted and zeroed once instead of on every call.
    /// It holds whatever its last user wrote, so users write every element before reading it.
    pub(super) struct Scratch {
        buf: Vec<f32>,
        len: usize,
    }

    impl Scratch {
        /// Buffers above this many values (256 MiB) are freed rather than kept.
        const KEEP: usize = 1 << 26;

        pub(super) fn new(len: usize) -> Self {
            let mut buf = POOL.with(|p| p.borrow_mut().pop()).unwrap_or_default();
            if buf.len() < len {
                buf.resize(len, 0.0);
            }
            Scratch { buf, len }
        }
    }

    impl std::ops::Deref for Scratch {
        type Target = [f32];
        fn deref(&self) -> &[f32] {
            &self.buf[..self.len]
        }
    }

    impl std::ops::DerefMut for Scratch {
        fn deref_mut(&mut self) -> &mut [f32] {
            &mut self.buf[..self.len]
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            if self.buf.len() <= Self::KEEP {
                let buf = std::mem::take(&mut self.buf);
                // (During thread teardown the pool may be gone: then the buffer is just freed.)
                let _ = POOL.try_with(|p| p.borrow_mut().push(buf));
            }
        }
    }

    /// One run of output pixels on one output row, for one kernel tap: it starts at offset `q`
    /// of the tile and is `len` long; `inside` is `Some((a, b, y, first))` when pixels `a..b`
    /// of the run (relative to its start) read input row `y` from column `first` on, one every
    /// stride; the others fall in the padding.
    #[derive(Debug, Clone, Copy)]
    struct Run {
        q: usize,
        len: usize,
        inside: Option<(usize, usize, usize, usize)>,
    }

    /// The runs of every kernel tap (index `i * kw + j`) over the output pixels `p0..p0 + t`:
    /// the padding and stride arithmetic done once per tile, then replayed for every channel
    /// and sample by [`im2col_channel`] and [`col2im_channel`].
    struct Plan {
        runs: Vec<Vec<Run>>,
        /// Every tap, in order.
        all: Vec<usize>,
        /// The tile's first output pixel and length.
        p0: usize,
        t: usize,
        /// For a [`Self::shifted`] convolution, per kernel column `j`, over the tile: all ones
        /// where the shifted window reads the pixel's own row, zero where it wraps around a
        /// row edge to the neighbouring row; empty where nothing wraps (the centre column).
        keep: Vec<Vec<u32>>,
    }

    impl Plan {
        fn new(g: &Geometry, p0: usize, t: usize) -> Self {
            let (s, pad) = (g.stride[1], g.pad[1]);
            let runs: Vec<Vec<Run>> = (0..g.kh * g.kw)
                .map(|tap| {
                    let (i, j) = (tap / g.kw, tap % g.kw);
                    // Output columns lo..hi read an input column inside the image.
                    let lo = pad.saturating_sub(j).div_ceil(s);
                    let hi = if g.w + pad > j {
                        ((g.w + pad - j - 1) / s + 1).min(g.wo)
                    } else {
                        0
                    };
                    let (mut p, end, mut runs) = (p0, p0 + t, Vec::new());
                    while p < end {
                        let (oy, ox0) = (p / g.wo, p % g.wo);
                        let len = (g.wo - ox0).min(end - p);
                        let y = (oy * g.stride[0] + i).wrapping_sub(g.pad[0]);
                        let (a, b) = (lo.clamp(ox0, ox0 + len), hi.clamp(ox0, ox0 + len));
                        let inside =
                            (y < g.h && a < b).then(|| (a - ox0, b - ox0, y, a * s + j - pad));
                        runs.push(Run {
                            q: p - p0,
                            len,
                            inside,
                        });
                        p += len;
                    }
                    runs
                })
                .collect();
            let keep = (0..g.kw)
                .map(|j| {
                    let dj = j as isize - pad as isize;
                    if !Self::shifted(g) || dj == 0 {
                        return Vec::new();
                    }
                    let inside = |p: usize| (0..g.w as isize).contains(&((p % g.w) as isize + dj));
                    (p0..p0 + t)
                        .map(|p| if inside(p) { !0 } else { 0 })
                        .collect()
                })
                .collect();
            Plan {
                all: (0..runs.len()).collect(),
                runs,
                p0,
                t,
                keep,
            }
        }

        /// For a stride-1 convolution whose output rows are as wide as the input's, tap
        /// `(i, j)` reads pixel `p + shift` for output pixel `p`: its im2col row is one shifted
        /// copy of the channel, masked by [`Self::keep`] where it wraps around a row edge.
        fn shifted(g: &Geometry) -> bool {
            g.stride == [1, 1] && g.wo == g.w
        }

        /// For a [`Self::shifted`] convolution, tap `tap`'s window over the tile: `(lo, hi,
        /// start)`, where tile pixels `lo..hi` read input pixels `start..start + hi - lo` of
        /// the channel and the others fall above or below it.
        fn window(&self, g: &Geometry, tap: usize) -> (usize, usize, usize) {
            let (hw, t) = ((g.h * g.w) as isize, self.t as isize);
            let shift = self.shift(g, tap);
            let lo = (-shift).clamp(0, t);
            let hi = (hw - shift).clamp(lo, t);
            // (An empty window starts at 0, so that its empty slice stays in bounds.)
            let start = if hi > lo { lo + shift } else { 0 };
            (lo as usize, hi as usize, start as usize)
        }

        /// For a [`Self::shifted`] convolution, where tap `tap` reads the tile's first pixel,
        /// relative to the channel's start (negative above it).
        fn shift(&self, g: &Geometry, tap: usize) -> isize {
            self.p0 as isize
                + ((tap / g.kw) as isize - g.pad[0] as isize) * g.w as isize
                + (tap % g.kw) as isize
                - g.pad[1] as isize
        }

        /// For a [`Self::shifted`] convolution, a channel with zeros around it such that
        /// every tap's window over the tile is inside: `(lead, len)`, the channel at `lead`
        /// in a buffer of `len` values.
        fn padded(&self, g: &Geometry) -> (usize, usize) {
            let lead = g.pad[0] * g.w + g.pad[1];
            let last = self.shift(g, g.kh * g.kw - 1) + self.t as isize;
            (lead, lead + (g.h * g.w).max(last.max(0) as usize))
        }

        /// The tiles of `tile` output pixels of a per-sample convolution, `(p0, t, plan)`:
        /// planned once per call and shared by every sample.
        fn tiles(g: &Geometry, tile: usize) -> Vec<(usize, usize, Plan)> {
            let p = g.p();
            (0..p)
                .step_by(tile)
                .map(|p0| {
                    let t = tile.min(p - p0);
                    (p0, t, Plan::new(g, p0, t))
                })
                .collect()
        }

        /// The taps that read at least one input pixel: on maps as small as the kernel's
        /// reach (ResNet's last stage at 1x1), the others read only padding, so their im2col
        /// rows are zero and their products can be skipped.
        fn live(&self) -> Vec<usize> {
            (0..self.runs.len())
                .filter(|&tap| self.runs[tap].iter().any(|r| r.inside.is_some()))
                .collect()
        }
    }

    wide_fn! {
    /// Copies one channel `xc` (`[H, W]`) into its im2col rows, one per tap of `taps`, `ld`
    /// apart in `rows`: zeros where the window leaves the image.
    fn im2col_channel(
        g: &Geometry,
        plan: &Plan,
        taps: &[usize],
        xc: &[f32],
        rows: &mut [f32],
        ld: usize,
    ) {
        let sw = g.stride[1];
        if Plan::shifted(g) {
            for (l, &tap) in taps.iter().enumerate() {
                let row = &mut rows[l * ld..][..plan.t];
                let (lo, hi, start) = plan.window(g, tap);
                row[..lo].fill(0.0);
                row[hi..].fill(0.0);
                let src = &xc[start..start + (hi - lo)];
                match &plan.keep[tap % g.kw][..] {
                    [] => row[lo..hi].copy_from_slice(src),
                    // (One pass: copying, then zeroing the wrapped entries one column at a
                    // time, touched most cache lines twice; seed 003's CNN x1.04 on im2col.)
                    keep => row[lo..hi]
                        .iter_mut()
                        .zip(src)
                        .zip(&keep[lo..hi])
                        .for_each(|((d, &v), &k)| *d = f32::from_bits(v.to_bits() & k)),
                }
            }
            return;
        }
        for (l, &tap) in taps.iter().enumerate() {
            let row = &mut rows[l * ld..];
            for &Run { q, len, inside } in &plan.runs[tap] {
                let dst = &mut row[q..q + len];
                let Some((a, b, y, first)) = inside else {
                    dst.fill(0.0);
                    continue;
                };
                // (Guarded: most runs have no padding, and an empty fill is still a call.)
                if a > 0 {
                    dst[..a].fill(0.0);
                }
                if b < len {
                    dst[b..].fill(0.0);
                }
                let src = &xc[y * g.w..][..g.w];
                match sw {
                    1 => dst[a..b].copy_from_slice(&src[first..first + (b - a)]),
                    _ => dst[a..b]
                        .iter_mut()
                        .zip(src[first..].iter().step_by(sw))
                        .for_each(|(o, &v)| *o = v),
                }
            }
        }
    }
    }

    wide_fn! {
    /// [`im2col_channel`] for a [`Plan::shifted`] convolution from the channel with zeros
    /// around it (`xpad`, the channel at `lead`: [`Plan::padded`]): each row is one masked
    /// copy, with no zero fills at its ends (on ResNet-18's 8x8 to 1x1 maps, rows of 64 to 1
    /// values, the fills' `memset` calls and the window arithmetic outweighed the copies).
    fn im2col_padded(
        g: &Geometry,
        plan: &Plan,
        taps: &[usize],
        xpad: (&[f32], usize),
        rows: &mut [f32],
        ld: usize,
    ) {
        let (xpad, lead) = xpad;
        for (l, &tap) in taps.iter().enumerate() {
            let row = &mut rows[l * ld..][..plan.t];
            let start = (lead as isize + plan.shift(g, tap)) as usize;
            let src = &xpad[start..start + plan.t];
            match &plan.keep[tap % g.kw][..] {
                [] => row.iter_mut().zip(src).for_each(|(d, &v)| *d = v),
                keep => row
                    .iter_mut()
                    .zip(src)
                    .zip(keep)
                    .for_each(|((d, &v), &k)| *d = f32::from_bits(v.to_bits() & k)),
            }
        }
    }
    }

    wide_fn! {
    /// The inverse of [`im2col_padded`]: adds each tap's gradient row, masked, into the
    /// channel's zero-padded gradient `dxpad` (the channel at `lead`).
    fn col2im_padded(
        g: &Geometry,
        plan: &Plan,
        taps: &[usize],
        rows: &[f32],
        dxpad: &mut [f32],
        lead: usize,
        ld: usize,
    ) {
        for (l, &tap) in taps.iter().enumerate() {
            let row = &rows[l * ld..][..plan.t];
            let start = (lead as isize + plan.shift(g, tap)) as usize;
            let dst = dxpad[start..start + plan.t].iter_mut().zip(row);
            match &plan.keep[tap % g.kw][..] {
                [] => dst.for_each(|(d, &v)| *d += v),
                keep => dst
                    .zip(keep)
                    .for_each(|((d, &v), &k)| *d += f32::from_bits(v.to_bits() & k)),
            }
        }
    }
    }

    wide_fn! {
    /// Adds one channel's im2col-shaped gradient rows (one per tap of `taps`, `ld` apart) back
    /// into `dxc` (`[H, W]`).
    fn col2im_channel(
        g: &Geometry,
        plan: &Plan,
        taps: &[usize],
        rows: &[f32],
        dxc: &mut [f32],
        ld: usize,
    ) {
        let sw = g.stride[1];
        if Plan::shifted(g) {
            for (l, &tap) in taps.iter().enumerate() {
                let row = &rows[l * ld..][..plan.t];
                let (lo, hi, start) = plan.window(g, tap);
                let dst = dxc[start..start + (hi - lo)].iter_mut().zip(&row[lo..hi]);
                match &plan.keep[tap % g.kw][..] {
                    [] => dst.for_each(|(d, &v)| *d += v),
                    keep => dst
                        .zip(&keep[lo..hi])
                        .for_each(|((d, &v), &k)| *d += f32::from_bits(v.to_bits() & k)),
                }
            }
            return;
        }
        for (l, &tap) in taps.iter().enumerate() {
            let row = &rows[l * ld..];
            for &Run { q, inside, .. } in &plan.runs[tap] {
                let Some((a, b, y, first)) = inside else {
                    continue;
                };
                let dst = &mut dxc[y * g.w..][..g.w];
                let src = &row[q + a..q + b];
                match sw {
                    // (Its own loop: `step_by(1)` does not vectorise.)
                    1 => dst[first..first + src.len()]
                        .iter_mut()
                        .zip(src)
                        .for_each(|(d, &v)| *d += v),
                    _ => dst[first..]
                        .iter_mut()
                        .step_by(sw)
                        .zip(src)
                        .for_each(|(d, &v)| *d += v),
                }
            }
        }
    }
    }

    /// Copies the im2col columns of `plan`'s tile of sample `x` (`[C, H, W]`) into `col`
    /// (`C * kh * kw` rows `(c, i, j)`, `ld` apart), channels in parallel when `parallel`
    /// (a batch smaller than the thread count, whose samples are not parallel tasks).
    fn im2col(g: &Geometry, plan: &Plan, x: &[f32], col: &mut [f32], ld: usize, parallel: bool) {
        let (hw, k) = (g.h * g.w, g.kh * g.kw);
        let channel = |(c, rows): (usize, &mut [f32])| {
            im2col_channel(g, plan, &plan.all, &x[c * hw..], rows, ld);
        };
        match parallel && k * ld > 0 {
            true => col.par_chunks_mut(k * ld).enumerate().for_each(channel),
            false => (0..g.c).for_each(|c| channel((c, &mut col[c * k * ld..]))),
        }
    }

    /// Adds the im2col-shaped gradient `col` of `plan`'s tile (rows `ld` apart) back into `dx`
    /// (`[C, H, W]`).
    fn col2im(g: &Geometry, plan: &Plan, col: &[f32], dx: &mut [f32], ld: usize) {
        let (hw, k) = (g.h * g.w, g.kh * g.kw);
        for c in 0..g.c {
            col2im_channel(
                g,
                plan,
                &plan.all,
                &col[c * k * ld..],
                &mut dx[c * hw..],
                ld,
            );
        }
    }

    /// `dst (m x n) = [dst +] lhs (m x k) · rhs (k x n)`, each operand given as its slice and
    /// its column and row strides. `gemm` packs its left operand, and it computes `dstᵀ = rhsᵀ ·
    /// lhsᵀ` when `dst` is row-major: then a row-major `rhs` is gathered column by column
    /// into its packed layout, which a column-major `dst` avoids (see [`Sums`]).
    pub(super) fn matmul(
        dims: [usize; 3],
        (dst, dst_cs, dst_rs): (&mut [f32], usize, usize),
        accumulate: bool,
        lhs: (&[f32], usize, usize),
        rhs: (&[f32], usize, usize),
        par: Parallelism,
    ) {
        let dst = Out::new(as_uninit(dst));
        // SAFETY: `dst` is borrowed whole here; with `accumulate` it was initialised.
        unsafe { matmul_into(dims, (dst, dst_cs, dst_rs), accumulate, lhs, rhs, par) }
    }

    /// [`matmul`] into an output that other tasks write meanwhile, at other values.
    ///
    /// # Safety
    /// No other task reads or writes the `m x n` values given by `dst`'s strides; with
    /// `accumulate` they are initialised.
    pub(super) unsafe fn matmul_into(
        [m, n, k]: [usize; 3],
        (dst, dst_cs, dst_rs): (Out, usize, usize),
        accumulate: bool,
        lhs: (&[f32], usize, usize),
        rhs: (&[f32], usize, usize),
        par: Parallelism,
    ) {
        if m == 0 || n == 0 {
            return;
        }
        assert!(dst.len > (m - 1) * dst_rs + (n - 1) * dst_cs);
        // A product at most 16 wide on one side, deep, with both operands contiguous along
        // the depth (a weight gradient `dY · colᵀ` with 16 output channels): in blocks of
        // 16 x 16, which `gemm` computes as dot products (its horizontal kernels) instead of
        // one vector against six broadcasts, unpacked; seed 003's first layer before the
        // direct convolution: 0.51 → 0.34 ms.
        if lhs.1 == 1 && rhs.2 == 1 && k >= DOT_DEPTH && m.min(n) <= 16 && m * n > 256 {
            for m0 in (0..m).step_by(16) {
                for n0 in (0..n).step_by(16) {
                    let (mb, nb) = (16.min(m - m0), 16.min(n - n0));
                    let at = m0 * dst_rs + n0 * dst_cs;
                    let block = Out {
                        // SAFETY: inside `dst` (checked above).
                        ptr: unsafe { dst.ptr.add(at) },
                        len: dst.len - at,
                    };
                    // SAFETY: a block of the values the caller gave.
                    unsafe {
                        matmul_into(
                            [mb, nb, k],
                            (block, dst_cs, dst_rs),
                            accumulate,
                            (&lhs.0[m0 * lhs.2..], lhs.1, lhs.2),
                            (&rhs.0[n0 * rhs.1..], rhs.1, rhs.2),
                            par,
                        );
                    }
                }
            }
            return;
        }
        // SAFETY: the operands are slices whose extents the callers size from the same
        // geometry (checked above for the destination); gemm reads lhs/rhs and writes dst only
        // inside the m x k, k x n and m x n index ranges given by the strides.
        unsafe {
            gemm(
                m,
                n,
                k,
                dst.ptr,
                dst_cs as isize,
                dst_rs as isize,
                accumulate,
                lhs.0.as_ptr(),
                lhs.1 as isize,
                lhs.2 as isize,
                rhs.0.as_ptr(),
                rhs.1 as isize,
                rhs.2 as isize,
                if accumulate { 1.0 } else { 0.0 },
                1.0,
                false,
                false,
                false,
                par,
            )
        }
    }

    /// The depth from which [`matmul`] runs thin products as dot products (at 196, seed 003's
    /// second layer, they were 1.6x slower).
    const DOT_DEPTH: usize = 512;

    /// The transpose `[cols, rows]` of the row-major `[rows, cols]` matrix `a`.
    fn transpose(a: &[f32], rows: usize, cols: usize) -> Vec<f32> {
        transpose_strided((a, 1, cols), rows, cols)
    }

    /// The transpose `[cols, rows]`, row-major, of the `[rows, cols]` matrix `a` given by its
    /// slice, column and row strides; in 32x32 blocks so that both sides stay in cache, the
    /// output's blocks of rows on the threads (the centre tap of a 512-channel 3x3 weight
    /// streams all 9.4 MB of it).
    fn transpose_strided(
        (a, cs, rs): (&[f32], usize, usize),
        rows: usize,
        cols: usize,
    ) -> Vec<f32> {
        const B: usize = 32;
        zeroed_chunks(rows * cols, B * rows, true, |(i, t)| {
            let c0 = i * B;
            for r0 in (0..rows).step_by(B) {
                for (c, t) in (c0..).zip(t.chunks_mut(rows)) {
                    for r in r0..(r0 + B).min(rows) {
                        t[r] = a[r * rs + c * cs];
                    }
                }
            }
        })
    }

    /// Samples run as parallel tasks when there are enough of them; otherwise `gemm` itself
    /// uses the threads.
    fn parallelism(n: usize) -> (bool, Parallelism) {
        let threads = rayon::current_num_threads();
        match n >= threads {
            true => (true, Parallelism::None),
            false => (false, Parallelism::Rayon(threads)),
        }
    }

    /// A batch-wide im2col layout: the taps kept (those that read the image) and the weight
    /// with only their columns, `[C_out, C * taps]`: the weight itself when every tap is kept,
    /// a strided view of it when one tap is (1x1 maps: the centre), otherwise a copy.
    struct Batched<'a> {
        plan: Plan,
        taps: Vec<usize>,
        w: std::borrow::Cow<'a, [f32]>,
        /// Strides of `w` as the `[C_out, C * taps]` matrix: columns, rows.
        w_strides: [usize; 2],
    }

    impl<'a> Batched<'a> {
        fn new(g: &Geometry, ws: &'a [f32]) -> Self {
            let plan = Plan::new(g, 0, g.p());
            // (At least one tap, zeros, when the whole output reads padding.)
            let taps = Some(plan.live())
                .filter(|t| !t.is_empty())
                .unwrap_or(vec![0]);
            let k = g.kh * g.kw;
            let (w, w_strides) = match taps.len() {
                l if l == k => (std::borrow::Cow::Borrowed(ws), [1, g.ck()]),
                // (No copy of the whole weight streamed for one value in nine: ResNet-18's
                // last stage at 32x32 gathered 9.4 MB per call.)
                1 => (std::borrow::Cow::Borrowed(&ws[taps[0]..]), [k, g.ck()]),
                l => (
                    std::borrow::Cow::Owned(
                        ws.chunks(k)
                            .flat_map(|wc| taps.iter().map(|&tap| wc[tap]))
                            .collect(),
                    ),
                    [1, g.c * l],
                ),
            };
            Batched {
                plan,
                taps,
                w,
                w_strides,
            }
        }

        /// The kept weight as a `gemm` operand `[C_out, C * taps]` (slice, column and row
        /// strides).
        fn lhs(&self) -> (&[f32], usize, usize) {
            (&self.w, self.w_strides[0], self.w_strides[1])
        }

        /// Its transpose, `[C * taps, C_out]`, in place.
        fn lhs_t(&self) -> (&[f32], usize, usize) {
            (&self.w, self.w_strides[1], self.w_strides[0])
        }

        /// For the input gradient when only the centre tap is kept, the transpose copied
        /// row-major: read in place, strided by 9, its products ran 3x slower (ResNet-18's
        /// last stage at 32x32). Elsewhere the copy cost more than it saved (B x0.92).
        fn weight_t(&self, g: &Geometry, need: bool) -> Option<Vec<f32>> {
            (need && self.taps.len() == 1 && g.kh * g.kw > 1)
                .then(|| transpose_strided(self.lhs(), g.c_out, self.rows(g)))
        }

        /// Rows of the im2col matrix: `C * taps`.
        fn rows(&self, g: &Geometry) -> usize {
            g.c * self.taps.len()
        }

        /// Samples per product and how the threads are used: groups whose im2col matrix
        /// stays near 1 MiB (at least 128 columns), one group per task when there are as
        /// many groups as threads, otherwise one group at a time with the threads in `gemm`.
        fn group(g: &Geometry, rows: usize) -> (usize, bool, Parallelism) {
            let threads = rayon::current_num_threads();
            let cols = ((1 << 18) / rows.max(1)).max(128);
            let size = (cols / g.p().max(1)).clamp(1, g.n.div_ceil(threads).max(1));
            match g.n.div_ceil(size) >= threads {
                true => (size, true, Parallelism::None),
                false => (size, false, Parallelism::Rayon(threads)),
            }
        }

        /// The im2col matrix of a group of `ns` samples `xs`, `[C * taps, ns * P]` (sample
        /// `s` in columns `s * P..(s + 1) * P`).
        fn col(&self, g: &Geometry, xs: &[f32], ns: usize) -> Scratch {
            let (p, hw, l) = (g.p(), g.h * g.w, self.taps.len());
            let np = ns * p;
            let mut col = Scratch::new(self.rows(g) * np);
            if !col.is_empty() && Plan::shifted(g) {
                let (lead, len) = self.plan.padded(g);
                let mut xpad = vec![0f32; len];
                for (c, rows) in col.chunks_mut(l * np).enumerate() {
                    for s in 0..ns {
                        xpad[lead..lead + hw].copy_from_slice(&xs[(s * g.c + c) * hw..][..hw]);
                        let xpad = (&xpad[..], lead);
                        im2col_padded(g, &self.plan, &self.taps, xpad, &mut rows[s * p..], np);
                    }
                }
            } else if !col.is_empty() {
                for (c, rows) in col.chunks_mut(l * np).enumerate() {
                    for s in 0..ns {
                        let xc = &xs[(s * g.c + c) * hw..][..hw];
                        im2col_channel(g, &self.plan, &self.taps, xc, &mut rows[s * p..], np);
                    }
                }
            }
            col
        }

        /// The weight gradient `[C_out, C, kh, kw]` from its kept columns (zeros elsewhere),
        /// output channels in parallel: the zeros are most of it (8/9 on 1x1 maps, 9.4 MB
        /// per 512-channel layer of ResNet-18 at 32x32), and one thread zeroing them all
        /// took most of those layers' weight-gradient time.
        fn scatter_dw(&self, g: &Geometry, dwl: Vec<f32>) -> Vec<f32> {
            let (k, l) = (g.kh * g.kw, self.taps.len());
            if l == k {
                return dwl;
            }
            zeroed_chunks(g.c_out * g.c * k, g.c * k, true, |(o, dw)| {
                let kept = dwl[o * g.c * l..][..g.c * l].chunks(l.max(1));
                for (d, s) in dw.chunks_mut(k).zip(kept) {
                    self.taps.iter().zip(s).for_each(|(&tap, &v)| d[tap] = v);
                }
            })
        }
    }

    /// Forward of a convolution with small output maps, one product per group of samples
    /// ([`Batched::group`]): `[C_out, ns * P] = W · col`, then reordered to `[ns, C_out, P]`
    /// and finished by the epilogue.
    fn forward_batched(xs: &[f32], ws: &[f32], ep: &Epilogue, g: Geometry) -> FlexTensor {
        let (p, in_size, out_size) = (g.p(), g.c * g.h * g.w, g.c_out * g.p());
        let b = Batched::new(&g, ws);
        let ck = b.rows(&g);
        let (size, split, par) = Batched::group(&g, ck);
        let group = |(i, ys): (usize, &mut [f32])| {
            let (ns, np) = (ys.len() / out_size, ys.len() / out_size * p);
            let col = b.col(&g, &xs[i * size * in_size..][..ns * in_size], ns);
            let mut yt = Scratch::new(g.c_out * np);
            matmul(
                [g.c_out, np, ck],
                (&mut yt, 1, np),
                false,
                b.lhs(),
                (&col, 1, np),
                par,
            );
            for (s, ys) in ys.chunks_mut(out_size).enumerate() {
                for (o, row) in ys.chunks_mut(p).enumerate() {
                    row.copy_from_slice(&yt[o * np + s * p..][..p]);
                    ep.apply(i * size + s, o, row);
                }
            }
        };
        let y = zeroed_chunks(g.n * out_size, size * out_size, split, group);
        tensor(y, Shape::new([g.n, g.c_out, g.ho, g.wo]))
    }

    /// Backward of [`forward_batched`], per group of samples: `dY` reordered to
    /// `[C_out, ns * P]`, `dW += dY · colᵀ` and `dcol = Wᵀ · dY`, then `col2im` per sample.
    fn backward_batched(
        gs: &[f32],
        xs: &[f32],
        ws: &[f32],
        g: Geometry,
        [need_x, need_w, need_b]: [bool; 3],
    ) -> (Option<FlexTensor>, Option<FlexTensor>, Option<FlexTensor>) {
        let (p, hw, in_size) = (g.p(), g.h * g.w, g.c * g.h * g.w);
        let b = Batched::new(&g, ws);
        let (ck, l) = (b.rows(&g), b.taps.len());
        let (size, split, par) = Batched::group(&g, ck);
        let mut dx = vec![0f32; if need_x { g.n * in_size } else { 0 }];
        let wt = b.weight_t(&g, need_x);
        let init = || Sums::new(&g, ck, need_w);
        let group = |mut acc: Sums, i: usize, dxg: Option<&mut [f32]>| -> Sums {
            let s0 = i * size;
            let ns = size.min(g.n - s0);
            let np = ns * p;
            let mut dyt = Scratch::new(g.c_out * np);
            for (o, row) in dyt.chunks_mut(np).enumerate() {
                for s in 0..ns {
                    row[s * p..][..p].copy_from_slice(&gs[((s0 + s) * g.c_out + o) * p..][..p]);
                }
                if need_b {
                    acc.db[o] += row_sum(row) as f64;
                }
            }
            if need_w {
                let col = b.col(&g, &xs[s0 * in_size..][..ns * in_size], ns);
                matmul(
                    [g.c_out, ck, np],
                    acc.dw_dst(),
                    true,
                    (&dyt, 1, np),
                    (&col, np, 1),
                    par,
                );
            }
            if let Some(dxg) = dxg {
                let mut dcol = Scratch::new(ck * np);
                matmul(
                    [ck, np, g.c_out],
                    (&mut dcol, 1, np),
                    false,
                    wt.as_ref().map_or(b.lhs_t(), |wt| (wt, 1, g.c_out)),
                    (&dyt, 1, np),
                    par,
                );
                let (lead, len) = b.plan.padded(&g);
                let mut dxpad = vec![0f32; if Plan::shifted(&g) { len } else { 0 }];
                for (s, d) in dxg.chunks_mut(in_size).enumerate() {
                    for (c, dxc) in d.chunks_mut(hw).enumerate() {
                        let rows = &dcol[c * l * np + s * p..];
                        match Plan::shifted(&g) {
                            true => {
                                col2im_padded(&g, &b.plan, &b.taps, rows, &mut dxpad, lead, np);
                                dxc.copy_from_slice(&dxpad[lead..lead + hw]);
                                dxpad.fill(0.0);
                            }
                            false => col2im_channel(&g, &b.plan, &b.taps, rows, dxc, np),
                        }
                    }
                }
            }
            acc
        };
        let groups = g.n.div_ceil(size);
        let sums = Sums::fold(split, groups, &mut dx, size * in_size, init, group);
        Sums::tensors(sums, dx, &g, [need_x, need_w, need_b], |dw| {
            b.scatter_dw(&g, dw)
        })
    }

    wide_fn! {
    /// `a += b` value by value.
    fn add_into(a: &mut [f32], b: &[f32]) {
        a.iter_mut().zip(b).for_each(|(x, y)| *x += y);
    }
    }

    /// A task's weight- and bias-gradient sums, merged across tasks at the end. The weight's
    /// are the `[C_out, rows]` matrix of the products `dW += dY · colᵀ`, column-major when
    /// the batch's im2col matrices are larger than `dW` (`N·P > 4·C_out`): `gemm` computes a
    /// product with a row-major destination as its transpose and gathers its right operand,
    /// the im2col matrix, into its packed layout on every product (seed 003's CNN: 13 % of
    /// its step); a column-major `dW` costs one transpose per call instead (B x0.92 when
    /// that was done for the small maps' `dW`s as well). The direct convolution keeps its
    /// weight sums in its own layout here too ([`Sums::with_len`]).
    pub(super) struct Sums {
        pub(super) dw: Vec<f32>,
        db: Vec<f64>,
        /// Columns of the weight matrix (`C * taps`) and its layout.
        rows: usize,
        column_major: bool,
    }

    impl Sums {
        /// Zero sums for `g`, the weight's over `rows` columns when `need_w`.
        fn new(g: &Geometry, rows: usize, need_w: bool) -> Self {
            Sums {
                dw: vec![0f32; if need_w { g.c_out * rows } else { 0 }],
                db: vec![0f64; g.c_out],
                rows,
                column_major: g.n * g.p() > 4 * g.c_out,
            }
        }

        /// Zero sums of `dw_len` weight values in the caller's own layout (left as they are by
        /// [`Self::tensors`]) and `c_out` biases.
        pub(super) fn with_len(dw_len: usize, c_out: usize) -> Self {
            Sums {
                dw: vec![0f32; dw_len],
                db: vec![0f64; c_out],
                rows: dw_len / c_out.max(1),
                column_major: false,
            }
        }

        /// Adds one sample's output gradient `gn` (`[C_out, P]`) to the bias sums.
        pub(super) fn add_bias(&mut self, gn: &[f32], p: usize) {
            for (o, row) in gn.chunks(p.max(1)).enumerate() {
                self.db[o] += row_sum(row) as f64;
            }
        }

        /// The weight's sums as a product's destination (slice, column and row strides).
        fn dw_dst(&mut self) -> (&mut [f32], usize, usize) {
            let c_out = self.dw.len() / self.rows.max(1);
            match self.column_major {
                true => (&mut self.dw, c_out, 1),
                false => (&mut self.dw, 1, self.rows),
            }
        }

        /// The first of `all` with the others added to it in order, value by value, in
        /// parallel blocks of values (the same order for every value: the same result on
        /// every run).
        fn merge_all(mut all: Vec<Sums>) -> Option<Sums> {
            let rest = all.split_off(1.min(all.len()));
            let mut acc = all.pop()?;
            const BLOCK: usize = 1 << 14;
            acc.dw
                .par_chunks_mut(BLOCK)
                .enumerate()
                .for_each(|(k, block)| {
                    for other in &rest {
                        add_into(block, &other.dw[k * BLOCK..][..block.len()]);
                    }
                });
            for other in &rest {
                acc.db.iter_mut().zip(&other.db).for_each(|(x, y)| *x += y);
            }
            Some(acc)
        }

        /// Runs `task(sums, i, dx_i)` for work items `0..count`, item `i` owning `dx`'s
        /// `i`-th chunk of `chunk` values (`None` when `dx` is empty): when `split`, in runs
        /// of consecutive items, two per thread, each run's items in order into sums of its
        /// own, the runs' sums then added in run order ([`Self::merge_all`]); otherwise all in
        /// order. The runs
        /// and the order depend only on `count` and the thread count, so the same inputs give
        /// the same sums bit for bit (rayon's `fold` and `reduce_with` had cut and merged
        /// where threads happened to steal, and the default run differed from run to run).
        pub(super) fn fold<I, T>(
            split: bool,
            count: usize,
            dx: &mut [f32],
            chunk: usize,
            init: I,
            task: T,
        ) -> Sums
        where
            I: Fn() -> Sums + Sync + Send,
            T: Fn(Sums, usize, Option<&mut [f32]>) -> Sums + Sync + Send,
        {
            let runs = if split {
                (2 * rayon::current_num_threads()).clamp(1, count.max(1))
            } else {
                1
            };
            let per_run = count.div_ceil(runs).max(1);
            let has_dx = !dx.is_empty() && chunk > 0;
            // Run `r`: items `r * per_run..` in order, each with its chunk of `dx`.
            let run = |(r, dxr): (usize, Option<&mut [f32]>)| {
                let items = r * per_run..count.min((r + 1) * per_run);
                let mut chunks = dxr.map(|d| d.chunks_mut(chunk));
                items.fold(init(), |acc, i| {
                    task(acc, i, chunks.as_mut().and_then(Iterator::next))
                })
            };
            let sums: Vec<Sums> = match (runs > 1, has_dx) {
                (true, true) => dx
                    .par_chunks_mut(per_run * chunk)
                    .enumerate()
                    .map(|(r, d)| run((r, Some(d))))
                    .collect(),
                (true, false) => (0..count.div_ceil(per_run))
                    .into_par_iter()
                    .map(|r| run((r, None)))
                    .collect(),
                (false, _) => vec![run((0, has_dx.then_some(dx)))],
            };
            Sums::merge_all(sums).unwrap_or_else(init)
        }

        /// The gradient tensors asked for by `need` (`x`, `w`, `b`), the weight's through
        /// `dw`, which turns the row-major `[C_out, rows]` sums into `[C_out, C, kh, kw]`.
        pub(super) fn tensors(
            self,
            dx: Vec<f32>,
            g: &Geometry,
            [need_x, need_w, need_b]: [bool; 3],
            dw: impl FnOnce(Vec<f32>) -> Vec<f32>,
        ) -> (Option<FlexTensor>, Option<FlexTensor>, Option<FlexTensor>) {
            (
                need_x.then(|| tensor(dx, Shape::new([g.n, g.c, g.h, g.w]))),
                need_w.then(|| {
                    let sums = match self.column_major {
                        true => transpose(&self.dw, self.rows, g.c_out),
                        false => self.dw,
                    };
                    tensor(dw(sums), Shape::new([g.c_out, g.c, g.kh, g.kw]))
                }),
                need_b.then(|| {
                    let db = self.db.into_iter().map(|v| v as f32).collect();
                    tensor(db, Shape::new([g.c_out]))
                }),
            )
        }
    }

    /// The convolution's output, each row finished by `ep` (bias, or folded batch norm,
    /// residual and ReLU). With `inference`, Winograd's transformed weights are cached (the
    /// same weights come back on every call), unless the weight is strided: its contiguous
    /// copy would be a new tensor, and a new cache entry, on every call.
    pub(super) fn forward(
        x: &FlexTensor,
        w: &FlexTensor,
        ep: &Epilogue,
        g: Geometry,
        inference: bool,
    ) -> FlexTensor {
        super::awake::keep_awake();
        let cache = inference && w.as_slice::<f32>().is_some();
        let (x, w) = (contiguous(x), contiguous(w));
        let (xs, ws) = (x.as_slice::<f32>().unwrap(), w.as_slice::<f32>().unwrap());
        if super::winograd::applies(&g) {
            let u = super::winograd::weights(&w, &g, cache);
            return super::winograd::forward(xs, &u, ep, g);
        }
        match super::direct::applies_forward(&g) {
            true => super::direct::forward(xs, ws, ep, g),
            false => forward_im2col(xs, ws, ep, g),
        }
    }

    /// [`forward`] as im2col and `gemm` products, for any geometry.
    pub(super) fn forward_im2col(xs: &[f32], ws: &[f32], ep: &Epilogue, g: Geometry) -> FlexTensor {
        let threads = rayon::current_num_threads();
        if g.n < threads && g.c_out >= g.p() {
            return forward_split_out(xs, ws, ep, g, threads);
        }
        if g.batched() {
            return forward_batched(xs, ws, ep, g);
        }
        let (split, par) = parallelism(g.n);
        let threads = rayon::current_num_threads();
        if !split && threads > 1 {
            let tiles = Plan::tiles(&g, g.shared_tile(threads));
            if tiles.len() > 1 {
                return forward_shared(xs, ws, ep, g, &tiles);
            }
        }
        let (ck, p, tiles) = (g.ck(), g.p(), Plan::tiles(&g, g.tile()));
        let sample = |(s, y): (usize, &mut [f32])| {
            let xn = &xs[s * g.c * g.h * g.w..(s + 1) * g.c * g.h * g.w];
            let mut col = Scratch::new(if g.identity_col() { 0 } else { ck * g.tile() });
            for &(p0, t, ref plan) in &tiles {
                let rhs: &[f32] = if g.identity_col() {
                    &xn[p0..]
                } else {
                    let col = &mut col[..ck * t];
                    im2col(&g, plan, xn, col, t, !split);
                    col
                };
                let rs = if g.identity_col() { p } else { t };
                matmul(
                    [g.c_out, t, ck],
                    (&mut y[p0..], 1, p),
                    false,
                    (ws, 1, ck),
                    (rhs, 1, rs),
                    par,
                );
            }
            for (o, row) in y.chunks_mut(p).enumerate() {
                ep.apply(s, o, row);
            }
        };
        let y = zeroed_chunks(g.n * g.c_out * p, g.c_out * p, split, sample);
        tensor(y, Shape::new([g.n, g.c_out, g.ho, g.wo]))
    }

    /// Forward for batches smaller than the thread count whose weights outweigh the map
    /// (`C_out >= P`: ResNet-50's last two stages at batch 1), one sample at a time: its im2col
    /// matrix built once (channels in parallel), then the output channels cut into one block
    /// per thread, each a single-threaded product straight into its rows of the output, so
    /// that each thread streams only its share of the weights.
    fn forward_split_out(
        xs: &[f32],
        ws: &[f32],
        ep: &Epilogue,
        g: Geometry,
        threads: usize,
    ) -> FlexTensor {
        let (ck, p, in_size) = (g.ck(), g.p(), g.c * g.h * g.w);
        let plan = Plan::new(&g, 0, p);
        let rows = g.c_out.div_ceil(threads).next_multiple_of(16).min(g.c_out);
        let len = g.n * g.c_out * p;
        let mut y = vec![0f32; len];
        let mut col = Scratch::new(if g.identity_col() { 0 } else { ck * p });
        for (s, ys) in y.chunks_mut(g.c_out * p).enumerate() {
            let xn = &xs[s * in_size..(s + 1) * in_size];
            let rhs: &[f32] = match g.identity_col() {
                true => xn,
                false => {
                    im2col(&g, &plan, xn, &mut col, p, true);
                    &col
                }
            };
            ys.par_chunks_mut(rows * p).enumerate().for_each(|(b, yb)| {
                let o0 = b * rows;
                let m = yb.len() / p;
                matmul(
                    [m, p, ck],
                    (yb, 1, p),
                    false,
                    (&ws[o0 * ck..], 1, ck),
                    (rhs, 1, p),
                    Parallelism::None,
                );
                for (o, row) in yb.chunks_mut(p).enumerate() {
                    ep.apply(s, o0 + o, row);
                }
            });
        }
        tensor(y, Shape::new([g.n, g.c_out, g.ho, g.wo]))
    }

    /// Forward for batches smaller than the thread count (inference at batch 1), one sample at
    /// a time: its tiles run as parallel tasks, each with its own im2col and a single-threaded
    /// product straight into its columns of the output (every channel's row), which it then
    /// finishes with the epilogue while they are in cache. One fork-join per tile set instead
    /// of `gemm`'s own threads, which synchronise several times per product and left a core
    /// idle a quarter of the time. The output is not zeroed first, since the products write
    /// all of it (a serial `memset`: ResNet-50 at batch 1 x1.06 without it).
    fn forward_shared(
        xs: &[f32],
        ws: &[f32],
        ep: &Epilogue,
        g: Geometry,
        tiles: &[(usize, usize, Plan)],
    ) -> FlexTensor {
        let (ck, p, in_size) = (g.ck(), g.p(), g.c * g.h * g.w);
        let len = g.n * g.c_out * p;
        let mut y: Vec<f32> = Vec::with_capacity(len);
        let uninit = &mut y.spare_capacity_mut()[..len];
        for (s, ys) in uninit.chunks_mut(g.c_out * p).enumerate() {
            let xn = &xs[s * in_size..(s + 1) * in_size];
            let out = Out::new(ys);
            let task = |&(p0, t, ref plan): &(usize, usize, Plan)| {
                let mut col = Scratch::new(if g.identity_col() { 0 } else { ck * t });
                let (rhs, rs): (&[f32], usize) = match g.identity_col() {
                    true => (&xn[p0..], p),
                    false => {
                        im2col(&g, plan, xn, &mut col, t, false);
                        (&col, t)
                    }
                };
                let dst = Out {
                    ptr: out.ptr.wrapping_add(p0),
                    len: out.len - p0,
                };
                // SAFETY: the tile's columns `p0..p0 + t` of every channel's row, which no
                // other task writes; then its spans, which the product has just written.
                unsafe {
                    matmul_into(
                        [g.c_out, t, ck],
                        (dst, 1, p),
                        false,
                        (ws, 1, ck),
                        (rhs, 1, rs),
                        Parallelism::None,
                    );
                    for o in 0..g.c_out {
                        ep.apply_span(s, o, p0, p, out.span(o * p + p0..o * p + p0 + t));
                    }
                }
            };
            tiles.par_iter().for_each(task);
        }
        // SAFETY: the tiles cover every sample's rows, whose every value was written above.
        unsafe { y.set_len(len) };
        tensor(y, Shape::new([g.n, g.c_out, g.ho, g.wo]))
    }

    /// The input gradient of a stride-1 convolution as a forward convolution of the output
    /// gradient with the kernel flipped and its channels swapped, padded by `k - 1 - p` on
    /// each side: products of depth `C_out * kh * kw` instead of `Wᵀ · dY` (depth `C_out`, 16
    /// in ResNet-20's first stage) scattered back by `col2im`, and the forward's shifted
    /// im2col. `None` for strides above 1 or padding beyond the kernel's reach. Used for maps
    /// above 8x8 where `C_out <= C` (its im2col of `dY` is then no larger than `Wᵀ · dY`):
    /// ResNet-20's step at 28x28 x1.03-1.06. On the small maps of sample groups it made
    /// ResNet-18 at 32x32 slower (x0.90), and with `C_out = 2 C` (seed 003's CNN) x0.97 as
    /// im2col; so there it is used only when the flipped convolution runs as Winograd (2.25x
    /// fewer products) or as the direct kernel (seed 003's CNN: no im2col, no col2im).
    fn input_grad_as_conv(grad: &FlexTensor, ws: &[f32], g: &Geometry) -> Option<FlexTensor> {
        if g.stride != [1, 1] || g.c == 0 || g.ho == 0 || g.wo == 0 {
            return None;
        }
        // Stride 1: `ho = h + top + bottom - kh + 1`.
        let [top, left] = g.pad;
        let bottom = (g.ho + g.kh - 1).checked_sub(g.h + top)?;
        let right = (g.wo + g.kw - 1).checked_sub(g.w + left)?;
        if top.max(bottom) >= g.kh || left.max(right) >= g.kw {
            return None;
        }
        let k = g.kh * g.kw;
        let mut flipped = vec![0f32; g.c * g.c_out * k];
        for (c, dst) in flipped.chunks_mut(g.c_out * k).enumerate() {
            for (o, taps) in dst.chunks_mut(k).enumerate() {
                let src = &ws[(o * g.c + c) * k..][..k];
                taps.iter_mut()
                    .zip(src.iter().rev())
                    .for_each(|(d, &v)| *d = v);
            }
        }
        let flipped = tensor(flipped, Shape::new([g.c, g.c_out, g.kh, g.kw]));
        let pad = [
            g.kh - 1 - top,
            g.kw - 1 - left,
            g.kh - 1 - bottom,
            g.kw - 1 - right,
        ];
        let gt = Geometry::new(grad, &flipped, [1, 1], pad);
        debug_assert_eq!([gt.ho, gt.wo], [g.h, g.w]);
        let zeros = vec![0f32; g.c];
        Some(forward(grad, &flipped, &Epilogue::bias(&zeros), gt, false))
    }

    /// Gradients of the input, weight and bias, each computed only where `need` says so.
    pub(super) fn backward(
        grad: &FlexTensor,
        x: &FlexTensor,
        w: &FlexTensor,
        g: Geometry,
        [need_x, need_w, need_b]: [bool; 3],
    ) -> (Option<FlexTensor>, Option<FlexTensor>, Option<FlexTensor>) {
        super::awake::keep_awake();
        let (grad, x, w) = (contiguous(grad), contiguous(x), contiguous(w));
        let (gs, xs, ws) = (
            grad.as_slice::<f32>().unwrap(),
            x.as_slice::<f32>().unwrap(),
            w.as_slice::<f32>().unwrap(),
        );
        if need_x
            && !g.batched()
            && (g.c_out <= g.c
                || super::winograd::applies(&g)
                || super::direct::applies_to_input_grad(&g))
            && let Some(dx) = input_grad_as_conv(&grad, ws, &g)
        {
            let (_, dw, db) = backward(&grad, &x, &w, g, [false, need_w, need_b]);
            return (Some(dx), dw, db);
        }
        if (need_w || need_b) && super::direct::applies(&g) {
            let (dw, db) = super::direct::weight_grad(gs, xs, g, [need_w, need_b]);
            let dx = match need_x {
                true => backward(&grad, &x, &w, g, [true, false, false]).0,
                false => None,
            };
            return (dx, dw, db);
        }
        if g.batched() {
            return backward_batched(gs, xs, ws, g, [need_x, need_w, need_b]);
        }
        let (ck, p, tiles) = (g.ck(), g.p(), Plan::tiles(&g, g.tile()));
        let (split, par) = parallelism(g.n);
        let in_size = g.c * g.h * g.w;
        let mut dx = vec![0f32; if need_x { g.n * in_size } else { 0 }];
        let init = || Sums::new(&g, ck, need_w);
        let scratch = if g.identity_col() { 0 } else { ck * g.tile() };
        // Wᵀ row-major, copied once and read by every sample's input-gradient product: in
        // place (column-major) `gemm` read it with a stride of `C·k·k` on every product.
        let wt = if need_x {
            transpose(ws, g.c_out, ck)
        } else {
            Vec::new()
        };
        let sample = |mut acc: Sums, s: usize, dxn: Option<&mut [f32]>| -> Sums {
            let mut col = Scratch::new(if need_w { scratch } else { 0 });
            let mut dcol = Scratch::new(if dxn.is_some() { scratch } else { 0 });
            let xn = &xs[s * in_size..(s + 1) * in_size];
            let gn = &gs[s * g.c_out * p..(s + 1) * g.c_out * p];
            if need_b {
                acc.add_bias(gn, p);
            }
            let mut dxn = dxn;
            for &(p0, t, ref plan) in &tiles {
                if need_w {
                    let (rhs, rs): (&[f32], usize) = if g.identity_col() {
                        (&xn[p0..], p)
                    } else {
                        let col = &mut col[..ck * t];
                        im2col(&g, plan, xn, col, t, !split);
                        (col, t)
                    };
                    // dW (C_out x CK) += dy tile (C_out x t) · colᵀ (t x CK).
                    matmul(
                        [g.c_out, ck, t],
                        acc.dw_dst(),
                        true,
                        (&gn[p0..], 1, p),
                        (rhs, rs, 1),
                        par,
                    );
                }
                if let Some(dxn) = dxn.as_deref_mut() {
                    if g.identity_col() {
                        // dx tile (C x t) = Wᵀ (C x C_out) · dy tile (C_out x t), written in place.
                        matmul(
                            [ck, t, g.c_out],
                            (&mut dxn[p0..], 1, p),
                            false,
                            (&wt, 1, g.c_out),
                            (&gn[p0..], 1, p),
                            par,
                        );
                    } else {
                        let dcol = &mut dcol[..ck * t];
                        matmul(
                            [ck, t, g.c_out],
                            (dcol, 1, t),
                            false,
                            (&wt, 1, g.c_out),
                            (&gn[p0..], 1, p),
                            par,
                        );
                        col2im(&g, plan, dcol, dxn, t);
                    }
                }
            }
            acc
        };
        let sums = Sums::fold(split, g.n, &mut dx, in_size, init, sample);
        sums.tensors(dx, &g, [need_x, need_w, need_b], |dw| dw)
    }
}

#[cfg(test)]
mod tests {
    use burn::nn::BatchNormConfig;
    use burn::nn::pool::MaxPool2dConfig;
    use burn::tensor::{Device, Distribution, Tensor};

    fn max_diff<const D: usize>(a: Tensor<D>, b: Tensor<D>) -> f32 {
        (a - b).abs().max().into_scalar()
    }

    /// A convolution's gradients are the same bit for bit on every run in a 4-thread pool,
    /// whichever thread took which samples (the per-task sums are cut and added in a fixed
    /// order): the per-sample path (14x14 maps), the sample groups (4x4) and the direct kernel
    /// (16 output channels, 5x5).
    #[test]
    fn conv_gradients_are_reproducible() {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(4)
            .build()
            .unwrap();
        let values = |len: usize, seed: u32| -> Vec<f32> {
            (0..len as u32)
                .map(|i| ((i.wrapping_mul(2654435761) ^ seed) % 1000) as f32 / 500.0 - 1.0)
                .collect()
        };
        // n, c, c_out, h, k
        for (n, c, c_out, h, k) in [(24, 8, 48, 14, 3), (24, 32, 64, 4, 3), (24, 4, 16, 12, 5)] {
            let x = super::tensor(values(n * c * h * h, 1), super::Shape::new([n, c, h, h]));
            let w = super::tensor(
                values(c_out * c * k * k, 2),
                super::Shape::new([c_out, c, k, k]),
            );
            let p = k / 2;
            let g = super::Geometry::new(&x, &w, [1, 1], [p; 4]);
            let gy = super::tensor(
                values(n * c_out * h * h, 3),
                super::Shape::new([n, c_out, h, h]),
            );
            let bits = |t: Option<super::FlexTensor>| -> Vec<u32> {
                t.unwrap()
                    .as_slice::<f32>()
                    .unwrap()
                    .iter()
                    .map(|v| v.to_bits())
                    .collect()
            };
            let run = || {
                let (dx, dw, db) = super::conv::backward(&gy, &x, &w, g, [true; 3]);
                [bits(dx), bits(dw), bits(db)]
            };
            let first = pool.install(run);
            for _ in 0..8 {
                assert!(
                    pool.install(run) == first,
                    "{:?}: gradients differ between runs",
                    (n, c, c_out, h, k)
                );
            }
        }
    }

    /// The kernels' tests again in child processes with `CONVNET_SIMD` capping the
    /// instruction set below this CPU's, so that the AVX2 and baseline copies of the loops
    /// (`wide_fn!`, the direct convolution's AVX2 blocks, the im2col paths taken without the
    /// direct kernel) are tested on an AVX-512 machine too.
    #[test]
    fn narrower_instruction_sets_pass_the_tests() {
        if std::env::var_os("CONVNET_SIMD").is_some() {
            return; // a child run
        }
        assert_eq!(super::simd_cap("AVX2"), 1);
        for cap in ["avx2", "none"]
            .into_iter()
            .filter(|&c| super::simd_cap(c) < super::simd_level())
        {
            let out = std::process::Command::new(std::env::current_exe().unwrap())
                .args(["tests::", "--skip", "narrower_instruction_sets"])
                .env("CONVNET_SIMD", cap)
                .output()
                .unwrap();
            let report = String::from_utf8_lossy(&out.stdout);
            assert!(out.status.success(), "CONVNET_SIMD={cap}:\n{report}");
            assert!(
                !report.contains("running 0 tests"),
                "CONVNET_SIMD={cap} ran nothing"
            );
        }
    }

    /// Largest difference relative to the largest magnitude of `reference`.
    fn rel_diff<const D: usize>(ours: Tensor<D>, reference: Tensor<D>) -> f32 {
        let scale: f32 = reference.clone().abs().max().into_scalar();
        max_diff(ours, reference) / scale.max(1e-12)
    }

    /// Same output and input gradient as Burn's max pool, odd sizes (floor mode), ties (a
    /// constant input: Burn and PyTorch send the gradient to the first maximum) and the
    /// kernel's block edges included.
    #[test]
    fn max_pool_matches_burn() {
        let d = Device::flex().autodiff();
        d.seed(3);
        let pool = MaxPool2dConfig::new([2, 2]).with_strides([2, 2]).init();
        for (shape, constant) in [
            ([2, 3, 6, 8], false),
            ([2, 2, 7, 5], false),
            ([1, 2, 4, 4], true),
            // Rows in blocks of 34 (35 output rows) and rows longer than a block.
            ([1, 1, 70, 30], false),
            ([1, 2, 5, 2051], false),
        ] {
            let x = match constant {
                true => Tensor::<4>::ones(shape, &d),
                false => Tensor::<4>::random(shape, Distribution::Default, &d),
            }
            .require_grad();
            let ours = super::max_pool2x2(x.clone());
            let burn = pool.forward(x.clone());
            assert_eq!(ours.dims(), burn.dims());
            assert_eq!(max_diff(ours.clone(), burn.clone()), 0.0);
            let r = Tensor::<4>::random(ours.dims(), Distribution::Default, &d);
            let go = (ours * r.clone()).sum().backward();
            let gb = (burn * r).sum().backward();
            assert_eq!(max_diff(x.grad(&go).unwrap(), x.grad(&gb).unwrap()), 0.0);
        }
        // Without autodiff the same kernel runs.
        let x = Tensor::<4>::random([1, 1, 4, 6], Distribution::Default, &Device::flex());
        assert_eq!(
            max_diff(super::max_pool2x2(x.clone()), pool.forward(x)),
            0.0
        );
    }

    /// The first of equal maxima wins, and a NaN wins over numbers (PyTorch's rule): output and
    /// recorded argmax of windows with a NaN last, a NaN after the maximum, a tie and neither.
    #[test]
    fn max_pool_ties_and_nan() {
        let nan = f32::NAN;
        // The last two windows tie across columns where the left column's larger value is
        // in the bottom row (index 2 against 1): the lower index, 1, wins.
        let rows = [
            1.0, 3.0, 3.0, 2.0, 2.0, 2.0, 9.0, nan, 1.0, 5.0, 0.0, nan, //
            nan, 5.0, 0.0, 7.0, 2.0, 2.0, 1.0, 1.0, 5.0, 0.0, nan, 0.0,
        ];
        let x = super::tensor(rows.to_vec(), super::Shape::new([1, 1, 2, 12]));
        let (y, arg) = super::pool_forward(&x, true);
        let y = y.as_slice::<f32>().unwrap().to_vec();
        assert!(y[0].is_nan() && y[3].is_nan() && y[5].is_nan(), "{y:?}");
        assert_eq!((y[1], y[2], y[4]), (7.0, 2.0, 5.0));
        assert_eq!(arg, [2, 3, 0, 1, 1, 1]);
        let (plain, none) = super::pool_forward(&x, false);
        assert!(none.is_empty());
        assert_eq!(plain.as_slice::<f32>().unwrap()[1..3], y[1..3]);
    }

    /// Overlapping windows' argmax is PyTorch's, the window read row by row: the first of
    /// equal maxima (across rows and columns), the last NaN; the backward adds the gradients
    /// of windows sharing an argmax.
    #[test]
    fn max_pool_windows_argmax_and_gradient() {
        let nan = f32::NAN;
        // 3x3/2 windows without padding over 3x5: windows at columns 0..3 and 2..5.
        let cases: [([f32; 15], [u32; 2]); 3] = [
            // Equal maxima at (0, 2) and (1, 0), and at (0, 2) and (2, 4): (0, 2) for both.
            (
                [0., 1., 5., 0., 1., 5., 0., 0., 0., 0., 0., 0., 0., 0., 5.],
                [2, 2],
            ),
            // NaNs at (1, 0) and (0, 2): (1, 0); then (0, 2) and (2, 3): (2, 3).
            (
                [
                    0., 0., nan, 0., 0., nan, 0., 0., 0., 0., 0., 0., 0., nan, 0.,
                ],
                [5, 13],
            ),
            // A constant: the window's first value.
            ([1.; 15], [0, 2]),
        ];
        for (values, want) in cases {
            let x = super::tensor(values.to_vec(), super::Shape::new([1, 1, 3, 5]));
            let (y, arg) = super::max_pool_argmax(&x, [3, 3], [2, 2], [0, 0]);
            assert_eq!(arg, want, "{values:?}");
            let plain = super::max_pool(&x, [3, 3], [2, 2], [0, 0]);
            let bits = |t: &super::FlexTensor| -> Vec<u32> {
                t.as_slice::<f32>()
                    .unwrap()
                    .iter()
                    .map(|v| v.to_bits())
                    .collect()
            };
            assert_eq!(bits(&y), bits(&plain));
            let grad = super::tensor(vec![1.0, 2.0], super::Shape::new([1, 1, 1, 2]));
            let dx = super::max_pool_backward(&grad, &arg, super::Shape::new([1, 1, 3, 5]));
            let dx = dx.as_slice::<f32>().unwrap();
            assert_eq!(dx.iter().sum::<f32>(), 3.0);
            assert_eq!(
                dx[want[1] as usize],
                if want[0] == want[1] { 3.0 } else { 2.0 }
            );
        }
    }

    /// Batch norm (training mode, optional ReLU) in float64 on the host: output, mean, biased
    /// variance and the gradients of input, gamma and beta for the upstream gradient `dy`.
    /// `x` and `dy` are `[N, C, P]` flattened; returns `(y, mean, var, dx, dgamma, dbeta)`.
    #[allow(clippy::type_complexity)]
    fn batch_norm_f64(
        x: &[f32],
        dy: &[f32],
        gamma: &[f32],
        beta: &[f32],
        [n, c, p]: [usize; 3],
        eps: f64,
        relu: bool,
    ) -> (Vec<f64>, Vec<f64>, Vec<f64>, Vec<f64>, Vec<f64>, Vec<f64>) {
        let at = |s: usize, ch: usize, i: usize| (s * c + ch) * p + i;
        let m = (n * p) as f64;
        let (mut y, mut dx) = (vec![0.0; x.len()], vec![0.0; x.len()]);
        let (mut mean, mut var) = (vec![0.0; c], vec![0.0; c]);
        let (mut dgamma, mut dbeta) = (vec![0.0; c], vec![0.0; c]);
        for ch in 0..c {
            let idx: Vec<usize> = (0..n)
                .flat_map(|s| (0..p).map(move |i| at(s, ch, i)))
                .collect();
            mean[ch] = idx.iter().map(|&k| x[k] as f64).sum::<f64>() / m;
            var[ch] = idx
                .iter()
                .map(|&k| (x[k] as f64 - mean[ch]).powi(2))
                .sum::<f64>()
                / m;
            let inv = 1.0 / (var[ch] + eps).sqrt();
            let (g, b) = (gamma[ch] as f64, beta[ch] as f64);
            let mut g_sum = 0.0;
            let mut gx_sum = 0.0;
            let mut grad = vec![0.0; idx.len()];
            for (j, &k) in idx.iter().enumerate() {
                let xhat = (x[k] as f64 - mean[ch]) * inv;
                let pre = g * xhat + b;
                y[k] = if relu { pre.max(0.0) } else { pre };
                grad[j] = if relu && pre <= 0.0 {
                    0.0
                } else {
                    dy[k] as f64
                };
                g_sum += grad[j];
                gx_sum += grad[j] * xhat;
            }
            dbeta[ch] = g_sum;
            dgamma[ch] = gx_sum;
            for (j, &k) in idx.iter().enumerate() {
                let xhat = (x[k] as f64 - mean[ch]) * inv;
                dx[k] = g * inv * (grad[j] - g_sum / m - xhat * gx_sum / m);
            }
        }
        (y, mean, var, dx, dgamma, dbeta)
    }

    /// Largest |ours - reference| over the largest |reference|.
    fn rel_diff_f64(ours: Tensor<1>, reference: &[f64]) -> f64 {
        let ours = ours.into_data().try_to_vec::<f32>().unwrap();
        let scale = reference
            .iter()
            .fold(0f64, |a, r| a.max(r.abs()))
            .max(1e-12);
        let diff = ours
            .iter()
            .zip(reference)
            .fold(0f64, |a, (o, r)| a.max((*o as f64 - r).abs()));
        diff / scale
    }

    /// Output, batch statistics and the gradients of input, gamma and beta agree with Burn's
    /// `batch_norm_train` and with a float64 computation, for maps and for one value per
    /// channel (`[N, C, 1, 1]`).
    #[test]
    fn batch_norm_matches_burn() {
        let d = Device::flex().autodiff();
        d.seed(5);
        let eps = BatchNormConfig::new(3).epsilon;
        // Rows of 30 values, and short rows (9 and 1) that run over whole samples.
        for dims in [[4, 3, 5, 6], [6, 3, 3, 3], [16, 3, 1, 1]] {
            let gamma =
                Tensor::<1>::random([3], Distribution::Uniform(0.5, 2.0), &d).require_grad();
            let beta = Tensor::<1>::random([3], Distribution::Default, &d).require_grad();
            let x = Tensor::<4>::random(dims, Distribution::Default, &d);
            for relu in [false, true] {
                let x = x.clone().require_grad();
                let (ours, mean, var) =
                    super::batch_norm_train(x.clone(), gamma.clone(), beta.clone(), eps, relu);
                let burn = burn::tensor::module::batch_norm_train(
                    x.clone(),
                    gamma.clone(),
                    beta.clone(),
                    eps,
                );
                let out = match relu {
                    true => burn::tensor::activation::relu(burn.output),
                    false => burn.output,
                };
                let dy = rel_diff(ours.clone(), out.clone());
                let dm = rel_diff(mean, burn.mean);
                let dv = rel_diff(var, burn.variance);
                assert!(
                    dy < 1e-5 && dm < 1e-5 && dv < 1e-5,
                    "y {dy} mean {dm} var {dv}"
                );
                let r = Tensor::<4>::random(ours.dims(), Distribution::Default, &d);
                let go = (ours * r.clone()).sum().backward();
                let gb = (out * r).sum().backward();
                let dx = rel_diff(x.grad(&go).unwrap(), x.grad(&gb).unwrap());
                let dg = rel_diff(gamma.grad(&go).unwrap(), gamma.grad(&gb).unwrap());
                let db = rel_diff(beta.grad(&go).unwrap(), beta.grad(&gb).unwrap());
                assert!(
                    dx < 1e-5 && dg < 1e-5 && db < 1e-5,
                    "dx {dx} dgamma {dg} dbeta {db} (relu {relu})"
                );
            }
            // A channel with a large mean, where an unshifted E[x²] - E[x]² in float32 would
            // lose the variance entirely (1e4 ± 1e-3 against 0.08: an error of order 1).
            // Against float64, not Burn, whose sums round differently on AVX2 and AVX-512.
            // The float32 mean near 100 is known to ~4e-6, which shifts every normalised
            // value by ~1.5e-5; summed in dgamma over terms that cancel, that measured 1.5e-4
            // of the largest dgamma on AVX2 (qemu -cpu Haswell): hence 1e-3.
            let offset = Tensor::<1>::from_floats([100.0, 0.0, -50.0], &d).reshape([1, 3, 1, 1]);
            let x = x + offset;
            let host = |t: Tensor<4>| t.into_data().try_to_vec::<f32>().unwrap();
            let vec1 = |t: Tensor<1>| t.into_data().try_to_vec::<f32>().unwrap();
            let shape = [dims[0], dims[1], dims[2] * dims[3]];
            for relu in [false, true] {
                let x = x.clone().require_grad();
                let (ours, mean, var) =
                    super::batch_norm_train(x.clone(), gamma.clone(), beta.clone(), eps, relu);
                let r = Tensor::<4>::random(ours.dims(), Distribution::Default, &d);
                let (y64, m64, v64, dx64, dg64, db64) = batch_norm_f64(
                    &host(x.clone()),
                    &host(r.clone()),
                    &vec1(gamma.clone()),
                    &vec1(beta.clone()),
                    shape,
                    eps,
                    relu,
                );
                let go = (ours.clone() * r).sum().backward();
                let flat = |t: Tensor<4>| t.reshape([-1]);
                let errors = [
                    ("y", rel_diff_f64(flat(ours), &y64)),
                    ("mean", rel_diff_f64(mean, &m64)),
                    ("var", rel_diff_f64(var, &v64)),
                    ("dx", rel_diff_f64(flat(x.grad(&go).unwrap()), &dx64)),
                    ("dgamma", rel_diff_f64(gamma.grad(&go).unwrap(), &dg64)),
                    ("dbeta", rel_diff_f64(beta.grad(&go).unwrap(), &db64)),
                ];
                for (name, e) in errors {
                    assert!(
                        e < 1e-3,
                        "{name} {e} against float64 (relu {relu}, {dims:?})"
                    );
                }
            }
        }
        // Frozen input: only gamma and beta get gradients.
        let x = Tensor::<4>::random([2, 3, 2, 2], Distribution::Default, &d);
        let gamma = Tensor::<1>::ones([3], &d).require_grad();
        let (y, _, _) =
            super::batch_norm_train(x.clone(), gamma.clone(), Tensor::zeros([3], &d), 1e-5, true);
        let g = y.sum().backward();
        assert!(gamma.grad(&g).is_some() && x.grad(&g).is_none());
    }
}

/// Per-layer timings of the convolutions of suite workloads A (seed 003's CNN at 28x28) and B
/// (ResNet-18 at 32x32), batch 64: forward, and the backward's weight and input gradients
/// apart (`cargo test --release -p convnet-kernels conv_timing -- --ignored --nocapture`).
#[cfg(test)]
mod conv_timing {
    use super::*;

    /// `(count, c, c_out, map, kernel, stride, pad)` per layer.
    type Layer = (usize, usize, usize, usize, usize, usize, usize);

    fn run(layers: &[Layer]) {
        let n = 64;
        let mut total = [0f64; 4];
        println!("count c c_out map k s: forward, dW, dX, both ms (each)");
        for &(count, c, c_out, h, k, s, p) in layers {
            let x = tensor(vec![0.5; n * c * h * h], Shape::new([n, c, h, h]));
            let w = tensor(vec![0.25; c_out * c * k * k], Shape::new([c_out, c, k, k]));
            let g = Geometry::new(&x, &w, [s, s], [p; 4]);
            let gy = tensor(
                vec![0.125; n * c_out * g.p()],
                Shape::new([n, c_out, g.ho, g.wo]),
            );
            let zeros = vec![0f32; c_out];
            let ep = Epilogue::bias(&zeros);
            let f = median(9, || {
                conv::forward(&x, &w, &ep, g, false);
            });
            let dw = median(9, || {
                conv::backward(&gy, &x, &w, g, [false, true, true]);
            });
            let dx = median(9, || {
                conv::backward(&gy, &x, &w, g, [true, false, false]);
            });
            let both = median(9, || {
                conv::backward(&gy, &x, &w, g, [true, true, true]);
            });
            for (t, v) in total.iter_mut().zip([f, dw, dx, both]) {
                *t += v * count as f64;
            }
            println!(
                "{count} {c} {c_out} {h}x{h} {k} {s}: {:.3} {:.3} {:.3} {:.3}",
                f * 1e3,
                dw * 1e3,
                dx * 1e3,
                both * 1e3
            );
        }
        println!(
            "total: forward {:.2} ms, dW {:.2} ms, dX {:.2} ms, both {:.2} ms",
            total[0] * 1e3,
            total[1] * 1e3,
            total[2] * 1e3,
            total[3] * 1e3
        );
    }

    /// ResNet-50's convolutions at 224x224, inference at batch 1 (workload C1): forward
    /// time and GFLOP/s per layer shape.
    #[test]
    #[ignore = "timing, not a check"]
    fn resnet50_batch1() {
        let layers: [Layer; 21] = [
            (1, 3, 64, 224, 7, 2, 3),
            (1, 64, 64, 56, 1, 1, 0),
            (3, 64, 64, 56, 3, 1, 1),
            (4, 64, 256, 56, 1, 1, 0),
            (2, 256, 64, 56, 1, 1, 0),
            (1, 256, 128, 56, 1, 1, 0),
            (1, 128, 128, 56, 3, 2, 1),
            (4, 128, 512, 28, 1, 1, 0),
            (1, 256, 512, 56, 1, 2, 0),
            (3, 512, 128, 28, 1, 1, 0),
            (3, 128, 128, 28, 3, 1, 1),
            (1, 512, 256, 28, 1, 1, 0),
            (1, 256, 256, 28, 3, 2, 1),
            (6, 256, 1024, 14, 1, 1, 0),
            (1, 512, 1024, 28, 1, 2, 0),
            (5, 1024, 256, 14, 1, 1, 0),
            (5, 256, 256, 14, 3, 1, 1),
            (1, 1024, 512, 14, 1, 1, 0),
            (1, 512, 512, 14, 3, 2, 1),
            (4, 512, 2048, 7, 1, 1, 0),
            (2, 2048, 512, 7, 1, 1, 0),
        ];
        let mut total = 0.0;
        for (count, c, c_out, h, k, s, p) in layers {
            let x = tensor(vec![0.5; c * h * h], Shape::new([1, c, h, h]));
            let w = tensor(vec![0.25; c_out * c * k * k], Shape::new([c_out, c, k, k]));
            let g = Geometry::new(&x, &w, [s, s], [p; 4]);
            let zeros = vec![0f32; c_out];
            let ep = Epilogue::bias(&zeros);
            let f = median(15, || {
                conv::forward(&x, &w, &ep, g, true);
            });
            total += f * count as f64;
            let gflops = 2.0 * (g.p() * g.c_out * g.ck()) as f64 / f / 1e9;
            println!(
                "{count} {c} {c_out} {h}x{h} {k} {s}: {:.3} ms, {gflops:.0} GFLOP/s",
                f * 1e3
            );
        }
        println!("total {:.2} ms", total * 1e3);
    }

    #[test]
    #[ignore = "timing, not a check"]
    fn mnist_cnn() {
        run(&[(1, 1, 16, 28, 5, 1, 2), (1, 16, 32, 14, 5, 1, 2)]);
    }

    /// The default model's (`small-cnn`, workload E) convolutions.
    #[test]
    #[ignore = "timing, not a check"]
    fn small_cnn() {
        run(&[(1, 1, 32, 28, 3, 1, 1), (1, 32, 64, 14, 3, 1, 1)]);
    }

    #[test]
    #[ignore = "timing, not a check"]
    fn resnet18_32() {
        run(&[
            (1, 3, 64, 32, 7, 2, 3),
            (4, 64, 64, 8, 3, 1, 1),
            (1, 64, 128, 8, 3, 2, 1),
            (1, 64, 128, 8, 1, 2, 0),
            (3, 128, 128, 4, 3, 1, 1),
            (1, 128, 256, 4, 3, 2, 1),
            (1, 128, 256, 4, 1, 2, 0),
            (3, 256, 256, 2, 3, 1, 1),
            (1, 256, 512, 2, 3, 2, 1),
            (1, 256, 512, 2, 1, 2, 0),
            (3, 512, 512, 1, 3, 1, 1),
        ]);
    }
}

/// Median seconds of `f` over `reps` runs after one warm-up, for the ignored timing tests.
#[cfg(test)]
fn median(reps: usize, mut f: impl FnMut()) -> f64 {
    f();
    let mut t: Vec<f64> = (0..reps)
        .map(|_| {
            let start = std::time::Instant::now();
            f();
            start.elapsed().as_secs_f64()
        })
        .collect();
    t.sort_by(f64::total_cmp);
    t[reps / 2]
}
