//! Safety: outputs.
