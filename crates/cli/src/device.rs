//! `--device` and `--threads`: choosing where tensors live.

use anyhow::{Result, bail};
use burn::tensor::Device;

/// Parses `cpu`, `ndarray`, `cuda[:N]` or `vulkan[:N]` (the GPU ones need their cargo feature).
pub fn parse(spec: &str) -> Result<Device> {
    let (kind, index) = match spec.split_once(':') {
        Some((k, i)) => (
            k,
            i.parse::<usize>()
                .map_err(|_| anyhow::anyhow!("bad device index in '{spec}'"))?,
        ),
        None => (spec, 0),
    };
    let _ = index;
    match kind {
        "cpu" | "flex" => Ok(Device::flex()),
        #[cfg(feature = "ndarray")]
        "ndarray" => Ok(Device::ndarray()),
        #[cfg(feature = "cuda")]
        "cuda" => Ok(Device::cuda(index)),
        #[cfg(feature = "vulkan")]
        "vulkan" => Ok(Device::vulkan(burn::tensor::DeviceKind::DiscreteGpu(index))),
        "ndarray" | "cuda" | "vulkan" => {
            bail!(
                "this convnet was built without '{kind}' support; rebuild with `cargo build --release --features {kind}`"
            )
        }
        _ => bail!("unknown device '{spec}'; use cpu, cuda[:N] or vulkan[:N]"),
    }
}

/// Sizes the CPU thread pool (0 = one thread per core), whose threads flush subnormal floats
/// to zero (`convnet_nn::fast::flush_denormals`). (`main` has already set up the allocator
/// and the main thread: `keep_freed_memory`, `flush_denormals`.)
pub fn set_threads(threads: usize) {
    // Only fails if the pool was already built, in which case its settings stand.
    let _ = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .start_handler(|_| convnet_nn::fast::flush_denormals())
        .build_global();
}
