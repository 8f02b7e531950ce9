//! Model measurements: the built-in MLP classifier and its datasets, causal
//! language models and their text, external commands,
//! and the training builtins that make weights for the MLP.

pub mod architecture;
pub mod cache;
pub mod command;
pub mod data;
pub mod fit;
pub mod lm;
pub mod mlp;
pub mod train;

use std::path::Path;

/// The architecture a `config.json` describes.
#[derive(Clone, Debug, PartialEq)]
pub enum ModelConfig {
    Mlp(mlp::MlpConfig),
    Causal(Box<lm::LmConfig>),
}

impl ModelConfig {
    /// Reads a config: the built-in MLP names its `architecture`; Hugging
    /// Face models name their `model_type`. An error comes with a hint
    /// suited to the kind of config it is.
    pub fn read(path: &Path) -> Result<ModelConfig, (String, &'static str)> {
        let at = |e: String| format!("{}: {e}", path.display());
        let text = crate::io::bounded::read_text(path, crate::io::bounded::CONFIG_LIMIT)
            .map_err(|e| (format!("cannot read {}: {e}", path.display()), CONFIG_HELP))?;
        let json: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| (at(format!("not JSON: {e}")), CONFIG_HELP))?;
        let Some(object) = json.as_object() else {
            return Err((at("not a JSON object".into()), CONFIG_HELP));
        };
        if object.contains_key("architecture") {
            return mlp::MlpConfig::from_json(json.clone())
                .map(ModelConfig::Mlp)
                .map_err(|e| (at(e), CONFIG_HELP));
        }
        if object.contains_key("model_type") {
            return lm::LmConfig::parse(object)
                .map(|c| ModelConfig::Causal(Box::new(c)))
                .map_err(|e| (at(e), LM_CONFIG_HELP));
        }
        let message = format!(
            "names neither an `architecture` (\"mlp\") nor a `model_type` ({})",
            lm::config::supported_types()
        );
        Err((at(message), CONFIG_HELP))
    }

    /// The tensors the weights must hold: names and shapes.
    pub fn tensors(&self) -> Vec<(String, Vec<usize>)> {
        match self {
            ModelConfig::Mlp(c) => c.tensors(),
            ModelConfig::Causal(c) => c.tensors(),
        }
    }
}

const CONFIG_HELP: &str = "an MLP config is {\"architecture\": \"mlp\", \"layers\": [...], \"activation\": \"relu\"}; \
     a language model's is the Hugging Face config.json of a supported family (README, \"Language models\")";

const LM_CONFIG_HELP: &str = "tv computes Llama, Mistral, Qwen2/3, Gemma 1/2/3, Phi-3, GPT-2, GPT-NeoX and OLMo 2 models \
     (README, \"Language models\"); it refuses a setting it does not know rather than ignore one that could change the logits";

/// What a model measurement is scored on.
#[derive(Clone, Debug)]
pub enum EvalData {
    /// Labelled rows for the MLP classifier.
    Table(data::Dataset),
    /// Tokenized text for a language model.
    Text(lm::TextTask),
}
