//! Errors of the data layer, each naming the file and what to do.

use std::path::PathBuf;

/// Why data could not be read.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// A path the user gave does not exist or cannot be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A file is not in the format expected.
    #[error("{path}: {why}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// An image could not be decoded.
    #[error("{path}: not a readable image ({why}); remove or replace the file")]
    Image {
        /// The file.
        path: PathBuf,
        /// The decoder's message.
        why: String,
    },
    /// A dataset folder has no usable classes or images.
    #[error("{path}: {why}")]
    Empty {
        /// The folder.
        path: PathBuf,
        /// What is missing.
        why: String,
    },
    /// A download failed.
    #[error("download of {url} failed: {why}")]
    Download {
        /// The URL.
        url: String,
        /// What went wrong.
        why: String,
    },
    /// A broken image met while `--strict` was given.
    #[error("{why}; stopped because of --strict (without it, unreadable images are skipped)")]
    Strict {
        /// The sample (its path).
        what: String,
        /// Why it could not be loaded.
        why: String,
    },
}

impl DataError {
    /// The `--strict` error for the first of a batch's skipped samples (`(what, why)` pairs,
    /// as `Batch::skipped` holds them), if any.
    pub fn first_skipped(skipped: &[(String, String)]) -> Option<Self> {
        skipped.first().map(|(what, why)| DataError::Strict {
            what: what.clone(),
            why: why.clone(),
        })
    }

    /// An I/O error on `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        DataError::Io {
            path: path.into(),
            source,
        }
    }

    /// A format error on `path`.
    pub fn format(path: impl Into<PathBuf>, why: impl Into<String>) -> Self {
        DataError::Format {
            path: path.into(),
            why: why.into(),
        }
    }
}
