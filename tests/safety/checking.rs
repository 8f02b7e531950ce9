//! Safety: checking.
