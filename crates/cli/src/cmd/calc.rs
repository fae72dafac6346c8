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
    /// Receptive field, in input pixels, of every convolution and pooling layer of a zoo
    /// model's convolutional base (measured on the network itself, branches included).
    Rf(RfArgs),
}

/// Options of `convnet calc rf`.
#[derive(clap::Args, Debug)]
pub struct RfArgs {
    /// Model name (see `convnet models`).
    pub model: String,
    /// Input CxHxW [default: the model's native input].
    #[arg(long)]
    pub input: Option<String>,
    /// Only this layer, named as in `convnet summary` (e.g. `Conv2d-13`).
    #[arg(long)]
    pub layer: Option<String>,
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
        Command::Rf(a) => {
            let entry = convnet_nn::find(&a.model)?;
            let input = match &a.input {
                Some(s) => super::summary::parse_input(s)?,
                None => entry.input,
            };
            let spec = convnet_nn::ModelSpec::new(&a.model, input, entry.classes);
            let device = burn::tensor::Device::flex();
            let net = convnet_nn::build(&spec, &device)?;
            let fields = convnet_nn::rf::receptive_fields(&net, &spec, &device);
            let shown: Vec<_> = fields
                .iter()
                .filter(|f| a.layer.as_deref().is_none_or(|l| f.name == l))
                .collect();
            if shown.is_empty() {
                let names: Vec<_> = fields.iter().map(|f| f.name.as_str()).collect();
                bail!(
                    "no layer '{}' changes the receptive field of {}; those that do: {}",
                    a.layer.as_deref().unwrap_or(""),
                    a.model,
                    names.join(", ")
                );
            }
            let [c, h, w] = input;
            println!(
                "Receptive fields of {} at {c}x{h}x{w} (centre position of each layer)",
                a.model
            );
            println!(
                "{:<22} {:<18} {:>14} {:>14}",
                "Layer", "Output", "Field (HxW)", "Jump (px)"
            );
            for f in shown {
                let mark = |clipped: bool| if clipped { "≥" } else { "" };
                println!(
                    "{:<22} {:<18} {:>14} {:>14}",
                    f.name,
                    f.output
                        .iter()
                        .map(|d| d.to_string())
                        .collect::<Vec<_>>()
                        .join("x"),
                    format!(
                        "{}{}x{}{}",
                        mark(f.clipped[0]),
                        f.size[0],
                        mark(f.clipped[1]),
                        f.size[1]
                    ),
                    format!("{:.1}", f.jump[0]),
                );
            }
            if fields.iter().any(|f| f.clipped[0] || f.clipped[1]) {
                println!(
                    "≥: the field reaches the input's border; a larger --input shows its full size"
                );
            }
        }
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
