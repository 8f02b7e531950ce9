//! Safety: nonfinite.
