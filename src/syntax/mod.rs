//! Source text to syntax tree. pest's `Pair`s never leave this module.

pub mod ast;
mod limits;
mod parser;
mod syntax_error;

pub use parser::{parse, parse_plot_spec};
