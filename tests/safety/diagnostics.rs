//! Safety: diagnostics.
