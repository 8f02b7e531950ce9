//! The standard library: tv source files bundled into the binary, reached
//! as `use "std/NAME"`.

/// Every standard module: its name and its source.
pub const MODULES: &[(&str, &str)] = &[
    ("task", include_str!("../stdlib/task.tv")),
    ("time", include_str!("../stdlib/time.tv")),
    ("merge", include_str!("../stdlib/merge.tv")),
];

pub fn source(name: &str) -> Option<&'static str> {
    MODULES.iter().find(|(n, _)| *n == name).map(|(_, s)| *s)
}

/// The module names, quoted, for messages.
pub fn list() -> String {
    let names: Vec<String> = MODULES.iter().map(|(n, _)| format!("\"std/{n}\"")).collect();
    names.join(", ")
}
