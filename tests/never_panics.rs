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
