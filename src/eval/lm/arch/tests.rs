//! Configs shaped like published checkpoints' (sizes as published), and
//! the keys tv must refuse.

use crate::eval::lm::config::{Activation, LmConfig, NormKind, QkNorm};
use crate::eval::lm::rope::Scaling;
use serde_json::{json, Value};

fn parse(config: Value) -> Result<LmConfig, String> {
    LmConfig::parse(config.as_object().unwrap())
}

fn with(mut config: Value, extra: Value) -> Value {
    for (key, value) in extra.as_object().unwrap() {
        config[key] = value.clone();
    }
    config
}

fn llama_3_2_1b() -> Value {
    json!({
        "architectures": ["LlamaForCausalLM"], "attention_bias": false, "attention_dropout": 0.0,
        "bos_token_id": 128000, "eos_token_id": 128001, "head_dim": 64, "hidden_act": "silu",
        "hidden_size": 2048, "initializer_range": 0.02, "intermediate_size": 8192,
        "max_position_embeddings": 131072, "mlp_bias": false, "model_type": "llama",
        "num_attention_heads": 32, "num_hidden_layers": 16, "num_key_value_heads": 8,
        "pretraining_tp": 1, "rms_norm_eps": 1e-05,
        "rope_scaling": {"factor": 32.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
                         "original_max_position_embeddings": 8192, "rope_type": "llama3"},
        "rope_theta": 500000.0, "tie_word_embeddings": true, "torch_dtype": "bfloat16",
        "transformers_version": "4.45.0.dev0", "use_cache": true, "vocab_size": 128256
    })
}

/// Parameter counts as the models' cards publish them.
#[test]
fn parameter_counts_equal_the_published_ones() {
    assert_eq!(parse(llama_3_2_1b()).unwrap().parameters(), 1_235_814_400);
    let gpt2 = json!({
        "activation_function": "gelu_new", "architectures": ["GPT2LMHeadModel"], "attn_pdrop": 0.1,
        "bos_token_id": 50256, "embd_pdrop": 0.1, "eos_token_id": 50256, "initializer_range": 0.02,
        "layer_norm_epsilon": 1e-05, "model_type": "gpt2", "n_ctx": 1024, "n_embd": 768, "n_head": 12,
        "n_layer": 12, "n_positions": 1024, "resid_pdrop": 0.1, "summary_activation": null,
        "summary_first_dropout": 0.1, "summary_proj_to_labels": true, "summary_type": "cls_index",
        "summary_use_proj": true, "task_specific_params": {"text-generation": {"do_sample": true, "max_length": 50}},
        "vocab_size": 50257
    });
    assert_eq!(parse(gpt2).unwrap().parameters(), 124_439_808);
    let pythia = json!({
        "architectures": ["GPTNeoXForCausalLM"], "bos_token_id": 0, "eos_token_id": 0, "hidden_act": "gelu",
        "hidden_size": 512, "initializer_range": 0.02, "intermediate_size": 2048, "layer_norm_eps": 1e-05,
        "max_position_embeddings": 2048, "model_type": "gpt_neox", "num_attention_heads": 8,
        "num_hidden_layers": 6, "rotary_emb_base": 10000, "rotary_pct": 0.25, "tie_word_embeddings": false,
        "torch_dtype": "float16", "transformers_version": "4.24.0", "use_cache": true,
        "use_parallel_residual": true, "vocab_size": 50304
    });
    let pythia = parse(pythia).unwrap();
    assert_eq!(pythia.parameters(), 70_426_624);
    assert_eq!(pythia.rope.as_ref().unwrap().rotary_dim, 16);
    assert!(pythia.parallel && pythia.norm == NormKind::Layer && pythia.activation == Activation::Gelu);
}

#[test]
fn llama3_rope_is_read_from_either_key() {
    let config = parse(llama_3_2_1b()).unwrap();
    let rope = config.rope.unwrap();
    assert_eq!(rope.base, 500000.0);
    assert!(matches!(rope.scaling, Scaling::Llama3 { factor, original_max: 8192, .. } if factor == 32.0));
    let nested = with(
        llama_3_2_1b(),
        json!({"rope_scaling": null, "rope_theta": null, "rope_parameters": {
            "rope_type": "llama3", "rope_theta": 500000.0, "factor": 32.0, "high_freq_factor": 4.0,
            "low_freq_factor": 1.0, "original_max_position_embeddings": 8192}}),
    );
    assert_eq!(parse(nested).unwrap().rope, Some(rope));
    let typo = with(
        llama_3_2_1b(),
        json!({"rope_scaling": {"rope_type": "llama3", "factor": 8.0}}),
    );
    assert!(parse(typo).unwrap_err().contains("low_freq_factor"));
    let unknown = with(
        llama_3_2_1b(),
        json!({"rope_scaling": {"rope_type": "llama4", "factor": 8.0}}),
    );
    assert!(parse(unknown).unwrap_err().contains("\"llama4\""));
    let extra = with(
        llama_3_2_1b(),
        json!({"rope_scaling": {"rope_type": "linear", "factor": 2.0, "beta_fast": 3}}),
    );
    assert!(parse(extra).unwrap_err().contains("rope_scaling.beta_fast"));
    let disagree = with(
        llama_3_2_1b(),
        json!({"rope_scaling": null, "rope_parameters": {"rope_type": "default", "rope_theta": 1e4}}),
    );
    assert!(parse(disagree).unwrap_err().contains("disagree"));
}

#[test]
fn llama_defaults_follow_transformers() {
    let bare = json!({"model_type": "llama", "vocab_size": 10, "hidden_size": 8, "intermediate_size": 12,
                      "num_hidden_layers": 3, "num_attention_heads": 4});
    let config = parse(bare.clone()).unwrap();
    assert_eq!((config.kv_heads, config.head_dim, config.max_positions), (4, 2, 2048));
    assert_eq!(config.rope.unwrap().base, 10_000.0);
    assert!(!config.tied && !config.biases.qkv && config.windows == vec![None; 3]);
    let qwen = parse(with(
        bare.clone(),
        json!({"model_type": "qwen2", "num_attention_heads": 64, "hidden_size": 128}),
    ))
    .unwrap();
    assert_eq!(qwen.kv_heads, 32);
    assert!(qwen.biases.qkv && !qwen.biases.o);
    let mistral = parse(with(
        bare.clone(),
        json!({"model_type": "mistral", "num_key_value_heads": 2}),
    ))
    .unwrap();
    assert_eq!(mistral.windows, vec![Some(4096); 3]);
    let typed = json!({"model_type": "qwen3", "num_key_value_heads": 2, "sliding_window": 4, "use_sliding_window": true,
                       "layer_types": ["sliding_attention", "full_attention", "sliding_attention"]});
    let qwen3 = parse(with(bare.clone(), typed)).unwrap();
    assert_eq!(qwen3.windows, vec![Some(4), None, Some(4)]);
    assert_eq!(qwen3.qk_norm, QkNorm::PerHead);
    let names: Vec<String> = qwen3.tensors().into_iter().map(|(n, _)| n).collect();
    assert!(names.contains(&"model.layers.1.self_attn.k_norm.weight".to_string()));
}

#[test]
fn gemma_configs_take_their_families_defaults() {
    let gemma2 = json!({
        "architectures": ["Gemma2ForCausalLM"], "attention_bias": false, "attention_dropout": 0.0,
        "attn_logit_softcapping": 50.0, "bos_token_id": 2, "cache_implementation": "hybrid", "eos_token_id": 1,
        "final_logit_softcapping": 30.0, "head_dim": 256, "hidden_act": "gelu_pytorch_tanh",
        "hidden_activation": "gelu_pytorch_tanh", "hidden_size": 2304, "initializer_range": 0.02,
        "intermediate_size": 9216, "max_position_embeddings": 8192, "model_type": "gemma2",
        "num_attention_heads": 8, "num_hidden_layers": 26, "num_key_value_heads": 4, "pad_token_id": 0,
        "query_pre_attn_scalar": 256, "rms_norm_eps": 1e-06, "rope_theta": 10000.0, "sliding_window": 4096,
        "torch_dtype": "float32", "transformers_version": "4.42.4", "use_cache": true, "vocab_size": 256000
    });
    let config = parse(gemma2.clone()).unwrap();
    assert_eq!(config.parameters(), 2_614_341_888);
    assert_eq!(config.windows[..3], [Some(4096), None, Some(4096)]);
    assert_eq!(
        (config.attention_softcap, config.final_softcap),
        (Some(50.0), Some(30.0))
    );
    assert_eq!(config.attention_scale, 1.0 / 16.0);
    let uncapped = parse(with(gemma2, json!({"attn_logit_softcapping": null}))).unwrap();
    assert_eq!(uncapped.attention_softcap, None);
    let gemma3 = json!({"model_type": "gemma3_text", "vocab_size": 10, "hidden_size": 8, "intermediate_size": 12,
        "num_hidden_layers": 7, "num_attention_heads": 2, "num_key_value_heads": 1, "head_dim": 4,
        "rope_theta": 1e6, "rope_local_base_freq": 1e4, "rope_scaling": {"rope_type": "linear", "factor": 8.0},
        "sliding_window": 3, "sliding_window_pattern": 6, "query_pre_attn_scalar": 4});
    let config = parse(gemma3).unwrap();
    let windows: Vec<bool> = config.windows.iter().map(Option::is_some).collect();
    assert_eq!(windows, [true, true, true, true, true, false, true]);
    assert!(matches!(config.rope.as_ref().unwrap().scaling, Scaling::Linear { factor } if factor == 8.0));
    assert_eq!(config.norm, NormKind::Rms { unit_offset: true });
    let local = config.local_rope.unwrap();
    assert_eq!((local.base, local.scaling), (1e4, Scaling::Default));
}

/// gemma-2b's published config says "gelu", which transformers 5 reads as
/// the tanh approximation; Gemma 2 reads `hidden_activation` instead.
#[test]
fn gemma_activations_are_read_as_transformers_reads_them() {
    let gemma = json!({"model_type": "gemma", "vocab_size": 10, "hidden_size": 8, "intermediate_size": 12,
        "num_hidden_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 1, "head_dim": 4,
        "hidden_act": "gelu", "hidden_activation": null});
    assert_eq!(parse(gemma.clone()).unwrap().activation, Activation::GeluTanh);
    let gemma2 = with(
        gemma,
        json!({"model_type": "gemma2", "hidden_act": "silu", "hidden_activation": "gelu"}),
    );
    assert_eq!(parse(gemma2).unwrap().activation, Activation::Gelu);
}

#[test]
fn phi3_reads_longrope_under_its_old_names() {
    let phi3 = json!({"model_type": "phi3", "vocab_size": 10, "hidden_size": 16, "intermediate_size": 12,
        "num_hidden_layers": 1, "num_attention_heads": 2, "max_position_embeddings": 131072,
        "original_max_position_embeddings": 4096, "partial_rotary_factor": 0.5, "resid_pdrop": 0.0,
        "rope_scaling": {"type": "su", "short_factor": [1.0, 1.5], "long_factor": [2.0, 4.0]}});
    let config = parse(phi3).unwrap();
    let rope = config.rope.clone().unwrap();
    assert_eq!(rope.rotary_dim, 4);
    let Scaling::Longrope {
        original_max,
        attention_factor,
        ..
    } = rope.scaling
    else {
        panic!("{rope:?}")
    };
    assert_eq!(original_max, 4096);
    let expected = (1.0 + 32f64.ln() / 4096f64.ln()).sqrt();
    assert!((attention_factor - expected).abs() < 1e-15);
    let names: Vec<String> = config.tensors().into_iter().map(|(n, _)| n).collect();
    assert!(names.contains(&"model.layers.0.self_attn.qkv_proj.weight".to_string()));
    assert!(names.contains(&"model.layers.0.mlp.gate_up_proj.weight".to_string()));
}

#[test]
fn unknown_and_unsupported_settings_are_errors_naming_them() {
    let base = llama_3_2_1b();
    assert!(parse(with(base.clone(), json!({"qk_norm": true})))
        .unwrap_err()
        .contains("`qk_norm`"));
    assert!(parse(with(base.clone(), json!({"hidden_act": "relu2"})))
        .unwrap_err()
        .contains("relu2"));
    assert!(parse(with(base.clone(), json!({"num_key_value_heads": 3}))).is_err());
    assert!(parse(with(base.clone(), json!({"model_type": "mamba"})))
        .unwrap_err()
        .contains("\"mamba\""));
    assert!(parse(with(base.clone(), json!({"hidden_size": 0}))).is_err());
    let odd = with(
        base.clone(),
        json!({"rope_scaling": null, "partial_rotary_factor": 0.3}),
    );
    assert!(parse(odd).unwrap_err().contains("even"));
    let neox = json!({"model_type": "gpt_neox", "vocab_size": 10, "hidden_size": 32, "intermediate_size": 12,
        "num_hidden_layers": 1, "num_attention_heads": 2, "rope_theta": 5.0});
    assert!(parse(neox).unwrap_err().contains("`rope_theta`"));
    let gpt2 = json!({"model_type": "gpt2", "n_embd": 8, "n_head": 2, "n_layer": 1, "vocab_size": 10, "add_cross_attention": true});
    assert!(parse(gpt2).is_err());
}

#[test]
fn dynamic_rope_allows_windows_beyond_the_trained_length() {
    let dynamic = with(
        llama_3_2_1b(),
        json!({"max_position_embeddings": 4096, "rope_scaling": {"rope_type": "dynamic", "factor": 2.0}}),
    );
    let config = parse(dynamic).unwrap();
    assert_eq!(config.context_limit(), 8192);
    assert!(config.length_dependent());
    assert_eq!(parse(llama_3_2_1b()).unwrap().context_limit(), 131072);
}
