//! Faster formulations of hot layers, reached through [`crate::trace::Layer::run`] so that
//! every model of the zoo uses them (issue 10; figures in `bench/RESULTS.md`).
//!
//! - [`conv2d`]: Burn's `flex` backend differentiates a convolution's weight as another
//!   convolution with batch and channels swapped, whose "kernel" is the whole output map
//!   (small-cnn's first layer: one 64x28x28 kernel, 9 output pixels, a gemm with N = 9 and no
//!   batch parallelism). On `flex` convolutions run [`convnet_kernels`]' im2col + `gemm` kernel,
//!   whose backward is two products per sample.
//! - [`max_pool2d`] and [`batch_norm`]: on the `flex` device, 2x2 max pools (training and
//!   inference) and batch norm in training run [`convnet_kernels`]' hand-written forward and
//!   backward; elsewhere, in inference, fewer passes over the activation with Burn's ops.
//! - [`keep_freed_memory`]: stops glibc from unmapping every freed tensor.
//!
//! Each returns `None` where it does not apply, and the caller runs Burn's layer;
//! `CONVNET_FAST=0` in the environment turns the layer formulations off (to compare).

use std::sync::OnceLock;

use burn::nn::conv::Conv2d;
use burn::nn::pool::MaxPool2d;
use burn::nn::{BatchNorm, PaddingConfig2d};
use burn::tensor::{DType, Device, Tensor};

/// `conv.forward(x)` on the `flex` device (training and inference) through
/// [`convnet_kernels::conv2d`] (im2col tiles and `gemm`, with its own backward) for groups 1,
/// dilation 1 and explicit or no padding; otherwise `None`, and the caller uses Burn's own.
/// Same outputs and gradients up to float rounding.
///
/// # Shapes
/// `[N, C, H, W]` → `[N, C_out, H', W']`
pub fn conv2d(conv: &Conv2d, x: &Tensor<4>) -> Option<Tensor<4>> {
    let pad = kernel_padding(conv, x)?;
    Some(convnet_kernels::conv2d(
        x.clone(),
        conv.weight.val(),
        conv_bias(conv, x),
        conv.stride,
        pad,
        false,
    ))
}

/// The padding `[top, left, bottom, right]` when [`convnet_kernels`]' convolution applies to
/// `conv` on `x` (groups 1, dilation 1, no "same" padding, the `flex` device), else `None`.
fn kernel_padding(conv: &Conv2d, x: &Tensor<4>) -> Option<[usize; 4]> {
    let (top, left, bottom, right) = match conv.padding {
        PaddingConfig2d::Valid => (0, 0, 0, 0),
        PaddingConfig2d::Explicit(t, l, b, r) => (t, l, b, r),
        PaddingConfig2d::Same => return None,
    };
    let [n, c, h, w] = x.dims();
    let [_, c_w, kh, kw] = conv.weight.dims();
    let (hp, wp) = (h + top + bottom, w + left + right);
    let groups_dilation = conv.groups == 1 && conv.dilation == [1, 1];
    let fits = groups_dilation && c_w == c && hp >= kh && wp >= kw && n > 0;
    (fast_enabled() && fits && on_flex(x)).then_some([top, left, bottom, right])
}

/// The convolution's bias, zeros when it has none.
fn conv_bias(conv: &Conv2d, x: &Tensor<4>) -> Tensor<1> {
    match &conv.bias {
        Some(b) => b.val(),
        None => Tensor::zeros([conv.weight.dims()[0]], &x.device()),
    }
}

/// In inference, `relu(bn(conv(x)) + residual)` (the residual and the ReLU each optional) as
/// one kernel call on the `flex` device: the batch norm becomes a scale and shift per output
/// channel (with the convolution's bias folded into the shift), applied with the residual
/// and the ReLU while each output row is still in cache ([`convnet_kernels::conv2d_affine`]).
/// Saves up to four passes over the block's output. `None` in training (an autodiff input),
/// where [`conv2d`] does not apply, or when the shapes do not match.
pub fn conv_bn(
    conv: &Conv2d,
    bn: &BatchNorm,
    x: &Tensor<4>,
    residual: Option<&Tensor<4>>,
    relu: bool,
) -> Option<Tensor<4>> {
    if x.is_autodiff() {
        return None;
    }
    let pad = kernel_padding(conv, x)?;
    let [c_out, _, _, _] = conv.weight.dims();
    if bn.gamma.dims() != [c_out] {
        return None;
    }
    if let Some(r) = residual {
        let [n, _, h, w] = x.dims();
        let [_, _, kh, kw] = conv.weight.dims();
        let [sh, sw] = conv.stride;
        let ho = crate::layers::conv_out(h + pad[0] + pad[2], kh, sh, 0);
        let wo = crate::layers::conv_out(w + pad[1] + pad[3], kw, sw, 0);
        if Some(r.dims()) != ho.zip(wo).map(|(ho, wo)| [n, c_out, ho, wo]) || !on_flex(r) {
            return None;
        }
    }
    let device = x.device();
    let bn_params = convnet_kernels::BatchNormParams {
        gamma: bn.gamma.val(),
        beta: bn.beta.val(),
        mean: bn.running_mean.value().to_device(&device),
        var: bn.running_var.value().to_device(&device),
        epsilon: bn.epsilon,
    };
    Some(convnet_kernels::conv2d_affine(
        x.clone(),
        conv.weight.val(),
        conv.bias.as_ref().map(|b| b.val()),
        bn_params,
        residual.cloned(),
        conv.stride,
        pad,
        relu,
    ))
}

/// `relu(conv(x))` as one kernel call on the `flex` device, in training and inference: the
/// ReLU applied to each output row while it is in cache, and in training the backward's mask
/// taken from the output (Burn's ReLU was two more passes over the activation and 4 % of seed
/// 003's CNN's step). `None` where [`conv2d`] does not apply.
pub fn conv_relu(conv: &Conv2d, x: &Tensor<4>) -> Option<Tensor<4>> {
    let pad = kernel_padding(conv, x)?;
    Some(convnet_kernels::conv2d(
        x.clone(),
        conv.weight.val(),
        conv_bias(conv, x),
        conv.stride,
        pad,
        true,
    ))
}

/// A batch norm in inference as `x * scale + shift` per channel: `scale = gamma / sqrt(var +
/// eps)`, `shift = beta - mean * scale`, computed on the `[C]` vectors.
fn bn_scale_shift(bn: &BatchNorm, device: &Device) -> (Tensor<1>, Tensor<1>) {
    let mean = bn.running_mean.value().to_device(device);
    let var = bn.running_var.value().to_device(device);
    let scale = bn.gamma.val().div(var.add_scalar(bn.epsilon).sqrt());
    let shift = bn.beta.val().sub(mean.mul(scale.clone()));
    (scale, shift)
}

/// `pool.forward(x)` without dilation: 2x2/2 windows without padding on the `flex` device
/// through [`convnet_kernels::max_pool2x2`]; other windows on `flex` through
/// [`convnet_kernels::max_pool2d`] (overlapping and padded ones too; training and inference
/// for both), and non-overlapping ones elsewhere in inference as a reshape and two
/// `max_dim`s. Burn's `flex` max pool is a scalar loop that clips every window's range per
/// output element (small-cnn's first pool: 14 ms against 8 ms reshaped, 5.5 ms in the
/// kernel). Otherwise `None`.
///
/// # Shapes
/// `[N, C, H, W]` → `[N, C, H', W']` (floor mode)
pub fn max_pool2d(pool: &MaxPool2d, x: &Tensor<4>) -> Option<Tensor<4>> {
    let [kh, kw] = pool.kernel_size;
    let [n, c, h, w] = x.dims();
    if !fast_enabled() || pool.dilation != [1, 1] {
        return None;
    }
    let zero_pad = matches!(
        pool.padding,
        PaddingConfig2d::Valid | PaddingConfig2d::Explicit(0, 0, 0, 0)
    );
    let tiling = pool.stride == pool.kernel_size && zero_pad;
    let floor = !pool.ceil_mode || (h % 2 == 0 && w % 2 == 0);
    if tiling && [kh, kw] == [2, 2] && on_flex(x) && floor && n * c * (h / 2) * (w / 2) > 0 {
        return Some(convnet_kernels::max_pool2x2(x.clone()));
    }
    if on_flex(x) {
        return max_pool_windows(pool, x);
    }
    if x.is_autodiff() {
        return None;
    }
    if !tiling {
        return None;
    }
    let (ho, wo) = (h / kh, w / kw);
    let exact = ho * kh == h && wo * kw == w;
    if ho == 0 || wo == 0 || (pool.ceil_mode && !exact) || (kh == 1 && kw == 1) {
        return None;
    }
    let x = match exact {
        true => x.clone(),
        false => x.clone().slice([0..n, 0..c, 0..ho * kh, 0..wo * kw]),
    };
    let y = x
        .reshape([n, c, ho, kh, wo, kw])
        .max_dim(5)
        .max_dim(3)
        .reshape([n, c, ho, wo]);
    Some(y)
}

/// On `flex`, any max pool with symmetric padding whose floor and ceil modes agree (or floor
/// mode) through [`convnet_kernels::max_pool2d`]: overlapping windows such as ResNet's 3x3/2
/// stem pool, which Burn runs as a scalar loop per window (5 % of ResNet-50 at batch 1, 4.7 %
/// of ResNet-18's training step at 32x32). `None` otherwise.
fn max_pool_windows(pool: &MaxPool2d, x: &Tensor<4>) -> Option<Tensor<4>> {
    let [kh, kw] = pool.kernel_size;
    let [sh, sw] = pool.stride;
    let [n, c, h, w] = x.dims();
    let [ph, pw] = match pool.padding {
        PaddingConfig2d::Valid => [0, 0],
        PaddingConfig2d::Explicit(t, l, b, r) if t == b && l == r => [t, l],
        _ => return None,
    };
    let (hp, wp) = (h + 2 * ph, w + 2 * pw);
    let fits = hp >= kh && wp >= kw && sh > 0 && sw > 0 && n * c > 0;
    // Padding of more than half a window (refused by PyTorch) could leave a window empty.
    let padding_ok = 2 * ph <= kh && 2 * pw <= kw;
    let floor = fits && (!pool.ceil_mode || ((hp - kh) % sh == 0 && (wp - kw) % sw == 0));
    (floor && padding_ok)
        .then(|| convnet_kernels::max_pool2d(x.clone(), [kh, kw], [sh, sw], [ph, pw]))
}

/// `bn.forward(x)` in inference as one scale and one shift per channel, `x * s + t` with
/// `s = gamma / sqrt(var + eps)` and `t = beta - mean * s` computed on the `[C]` vectors: two
/// passes over the activation instead of Burn's four (subtract, divide, multiply, add).
/// Training (an autodiff input) returns `None` and keeps Burn's fused batch-statistics op.
///
/// # Shapes
/// `[N, C, …]` → `[N, C, …]`
pub fn batch_norm<const D: usize>(bn: &BatchNorm, x: &Tensor<D>) -> Option<Tensor<D>> {
    if !fast_enabled() || D < 2 {
        return None;
    }
    if x.is_autodiff() {
        return batch_norm_train(bn, x, false);
    }
    let [c] = bn.gamma.dims();
    if x.dims()[1] != c {
        return None;
    }
    let (scale, shift) = bn_scale_shift(bn, &x.device());
    let mut dims = [1usize; D];
    dims[1] = c;
    Some(x.clone().mul(scale.reshape(dims)).add(shift.reshape(dims)))
}

/// `relu(bn.forward(x))` as one kernel in training (see [`batch_norm_train`]); `None` where
/// that does not apply (inference, where batch norm is a folded scale and shift, frozen
/// layers, other devices).
pub fn batch_norm_relu<const D: usize>(bn: &BatchNorm, x: &Tensor<D>) -> Option<Tensor<D>> {
    match fast_enabled() && D >= 2 && x.is_autodiff() {
        true => batch_norm_train(bn, x, true),
        false => None,
    }
}

/// `bn.forward(x)` (followed by a ReLU with `relu`) in training (an autodiff input and a layer
/// not frozen) on the `flex` device, through [`convnet_kernels::batch_norm_train`]; the
/// running statistics are updated exactly as Burn's `BatchNorm::forward_train` does.
fn batch_norm_train<const D: usize>(
    bn: &BatchNorm,
    x: &Tensor<D>,
    relu: bool,
) -> Option<Tensor<D>> {
    let [c] = bn.gamma.dims();
    let dims = x.dims();
    if !bn.training.is_enabled() || !on_flex(x) || dims[1] != c || dims.contains(&0) {
        return None;
    }
    let device = x.device();
    let (y, mean, var) = convnet_kernels::batch_norm_train(
        x.clone(),
        bn.gamma.val(),
        bn.beta.val(),
        bn.epsilon,
        relu,
    );
    let momentum = bn.momentum;
    let update = |state: &burn::module::RunningState<Tensor<1>>, batch: Tensor<1>| {
        let running = state.value_sync().to_device(&device);
        let running = running
            .mul_scalar(1.0 - momentum)
            .add(batch.detach().mul_scalar(momentum));
        state.update(running.detach());
    };
    update(&bn.running_mean, mean);
    update(&bn.running_var, var);
    Some(y)
}

/// Whether `x` lives on Burn's `flex` CPU device as float32, where [`convnet_kernels`] apply.
fn on_flex<const D: usize>(x: &Tensor<D>) -> bool {
    x.device() == Device::flex() && x.dtype() == DType::F32
}

fn fast_enabled() -> bool {
    static ENABLED: OnceLock<bool> = OnceLock::new();
    *ENABLED.get_or_init(|| std::env::var("CONVNET_FAST").map_or(true, |v| v != "0"))
}

pub use convnet_kernels::{SgdMomentum, sgd_momentum};

/// Whether [`sgd_momentum`], one fused pass of SGD with momentum over a parameter, runs on
/// `param`: on the `flex` device in float32, unless `CONVNET_FAST=0`. Elsewhere the caller
/// composes the step from tensor ops.
pub fn sgd_momentum_applies<const D: usize>(param: &Tensor<D>) -> bool {
    fast_enabled() && on_flex(param)
}

/// Keeps freed memory in the process instead of returning it to the kernel after every large
/// tensor: glibc serves allocations above 128 KiB with `mmap` by default and unmaps them on
/// free, so each training step page-faulted its activations afresh (about 300,000 faults and a
/// fifth of the CPU time per small-cnn bench). Raising the mmap threshold to 32 MiB and the trim
/// threshold to 256 MiB reuses them. One arena for all threads: with an arena per thread, the
/// pool threads' heaps were unmapped when their buffers were freed and mapped afresh on the
/// next step (about 3,900 page faults per ResNet-18 step at 32x32, many of them
/// copy-on-write faults of the zero page with a TLB flush on the other core); B x1.15
/// (`bench/RESULTS.md`). Call it before the thread pool starts. No-op on other C libraries.
pub fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        const M_TRIM_THRESHOLD: i32 = -1;
        const M_MMAP_THRESHOLD: i32 = -3;
        const M_ARENA_MAX: i32 = -8;
        unsafe extern "C" {
            fn mallopt(param: i32, value: i32) -> i32;
        }
        // SAFETY: mallopt only changes glibc's allocator parameters; any value is accepted or
        // refused (returning 0) without touching existing allocations.
        unsafe {
            mallopt(M_MMAP_THRESHOLD, 32 << 20);
            mallopt(M_TRIM_THRESHOLD, 256 << 20);
            mallopt(M_ARENA_MAX, 1);
        }
    }
}

/// The settings of a CPU thread pool for the layers (the CLI's global one, the trainer's):
/// `threads` threads (0: one per core) that flush subnormals ([`flush_denormals`]) and have
/// 256 MiB stacks, since the zoo's networks are large values that Burn's module traversal
/// moves around recursively, which overflows the 2 MiB of an ordinary thread.
pub fn cpu_pool(threads: usize) -> rayon::ThreadPoolBuilder {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .stack_size(256 << 20)
        .start_handler(|_| flush_denormals())
}

/// Makes the calling thread's float arithmetic treat subnormal values as zero (x86-64: the
/// MXCSR's flush-to-zero and denormals-are-zero bits), as TensorFlow does in its compute
/// threads. On Intel CPUs each operation on a subnormal float takes a microcode assist of
/// ~100 cycles: Adam's element-wise updates (Burn's `scalar_op`) went from 2 % to 24 % of the
/// default run's profile from its second epoch on, which then ran 1.6x slower than the first
/// (`bench/RESULTS.md`). Called on the main thread and on every thread of the CPU pool. No-op
/// on other architectures.
pub fn flush_denormals() {
    #[cfg(target_arch = "x86_64")]
    {
        const FTZ_DAZ: u32 = (1 << 15) | (1 << 6);
        let mut csr: u32 = 0;
        // SAFETY: stmxcsr/ldmxcsr read and write this thread's SSE control register only;
        // setting FTZ and DAZ changes results only where a value is subnormal.
        unsafe {
            std::arch::asm!("stmxcsr [{}]", in(reg) &mut csr, options(nostack));
            csr |= FTZ_DAZ;
            std::arch::asm!("ldmxcsr [{}]", in(reg) &csr, options(nostack));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    /// A subnormal product is zero on a thread that flushed denormals, and stays subnormal on
    /// one that did not.
    #[test]
    fn flush_denormals_zeroes_subnormal_results() {
        let product = || std::hint::black_box(3e-39f32) * std::hint::black_box(0.5f32);
        let plain = std::thread::spawn(product).join().unwrap();
        let flushed = std::thread::spawn(move || {
            super::flush_denormals();
            product()
        })
        .join()
        .unwrap();
        assert!(plain > 0.0 && plain < f32::MIN_POSITIVE, "{plain}");
        if cfg!(target_arch = "x86_64") {
            assert_eq!(flushed, 0.0);
        }
    }

    use burn::module::Module;
    use burn::nn::conv::Conv2dConfig;
    use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
    use burn::nn::{BatchNormConfig, LinearConfig, PaddingConfig2d};
    use burn::tensor::{Device, Distribution, Tensor, activation};

    /// Fastest of `reps` runs of `f`, in ms (the machine is shared: the minimum is the
    /// least disturbed figure).
    fn time<R>(reps: usize, mut f: impl FnMut() -> R) -> f64 {
        let _ = f();
        (0..reps)
            .map(|_| {
                let t = Instant::now();
                let _ = f();
                t.elapsed().as_secs_f64() * 1e3
            })
            .fold(f64::INFINITY, f64::min)
    }

    /// Forward and forward+backward time of one op at the given input shape, in ms; `grad_x`
    /// false leaves the input constant (only parameter gradients).
    fn fwd_bwd(
        name: &str,
        d: &Device,
        shape: [usize; 4],
        grad_x: bool,
        op: &dyn Fn(Tensor<4>) -> Tensor<4>,
    ) {
        let x = Tensor::<4>::random(shape, Distribution::Default, d);
        let input = || match grad_x {
            true => x.clone().require_grad(),
            false => x.clone(),
        };
        let reps = 15;
        let f = time(reps, || op(input()).sum().into_data());
        let fb = time(reps, || {
            let x = input();
            let g = op(x.clone()).sum().backward();
            x.grad(&g).map(|g| g.sum().into_data())
        });
        println!("{name:<28} fwd {f:7.2} ms  bwd {:7.2} ms", fb - f);
    }

    fn max_diff(a: Tensor<4>, b: Tensor<4>) -> f32 {
        (a - b).abs().max().into_scalar()
    }

    /// Largest difference relative to the largest magnitude of `reference`.
    fn rel_diff<const D: usize>(ours: Tensor<D>, reference: Tensor<D>) -> f32 {
        let scale: f32 = reference.clone().abs().max().into_scalar();
        (ours - reference).abs().max().into_scalar::<f32>() / scale.max(1e-12)
    }

    /// The kernel gives Burn's outputs and gradients (input, weight, bias) up to float
    /// rounding, with and without padding and bias, for 3x3, 5x5, 1x1 and 2x3 kernels, strides
    /// 1 and 2, both formulations (products over groups of samples for maps of at most 64
    /// pixels, one per sample above), batches larger and smaller than the thread count (one
    /// sample's tiles shared among the threads), and im2col tiles (a 40x40 input with 64 rows
    /// spans several).
    #[test]
    fn conv2d_matches_burn_forward_and_gradients() {
        let d = Device::flex().autodiff();
        d.seed(7);
        for (n, ci, co, k, stride, pad, bias, hw) in [
            (3, 1, 8, [3, 3], 1, (1, 1, 1, 1), false, [9, 7]),
            (3, 1, 5, [5, 5], 1, (2, 2, 2, 2), true, [9, 7]),
            (3, 4, 6, [1, 1], 1, (0, 0, 0, 0), true, [9, 7]),
            (1, 4, 6, [1, 1], 2, (0, 0, 0, 0), false, [9, 7]),
            (3, 2, 3, [2, 3], 1, (0, 1, 1, 0), false, [9, 7]),
            (1, 3, 4, [3, 3], 2, (1, 1, 1, 1), true, [9, 8]),
            (2, 64, 8, [3, 3], 1, (1, 1, 1, 1), true, [40, 40]),
            (1, 3, 4, [3, 3], 1, (1, 1, 1, 1), true, [20, 20]),
            // 3x3 stride 1 with 64+ channels: Winograd forward, and the input gradient as a
            // Winograd convolution (C_out <= C, and C_out > C).
            (2, 64, 64, [3, 3], 1, (1, 1, 1, 1), true, [9, 10]),
            (1, 64, 96, [3, 3], 1, (1, 1, 1, 1), false, [11, 9]),
            // Stride 1 above 64 pixels with C_out <= C: the input gradient as a convolution
            // of dY with the flipped kernel (asymmetric padding, 5x5, 2x3).
            (2, 4, 3, [3, 3], 1, (0, 0, 2, 2), true, [12, 9]),
            (2, 3, 3, [5, 5], 1, (2, 2, 2, 2), true, [17, 4]),
            (3, 4, 2, [2, 3], 1, (0, 1, 1, 0), false, [12, 9]),
            // One sample on more than 64 pixels: its tiles shared among the threads.
            (1, 4, 6, [1, 1], 1, (0, 0, 0, 0), true, [12, 10]),
            // One sample with more output channels than pixels: the channels shared among
            // the threads (3x3, 3x3 stride 2, 1x1).
            (1, 5, 24, [3, 3], 1, (1, 1, 1, 1), true, [3, 4]),
            (1, 6, 20, [3, 3], 2, (1, 1, 1, 1), false, [7, 7]),
            (1, 8, 40, [1, 1], 1, (0, 0, 0, 0), true, [5, 6]),
            (1, 2, 3, [3, 3], 2, (1, 1, 1, 1), false, [31, 29]),
            // Stride 1 with rows as wide as the input's (im2col as shifted copies): padding
            // all on one side, more than the kernel's reach, and a 5x5 on a map 4 wide; on
            // maps of at most 64 pixels (sample groups) and above (per sample).
            (2, 3, 4, [3, 3], 1, (0, 0, 2, 2), true, [9, 7]),
            (2, 2, 3, [3, 3], 1, (2, 2, 0, 0), false, [6, 5]),
            (2, 2, 3, [5, 5], 1, (2, 2, 2, 2), true, [5, 4]),
            (2, 3, 4, [3, 3], 1, (0, 0, 2, 2), true, [12, 9]),
            (2, 2, 3, [3, 3], 1, (2, 2, 0, 0), false, [10, 9]),
            (2, 2, 3, [5, 5], 1, (2, 2, 2, 2), true, [17, 4]),
            // Maps smaller than the kernel's reach, where some taps read only padding
            // (ResNet's last stage): 1x1 (only the centre tap), 2x2 stride 2, 1x3.
            (4, 5, 3, [3, 3], 1, (1, 1, 1, 1), true, [1, 1]),
            (3, 5, 3, [3, 3], 2, (1, 1, 1, 1), false, [2, 2]),
            (2, 3, 2, [3, 3], 1, (1, 1, 1, 1), true, [1, 3]),
            (2, 2, 2, [3, 3], 1, (3, 3, 3, 3), false, [1, 1]),
            // Every output reads only padding: the bias alone, no input or weight gradient.
            (2, 2, 2, [1, 1], 2, (3, 3, 3, 3), true, [1, 1]),
        ] {
            let conv = Conv2dConfig::new([ci, co], k)
                .with_stride([stride, stride])
                .with_padding(PaddingConfig2d::Explicit(pad.0, pad.1, pad.2, pad.3))
                .with_bias(bias)
                .init(&d);
            let [h, w] = hw;
            let x = Tensor::<4>::random([n, ci, h, w], Distribution::Default, &d).require_grad();
            let r = Tensor::<4>::random([n, co, 1, 1], Distribution::Default, &d);
            let fast = super::conv2d(&conv, &x).expect("applicable");
            let slow = conv.forward(x.clone());
            assert_eq!(fast.dims(), slow.dims());
            assert!(rel_diff(fast.clone(), slow.clone()) < 1e-5);
            let gf = (fast * r.clone()).sum().backward();
            let gs = (slow * r).sum().backward();
            let dx = rel_diff(x.grad(&gf).unwrap(), x.grad(&gs).unwrap());
            let w = conv.weight.val();
            let dw = rel_diff(w.grad(&gf).unwrap(), w.grad(&gs).unwrap());
            assert!(dx < 1e-5 && dw < 1e-5, "dx {dx} dw {dw}");
            if let Some(b) = &conv.bias {
                let b = b.val();
                let db = rel_diff(b.grad(&gf).unwrap(), b.grad(&gs).unwrap());
                assert!(db < 1e-5, "db {db}");
            }
        }
        // Pooling: same values, floor mode crops (2x2 through the kernels, 3x3/3 through the
        // windows kernel), in training the same input gradient.
        let cpu = Device::flex();
        let same_gradient = |pool: &MaxPool2d, x: &Tensor<4>| {
            let x = x.clone().autodiff().require_grad();
            let fast = super::max_pool2d(pool, &x).expect("applicable in training");
            let burn = pool.forward(x.clone());
            assert_eq!(max_diff(fast.clone(), burn.clone()), 0.0);
            let r = Tensor::<4>::random(fast.dims(), Distribution::Default, &x.device());
            let (gf, gb) = (
                (fast * r.clone()).sum().backward(),
                (burn * r).sum().backward(),
            );
            assert_eq!(max_diff(x.grad(&gf).unwrap(), x.grad(&gb).unwrap()), 0.0);
        };
        for k in [2, 3] {
            let pool = MaxPool2dConfig::new([k, k]).with_strides([k, k]).init();
            for shape in [[2, 3, 8, 6], [2, 3, 9, 7]] {
                let x = Tensor::<4>::random(shape, Distribution::Default, &cpu);
                let fast = super::max_pool2d(&pool, &x).expect("applicable");
                assert_eq!(max_diff(fast, pool.forward(x.clone())), 0.0);
                same_gradient(&pool, &x);
            }
        }
        // Overlapping and padded windows: the windows kernel, Burn's values (a NaN included)
        // and, in training, Burn's input gradient (overlaps add up, ties go to the first
        // maximum); ceil mode only where it equals floor.
        for (k, stride, pad, shape) in [
            (3, 2, 1, [2, 3, 9, 8]),
            (3, 2, 0, [1, 2, 9, 10]),
            (3, 1, 1, [1, 2, 5, 4]),
            (5, 3, 2, [1, 1, 11, 7]),
        ] {
            let pool = MaxPool2dConfig::new([k, k])
                .with_strides([stride, stride])
                .with_padding(PaddingConfig2d::Explicit(pad, pad, pad, pad))
                .init();
            let x = Tensor::<4>::random(shape, Distribution::Default, &cpu);
            let fast = super::max_pool2d(&pool, &x).expect("applicable");
            assert_eq!(
                max_diff(fast, pool.forward(x.clone())),
                0.0,
                "{k}/{stride} p{pad}"
            );
            same_gradient(&pool, &x);
            // Ties: a constant input and one with repeated values.
            same_gradient(&pool, &Tensor::ones(shape, &cpu));
            same_gradient(&pool, &x.clone().mul_scalar(2.0).round());
        }
        let nan = Tensor::<4>::from_floats([[[[1.0, f32::NAN, 2.0], [0.0, 3.0, 1.0]]]], &cpu);
        let pool = MaxPool2dConfig::new([2, 2]).with_strides([1, 1]).init();
        let y = super::max_pool2d(&pool, &nan)
            .expect("applicable")
            .into_data();
        let y = y.try_to_vec::<f32>().unwrap();
        assert!(y[0].is_nan() && y[1].is_nan(), "{y:?}");
        let ceil = |h| {
            let pool = MaxPool2dConfig::new([3, 3])
                .with_strides([2, 2])
                .with_ceil_mode(true);
            super::max_pool2d(&pool.init(), &Tensor::zeros([1, 1, h, h], &cpu)).is_some()
        };
        assert!(ceil(9) && !ceil(8));
        // Batch norm (inference): folded scale and shift, Burn's up to rounding.
        let mut bn = BatchNormConfig::new(3).init(&cpu);
        let stats =
            |seed| Tensor::<1>::random([3], Distribution::Uniform(0.5, 2.0), &cpu).add_scalar(seed);
        bn.running_mean = burn::module::RunningState::new(stats(-1.0));
        bn.running_var = burn::module::RunningState::new(stats(0.0));
        bn.gamma = burn::module::Param::from_tensor(stats(0.0));
        bn.beta = burn::module::Param::from_tensor(stats(-1.0));
        let x = Tensor::<4>::random([2, 3, 5, 4], Distribution::Default, &cpu);
        let fast = super::batch_norm(&bn, &x).expect("applicable");
        assert!(max_diff(fast, bn.forward(x.clone())) < 1e-5);
        // Training runs the kernels (checked against Burn in `kernels::tests`); a frozen
        // layer keeps Burn's inference path.
        assert!(super::batch_norm(&bn, &x.clone().autodiff()).is_some());
        assert!(super::batch_norm(&bn.clone().no_grad().valid(), &x.autodiff()).is_none());
        // Inference and strides run the kernel too; unsupported options fall back.
        let conv = Conv2dConfig::new([1, 2], [3, 3]).init(&d);
        let x = Tensor::<4>::zeros([1, 1, 5, 5], &Device::flex());
        assert!(super::conv2d(&conv.valid(), &x).is_some());
        let strided = Conv2dConfig::new([1, 2], [3, 3]).with_stride([2, 2]);
        assert!(super::conv2d(&strided.init(&d), &x.clone().autodiff()).is_some());
        let dilated = Conv2dConfig::new([1, 2], [3, 3]).with_dilation([2, 2]);
        assert!(super::conv2d(&dilated.init(&d), &x.clone().autodiff()).is_none());
        let grouped = Conv2dConfig::new([2, 2], [1, 1]).with_groups(2);
        assert!(super::conv2d(&grouped.init(&d), &Tensor::zeros([1, 2, 3, 3], &d)).is_none());
    }

    /// Convolution, inference batch norm, residual and ReLU in one kernel call (and
    /// convolution + ReLU) give Burn's layers' result, on maps of at most 64 pixels (products
    /// over sample groups) and above (per sample), with and without the convolution's bias,
    /// residual and ReLU; the composed autodiff form gives the same values. Training inputs
    /// and mismatched residuals are refused, except by `conv_relu`, whose training kernel
    /// gives Burn's gradients.
    #[test]
    fn conv_bn_matches_the_layers() {
        let cpu = Device::flex();
        cpu.seed(11);
        let uniform = |n, lo, hi| Tensor::<1>::random([n], Distribution::Uniform(lo, hi), &cpu);
        for (n, ci, co, stride, bias, hw) in [
            (3, 4, 5, 1, false, [7, 6]),
            (2, 3, 6, 2, true, [9, 8]),
            (2, 4, 5, 1, true, [12, 11]),
            (1, 3, 4, 2, false, [21, 20]),
        ] {
            let conv = Conv2dConfig::new([ci, co], [3, 3])
                .with_stride([stride, stride])
                .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                .with_bias(bias)
                .init(&cpu);
            let mut bn = BatchNormConfig::new(co).init(&cpu);
            bn.running_mean = burn::module::RunningState::new(uniform(co, -1.0, 1.0));
            bn.running_var = burn::module::RunningState::new(uniform(co, 0.5, 2.0));
            bn.gamma = burn::module::Param::from_tensor(uniform(co, 0.5, 1.5));
            bn.beta = burn::module::Param::from_tensor(uniform(co, -0.5, 0.5));
            let x = Tensor::<4>::random([n, ci, hw[0], hw[1]], Distribution::Default, &cpu);
            let y = bn.forward(conv.forward(x.clone()));
            let r = Tensor::<4>::random(y.dims(), Distribution::Default, &cpu);
            for (residual, relu) in [(false, false), (false, true), (true, true)] {
                let reference = match residual {
                    true => y.clone() + r.clone(),
                    false => y.clone(),
                };
                let reference = match relu {
                    true => activation::relu(reference),
                    false => reference,
                };
                let res = residual.then_some(&r);
                let fast = super::conv_bn(&conv, &bn, &x, res, relu).expect("applicable");
                let d = rel_diff(fast, reference.clone());
                assert!(
                    d < 1e-5,
                    "{n} {ci}->{co} s{stride} {hw:?} {residual} {relu}: {d}"
                );
                // The same through the composed ops of the autodiff backend.
                let params = convnet_kernels::BatchNormParams {
                    gamma: bn.gamma.val().autodiff(),
                    beta: bn.beta.val().autodiff(),
                    mean: bn.running_mean.value().autodiff(),
                    var: bn.running_var.value().autodiff(),
                    epsilon: bn.epsilon,
                };
                let composed = convnet_kernels::conv2d_affine(
                    x.clone().autodiff(),
                    conv.weight.val().autodiff(),
                    conv.bias.as_ref().map(|b| b.val().autodiff()),
                    params,
                    res.map(|r| r.clone().autodiff()),
                    [stride, stride],
                    [1; 4],
                    relu,
                );
                assert!(rel_diff(composed.inner(), reference) < 1e-5);
            }
            let plain = super::conv_relu(&conv, &x).expect("applicable");
            assert!(rel_diff(plain, activation::relu(conv.forward(x.clone()))) < 1e-5);
            // In training the fused kernel: Burn's values and gradients (input, weight, bias).
            let ad = cpu.clone().autodiff();
            let conv_ad = Conv2dConfig::new([ci, co], [3, 3])
                .with_stride([stride, stride])
                .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                .with_bias(bias)
                .init(&ad);
            let xa = Tensor::<4>::random([n, ci, hw[0], hw[1]], Distribution::Default, &ad);
            let xa = xa.sub_scalar(0.5).require_grad();
            let fast = super::conv_relu(&conv_ad, &xa).expect("applicable in training");
            let burn = activation::relu(conv_ad.forward(xa.clone()));
            assert!(rel_diff(fast.clone(), burn.clone()) < 1e-5);
            let r = Tensor::<4>::random(fast.dims(), Distribution::Default, &ad);
            let (gf, gb) = (
                (fast * r.clone()).sum().backward(),
                (burn * r).sum().backward(),
            );
            assert!(rel_diff(xa.grad(&gf).unwrap(), xa.grad(&gb).unwrap()) < 1e-5);
            let w = conv_ad.weight.val();
            assert!(rel_diff(w.grad(&gf).unwrap(), w.grad(&gb).unwrap()) < 1e-5);
            if let Some(b) = &conv_ad.bias {
                let b = b.val();
                assert!(rel_diff(b.grad(&gf).unwrap(), b.grad(&gb).unwrap()) < 1e-5);
            }
            assert!(super::conv_bn(&conv, &bn, &x.clone().autodiff(), None, true).is_none());
            let wrong = Tensor::<4>::zeros([n, co + 1, 1, 1], &cpu);
            assert!(super::conv_bn(&conv, &bn, &x, Some(&wrong), true).is_none());
        }
    }

    /// Per-op times at small-cnn and mnist-cnn shapes (batch 64):
    /// `cargo test --release -p convnet-nn fast::tests::profile -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn profile() {
        let d = Device::flex().autodiff();
        let conv = |ci, co, k, p, bias| {
            Conv2dConfig::new([ci, co], [k, k])
                .with_padding(PaddingConfig2d::Explicit(p, p, p, p))
                .with_bias(bias)
                .init(&d)
        };
        let c1 = conv(1, 32, 3, 1, false);
        let c2 = conv(32, 64, 3, 1, false);
        let m1 = conv(1, 16, 5, 2, true);
        let m2 = conv(16, 32, 5, 2, true);
        let bn1 = BatchNormConfig::new(32).init(&d);
        let bn2 = BatchNormConfig::new(64).init(&d);
        let pool = MaxPool2dConfig::new([2, 2]).init();
        let fc = LinearConfig::new(3136, 128).init(&d);
        fwd_bwd("small bn1 32x28x28", &d, [64, 32, 28, 28], true, &|x| {
            bn1.forward(x)
        });
        fwd_bwd(
            "  kernels::batch_norm_train",
            &d,
            [64, 32, 28, 28],
            true,
            &|x| super::batch_norm(&bn1, &x).unwrap(),
        );
        fwd_bwd("small relu 32x28x28", &d, [64, 32, 28, 28], true, &|x| {
            activation::relu(x)
        });
        fwd_bwd("small pool 32x28x28", &d, [64, 32, 28, 28], true, &|x| {
            pool.forward(x)
        });
        fwd_bwd("  kernels::max_pool2x2", &d, [64, 32, 28, 28], true, &|x| {
            convnet_kernels::max_pool2x2(x)
        });
        let x = Tensor::<4>::random([64, 32, 28, 28], Distribution::Default, &Device::flex());
        let burn = time(15, || pool.forward(x.clone()).into_data());
        let fast = time(15, || super::max_pool2d(&pool, &x).unwrap().into_data());
        println!("  inference: Burn {burn:.2} ms, kernels::max_pool2x2 {fast:.2} ms");
        fwd_bwd("small bn2 64x14x14", &d, [64, 64, 14, 14], true, &|x| {
            bn2.forward(x)
        });
        fwd_bwd("small relu 64x14x14", &d, [64, 64, 14, 14], true, &|x| {
            activation::relu(x)
        });
        fwd_bwd("small pool 64x14x14", &d, [64, 64, 14, 14], true, &|x| {
            pool.forward(x)
        });
        fwd_bwd("small fc1 3136->128", &d, [64, 1, 1, 3136], true, &|x| {
            fc.forward(x)
        });
        for (name, c, shape) in [
            ("small conv1 1->32 3x3", &c1, [64, 1, 28, 28]),
            ("small conv2 32->64 3x3", &c2, [64, 32, 14, 14]),
            ("mnist conv1 1->16 5x5", &m1, [64, 1, 28, 28]),
            ("mnist conv2 16->32 5x5", &m2, [64, 16, 14, 14]),
        ] {
            fwd_bwd(name, &d, shape, true, &|x| c.forward(x));
            fwd_bwd("  weight grad only", &d, shape, false, &|x| c.forward(x));
            let frozen = c.clone().no_grad();
            fwd_bwd("  input grad only", &d, shape, true, &|x| frozen.forward(x));
            fwd_bwd("  kernels::conv2d", &d, shape, true, &|x| {
                super::conv2d(c, &x).unwrap()
            });
        }
        for name in ["small-cnn", "mnist-cnn"] {
            let spec = crate::ModelSpec::new(name, [1, 28, 28], 10);
            let model = crate::build(&spec, &d).unwrap();
            let x = Tensor::<4>::random([64, 1, 28, 28], Distribution::Default, &d);
            let f = time(10, || model.forward(x.clone()).sum().into_data());
            let fb = time(10, || {
                let g = model.forward(x.clone()).sum().backward();
                let _ = model.num_params();
                g
            });
            println!(
                "{name:<28} fwd {f:7.2} ms  bwd {:7.2} ms (whole model)",
                fb - f
            );
        }
    }
}
