//! Fault injection: tv run on inputs shaped like a user's — existing
//! folders, interrupted and failing runs, poisoned checkpoints, corrupt
//! caches, hostile programs — must lose nothing and say what went wrong.

#[path = "../common/mod.rs"]
mod common;

mod cache;
mod checking;
mod diagnostics;
mod figures;
mod nonfinite;
mod outputs;
