//! Causal language models against transformers: token ids, per-token
//! losses and perplexities from the committed fixtures (made by
//! `scripts/lm_fixtures.py`).

mod common;

use candle_core::{DType, Device, Tensor};
use serde_json::Value;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use tv::eval::lm::{text, token_losses, CausalLm, Windowing};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/lm")
}

fn reference() -> Value {
    common::read_json(&fixtures().join("reference.json"))
}

/// The documents of a fixture text as tv tokenizes them.
fn documents(model: &str, data: &str) -> Vec<Vec<u32>> {
    let tokenizer = text::load_tokenizer(&fixtures().join(model)).unwrap();
    let docs = text::read_documents(&fixtures().join(data), "text").unwrap();
    text::tokenize(&tokenizer, &docs).unwrap()
}

#[test]
fn tokenizer_gives_the_ids_transformers_gives() {
    let reference = reference();
    let tokens = &reference["tokens"];
    assert_eq!(
        documents("llama-untied", "text.txt"),
        vec![common::token_ids(&tokens["text.txt"])]
    );
    let docs: Vec<Vec<u32>> = tokens["docs.jsonl"]
        .as_array()
        .unwrap()
        .iter()
        .map(common::token_ids)
        .collect();
    assert_eq!(documents("qwen2-tied", "docs.jsonl"), docs);
}

/// A fixture model, built by tv from its folder.
fn model(name: &str) -> CausalLm {
    let folder = fixtures().join(name);
    let tensors = candle_core::safetensors::load(folder.join("model.safetensors"), &Device::Cpu).unwrap();
    model_with(&folder, tensors)
}

/// The model of `folder`'s config with the given tensors.
fn model_with(folder: &Path, tensors: HashMap<String, Tensor>) -> CausalLm {
    CausalLm::new(&common::lm_config(folder), &common::f32_tensors(tensors)).unwrap()
}

/// Every case of every fixture model: each token's loss within 1e-4
/// relative of transformers', and the perplexity too.
#[test]
fn per_token_losses_equal_transformers() {
    let reference = reference();
    for (name, cases) in reference["models"].as_object().unwrap() {
        let lm = model(name);
        for case in cases["cases"].as_array().unwrap() {
            let data = case["data"].as_str().unwrap();
            let windowing = common::case_windowing(case, 3);
            let losses = token_losses(&lm, &documents(name, data), windowing, &Device::Cpu, &|_| {}).unwrap();
            common::assert_losses_match(&format!("{name} {data} {windowing:?}"), &losses, case);
            let perplexity = (losses.iter().sum::<f64>() / losses.len() as f64).exp();
            let want = case["perplexity"].as_f64().unwrap();
            assert!(
                common::relative_difference(perplexity, want) < 1e-4,
                "{name} {data}: {perplexity} vs {want}"
            );
        }
    }
}

/// The same numbers through the language: `perplexity` and `loss` in a
/// program, with the text settings as named arguments.
#[test]
fn perplexity_in_a_program_equals_transformers() {
    let reference = reference();
    let dir = tempfile::tempdir().unwrap();
    let root = fixtures();
    for (name, cases) in reference["models"].as_object().unwrap() {
        let mut program = format!("let m = load(\"{}\")\n", root.join(name).display());
        let cases = cases["cases"].as_array().unwrap();
        for (i, case) in cases.iter().enumerate() {
            let data = root.join(case["data"].as_str().unwrap());
            let (context, stride) = (&case["context"], &case["stride"]);
            program += &format!(
                "eval p{i} = perplexity(m, \"{}\", context = {context}, stride = {stride}, batch = {})\n",
                data.display(),
                i + 1
            );
            program += &format!(
                "eval l{i} = loss(m, \"{}\", context = {context}, stride = {stride})\n",
                data.display()
            );
        }
        let csv = common::run_program(dir.path(), "ppl.tv", &program, &tv::Overrides::default());
        let row: Vec<f64> = csv
            .lines()
            .nth(1)
            .unwrap()
            .split(',')
            .map(|v| v.parse().unwrap())
            .collect();
        for (i, case) in cases.iter().enumerate() {
            let (perplexity, loss) = (row[2 * i], row[2 * i + 1]);
            let want = case["perplexity"].as_f64().unwrap();
            assert!(
                common::relative_difference(perplexity, want) < 1e-4,
                "{name} case {i}: {perplexity} vs {want}"
            );
            let want = case["mean_nll"].as_f64().unwrap();
            assert!(
                common::relative_difference(loss, want) < 1e-4,
                "{name} case {i}: loss {loss} vs {want}"
            );
        }
    }
}

fn experiment_model(name: &str) -> HashMap<String, Tensor> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("experiments/lm")
        .join(name)
        .join("model.safetensors");
    candle_core::safetensors::load(path, &Device::Cpu).unwrap()
}

/// A sweep over interpolations of two time vectors: each point's
/// perplexity equals that of weights mixed here, tensor by tensor in f64.
#[test]
fn interpolated_models_score_like_weights_mixed_independently() {
    let lm = Path::new(env!("CARGO_MANIFEST_DIR")).join("experiments/lm");
    let text = lm.join("data/2020.txt");
    let program = format!(
        "let base = load(\"{0}/base\")\nlet early = load(\"{0}/2018\") - base\nlet late = load(\"{0}/2022\") - base\n\
         sweep a in [0, 0.3, 1] {{\n  eval ppl = perplexity(base + a * early + (1 - a) * late, \"{1}\", context = 48, stride = 16)\n}}\n",
        lm.display(),
        text.display()
    );
    let dir = tempfile::tempdir().unwrap();
    let csv = common::run_program(dir.path(), "sweep.tv", &program, &tv::Overrides::default());
    let (base, early, late) = (
        experiment_model("base"),
        experiment_model("2018"),
        experiment_model("2022"),
    );
    let tokenizer = text::load_tokenizer(&lm.join("base")).unwrap();
    let documents = text::tokenize(&tokenizer, &text::read_documents(&text, "text").unwrap()).unwrap();
    for (line, a) in csv.lines().skip(1).zip([0.0, 0.3, 1.0]) {
        let mixed: HashMap<String, Tensor> = base
            .iter()
            .map(|(name, b)| {
                let values = |t: &Tensor| {
                    t.flatten_all()
                        .unwrap()
                        .to_dtype(DType::F64)
                        .unwrap()
                        .to_vec1::<f64>()
                        .unwrap()
                };
                let (b_v, e_v, l_v) = (values(b), values(&early[name]), values(&late[name]));
                let out: Vec<f32> = (0..b_v.len())
                    .map(|i| (b_v[i] + a * (e_v[i] - b_v[i]) + (1.0 - a) * (l_v[i] - b_v[i])) as f32)
                    .collect();
                (name.clone(), Tensor::from_vec(out, b.shape(), &Device::Cpu).unwrap())
            })
            .collect();
        let windowing = Windowing {
            context: 48,
            stride: 16,
            batch: 1,
        };
        let losses = token_losses(
            &model_with(&lm.join("base"), mixed),
            &documents,
            windowing,
            &Device::Cpu,
            &|_| {},
        )
        .unwrap();
        let want = (losses.iter().sum::<f64>() / losses.len() as f64).exp();
        let got: f64 = line.split(',').nth(1).unwrap().parse().unwrap();
        assert!(
            common::relative_difference(got, want) < 1e-5,
            "a = {a}: {got} vs {want}"
        );
    }
}

/// A JSONL file is read from the field the program names: the fixture's
/// documents under another key score as the reference says they do.
#[test]
fn jsonl_documents_come_from_the_named_field() {
    let reference = reference();
    let case = &reference["models"]["qwen2-untied"]["cases"][3];
    assert_eq!(case["data"], "docs.jsonl");
    let dir = tempfile::tempdir().unwrap();
    let source = std::fs::read_to_string(fixtures().join("docs.jsonl")).unwrap();
    let renamed: Vec<String> = source
        .lines()
        .map(|line| {
            let mut record: serde_json::Map<String, Value> = serde_json::from_str(line).unwrap();
            let text = record.remove("text").unwrap();
            record.insert("body".into(), text);
            record.insert("text".into(), Value::from(7));
            serde_json::to_string(&record).unwrap()
        })
        .collect();
    std::fs::write(dir.path().join("docs.jsonl"), renamed.join("\n") + "\n\n").unwrap();
    let model = fixtures().join("qwen2-untied");
    assert_perplexity(
        dir.path(),
        &format!("load(\"{}\")", model.display()),
        "\"docs.jsonl\", field = \"body\"",
        case,
    );
}

/// Runs `perplexity(WEIGHTS, TEXT_AND_ARGUMENTS, ...)` with the windowing of
/// a reference case and compares it with the case's perplexity.
fn assert_perplexity(dir: &Path, weights: &str, text: &str, case: &Value) {
    let (context, stride) = (&case["context"], &case["stride"]);
    let program = format!("eval p = perplexity({weights}, {text}, context = {context}, stride = {stride})\n");
    let csv = common::run_program(dir, "perplexity.tv", &program, &tv::Overrides::default());
    let got: f64 = csv.lines().nth(1).unwrap().parse().unwrap();
    let want = case["perplexity"].as_f64().unwrap();
    assert!(common::relative_difference(got, want) < 1e-4, "{got} vs {want}");
}

/// `loss` and `perplexity` of the same weights on the same text, and a
/// measurement repeated at every sweep point, share one scoring: one text
/// task, and perplexity is exp(loss).
#[test]
fn equal_text_measurements_share_one_scoring() {
    let dir = tempfile::tempdir().unwrap();
    let model = fixtures().join("llama-tied");
    let text = fixtures().join("text.txt");
    let program = format!(
        "let m = load(\"{}\")\nsweep i in [1, 2, 3] {{\n  eval l = loss(m, \"{t}\", context = 32)\n  eval p = perplexity(m, \"{t}\", context = 32)\n}}\n",
        model.display(),
        t = text.display()
    );
    std::fs::write(dir.path().join("share.tv"), &program).unwrap();
    let mut sources = tv::diag::Sources::default();
    let plan = tv::check(&mut sources, &dir.path().join("share.tv"), &tv::Overrides::default()).unwrap();
    assert_eq!(plan.graph.datasets.len(), 1);
    assert_eq!(plan.graph.measure_count(), 2);
    let csv = common::run_program(dir.path(), "share.tv", &program, &tv::Overrides::default());
    for line in csv.lines().skip(1) {
        let cells: Vec<f64> = line.split(',').map(|c| c.parse().unwrap()).collect();
        assert!(common::relative_difference(cells[1].exp(), cells[2]) < 1e-12, "{line}");
    }
}

/// A batch whose attention cannot fit in memory is refused while checking,
/// instead of aborting the run when it allocates; the check counts the
/// windows the text really makes, so a long context on a short text passes.
#[test]
fn a_forward_pass_too_large_for_memory_is_a_diagnostic() {
    let dir = tempfile::tempdir().unwrap();
    let source = fixtures().join("llama-tied");
    let model = dir.path().join("long");
    std::fs::create_dir(&model).unwrap();
    for file in ["model.safetensors", "tokenizer.json"] {
        std::fs::copy(source.join(file), model.join(file)).unwrap();
    }
    let mut config = common::read_json(&source.join("config.json"));
    config["max_position_embeddings"] = Value::from(1u64 << 30);
    std::fs::write(model.join("config.json"), config.to_string()).unwrap();
    // About 300,000 tokens: attention over one such window takes terabytes.
    std::fs::write(dir.path().join("long.txt"), "a b ".repeat(150_000)).unwrap();
    std::fs::write(dir.path().join("short.txt"), "a b c").unwrap();
    let check = |text: &str| {
        let program = format!(
            "eval p = perplexity(load(\"long\"), \"{text}\", context = {})\n",
            1u64 << 30
        );
        std::fs::write(dir.path().join("big.tv"), program).unwrap();
        let mut sources = tv::diag::Sources::default();
        tv::check(&mut sources, &dir.path().join("big.tv"), &tv::Overrides::default()).err()
    };
    let diags = check("long.txt").expect("a 300,000-token window was accepted");
    assert!(diags.iter().any(|d| d.code == "tv::memory"), "{diags:?}");
    assert!(check("short.txt").is_none());
}

/// A model saved by tv as a sharded Hugging Face folder (config and
/// tokenizer copied along) loads back and scores as transformers says.
#[test]
fn a_sharded_folder_saved_by_tv_scores_like_the_original() {
    let reference = reference();
    let case = &reference["models"]["mistral-window"]["cases"][1];
    let dir = tempfile::tempdir().unwrap();
    let save = format!(
        "set max_shard_size = \"200KB\"\nsave load(\"{}\") to \"sharded\"\n",
        fixtures().join("mistral-window").display()
    );
    common::run_program(dir.path(), "save.tv", &save, &tv::Overrides::default());
    let sharded = dir.path().join("sharded");
    assert!(sharded.join("model.safetensors.index.json").is_file() && sharded.join("tokenizer.json").is_file());
    let text = format!("\"{}\"", fixtures().join("text.txt").display());
    assert_perplexity(dir.path(), "load(\"sharded\")", &text, case);
}
