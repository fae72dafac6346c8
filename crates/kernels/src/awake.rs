//! The pool's idle threads kept looking for work between the layers' parallel sections, as
//! OpenMP's threads spin for a while after each parallel region (`KMP_BLOCKTIME`, 200 ms by
//! default in Intel's runtime, which PyTorch uses). Rayon's idle workers go to sleep after a
//! few dozen yields, and waking them costs a futex call and a context switch at nearly every
//! parallel section of a layer: ResNet-50 at batch 1 ran with 1.7 of 2 CPUs busy.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// How long a spinner looks for work after the last job it ran. A spinner stolen by a thread
/// that waits inside a job of its own (a `join` whose other half runs elsewhere) delays that
/// thread's return by at most this much; between a network's layers the gaps are shorter.
const LINGER: Duration = Duration::from_millis(2);

/// Spinners alive, in any pool.
static SPINNERS: AtomicUsize = AtomicUsize::new(0);

/// Called by each kernel as it starts: makes sure the pool's other threads are spinning
/// (`threads - 1` spinner jobs), unless the caller is outside a pool. A spinner run by the
/// thread that spawned it returns at once (it would only delay that thread).
pub(crate) fn keep_awake() {
    let Some(me) = rayon::current_thread_index() else {
        return;
    };
    let wanted = rayon::current_num_threads() - 1;
    while SPINNERS.load(Ordering::Relaxed) < wanted {
        SPINNERS.fetch_add(1, Ordering::Relaxed);
        rayon::spawn(move || {
            if rayon::current_thread_index() != Some(me) {
                spin();
            }
            SPINNERS.fetch_sub(1, Ordering::Relaxed);
        });
    }
}

/// Runs the pool's pending jobs as they come, yielding the core between looks, until none has
/// come for [`LINGER`].
fn spin() {
    let mut last = Instant::now();
    while last.elapsed() < LINGER {
        match rayon::yield_now() {
            Some(rayon::Yield::Executed) => last = Instant::now(),
            _ => std::thread::yield_now(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rayon::prelude::*;

    /// Run alone in a child process: the count is global, and the other tests' pools start
    /// spinners too.
    #[test]
    fn spinners_start_in_a_pool_only_and_stop_when_idle() {
        const NAME: &str = "awake::tests::spinners_start_in_a_pool_only_and_stop_when_idle";
        if std::env::var_os("CONVNET_AWAKE_ALONE").is_none() {
            let out = std::process::Command::new(std::env::current_exe().unwrap())
                .args([NAME, "--exact", "--test-threads", "1"])
                .env("CONVNET_AWAKE_ALONE", "1")
                .output()
                .unwrap();
            let report = String::from_utf8_lossy(&out.stdout);
            assert!(out.status.success(), "{report}");
            assert!(report.contains("1 passed"), "{report}");
            return;
        }
        keep_awake();
        assert_eq!(SPINNERS.load(Ordering::Relaxed), 0, "outside a pool");
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(3)
            .build()
            .unwrap();
        pool.install(|| {
            keep_awake();
            assert_eq!(SPINNERS.load(Ordering::Relaxed), 2);
            keep_awake();
            assert_eq!(
                SPINNERS.load(Ordering::Relaxed),
                2,
                "no more than threads - 1"
            );
            // The spinners run the pool's jobs meanwhile.
            let sum: u64 = (0..1000u64).into_par_iter().sum();
            assert_eq!(sum, 499_500);
        });
        let start = Instant::now();
        while SPINNERS.load(Ordering::Relaxed) > 0 {
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "spinners still running"
            );
            std::thread::sleep(LINGER);
        }
    }
}
