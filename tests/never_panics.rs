//! The parser and checker never panic, whatever the input: arbitrary text,
//! and "almost programs" assembled from tv's own tokens (which reach much
//! deeper into the checker than random bytes do).

use proptest::prelude::*;
use tv::diag::Sources;

fn check(text: &str) {
    let mut sources = Sources::default();
    if let Err(diags) = tv::check_text(&mut sources, "input.tv", text) {
        // Rendering must not panic either, whatever spans the errors carry.
        let _ = tv::diag::render_plain(&diags, &sources, 80);
    }
}

const TOKENS: &[&str] = &[
    "use",
    "let",
    "fn",
    "set",
    "sweep",
    "in",
    "step",
    "eval",
    "save",
    "to",
    "x",
    "y",
    "f",
    "w",
    "alpha",
    "=",
    "+",
    "-",
    "*",
    "/",
    "(",
    ")",
    "[",
    "]",
    "{",
    "}",
    ",",
    "..",
    "..=",
    "0",
    "1",
    "0.5",
    "1e-3",
    "-2",
    "\"a\"",
    "\"{x}\"",
    "\"{{\"",
    "\"std/task\"",
    "\"std/time\"",
    "load",
    "cosine",
    "norm",
    "dot",
    "distance",
    "numel",
    "only",
    "except",
    "sum",
    "mean",
    "negate",
    "interpolate",
    "analogy",
    "task_arithmetic",
    "\"std/merge\"",
    "ties",
    "trim",
    "drop",
    "elect",
    "disjoint_mean",
    "slerp_tensors",
    "broadcast",
    "setting",
    "density",
    "\"*\"",
    "\"missing.safetensors\"",
    "#c\n",
    "\n",
    "device",
    "dtype",
    "threads",
    "seed",
    "\"cuda\"",
    "\"bf16\"",
];

fn token_soup() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(TOKENS), 0..40).prop_map(|tokens| tokens.join(" "))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_text(text in "\\PC{0,200}") {
        check(&text);
    }

    #[test]
    fn arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        check(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn programs_made_of_tv_tokens(text in token_soup()) {
        check(&text);
    }
}

/// Hand-picked inputs that once were, or easily could be, trouble.
#[test]
fn edge_cases() {
    let cases = [
        "",
        "\"",
        "let x = \"{",
        "let x = \"}\"",
        "let x = 1e999999",
        "sweep x in 0..=1e300 step 1e-300 { eval y = x }",
        "sweep x in 0..=1 step -1 { eval y = x }",
        "let x = [[[[]]]]\nsweep y in x { eval z = 1 }",
        "fn f(x) = f(x)\neval y = f(1)",
        "fn f(a, a) = a\neval y = f(1, 2)",
        "let w = load(\"\")",
        "let w = load(\"/\")",
        "eval x = 1 / 0",
        "eval x = sum([])",
        "eval x = mean([1, 2, 3])",
        "use \"std/\"",
        "use \"\"",
        "use \".\"",
        "let 😀 = 1",
        "eval x = ((((((((((((((((((((((((((((((1))))))))))))))))))))))))))))))",
    ];
    for case in cases {
        check(case);
    }
}

/// Input built to exhaust the stack is refused with a diagnostic, and the
/// largest accepted shapes still check (in a test thread's small stack).
#[test]
fn pathological_depth_is_a_diagnostic() {
    let refused = [
        format!("eval x = {}1{}", "(".repeat(10_000), ")".repeat(10_000)),
        format!("eval x = {}1", "-".repeat(50_000)),
        format!("eval x = {}", vec!["1"; 50_000].join(" + ")),
        format!("eval x = {}1{}", "[".repeat(100), "]".repeat(100)),
        format!("eval x = {}1{}", "sum([".repeat(40), "])".repeat(40)),
    ];
    for text in &refused {
        let mut sources = Sources::default();
        let diags = tv::check_text(&mut sources, "deep.tv", text).err().expect("refused");
        assert_eq!(diags[0].code, "tv::too_deep", "{}", &text[..40]);
    }
    let accepted = [
        format!("eval x = {}", vec!["1"; 150].join(" + ")),
        format!("eval x = {}1{}", "(".repeat(60), ")".repeat(60)),
        format!("eval x = {}1", "-".repeat(150)),
    ];
    for text in &accepted {
        let mut sources = Sources::default();
        assert!(tv::check_text(&mut sources, "ok.tv", text).is_ok(), "{}", &text[..40]);
    }
}

/// Every `.tv` file the project ships: experiments, the stdlib, the golden
/// cases.
fn bundled_programs() -> Vec<(std::path::PathBuf, String)> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut found = Vec::new();
    let mut folders = vec![root.join("experiments"), root.join("stdlib"), root.join("tests/golden")];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                folders.push(path);
            } else if path.extension().is_some_and(|e| e == "tv") {
                // Some golden cases are deliberately not UTF-8.
                let text = String::from_utf8_lossy(&std::fs::read(&path).unwrap()).into_owned();
                found.push((path, text));
            }
        }
    }
    found.sort();
    found
}

/// One edit of a program's text.
#[derive(Clone, Debug)]
enum Mutation {
    Delete(prop::sample::Index, usize),
    Insert(prop::sample::Index, &'static str),
    Duplicate(prop::sample::Index, usize),
    Swap(prop::sample::Index, prop::sample::Index, usize),
    Truncate(prop::sample::Index),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let at = any::<prop::sample::Index>;
    prop_oneof![
        (at(), 1..12usize).prop_map(|(i, n)| Mutation::Delete(i, n)),
        (at(), prop::sample::select(TOKENS)).prop_map(|(i, t)| Mutation::Insert(i, t)),
        (at(), 1..5usize).prop_map(|(i, n)| Mutation::Duplicate(i, n)),
        (at(), at(), 1..12usize).prop_map(|(i, j, n)| Mutation::Swap(i, j, n)),
        at().prop_map(Mutation::Truncate),
    ]
}

/// `bytes[from..from + len]`, clamped to the text.
fn range(bytes: &[u8], from: usize, len: usize) -> std::ops::Range<usize> {
    from..(from + len).min(bytes.len())
}

fn mutate(text: &str, mutation: &Mutation) -> String {
    let mut bytes = text.as_bytes().to_vec();
    let at = |i: &prop::sample::Index, bytes: &[u8]| i.index(bytes.len() + 1);
    match mutation {
        Mutation::Delete(i, n) => {
            let r = range(&bytes, at(i, &bytes), *n);
            bytes.drain(r);
        }
        Mutation::Insert(i, token) => {
            let p = at(i, &bytes);
            bytes.splice(p..p, format!(" {token} ").into_bytes());
        }
        Mutation::Duplicate(i, n) => {
            let r = range(&bytes, at(i, &bytes), *n);
            let copy = bytes[r.clone()].to_vec();
            bytes.splice(r.end..r.end, copy);
        }
        Mutation::Swap(i, j, n) => {
            let (a, b) = (range(&bytes, at(i, &bytes), *n), range(&bytes, at(j, &bytes), *n));
            if a.end <= b.start || b.end <= a.start {
                let (first, second) = if a.start < b.start { (a, b) } else { (b, a) };
                let (x, y) = (bytes[first.clone()].to_vec(), bytes[second.clone()].to_vec());
                bytes.splice(second, x);
                bytes.splice(first, y);
            }
        }
        Mutation::Truncate(i) => bytes.truncate(at(i, &bytes)),
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// Mutants of the bundled programs, checked where the originals live
    /// (so their loads, configs and texts are found), never panic, and
    /// their diagnostics render.
    #[test]
    fn mutants_of_bundled_programs(
        file in any::<prop::sample::Index>(),
        mutations in prop::collection::vec(mutation(), 1..4),
    ) {
        let programs = bundled_programs();
        let (path, text) = &programs[file.index(programs.len())];
        let mutant = mutations.iter().fold(text.clone(), |t, m| mutate(&t, m));
        let at = path.with_file_name(".mutant.tv");
        let mut sources = Sources::default();
        if let Err(diags) = tv::check_text_at(&mut sources, &at, &mutant) {
            let _ = tv::diag::render_plain(&diags, &sources, 80);
        }
    }
}

#[test]
fn the_bundled_programs_are_found() {
    let programs = bundled_programs();
    assert!(programs.len() > 100, "{}", programs.len());
    assert!(programs.iter().any(|(p, _)| p.ends_with("stdlib/merge.tv")));
}
