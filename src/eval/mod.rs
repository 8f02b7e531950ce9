//! Model measurements: the built-in MLP classifier, its datasets, and the
//! training builtins that make weights for it.

pub mod cache;
pub mod data;
pub mod mlp;
pub mod train;
