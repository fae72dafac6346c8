//! Learning-rate schedules with PyTorch's semantics: step, multi-step, exponential, cosine with
//! linear warm-up, one-cycle and reduce-on-plateau. Every schedule is a pure function of the
//! training position (and, for plateau, of the validation losses so far), so a resumed run gets
//! exactly the learning rates an uninterrupted one would.

use serde::{Deserialize, Serialize};

/// Which schedule.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ScheduleKind {
    /// `StepLR(step, gamma)`; constant when `step` is unset.
    #[default]
    Step,
    /// `MultiStepLR(milestones, gamma)`.
    MultiStep,
    /// `ExponentialLR(gamma)`: multiplied by `gamma` every epoch.
    Exponential,
    /// Linear warm-up over `warmup_epochs`, then cosine annealing to `min_lr`, per batch.
    Cosine,
    /// `OneCycleLR(max_lr = lr, pct_start, div_factor 25, final_div_factor 1e4)`, cosine, per batch.
    OneCycle,
    /// `ReduceLROnPlateau(mode='min', factor = gamma, patience, threshold 1e-4 relative)` on the
    /// validation loss.
    Plateau,
}

impl std::str::FromStr for ScheduleKind {
    type Err = String;

    /// Parses the kebab-case name used in configs and on the command line.
    fn from_str(s: &str) -> Result<Self, String> {
        serde_json::from_value(serde_json::Value::String(s.to_string())).map_err(|_| {
            format!(
                "unknown schedule '{s}' (step, multi-step, exponential, cosine, one-cycle, plateau)"
            )
        })
    }
}

/// A learning-rate schedule and its parameters (those a kind does not use are ignored).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScheduleConfig {
    /// Which schedule (absent in older `config.json`: step).
    #[serde(default)]
    pub kind: ScheduleKind,
    /// Step: epochs between decays.
    pub step: Option<usize>,
    /// Decay factor (step, multi-step, exponential, plateau).
    pub gamma: f64,
    /// Multi-step: the epochs at which the rate is multiplied by `gamma`.
    #[serde(default)]
    pub milestones: Vec<usize>,
    /// Epochs of linear warm-up from `lr / 100`, per batch (may be fractional); every
    /// schedule but one-cycle, which rises on its own.
    #[serde(default)]
    pub warmup_epochs: f64,
    /// Cosine: the final learning rate.
    #[serde(default)]
    pub min_lr: f64,
    /// One-cycle: fraction of training spent increasing the rate.
    #[serde(default = "default_pct_start")]
    pub pct_start: f64,
    /// Plateau: epochs without improvement before the rate is cut.
    #[serde(default = "default_patience")]
    pub patience: usize,
}

fn default_pct_start() -> f64 {
    0.3
}

fn default_patience() -> usize {
    10
}

impl Default for ScheduleConfig {
    fn default() -> Self {
        Self {
            kind: ScheduleKind::Step,
            step: None,
            gamma: 0.1,
            milestones: Vec::new(),
            warmup_epochs: 0.0,
            min_lr: 0.0,
            pct_start: default_pct_start(),
            patience: default_patience(),
        }
    }
}

/// Where training is: the 0-based `epoch`, the fraction `frac` of it done, out of `epochs`.
#[derive(Debug, Clone, Copy)]
pub struct Position {
    /// 0-based epoch.
    pub epoch: usize,
    /// Fraction of the epoch done, in `[0, 1)`.
    pub frac: f64,
    /// Total epochs of the run.
    pub epochs: usize,
}

impl ScheduleConfig {
    /// The learning rate at `at`, for base rate `base`; `val_losses` are the validation losses
    /// of the epochs finished so far (only plateau reads them).
    pub fn lr(&self, base: f64, at: Position, val_losses: &[f64]) -> f64 {
        let epoch = at.epoch;
        let t = epoch as f64 + at.frac.clamp(0.0, 1.0);
        let total = at.epochs.max(1) as f64;
        let cos = |from: f64, to: f64, p: f64| {
            to + (from - to) * 0.5 * (1.0 + (std::f64::consts::PI * p.clamp(0.0, 1.0)).cos())
        };
        let warm = self.warmup_epochs.max(0.0);
        let v = match self.kind {
            ScheduleKind::Step => match self.step {
                Some(s) if s > 0 => base * self.gamma.powi((epoch / s) as i32),
                _ => base,
            },
            ScheduleKind::MultiStep => {
                let passed = self.milestones.iter().filter(|&&m| m <= epoch).count();
                base * self.gamma.powi(passed as i32)
            }
            ScheduleKind::Exponential => base * self.gamma.powi(epoch as i32),
            ScheduleKind::Cosine => {
                if t < warm {
                    let start = base / 100.0;
                    start + (base - start) * t / warm
                } else {
                    cos(
                        base,
                        self.min_lr,
                        (t - warm) / (total - warm).max(f64::EPSILON),
                    )
                }
            }
            ScheduleKind::OneCycle => {
                let (initial, last) = (base / 25.0, base / 25.0 / 1e4);
                let up = (self.pct_start * total).max(f64::EPSILON);
                if t < up {
                    cos(initial, base, t / up)
                } else {
                    cos(base, last, (t - up) / (total - up).max(f64::EPSILON))
                }
            }
            ScheduleKind::Plateau => {
                let done = &val_losses[..val_losses.len().min(epoch)];
                base * self.gamma.powi(plateau_cuts(done, self.patience) as i32)
            }
        };
        // The epoch schedules warm up as torchvision's reference scripts do (`LinearLR`,
        // start factor 0.01, per batch); cosine warms up above, one-cycle has its own rise.
        let epochwise = !matches!(self.kind, ScheduleKind::Cosine | ScheduleKind::OneCycle);
        if epochwise && t < warm {
            v * (0.01 + 0.99 * t / warm)
        } else {
            v
        }
    }
}

/// How many times PyTorch's `ReduceLROnPlateau` (mode 'min', relative threshold 1e-4, no
/// cooldown) has cut the rate after seeing `losses`.
pub fn plateau_cuts(losses: &[f64], patience: usize) -> usize {
    let (mut best, mut bad, mut cuts) = (f64::INFINITY, 0usize, 0usize);
    for &l in losses {
        if l < best * (1.0 - 1e-4) {
            best = l;
            bad = 0;
        } else {
            bad += 1;
        }
        if bad > patience {
            cuts += 1;
            bad = 0;
        }
    }
    cuts
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(epoch: usize, frac: f64, epochs: usize) -> Position {
        Position {
            epoch,
            frac,
            epochs,
        }
    }

    fn close(a: f64, b: f64) {
        assert!((a - b).abs() < 1e-12 * b.abs().max(1.0), "{a} vs {b}");
    }

    #[test]
    fn step_multistep_and_exponential_decay_per_epoch() {
        let step = ScheduleConfig {
            step: Some(7),
            ..Default::default()
        };
        close(step.lr(1.0, at(6, 0.9, 20), &[]), 1.0);
        close(step.lr(1.0, at(7, 0.0, 20), &[]), 0.1);
        close(step.lr(1.0, at(14, 0.0, 20), &[]), 0.01);
        close(
            ScheduleConfig::default().lr(0.5, at(100, 0.0, 200), &[]),
            0.5,
        );
        let multi = ScheduleConfig {
            kind: ScheduleKind::MultiStep,
            milestones: vec![30, 80],
            ..Default::default()
        };
        close(multi.lr(0.1, at(29, 0.0, 90), &[]), 0.1);
        close(multi.lr(0.1, at(30, 0.0, 90), &[]), 0.01);
        close(multi.lr(0.1, at(85, 0.0, 90), &[]), 0.001);
        let exp = ScheduleConfig {
            kind: ScheduleKind::Exponential,
            gamma: 0.9,
            ..Default::default()
        };
        close(exp.lr(1.0, at(3, 0.5, 10), &[]), 0.729);
        assert_eq!(
            "one-cycle".parse::<ScheduleKind>(),
            Ok(ScheduleKind::OneCycle)
        );
        assert!(
            "cosin"
                .parse::<ScheduleKind>()
                .unwrap_err()
                .contains("cosine")
        );
    }

    #[test]
    fn cosine_warms_up_linearly_then_anneals_to_the_floor() {
        let s = ScheduleConfig {
            kind: ScheduleKind::Cosine,
            warmup_epochs: 2.0,
            min_lr: 0.001,
            ..Default::default()
        };
        close(s.lr(0.1, at(0, 0.0, 12), &[]), 0.001);
        close(s.lr(0.1, at(1, 0.0, 12), &[]), 0.001 + 0.099 / 2.0);
        close(s.lr(0.1, at(2, 0.0, 12), &[]), 0.1);
        // Half-way through the 10 annealing epochs: the mean of peak and floor.
        close(s.lr(0.1, at(7, 0.0, 12), &[]), (0.1 + 0.001) / 2.0);
        assert!(s.lr(0.1, at(11, 0.999, 12), &[]) < 0.0011);
    }

    #[test]
    fn step_schedules_warm_up_linearly_too() {
        let s = ScheduleConfig {
            kind: ScheduleKind::Step,
            step: Some(2),
            gamma: 0.1,
            warmup_epochs: 1.0,
            ..Default::default()
        };
        close(s.lr(0.1, at(0, 0.0, 4), &[]), 0.001);
        close(s.lr(0.1, at(0, 0.5, 4), &[]), 0.1 * (0.01 + 0.99 * 0.5));
        close(s.lr(0.1, at(1, 0.0, 4), &[]), 0.1);
        close(s.lr(0.1, at(2, 0.0, 4), &[]), 0.01);
        // One-cycle keeps its own rise.
        let one = ScheduleConfig {
            kind: ScheduleKind::OneCycle,
            warmup_epochs: 1.0,
            ..Default::default()
        };
        close(one.lr(0.4, at(0, 0.0, 10), &[]), 0.4 / 25.0);
    }

    #[test]
    fn one_cycle_matches_pytorch_end_points() {
        let s = ScheduleConfig {
            kind: ScheduleKind::OneCycle,
            ..Default::default()
        };
        close(s.lr(0.4, at(0, 0.0, 10), &[]), 0.4 / 25.0);
        close(s.lr(0.4, at(3, 0.0, 10), &[]), 0.4);
        assert!(s.lr(0.4, at(9, 0.9999, 10), &[]) < 0.4 / 25.0 / 1e4 * 1.01);
        // Rising before the peak, falling after.
        assert!(s.lr(0.4, at(1, 0.0, 10), &[]) < s.lr(0.4, at(2, 0.0, 10), &[]));
        assert!(s.lr(0.4, at(5, 0.0, 10), &[]) > s.lr(0.4, at(6, 0.0, 10), &[]));
    }

    #[test]
    fn plateau_cuts_after_patience_epochs_without_improvement() {
        // PyTorch, patience 2: the 3rd epoch without improvement cuts, then counting restarts.
        let losses = [1.0, 0.9, 0.9, 0.9, 0.9, 0.95, 0.9, 0.9];
        assert_eq!(plateau_cuts(&losses[..4], 2), 0);
        assert_eq!(plateau_cuts(&losses[..5], 2), 1);
        assert_eq!(plateau_cuts(&losses, 2), 2);
        // Improvements smaller than the 1e-4 relative threshold do not count.
        assert_eq!(plateau_cuts(&[1.0, 0.99999, 0.99998, 0.99997], 2), 1);
        let s = ScheduleConfig {
            kind: ScheduleKind::Plateau,
            patience: 2,
            gamma: 0.5,
            ..Default::default()
        };
        // Epoch 5 sees the losses of epochs 0..5: one cut.
        close(s.lr(1.0, at(5, 0.0, 10), &losses), 0.5);
        close(s.lr(1.0, at(4, 0.0, 10), &losses), 1.0);
    }
}
