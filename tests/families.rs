//! Every supported family and RoPE type against transformers: tiny random
//! models with the config keys of published checkpoints, and the per-token
//! losses transformers computes for them (`tests/fixtures/lm/families`,
//! made by `scripts/lm_families.py`).

mod common;

use candle_core::Device;
use serde_json::Value;
use std::path::{Path, PathBuf};
use tv::eval::lm::{text, token_losses, CausalLm, Kernels, LmConfig};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/lm/families")
}

fn reference() -> Value {
    common::read_json(&fixtures().join("reference.json"))
}

fn config(name: &str) -> LmConfig {
    common::lm_config(&fixtures().join(name))
}

fn model(name: &str, kernels: Kernels) -> CausalLm {
    let path = fixtures().join(name).join("model.safetensors");
    let tensors = common::f32_tensors(candle_core::safetensors::load(path, &Device::Cpu).unwrap());
    CausalLm::with_kernels(&config(name), &tensors, kernels).unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[test]
fn the_fixtures_cover_every_family_and_rope_type() {
    let reference = reference();
    let models = reference["models"].as_object().unwrap();
    let mut families: Vec<&str> = models.keys().map(|m| config(m).family.model_type()).collect();
    families.sort();
    families.dedup();
    let supported: Vec<&str> = tv::eval::lm::config::MODEL_TYPES.iter().map(|(t, _)| *t).collect();
    for family in &supported {
        let old = ["llama", "mistral", "qwen2"].contains(family);
        assert!(old || families.contains(family), "no fixture of {family}");
    }
    let mut ropes: Vec<&str> = models
        .keys()
        .filter_map(|m| config(m).rope)
        .map(|r| tv::eval::lm::rope::type_name(&r.scaling))
        .collect();
    ropes.sort();
    ropes.dedup();
    assert_eq!(ropes, ["default", "dynamic", "linear", "llama3", "longrope", "yarn"]);
}

/// Each token's loss within 1e-4 relative of transformers', for every
/// model and window setting, with tv's own CPU kernels.
#[test]
fn per_token_losses_equal_transformers() {
    losses_equal_transformers(Kernels::Native);
}

/// The same with candle's general operations only, as on a GPU: the fused
/// projections split by tensor operations, attention by masked products.
#[test]
fn portable_kernels_equal_transformers_too() {
    losses_equal_transformers(Kernels::Portable);
}

fn losses_equal_transformers(kernels: Kernels) {
    let reference = reference();
    let tokenizer = text::load_tokenizer(&fixtures().join("gpt2")).unwrap();
    let docs = text::read_documents(&fixtures().join("text.txt"), "text").unwrap();
    let documents = text::tokenize(&tokenizer, &docs).unwrap();
    assert_eq!(documents, vec![common::token_ids(&reference["tokens"])]);
    for (name, entry) in reference["models"].as_object().unwrap() {
        let lm = model(name, kernels);
        assert_eq!(lm.config().parameters(), entry["params"].as_u64().unwrap(), "{name}");
        for case in entry["cases"].as_array().unwrap() {
            let windowing = common::case_windowing(case, 4);
            let losses = token_losses(&lm, &documents, windowing, &Device::Cpu, &|_| {}).unwrap();
            common::assert_losses_match(&format!("{name} {kernels:?} {windowing:?}"), &losses, case);
        }
    }
}

/// Windows of odd lengths (2 to 7 tokens, some fewer than the four queries the
/// CPU attention takes at once) batched three at a time: tv's own kernels
/// and candle's general operations give the same losses for every family.
#[test]
fn short_odd_windows_score_alike_with_either_kernels() {
    let tokenizer = text::load_tokenizer(&fixtures().join("gpt2")).unwrap();
    let docs = text::read_documents(&fixtures().join("text.txt"), "text").unwrap();
    let documents = text::tokenize(&tokenizer, &docs).unwrap();
    for name in reference()["models"].as_object().unwrap().keys() {
        let (native, portable) = (model(name, Kernels::Native), model(name, Kernels::Portable));
        for (context, stride) in [(2, 1), (3, 3), (7, 3)] {
            let windowing = tv::eval::lm::Windowing {
                context,
                stride,
                batch: 3,
            };
            let score = |lm: &CausalLm| token_losses(lm, &documents, windowing, &Device::Cpu, &|_| {}).unwrap();
            let (a, b) = (score(&native), score(&portable));
            assert_eq!(a.len(), b.len());
            for (i, (x, y)) in a.iter().zip(&b).enumerate() {
                assert!(
                    common::relative_difference(*x, *y) < 1e-4,
                    "{name} {windowing:?} token {i}: {x} vs {y}"
                );
            }
        }
    }
}

/// Through the language: the perplexity of every model in one program
/// equals transformers', and `tv inspect` names each family.
#[test]
fn programs_and_inspect_see_every_family() {
    let reference = reference();
    let dir = tempfile::tempdir().unwrap();
    let root = fixtures();
    let models = reference["models"].as_object().unwrap();
    let mut program = String::new();
    let mut expected = Vec::new();
    for (i, (name, entry)) in models.iter().enumerate() {
        let case = &entry["cases"][0];
        let (context, stride) = (&case["context"], &case["stride"]);
        program += &format!("let m{i} = load(\"{}\")\n", root.join(name).display());
        program += &format!(
            "eval p{i} = perplexity(m{i}, \"{}\", context = {context}, stride = {stride}, batch = 2)\n",
            root.join("text.txt").display()
        );
        expected.push(case["perplexity"].as_f64().unwrap());
        let out = common::tv_command(dir.path(), &["inspect", root.join(name).to_str().unwrap()]);
        let text = String::from_utf8_lossy(&out.stdout);
        let family = config(name).family;
        let line = format!(
            "architecture: {} (model_type \"{}\")",
            family.name(),
            family.model_type()
        );
        assert!(text.starts_with(&line), "{name}: {text}");
        assert!(text.contains("the checkpoint's tensors fit it"), "{name}: {text}");
    }
    let csv = common::run_program(dir.path(), "families.tv", &program, &tv::Overrides::default());
    let row: Vec<f64> = csv
        .lines()
        .nth(1)
        .unwrap()
        .split(',')
        .map(|v| v.parse().unwrap())
        .collect();
    assert_eq!(row.len(), expected.len());
    for ((got, want), name) in row.iter().zip(&expected).zip(models.keys()) {
        assert!(
            common::relative_difference(*got, *want) < 1e-4,
            "{name}: {got} vs {want}"
        );
    }
}

/// GPT-2's positions are learned: no window may be longer than its table.
#[test]
fn a_context_beyond_learned_positions_is_a_diagnostic() {
    let dir = tempfile::tempdir().unwrap();
    let root = fixtures();
    let program = format!(
        "let m = load(\"{}\")\neval p = perplexity(m, \"{}\", context = 300)\n",
        root.join("gpt2").display(),
        root.join("text.txt").display()
    );
    let path = dir.path().join("long.tv");
    std::fs::write(&path, program).unwrap();
    let mut sources = tv::diag::Sources::default();
    let diags = tv::check(&mut sources, &path, &tv::Overrides::default())
        .err()
        .expect("refused");
    let text = tv::diag::render_plain(&diags, &sources, 100);
    assert!(
        text.contains("`context` must be a whole number from 2 to 256"),
        "{text}"
    );
}

/// The original GPT-2 upload names its tensors without `transformer.`; such
/// a folder scores as the one transformers 5 saves.
#[test]
fn gpt2_weights_under_their_original_names_score_alike() {
    let dir = tempfile::tempdir().unwrap();
    let source = fixtures().join("gpt2");
    let bare = dir.path().join("gpt2-bare");
    std::fs::create_dir(&bare).unwrap();
    for file in ["config.json", "tokenizer.json", "tokenizer_config.json"] {
        std::fs::copy(source.join(file), bare.join(file)).unwrap();
    }
    let bytes = std::fs::read(source.join("model.safetensors")).unwrap();
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let renamed: Vec<common::Raw> = file
        .tensors()
        .into_iter()
        .map(|(name, view)| common::Raw {
            name: name.strip_prefix("transformer.").unwrap_or(&name).to_string(),
            dtype: view.dtype(),
            shape: view.shape().to_vec(),
            bytes: view.data().to_vec(),
        })
        .collect();
    assert!(renamed.iter().any(|t| t.name == "h.0.attn.c_attn.weight"));
    common::write_file(&bare.join("model.safetensors"), &renamed);
    let reference = reference();
    let case = &reference["models"]["gpt2"]["cases"][0];
    let program = format!(
        "eval p = perplexity(load(\"{}\"), \"{}\", context = {}, stride = {})\n",
        bare.display(),
        fixtures().join("text.txt").display(),
        case["context"],
        case["stride"]
    );
    let csv = common::run_program(dir.path(), "bare.tv", &program, &tv::Overrides::default());
    let got: f64 = csv.lines().nth(1).unwrap().parse().unwrap();
    let want = case["perplexity"].as_f64().unwrap();
    assert!(common::relative_difference(got, want) < 1e-4, "{got} vs {want}");
}
