//! Safety: cache.
