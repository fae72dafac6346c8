//! Image data for convnet: decoding, datasets, preprocessing and the batch loader.
//!
//! Flow: a [`Dataset`] yields one sample (`[C, H, W]` floats, already resized and normalised
//! by a [`Preprocess`]) at a time; the [`Loader`] shuffles indices per epoch, decodes on worker
//! threads ahead of the model and assembles contiguous [`Batch`]es.

pub mod augment;
pub mod cifar;
pub mod dataset;
pub mod download;
pub mod error;
pub mod export;
pub mod fashion;
pub mod fetch;
pub mod files;
pub mod flat;
pub mod folder;
pub mod gtsrb;
pub mod idx;
pub mod info;
pub mod loader;
pub mod mat;
pub mod source;
pub mod transform;

pub use augment::Augment;
pub use dataset::{Dataset, InMemory, Subset, split_indices};
pub use error::DataError;
pub use folder::{ImageFiles, ImageFolder};
pub use loader::{Batch, Loader};
pub use source::Source;
pub use transform::Preprocess;
