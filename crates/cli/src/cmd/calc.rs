//! `convnet calc`: the output-size and padding arithmetic of convolutions and pooling.

use anyhow::{Result, bail};
use clap::Subcommand;
use convnet_nn::layers::{conv_out, same_padding};

/// What to calculate.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Output size and parameters of a convolution: (W - F + 2P)/S + 1, (F*F*D + 1)*K.
    Conv(ConvArgs),
    /// Output size and the paddings TensorFlow's 'SAME' needs for a pooling window
    /// (seed 000's get_output_size / get_paddings), on an NHWC shape.
    Pool(PoolArgs),
}

/// Options of `convnet calc conv`.
#[derive(clap::Args, Debug)]
pub struct ConvArgs {
    /// Input width (and height) W.
    #[arg(long)]
    pub w: usize,
    /// Filter size F.
    #[arg(long)]
    pub f: usize,
    /// Stride S.
    #[arg(long, default_value_t = 1)]
    pub s: usize,
    /// Zero padding P.
    #[arg(long, default_value_t = 0)]
    pub p: usize,
    /// Input depth D (channels).
    #[arg(long, default_value_t = 1)]
    pub d: usize,
    /// Number of filters K.
    #[arg(long, default_value_t = 1)]
    pub k: usize,
}

/// Options of `convnet calc pool`.
#[derive(clap::Args, Debug)]
pub struct PoolArgs {
    /// Input shape NxHxWxC, e.g. 1x224x224x16.
    #[arg(long)]
    pub shape: String,
    /// Pooling window.
    #[arg(long)]
    pub pool: usize,
    /// Stride.
    #[arg(long)]
    pub stride: usize,
}

pub fn run(c: Command) -> Result<()> {
    match c {
        Command::Conv(a) => {
            let Some(out) = conv_out(a.w, a.f, a.s, a.p) else {
                bail!(
                    "a {0}x{0} filter does not fit a {1}x{1} input with padding {2}",
                    a.f,
                    a.w,
                    a.p
                );
            };
            if (a.w + 2 * a.p - a.f) % a.s != 0 {
                println!(
                    "note: (W - F + 2P) = {} is not divisible by S = {}; the last {} column(s) are not covered",
                    a.w + 2 * a.p - a.f,
                    a.s,
                    (a.w + 2 * a.p - a.f) % a.s
                );
            }
            println!(
                "output: {out}x{out}x{}  (({} - {} + 2*{}) / {} + 1 = {out})",
                a.k, a.w, a.f, a.p, a.s
            );
            println!(
                "parameters: ({}*{}*{} + 1) * {} = {}",
                a.f,
                a.f,
                a.d,
                a.k,
                (a.f * a.f * a.d + 1) * a.k
            );
            println!(
                "padding that keeps the size at stride 1: {}",
                (a.f.saturating_sub(1)) / 2
            );
        }
        Command::Pool(a) => {
            let dims: Vec<usize> = a
                .shape
                .split('x')
                .map(|d| d.parse())
                .collect::<Result<_, _>>()
                .map_err(|_| anyhow::anyhow!("--shape '{}' is not NxHxWxC", a.shape))?;
            let [n, h, w, ch] = dims[..] else {
                bail!("--shape '{}' is not NxHxWxC", a.shape)
            };
            if a.stride == 0 || a.pool == 0 {
                bail!("--pool and --stride must be positive");
            }
            let valid = |x: usize| conv_out(x, a.pool, a.stride, 0).unwrap_or(0);
            let (oh, ph) = same_padding(h, a.pool, a.stride);
            let (ow, pw) = same_padding(w, a.pool, a.stride);
            println!("VALID output: {n}x{}x{}x{ch}", valid(h), valid(w));
            println!(
                "SAME  output: {n}x{oh}x{ow}x{ch}, paddings [[0, 0], [{}, {}], [{}, {}], [0, 0]]",
                ph.0, ph.1, pw.0, pw.1
            );
        }
    }
    Ok(())
}
