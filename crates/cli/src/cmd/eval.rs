//! `convnet eval`: metrics of one model or an ensemble on a test split, with optional
//! test-time augmentation; writes confusion.png, samples.png, eval.json and report.html.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use burn::module::Module;
use convnet_data::{Dataset, Source};
use convnet_eval::Metrics;
use convnet_eval::metrics::argmax;
use convnet_eval::plot::{GridTile, plot_confusion, prediction_grid};
use convnet_eval::report::{Report, ReportImage, Table, metrics_summary, metrics_tables};
use convnet_eval::tta::{Predictions, Tta, dense_supported, predict_dataset};
use convnet_train::trainer::read_config;
use convnet_train::{Checkpoint, History};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::json;

/// Options of `convnet eval`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Run folders (their best.ckpt is used) or checkpoint files; with several, their
    /// probabilities are averaged (an ensemble).
    #[arg(required = true)]
    pub checkpoints: Vec<PathBuf>,
    /// Data to evaluate on [default: the run's data]; its test split (or test/ folder) is used.
    #[arg(long)]
    pub data: Option<String>,
    /// JSON file mapping folder names to class names.
    #[arg(long)]
    pub class_map: Option<PathBuf>,
    /// Samples per batch.
    #[arg(long, default_value_t = 256)]
    pub batch_size: usize,
    /// Test-time augmentation: center, hflip, five-crop, ten-crop, multi-scale=S1,S2,… or
    /// dense (GAP models only). Repeat to compare several; the first one gives the main
    /// figures, and each is reported with its gain over single crop.
    #[arg(long, default_value = "center")]
    pub tta: Vec<String>,
    /// Print the results as JSON.
    #[arg(long)]
    pub json: bool,
    /// Folder for confusion.png, samples.png, eval.json and report.html [default: the first
    /// checkpoint's folder].
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Compute device: cpu, cuda[:N], vulkan[:N] or wgpu[:vulkan|metal|dx12|gl].
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// CPU threads for the tensor kernels [default: one per core].
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Fail on the first unreadable test image instead of skipping it with a warning.
    #[arg(long)]
    pub strict: bool,
}

/// One evaluated configuration (a model or the ensemble, under one TTA mode).
struct Variant {
    name: String,
    metrics: Metrics,
    /// Top-1 gain in percentage points over the same model (or ensemble) with a single crop.
    gain: f64,
    /// For an ensemble: top-1 gain in points over its best member under the same mode.
    over_best: Option<f64>,
    seconds: f64,
}

/// What an evaluation produced.
pub struct Outcome {
    /// Metrics of the main configuration.
    pub metrics: Metrics,
    /// Where the files went.
    pub out: PathBuf,
}

pub fn run(a: Args) -> Result<()> {
    crate::device::in_pool(a.threads, || evaluate_and_write(&a, !a.json).map(|_| ()))
}

/// Evaluates a freshly trained run on its test split and writes its report (called at the end
/// of `convnet train`).
pub fn after_training(dir: &Path, device: &str) -> Result<Outcome> {
    let a = Args {
        checkpoints: vec![dir.to_path_buf()],
        data: None,
        class_map: None,
        batch_size: 256,
        tta: vec!["center".into()],
        json: false,
        out: None,
        device: device.into(),
        threads: 0,
        strict: false,
    };
    evaluate_and_write(&a, false)
}

/// The data of a run folder's config.json, or `--data`.
fn data_of(a: &Args, run_dir: &Path, ckpt: &Path) -> Result<(String, Option<PathBuf>)> {
    Ok(match (&a.data, read_config(run_dir)) {
        (Some(d), _) => (d.clone(), a.class_map.clone()),
        (None, Ok(cfg)) => (cfg.data.source, a.class_map.clone().or(cfg.data.class_map)),
        (None, Err(_)) => bail!(
            "{}: no config.json beside the checkpoint; say which data to use with --data",
            ckpt.display()
        ),
    })
}

fn evaluate_and_write(a: &Args, print: bool) -> Result<Outcome> {
    let device = crate::device::parse(&a.device)?;
    let modes = a
        .tta
        .iter()
        .map(|s| Tta::parse(s).map_err(anyhow::Error::msg))
        .collect::<Result<Vec<Tta>>>()?;
    // Single crop is always computed: every mode is reported against it.
    let mut computed = vec![Tta::Center];
    for m in &modes {
        if !computed.contains(m) {
            computed.push(m.clone());
        }
    }
    let mut paths: Vec<PathBuf> = Vec::new();
    let mut ckpts: Vec<Checkpoint> = Vec::new();
    for c in &a.checkpoints {
        let p = super::resolve_checkpoint(c)?;
        let ck = Checkpoint::load(&p, &device)?;
        if let Some(first) = ckpts.first().map(|f| &f.meta.classes)
            && *first != ck.meta.classes
        {
            bail!(
                "{} and {} were trained on different classes; an ensemble needs the same classes in the same order",
                paths[0].display(),
                p.display()
            );
        }
        paths.push(p);
        ckpts.push(ck);
    }
    let run_dir = paths[0].parent().map(PathBuf::from).unwrap_or_default();
    let (data, class_map) = data_of(a, &run_dir, &paths[0])?;
    let source = Source::parse(&data, class_map.as_deref())?;
    let test = source.test()?;
    let classes = ckpts[0].meta.classes.clone();
    if test.classes().len() != classes.len() {
        bail!(
            "{data} has {} classes but the model was trained on {} ({})",
            test.classes().len(),
            classes.len(),
            classes.join(", ")
        );
    }
    let models: Vec<_> = ckpts.iter().map(|c| c.model.clone().valid()).collect();
    for (ck, (model, p)) in ckpts.iter().zip(models.iter().zip(&paths)) {
        for m in &computed {
            m.check(&ck.meta.preprocess)
                .map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?;
            if *m == Tta::Dense {
                dense_supported(model, &ck.meta.preprocess, &device).map_err(|e| {
                    anyhow::anyhow!("{} ({}): {e}", p.display(), ck.meta.model.name)
                })?;
            }
        }
    }

    let total = (models.len() * test.len()) as u64
        * computed.iter().map(|m| m.num_views() as u64).sum::<u64>();
    let pb = ProgressBar::new(total);
    if super::interactive() {
        pb.set_style(
            ProgressStyle::with_template("eval [{bar:28}] {percent}% ETA {eta} {msg}")?
                .progress_chars("=> "),
        );
    } else {
        pb.set_draw_target(ProgressDrawTarget::hidden());
    }
    // preds[model][mode], with seconds.
    let mut preds: Vec<Vec<(Predictions, f64)>> = Vec::new();
    for (mi, (model, ck)) in models.iter().zip(&ckpts).enumerate() {
        let mut row = Vec::new();
        for mode in &computed {
            pb.set_message(format!("model {} {}", mi + 1, mode.name()));
            let started = Instant::now();
            let mut last = 0;
            let p = predict_dataset(
                model,
                &device,
                test.as_ref(),
                &ck.meta.preprocess,
                mode,
                a.batch_size.max(1),
                |done, _| {
                    pb.inc(((done - last) * mode.num_views()) as u64);
                    last = done;
                },
            );
            row.push((p, started.elapsed().as_secs_f64()));
        }
        preds.push(row);
    }
    pb.finish_and_clear();
    let skipped = preds[0][0].0.skipped.clone();
    if a.strict
        && let Some(e) = convnet_data::DataError::first_skipped(&skipped)
    {
        return Err(e.into());
    }
    for (_, why) in &skipped {
        eprintln!("warning: skipped {why}");
    }
    if preds[0][0].0.labels.is_empty() {
        bail!("no image of {data} could be evaluated");
    }

    // Every model under every mode, then the ensemble under every mode.
    let mut variants = Vec::new();
    let label = |mi: usize| {
        if models.len() == 1 {
            String::new()
        } else {
            format!("model {} ", mi + 1)
        }
    };
    for (mi, row) in preds.iter().enumerate() {
        let single = row[0].0.metrics().accuracy();
        for (mode, (p, secs)) in computed.iter().zip(row) {
            let m = p.metrics();
            variants.push(Variant {
                name: format!("{}{}", label(mi), mode.name()),
                gain: 100.0 * (m.accuracy() - single),
                over_best: None,
                metrics: m,
                seconds: *secs,
            });
        }
    }
    let mut ensemble: Vec<Predictions> = Vec::new();
    if models.len() > 1 {
        for (j, mode) in computed.iter().enumerate() {
            let parts: Vec<&Predictions> = preds.iter().map(|r| &r[j].0).collect();
            ensemble.push(Predictions::average(&parts).expect("at least one model"));
            let m = ensemble[j].metrics();
            let single = ensemble[0].metrics().accuracy();
            let best = preds
                .iter()
                .map(|r| r[j].0.metrics().accuracy())
                .fold(0.0, f64::max);
            variants.push(Variant {
                name: format!("ensemble of {} {}", models.len(), mode.name()),
                gain: 100.0 * (m.accuracy() - single),
                over_best: Some(100.0 * (m.accuracy() - best)),
                metrics: m,
                seconds: preds.iter().map(|r| r[j].1).sum(),
            });
        }
    }
    let main_mode = computed
        .iter()
        .position(|m| *m == modes[0])
        .expect("first mode is computed");
    let main = if models.len() > 1 {
        &ensemble[main_mode]
    } else {
        &preds[0][main_mode].0
    };
    let m = main.metrics();
    let main_name = if models.len() > 1 {
        format!("ensemble of {} models, {}", models.len(), modes[0].name())
    } else {
        format!("{}, {}", ckpts[0].meta.model.name, modes[0].name())
    };

    // Files.
    let out = a.out.clone().unwrap_or(run_dir.clone());
    std::fs::create_dir_all(&out).with_context(|| format!("cannot create {}", out.display()))?;
    let png = out.join("confusion.png");
    plot_confusion(
        &png,
        &m.confusion_rows(),
        &classes,
        &format!("{main_name} on {data} (top-1 {:.2}%)", 100.0 * m.accuracy()),
    )?;
    let samples = sample_grid(main, test.as_ref(), &classes)?;
    let samples_png = out.join("samples.png");
    convnet_data::files::write_atomic(&samples_png, &samples)
        .with_context(|| format!("cannot write {}", samples_png.display()))?;

    let per_class = m.per_class();
    let per_class_acc = m.per_class_accuracy();
    let variant_json: Vec<_> = variants
        .iter()
        .map(|v| {
            json!({"name": v.name, "top1": v.metrics.accuracy(), "top5": v.metrics.top5(),
                   "loss": v.metrics.loss(), "ece": v.metrics.ece(),
                   "top1_gain_points": v.gain, "top1_gain_over_best_member_points": v.over_best,
                   "seconds": v.seconds})
        })
        .collect();
    let report = json!({
        "checkpoint": paths[0],
        "checkpoints": paths,
        "data": data,
        "tta": modes[0].name(),
        "samples": m.count,
        "skipped": skipped.len(),
        "loss": m.loss(),
        "top1": m.accuracy(),
        "top5": m.top5(),
        "top1_error": 1.0 - m.accuracy(),
        "top5_error": 1.0 - m.top5(),
        "ece": m.ece(),
        "macro": m.macro_avg(),
        "micro": m.micro_avg(),
        "per_class": classes.iter().zip(&per_class).zip(&per_class_acc).map(|((c, s), acc)| json!({
            "class": c, "support": s.support, "precision": s.precision, "recall": s.recall,
            "f1": s.f1, "accuracy": acc})).collect::<Vec<_>>(),
        "per_class_accuracy": classes.iter().zip(&per_class_acc).map(|(c, a)| json!({"class": c, "accuracy": a})).collect::<Vec<_>>(),
        "most_confused": m.most_confused(10).iter().map(|c| json!({
            "true": classes[c.truth], "predicted": classes[c.predicted], "count": c.count})).collect::<Vec<_>>(),
        "variants": variant_json,
        "confusion": m.confusion_rows(),
        "classes": classes,
    });
    let eval_json = out.join("eval.json");
    convnet_data::files::write_atomic(
        &eval_json,
        serde_json::to_string_pretty(&report)?.as_bytes(),
    )
    .with_context(|| format!("cannot write {}", eval_json.display()))?;

    let html = out.join("report.html");
    build_report(
        &run_dir, &main_name, &data, &m, &classes, &variants, &png, &samples,
    )?
    .write(&html)
    .with_context(|| format!("cannot write {}", html.display()))?;

    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else if print {
        print_tables(&paths, &data, &main_name, &m, &classes, &variants);
        println!(
            "\nwrote {}, {}, {} and {}",
            png.display(),
            samples_png.display(),
            eval_json.display(),
            html.display()
        );
    }
    Ok(Outcome { metrics: m, out })
}

/// Up to 32 test images, evenly spaced, with their predictions (blue right, red wrong).
fn sample_grid(p: &Predictions, test: &dyn Dataset, classes: &[String]) -> Result<Vec<u8>> {
    let k = p.num_classes;
    let n = p.indices.len();
    let step = n.div_ceil(32).max(1);
    let mut tiles = Vec::new();
    for r in (0..n).step_by(step) {
        let probs = &p.probs[r * k..(r + 1) * k];
        let pred = argmax(probs);
        tiles.push(GridTile {
            image: test.image(p.indices[r])?,
            predicted: format!("{} {:.1}%", classes[pred], 100.0 * probs[pred]),
            truth: format!("true: {}", classes[p.labels[r]]),
            correct: Some(pred == p.labels[r]),
        });
    }
    Ok(prediction_grid(&tiles, 8)?)
}

#[allow(clippy::too_many_arguments)]
fn build_report(
    run_dir: &Path,
    name: &str,
    data: &str,
    m: &Metrics,
    classes: &[String],
    variants: &[Variant],
    confusion_png: &Path,
    samples: &[u8],
) -> Result<Report> {
    let mut r = Report {
        title: format!("convnet report: {}", run_dir.display()),
        ..Default::default()
    };
    r.summary.push(("model".into(), name.into()));
    r.summary.push(("data".into(), data.into()));
    r.summary.extend(metrics_summary(m));
    let history = std::fs::read_to_string(run_dir.join("history.csv"))
        .ok()
        .and_then(|t| History::from_csv(&t).ok());
    if let Some(h) = &history {
        let secs: f64 = h.rows.iter().map(|r| r.seconds).sum();
        let ips = h.rows.iter().map(|r| r.images_per_sec).sum::<f64>() / h.rows.len().max(1) as f64;
        r.summary.push(("epochs".into(), h.rows.len().to_string()));
        r.summary.push((
            "training time".into(),
            format!("{secs:.1} s ({ips:.0} images/s on average)"),
        ));
    }
    if let Ok(png) = std::fs::read(run_dir.join("curves.png")) {
        r.images.push(ReportImage {
            caption: "Training curves".into(),
            png,
        });
    }
    r.images.push(ReportImage {
        caption: "Confusion matrix (test set)".into(),
        png: std::fs::read(confusion_png)
            .with_context(|| format!("cannot read {}", confusion_png.display()))?,
    });
    r.images.push(ReportImage {
        caption: "Sample predictions (blue: right, red: wrong)".into(),
        png: samples.to_vec(),
    });
    r.tables.extend(metrics_tables(m, classes));
    if variants.len() > 1 {
        r.tables.push((
            "Test-time augmentation and ensembles".into(),
            variants_table(variants),
        ));
    }
    if let Some(h) = &history {
        let mut t = Table {
            header: [
                "epoch",
                "lr",
                "train loss",
                "train acc %",
                "val loss",
                "val acc %",
                "seconds",
                "images/s",
            ]
            .map(String::from)
            .to_vec(),
            rows: Vec::new(),
        };
        for e in &h.rows {
            t.rows.push(vec![
                e.epoch.to_string(),
                format!("{:.2e}", e.lr),
                format!("{:.4}", e.train_loss),
                format!("{:.2}", 100.0 * e.train_acc),
                format!("{:.4}", e.val_loss),
                format!("{:.2}", 100.0 * e.val_acc),
                format!("{:.1}", e.seconds),
                format!("{:.0}", e.images_per_sec),
            ]);
        }
        r.tables.push(("Epochs: timing and throughput".into(), t));
    }
    r.config_json = std::fs::read_to_string(run_dir.join("config.json")).ok();
    Ok(r)
}

fn variants_table(variants: &[Variant]) -> Table {
    Table {
        header: [
            "configuration",
            "top-1 %",
            "top-5 %",
            "loss",
            "ECE",
            "gain (points)",
            "seconds",
            "vs best member",
        ]
        .map(String::from)
        .to_vec(),
        rows: variants
            .iter()
            .map(|v| {
                vec![
                    v.name.clone(),
                    format!("{:.2}", 100.0 * v.metrics.accuracy()),
                    format!("{:.2}", 100.0 * v.metrics.top5()),
                    format!("{:.4}", v.metrics.loss()),
                    format!("{:.4}", v.metrics.ece()),
                    format!("{:+.2}", v.gain),
                    format!("{:.1}", v.seconds),
                    v.over_best.map_or(String::new(), |g| format!("{g:+.2}")),
                ]
            })
            .collect(),
    }
}

fn print_tables(
    paths: &[PathBuf],
    data: &str,
    name: &str,
    m: &Metrics,
    classes: &[String],
    variants: &[Variant],
) {
    let list: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    println!(
        "{} ({name}) on {data}: {} images",
        list.join(" + "),
        m.count
    );
    println!(
        "loss {:.4}   top-1 {:.2}% (error {:.2}%)   top-5 {:.2}% (error {:.2}%)   ECE {:.4}",
        m.loss(),
        100.0 * m.accuracy(),
        100.0 * (1.0 - m.accuracy()),
        100.0 * m.top5(),
        100.0 * (1.0 - m.top5()),
        m.ece()
    );
    println!(
        "\n  {:<20} {:>7} {:>10} {:>8} {:>8} {:>8}",
        "class", "support", "precision", "recall", "F1", "accuracy"
    );
    let row = |name: &str, s: &convnet_eval::metrics::ClassScores, acc: Option<f64>| {
        let acc = acc.map_or("n/a".into(), |a| format!("{:.2}%", 100.0 * a));
        println!(
            "  {:<20} {:>7} {:>9.2}% {:>7.2}% {:>7.2}% {:>8}",
            name.chars().take(20).collect::<String>(),
            s.support,
            100.0 * s.precision,
            100.0 * s.recall,
            100.0 * s.f1,
            acc
        );
    };
    for ((c, s), acc) in classes
        .iter()
        .zip(m.per_class())
        .zip(m.per_class_accuracy())
    {
        row(c, &s, acc);
    }
    row("macro average", &m.macro_avg(), None);
    row("micro average", &m.micro_avg(), Some(m.accuracy()));
    let confused = m.most_confused(5);
    if !confused.is_empty() {
        println!("\nmost confused (true → predicted: count):");
        for c in confused {
            println!(
                "  {} → {}: {}",
                classes[c.truth], classes[c.predicted], c.count
            );
        }
    }
    println!("\nconfusion matrix (rows: true class, columns: predicted):");
    let width = m
        .confusion
        .iter()
        .max()
        .map(|v| v.to_string().len())
        .unwrap_or(1)
        .max(3);
    print!("  {:>20}", "");
    for j in 0..classes.len() {
        print!(" {j:>width$}");
    }
    println!();
    for (i, row) in m.confusion_rows().iter().enumerate() {
        let name: String = classes[i].chars().take(16).collect();
        print!("  {:>16} {i:>3}", name);
        for v in row.iter() {
            print!(" {v:>width$}");
        }
        println!();
    }
    if variants.len() > 1 {
        println!(
            "\ntest-time augmentation and ensembles (gain: top-1 points over single crop; \
             vs best: an ensemble over its best member):"
        );
        let t = variants_table(variants);
        println!(
            "  {:<32} {:>8} {:>8} {:>8} {:>7} {:>7} {:>8} {:>8}",
            t.header[0],
            t.header[1],
            t.header[2],
            t.header[3],
            t.header[4],
            "gain",
            t.header[6],
            "vs best"
        );
        for r in t.rows {
            println!(
                "  {:<32} {:>8} {:>8} {:>8} {:>7} {:>7} {:>8} {:>8}",
                r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7]
            );
        }
    }
}
