//! `--device` and `--threads`: choosing where tensors live.

use anyhow::{Result, bail};
use burn::tensor::Device;

/// Parses `cpu`, `ndarray`, `cuda[:N]`, `vulkan[:N]` or `wgpu[:API]` (the GPU ones need their
/// cargo feature). `vulkan` alone is the best Vulkan device found (a discrete GPU first, else an integrated
/// one, else a software one such as Mesa's lavapipe; `CUBECL_WGPU_DEFAULT_DEVICE` overrides),
/// `vulkan:N` the N-th discrete GPU.
pub fn parse(spec: &str) -> Result<Device> {
    if let Some(api) = spec.strip_prefix("wgpu") {
        #[cfg(feature = "wgpu")]
        return wgpu(spec, api);
        #[cfg(not(feature = "wgpu"))]
        bail!(
            "this convnet was built without 'wgpu' support (asked for '{spec}'{}); rebuild with `cargo build --release --features wgpu`",
            if api.is_empty() {
                ""
            } else {
                ", a graphics API of wgpu"
            }
        );
    }
    let (kind, index) = match spec.split_once(':') {
        Some((k, i)) => (
            k,
            Some(
                i.parse::<usize>()
                    .map_err(|_| anyhow::anyhow!("bad device index in '{spec}'"))?,
            ),
        ),
        None => (spec, None),
    };
    let _ = index;
    match kind {
        "cpu" | "flex" => Ok(Device::flex()),
        #[cfg(feature = "ndarray")]
        "ndarray" => Ok(Device::ndarray()),
        #[cfg(feature = "cuda")]
        "cuda" => Ok(Device::cuda(index.unwrap_or(0))),
        #[cfg(feature = "vulkan")]
        "vulkan" => Ok(Device::vulkan(match index {
            Some(i) => burn::tensor::DeviceKind::DiscreteGpu(i),
            None => burn::tensor::DeviceKind::DefaultDevice,
        })),
        // The backends this build has are matched above (so this arm is partly unreachable).
        #[allow(unreachable_patterns)]
        "ndarray" | "cuda" | "vulkan" => {
            bail!(
                "this convnet was built without '{kind}' support; rebuild with `cargo build --release --features {kind}`"
            )
        }
        _ => bail!("unknown device '{spec}'; use cpu, cuda[:N], vulkan[:N] or wgpu[:API]"),
    }
}

/// `wgpu` (the graphics API wgpu picks) or `wgpu:API` with API `vulkan`, `metal`, `dx12` or
/// `gl` (OpenGL, where no Vulkan driver is installed), on the best device found.
#[cfg(feature = "wgpu")]
fn wgpu(spec: &str, api: &str) -> Result<Device> {
    use burn::tensor::wgpu::WgpuBackend;
    let api = match api {
        "" => WgpuBackend::Auto,
        ":vulkan" => WgpuBackend::Vulkan,
        ":metal" => WgpuBackend::Metal,
        ":dx12" => WgpuBackend::Dx12,
        ":gl" => WgpuBackend::Gl,
        _ => bail!(
            "unknown device '{spec}'; use wgpu, wgpu:vulkan, wgpu:metal, wgpu:dx12 or wgpu:gl"
        ),
    };
    // A wgpu runtime starts once per process: later commands' parses (the test evaluation
    // after training) get the device started first.
    static STARTED: std::sync::Mutex<Vec<(String, Device)>> = std::sync::Mutex::new(Vec::new());
    let mut started = STARTED.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, d)) = started.iter().find(|(s, _)| s == spec) {
        return Ok(d.clone());
    }
    let device = Device::wgpu_options()
        .graphics_api(api)
        .init()
        .map_err(|e| anyhow::anyhow!("cannot start the GPU device '{spec}': {e}"))?;
    started.push((spec.to_string(), device.clone()));
    Ok(device)
}

/// Refuses `--precision` where `device` cannot compute in its half type (wgpu on OpenGL has
/// no float16), before a kernel fails deep inside a training step.
pub fn check_precision(
    device: &Device,
    spec: &str,
    precision: convnet_nn::Precision,
) -> Result<()> {
    if let Some(dtype) = precision.half()
        && !device.supports_dtype(dtype)
    {
        bail!(
            "the device '{spec}' does not compute in {precision}; use another --precision (f32, f16 or bf16) or another --device"
        );
    }
    Ok(())
}

/// Sizes the CPU thread pool (0 = one thread per core), whose threads flush subnormal floats
/// to zero (`convnet_nn::fast::flush_denormals`). (`main` has already set up the allocator
/// and the main thread: `keep_freed_memory`, `flush_denormals`.)
pub fn set_threads(threads: usize) {
    // Only fails if the pool was already built, in which case its settings stand.
    let _ = convnet_nn::fast::cpu_pool(threads).build_global();
}

/// Runs a command's `work` on a thread of the CPU pool, sized first by [`set_threads`]: the
/// layers' parallel loops then start from a thread of the pool that runs them, rather than
/// being handed to it by the main thread, which woke a sleeping worker and put the caller to
/// sleep for every one of them (ResNet-50 inference at batch 1: x1.09). The pool's threads
/// have 256 MiB stacks (`convnet_nn::fast::cpu_pool`).
pub fn in_pool<T: Send>(threads: usize, work: impl FnOnce() -> T + Send) -> T {
    set_threads(threads);
    rayon::scope(|_| work())
}
