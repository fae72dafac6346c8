//! Training recipes: TOML files of `convnet train` options, built in by name (`--recipe`) or
//! read from disk (`--config`). A recipe only sets defaults: flags given on the command line
//! override it, and the resolved configuration is what `config.json` records.

use std::ffi::OsString;

use anyhow::{Context, Result, bail};

/// A built-in recipe.
pub struct Recipe {
    /// Name for `--recipe`.
    pub name: &'static str,
    /// One line on what it does and what it reached.
    pub about: &'static str,
    /// Its options, as TOML (`key = value` per `convnet train` flag).
    pub toml: &'static str,
}

/// The built-in recipes (`convnet recipes` lists them).
pub const RECIPES: &[Recipe] = &[
    Recipe {
        name: "fashion-small",
        about: "small VGG-style CNN (0.47 M parameters) on Fashion-MNIST: AdamW, cosine, label smoothing, 7 epochs (93.55 % in 8.4 min on 2 cores)",
        toml: include_str!("../../recipes/fashion-small.toml"),
    },
    Recipe {
        name: "fashion-resnet",
        about: "ResNet-20 on Fashion-MNIST: random crop with padding, flips, erasing, label smoothing, SGD + cosine",
        toml: include_str!("../../recipes/fashion-resnet.toml"),
    },
    Recipe {
        name: "seed001-dogs-vs-cats-feature-extraction",
        about: "seed 001 step 1: VGG-16 ImageNet base frozen, new head, augmentation, RMSprop 2e-5 (give --data; ~90 % in seed 001)",
        toml: include_str!("../../recipes/seed001-dogs-vs-cats-feature-extraction.toml"),
    },
    Recipe {
        name: "seed001-fine-tune",
        about: "seed 001 step 2: fine-tune VGG-16 block 5 at 1e-5 (give --data and --pretrained RUN of step 1; 96.5 % in seed 001)",
        toml: include_str!("../../recipes/seed001-fine-tune.toml"),
    },
    Recipe {
        name: "seed003-flowers102",
        about: "seed 003: DenseNet-121 from ImageNet on Flowers-102, backbone frozen, Adam, StepLR(7, 0.1)",
        toml: include_str!("../../recipes/seed003-flowers102.toml"),
    },
    Recipe {
        name: "seed003-mnist",
        about: "seed 003's MNIST CNN on MNIST: Adam 1e-3, 5 epochs",
        toml: include_str!("../../recipes/seed003-mnist.toml"),
    },
    Recipe {
        name: "seed000-gtsrb",
        about: "seed 000's GTSRB net on the GTSRB folder (give --data): 32x32 RGB, Adam, 10 epochs",
        toml: include_str!("../../recipes/seed000-gtsrb.toml"),
    },
];

/// `convnet recipes`: names, descriptions and contents.
pub fn run() -> Result<()> {
    for r in RECIPES {
        println!("{:<16} {}", r.name, r.about);
    }
    println!(
        "\nconvnet train --recipe NAME [flags that override it]; --config FILE.toml reads your own."
    );
    for r in RECIPES {
        println!("\n# {}\n{}", r.name, r.toml.trim_end());
    }
    Ok(())
}

/// The flags a recipe's TOML stands for, e.g. `epochs = 10` → `--epochs 10`.
pub fn recipe_flags(text: &str, origin: &str) -> Result<Vec<OsString>> {
    let table: toml::Table = text
        .parse()
        .with_context(|| format!("{origin} is not a valid TOML recipe"))?;
    let mut flags = Vec::new();
    for (key, value) in table {
        let flag = format!("--{}", key.replace('_', "-"));
        let text = match value {
            toml::Value::String(s) => s,
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Float(f) => f.to_string(),
            toml::Value::Boolean(true) => {
                flags.push(flag.into());
                continue;
            }
            toml::Value::Boolean(false) => continue,
            toml::Value::Array(items) => items
                .iter()
                .map(|v| match v {
                    toml::Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect::<Vec<_>>()
                .join(","),
            other => bail!("{origin}: '{key}' has an unsupported value {other}"),
        };
        flags.push(flag.into());
        flags.push(text.into());
    }
    Ok(flags)
}

/// Replaces `train --recipe NAME` / `train --config FILE` in the command line by the recipe's
/// flags, placed right after `train` so that flags given on the command line come later and
/// override them.
pub fn expand(args: Vec<OsString>) -> Result<Vec<OsString>> {
    if args.get(1).is_none_or(|a| a != "train") {
        return Ok(args);
    }
    let mut rest = Vec::new();
    let mut inserted = Vec::new();
    let mut it = args[2..].iter().cloned();
    while let Some(a) = it.next() {
        let s = a.to_string_lossy().into_owned();
        let (key, inline) = match s.split_once('=') {
            Some((k, v)) if k == "--recipe" || k == "--config" => (k.to_string(), Some(v.into())),
            _ => (s.clone(), None),
        };
        if key != "--recipe" && key != "--config" {
            rest.push(a);
            continue;
        }
        let Some(value) = inline.or_else(|| it.next()) else {
            bail!("{key} needs a value");
        };
        let value = value.to_string_lossy().into_owned();
        let (text, origin) = if key == "--recipe" {
            let r = RECIPES.iter().find(|r| r.name == value).with_context(|| {
                let names: Vec<_> = RECIPES.iter().map(|r| r.name).collect();
                format!(
                    "unknown recipe '{value}'; built-in recipes: {}",
                    names.join(", ")
                )
            })?;
            (r.toml.to_string(), format!("recipe {value}"))
        } else {
            let text = std::fs::read_to_string(&value)
                .with_context(|| format!("{value}: cannot read the --config file"))?;
            (text, value.clone())
        };
        inserted.extend(recipe_flags(&text, &origin)?);
    }
    let mut out = args[..2].to_vec();
    out.extend(inserted);
    out.extend(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(v: &[&str]) -> Vec<OsString> {
        v.iter().map(OsString::from).collect()
    }

    #[test]
    fn recipe_flags_come_first_so_the_command_line_wins() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("r.toml");
        std::fs::write(&file, "epochs = 7\nlabel_smoothing = 0.1\nnesterov = true\nmilestones = [3, 5]\nstrict = false\n").unwrap();
        let args = expand(os(&[
            "convnet",
            "train",
            "--epochs",
            "2",
            "--config",
            file.to_str().unwrap(),
        ]))
        .unwrap();
        assert_eq!(
            args,
            os(&[
                "convnet",
                "train",
                "--epochs",
                "7",
                "--label-smoothing",
                "0.1",
                "--milestones",
                "3,5",
                "--nesterov",
                "--epochs",
                "2"
            ])
        );
        // Every built-in recipe parses into flags `convnet train` knows.
        for r in RECIPES {
            let flags = recipe_flags(r.toml, r.name).unwrap();
            assert!(!flags.is_empty(), "{}", r.name);
            let mut args = os(&["convnet", "train"]);
            args.extend(flags);
            if let Err(e) = <crate::Cli as clap::Parser>::try_parse_from(args) {
                panic!("recipe {}: {e}", r.name);
            }
        }
        assert!(
            expand(os(&["convnet", "train", "--recipe", "nope"]))
                .unwrap_err()
                .to_string()
                .contains("fashion-small")
        );
        // Other commands are left alone.
        assert_eq!(
            expand(os(&["convnet", "eval", "--config", "x"])).unwrap(),
            os(&["convnet", "eval", "--config", "x"])
        );
    }
}
