#!/usr/bin/env python3
"""Reference fixtures for tv's language-model families beyond llama/mistral/qwen2.

Companion of ``scripts/lm_fixtures.py`` (whose helpers it imports): tiny,
untrained models of more Hugging Face architectures and RoPE variants, in
Hugging Face format, and the per-token losses transformers computes for them.

Usage, from the repository root (environment as in
``scripts/requirements-fixtures.txt``)::

    /tmp/fixvenv/bin/python scripts/lm_families.py generate

``generate`` writes ``tests/fixtures/lm/families/`` deterministically (fixed
seeds, single-threaded, ``torch.use_deterministic_algorithms``; two runs give
byte-identical files) and takes about 20 seconds on two CPU cores. It
needs ``tests/fixtures/lm/text.txt`` and
``tests/fixtures/lm/llama-untied/tokenizer*.json`` from ``lm_fixtures.py``.

Output
------
- ``text.txt``: the first 2,400 characters of ``tests/fixtures/lm/text.txt``,
  cut at the last space before character 2,400 (the space itself dropped).
- One folder per case with ``config.json`` (written by transformers 5's
  ``save_pretrained``), ``model.safetensors`` (float32, no buffers) and a copy of
  ``tests/fixtures/lm/llama-untied/tokenizer.json`` and
  ``tokenizer_config.json`` (byte-level BPE, vocabulary 512, ``<unk>`` 0,
  ``<s>`` 1 = BOS, ``</s>`` 2 = EOS).
- ``reference.json``, see below.

Cases
-----
Every config is built by calling the config class with the key set of the
named published checkpoint's ``config.json`` (same keys, sizes shrunk; legacy
spellings such as ``rope_theta``/``rope_scaling``/``rotary_pct`` are passed as
such and transformers 5 serialises them in its own layout, e.g.
``rope_parameters``; ``torch_dtype`` is passed as ``dtype="float32"``;
``architectures``/``model_type``/``transformers_version`` come from
``save_pretrained``; ``auto_map``/``_name_or_path`` are left out). Token ids
are remapped to the fixture tokenizer (bos 1, eos 2, pad 0 where the
published config has a pad id). Common sizes: vocab 512, hidden 64, 4
attention heads, 2 KV heads in every family that supports GQA (also phi3 and
olmo2, whose named checkpoints happen to use as many KV heads as heads),
intermediate 128, 2 layers, max_position_embeddings 256, eager attention --
unless listed:

==================  ==========================================================
``llama3``          LlamaForCausalLM, keys of meta-llama/Llama-3.2-1B: tied,
                    head_dim 16, rope theta 5e5, rope ``llama3`` (factor 32,
                    low_freq_factor 1, high_freq_factor 4,
                    original_max_position_embeddings 32), rms eps 1e-5
``llama-linear``    the same keys, untied, theta 1e4, rope ``linear`` factor 4
``llama-dynamic``   untied, theta 100 (see Checks), rope ``dynamic`` factor 2,
                    max_position_embeddings 48: windows of 64 tokens are
                    NTK-rescaled, windows of 24 are not
``llama-yarn``      untied, theta 1e4, rope ``yarn`` factor 4,
                    original_max_position_embeddings 32 (beta_fast/slow
                    defaults 32/1, attention factor 0.1 ln 4 + 1),
                    max_position_embeddings 128
``qwen3``           Qwen3ForCausalLM, keys of Qwen/Qwen3-0.6B: head_dim 32
                    (q_proj 64 -> 128), per-head q_norm/k_norm, tied, theta
                    1e6, use_sliding_window false, max_window_layers 2
``gemma``           GemmaForCausalLM, keys of google/gemma-2b: 1 KV head,
                    head_dim 16, hidden_act gelu_pytorch_tanh (gemma-2b says
                    "gelu", which transformers 5 would take literally), tied,
                    embeddings scaled by sqrt(64), RMSNorm weight used as 1 + w
``gemma2``          Gemma2ForCausalLM, keys of google/gemma-2-2b:
                    query_pre_attn_scalar 16, attn/final logit softcapping
                    50/30, sliding_window 16 on layer 0 (layer_types
                    [sliding, full]), pre/post feed-forward norms, tied
``gemma2-capped``   the same with softcapping 5.0 (attention) and 3.0 (final)
``gemma3``          Gemma3ForCausalLM (model_type gemma3_text), keys of
                    google/gemma-3-1b-it: 4 layers, 2 KV heads (1b has 1 of
                    4, the 4b 4 of 8), sliding_window_pattern 4
                    (layer_types [sliding, sliding, sliding, full]),
                    sliding_window 16, local rope theta 1e4
                    (rope_local_base_freq), global theta 1e6 with ``linear``
                    factor 8 on the full-attention layer only (as
                    gemma-3-4b), query_pre_attn_scalar 16, q_norm/k_norm
``phi3``            Phi3ForCausalLM, keys of microsoft/Phi-3-mini-4k-instruct:
                    fused qkv_proj and gate_up_proj, untied, rope_scaling null,
                    sliding_window 48 (see below)
``phi3-longrope``   Phi3ForCausalLM, keys of microsoft/Phi-4-mini-instruct:
                    tied, partial_rotary_factor 0.75 (12 of 16 dims rotated),
                    rope ``longrope`` (short_factor near 1, long_factor 1..7.3,
                    6 entries each), original_max_position_embeddings 32,
                    max_position_embeddings 256 (attention factor
                    sqrt(1 + ln 8 / ln 32)), sliding_window 512 (wider than
                    any window, so inert)
``gpt2``            GPT2LMHeadModel, keys of openai-community/gpt2: n_embd 64,
                    n_head 4, n_layer 2, n_positions = n_ctx = 256, n_inner
                    null (so the MLP is 4 * 64 = 256 wide), gelu_new, tied,
                    learned positions, Conv1D weights stored (in, out)
``pythia``          GPTNeoXForCausalLM, keys of EleutherAI/pythia-70m:
                    rotary_pct 0.25 (4 of 16 dims), rotary_emb_base 1e4,
                    parallel residual, untied ``embed_out``, gelu, biases
``neox-sequential`` the same with use_parallel_residual false, rotary_pct 1.0
``olmo2``           Olmo2ForCausalLM, keys of allenai/OLMo-2-0425-1B: theta
                    5e5, q_norm/k_norm over the whole q (64) and k (32)
                    projections, post-attention and post-feed-forward norms
                    only, untied
==================  ==========================================================

What transformers 5 writes is not always the published spelling: every
field of the config class appears (e.g. ``pad_token_id: null``,
``layer_types``, ``use_bidirectional_attention``), ``rope_theta`` and
``rope_scaling`` become ``rope_parameters`` (nested by layer type for
gemma3, where ``rope_local_base_freq`` becomes
``rope_parameters.sliding_attention.rope_theta``), pythia's ``rotary_pct`` and
``rotary_emb_base`` become ``rope_parameters.partial_rotary_factor`` and
``rope_theta``, phi3-longrope's ``rope_parameters`` keeps the legacy
``"type": "longrope"`` next to ``rope_type``, and gemma3 writes both
``sliding_window_pattern`` and ``_sliding_window_pattern``. Saved weight
names: gpt2's start with ``transformer.``, pythia's head is ``embed_out``
(transformers 5 calls it ``lm_head`` in memory and renames on save), tied
models store no head; no buffer (``inv_freq``, Gemma's ``embed_scale``) is
saved.

Weights are transformers' modules with every parameter redrawn, as in
``lm_fixtures.redraw_weights`` (seeded generator, parameters in sorted-name
order, tied ones once): matrices (linear, Conv1D, gpt2's position
embeddings) N(0, 0.15^2), untied input embeddings N(0, 1), tied ones
N(0, 0.35^2), biases (LayerNorm biases included) 0.3 N(0, 1), norm weights
1 + 0.2 N(0, 1) -- except Gemma-family RMSNorms (gemma, gemma2, gemma3,
q_norm/k_norm included), whose stored weight w is applied as (1 + w): there
w itself is drawn from 0.2 N(0, 1). Unlike ``lm_fixtures.py`` the models are
not trained.

Phi3 and sliding_window: transformers 5's Phi3Model builds the mask with
``create_sliding_window_causal_mask`` on every layer whenever
``config.sliding_window`` is not null (and also passes it to the attention
kernel), so ``phi3``'s 48 masks every layer: query i attends to keys j with
i - 48 < j <= i. The script checks the window semantics of phi3, gemma2 and
gemma3 on one-layer cuts (gemma2/gemma3 layer 0 is a sliding layer).

Losses (``reference.json``)
---------------------------
``text.txt`` is tokenized with ``AutoTokenizer`` from a case folder and
``add_special_tokens=True`` (ids start with BOS). Losses follow the
sliding-window scheme of the transformers guide "Perplexity of fixed-length
models", exactly as ``lm_fixtures.window_nll`` (whose module docstring
spells the scheme out; the windows come from ``lm_fixtures.windows``).

With stride = context the first token of every window is not scored (listed
in ``skipped``); with stride < context every token from index 1 on is
scored once. Each window is one unbatched float32 forward pass on CPU with
eager attention and no attention mask argument; the NLL is taken from
``log_softmax`` of the logits in float64.

Stateless RoPE. transformers' ``dynamic`` and ``longrope`` rotary embeddings
pick their frequencies from the length of the current forward pass
(``modeling_rope_utils.dynamic_rope_update``), and ``dynamic`` keeps state
between calls: after a long window it keeps the rescaled ``inv_freq`` (and
``max_seq_len_cached``) for any later window that is not shorter than
max_position_embeddings, so a window's loss would depend on the windows
before it. The reference is what a freshly loaded model computes for each
window: before every forward pass each rotary module's ``inv_freq`` is
restored to a copy of ``original_inv_freq`` and ``max_seq_len_cached`` to
``original_max_seq_len`` (per layer-type prefix where there are several).
Then ``dynamic`` rescales a window of length L > max_position_embeddings with
base * (factor * L / max_position_embeddings - (factor - 1))^(d / (d - 2))
and leaves shorter windows unscaled; ``longrope`` uses long_factor when
L > original_max_position_embeddings and short_factor otherwise, with the
same attention factor for both. The cached ``long_inv_freq`` of longrope is
kept: it does not depend on the window (it is always computed for length
original_max_position_embeddings + 1), which the script verifies. It also
verifies, on ``llama-dynamic`` and ``phi3-longrope``, that every window's
losses are bit-identical when the windows run in reverse order and when each
window runs on a freshly loaded model.

Layout::

    {"tokens": [ids of text.txt],
     "models": {"llama3": {"params": 106816, "cases": [
         {"data": "text.txt", "context": 64, "stride": 64,
          "skipped": [64, 128, ...], "losses": [...], "mean_nll": x,
          "perplexity": exp(x), "scored_tokens": k},
         ...]},
      ...}}

``params`` is ``sum(p.numel() for p in model.parameters())`` (tied weights
once). ``losses`` are in token order. Cases, for every model: (context,
stride) = (64, 64), (64, 24), (24, 24).

Checks (the script fails if one does not hold)
----------------------------------------------
- the per-token losses on (64, 64) have a standard deviation above 0.5;
- for llama3, llama-linear, llama-dynamic, llama-yarn, gemma3 and
  phi3-longrope the mean loss on (64, 64) moves by more than 1e-3 relative
  when the same weights run with default RoPE (same theta and rotary
  fraction, scaling removed);
- gemma2-capped moves by more than 1e-3 relative without softcapping;
- llama-dynamic and phi3-longrope: all (24, 24) windows are at most the
  length threshold (48, resp. 32) and (64, 64) has windows above it;
- the stateless-RoPE checks above, the sliding-window semantics, and that
  every saved model reloads with bit-identical logits.
One scale was adjusted for them to hold: llama-dynamic's rope theta is 100
rather than 1e4. With 1e4 (and factor 2, max_position_embeddings 48) the
NTK rescaling of 64-token windows (base x 1.79) only touches frequencies
that hardly rotate within 64 positions, and the mean moved by 1.5e-5
relative; with theta 100 it moves by 2.0e-3. The margins are otherwise
1.1x (gemma3: only its one full-attention layer is scaled) to 6.8x; the
per-token losses move far more than the means (mean absolute change 0.2 to
1.5 nats), which the script prints.
"""

import argparse
import json
import math
import shutil
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import lm_fixtures as lf  # noqa: E402

FAMILIES = lf.FIXTURES / "families"
TOKENIZER_SOURCE = lf.FIXTURES / "llama-untied"
TEXT_CHARS = 2400
CASES = [(64, 64), (64, 24), (24, 24)]
BOS, EOS, PAD = lf.BOS_ID, lf.EOS_ID, lf.UNK_ID

# Sizes shared by the cases (published keys spelled per family below).
V, H, I, L, NH, MAXPOS = lf.VOCAB_SIZE, 64, 128, 2, 4, 256

LLAMA_KEYS = dict(  # meta-llama/Llama-3.2-1B
    attention_bias=False, attention_dropout=0.0, bos_token_id=BOS, eos_token_id=EOS,
    head_dim=16, hidden_act="silu", hidden_size=H, initializer_range=0.02,
    intermediate_size=I, max_position_embeddings=MAXPOS, mlp_bias=False,
    num_attention_heads=NH, num_hidden_layers=L, num_key_value_heads=2, pretraining_tp=1,
    rms_norm_eps=1e-5, rope_scaling=None, rope_theta=500000.0, tie_word_embeddings=True,
    dtype="float32", use_cache=True, vocab_size=V,
)

GEMMA2_KEYS = dict(  # google/gemma-2-2b
    attention_bias=False, attention_dropout=0.0, attn_logit_softcapping=50.0,
    bos_token_id=BOS, cache_implementation="hybrid", eos_token_id=EOS,
    final_logit_softcapping=30.0, head_dim=16, hidden_act="gelu_pytorch_tanh",
    hidden_activation="gelu_pytorch_tanh", hidden_size=H, initializer_range=0.02,
    intermediate_size=I, max_position_embeddings=MAXPOS, num_attention_heads=NH,
    num_hidden_layers=L, num_key_value_heads=2, pad_token_id=PAD, query_pre_attn_scalar=16,
    rms_norm_eps=1e-6, rope_theta=10000.0, sliding_window=16, dtype="float32",
    use_cache=True, vocab_size=V,
)

PHI3_KEYS = dict(  # microsoft/Phi-3-mini-4k-instruct
    attention_dropout=0.0, bos_token_id=BOS, embd_pdrop=0.0, eos_token_id=EOS,
    hidden_act="silu", hidden_size=H, initializer_range=0.02, intermediate_size=I,
    max_position_embeddings=MAXPOS, num_attention_heads=NH, num_hidden_layers=L,
    num_key_value_heads=2, original_max_position_embeddings=MAXPOS, pad_token_id=PAD,
    resid_pdrop=0.0, rms_norm_eps=1e-5, rope_scaling=None, rope_theta=10000.0,
    sliding_window=48, tie_word_embeddings=False, dtype="float32", use_cache=True,
    attention_bias=False, vocab_size=V,
)

PHI4_KEYS = dict(  # microsoft/Phi-4-mini-instruct
    attention_bias=False, attention_dropout=0.0, bos_token_id=BOS, embd_pdrop=0.0,
    eos_token_id=EOS, full_attn_mod=1, hidden_act="silu", hidden_size=H,
    initializer_range=0.02, intermediate_size=I, interpolate_factor=1, lm_head_bias=False,
    max_position_embeddings=MAXPOS, mlp_bias=False, num_attention_heads=NH,
    num_hidden_layers=L, num_key_value_heads=2, original_max_position_embeddings=32,
    pad_token_id=PAD, partial_rotary_factor=0.75, resid_pdrop=0.0, rms_norm_eps=1e-5,
    rope_scaling={
        # rotary dim 16 * 0.75 = 12, so 6 factors each
        "long_factor": [1.0, 1.25, 1.9, 2.8, 4.6, 7.3],
        "short_factor": [1.0, 1.02, 1.05, 1.1, 1.08, 1.15],
        "type": "longrope",
    },
    rope_theta=10000.0, sliding_window=512, tie_word_embeddings=True, dtype="float32",
    use_cache=True, vocab_size=V,
)

NEOX_KEYS = dict(  # EleutherAI/pythia-70m
    attention_bias=True, bos_token_id=BOS, eos_token_id=EOS, hidden_act="gelu",
    hidden_size=H, initializer_range=0.02, intermediate_size=I, layer_norm_eps=1e-5,
    max_position_embeddings=MAXPOS, num_attention_heads=NH, num_hidden_layers=L,
    rotary_emb_base=10000, rotary_pct=0.25, tie_word_embeddings=False, dtype="float32",
    use_cache=True, use_parallel_residual=True, vocab_size=V,
)

# name: (config class, published key set with shrunk sizes, weight seed)
MODELS = {
    "llama3": ("LlamaConfig", dict(LLAMA_KEYS, rope_scaling={
        "factor": 32.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
        "original_max_position_embeddings": 32, "rope_type": "llama3"}), 101),
    "llama-linear": ("LlamaConfig", dict(
        LLAMA_KEYS, tie_word_embeddings=False, rope_theta=10000.0,
        rope_scaling={"rope_type": "linear", "factor": 4.0}), 102),
    "llama-dynamic": ("LlamaConfig", dict(
        LLAMA_KEYS, tie_word_embeddings=False, rope_theta=100.0, max_position_embeddings=48,
        rope_scaling={"rope_type": "dynamic", "factor": 2.0}), 103),
    "llama-yarn": ("LlamaConfig", dict(
        LLAMA_KEYS, tie_word_embeddings=False, rope_theta=10000.0, max_position_embeddings=128,
        rope_scaling={"rope_type": "yarn", "factor": 4.0,
                      "original_max_position_embeddings": 32}), 104),
    "qwen3": ("Qwen3Config", dict(  # Qwen/Qwen3-0.6B
        attention_bias=False, attention_dropout=0.0, bos_token_id=BOS, eos_token_id=EOS,
        head_dim=32, hidden_act="silu", hidden_size=H, initializer_range=0.02,
        intermediate_size=I, max_position_embeddings=MAXPOS, max_window_layers=L,
        num_attention_heads=NH, num_hidden_layers=L, num_key_value_heads=2, rms_norm_eps=1e-6,
        rope_scaling=None, rope_theta=1000000, sliding_window=None, tie_word_embeddings=True,
        dtype="float32", use_cache=True, use_sliding_window=False, vocab_size=V), 105),
    "gemma": ("GemmaConfig", dict(  # google/gemma-2b
        attention_bias=False, attention_dropout=0.0, bos_token_id=BOS, eos_token_id=EOS,
        head_dim=16, hidden_act="gelu_pytorch_tanh", hidden_size=H, initializer_range=0.02,
        intermediate_size=I, max_position_embeddings=MAXPOS, num_attention_heads=NH,
        num_hidden_layers=L, num_key_value_heads=1, pad_token_id=PAD, rms_norm_eps=1e-6,
        rope_scaling=None, rope_theta=10000.0, dtype="float32", use_cache=True,
        vocab_size=V), 106),
    "gemma2": ("Gemma2Config", GEMMA2_KEYS, 107),
    "gemma2-capped": ("Gemma2Config", dict(
        GEMMA2_KEYS, attn_logit_softcapping=5.0, final_logit_softcapping=3.0), 108),
    "gemma3": ("Gemma3TextConfig", dict(  # google/gemma-3-1b-it
        attention_bias=False, attention_dropout=0.0, attn_logit_softcapping=None,
        bos_token_id=BOS, cache_implementation="hybrid", eos_token_id=EOS,
        final_logit_softcapping=None, head_dim=16, hidden_activation="gelu_pytorch_tanh",
        hidden_size=H, initializer_range=0.02, intermediate_size=I,
        max_position_embeddings=MAXPOS, num_attention_heads=NH, num_hidden_layers=4,
        num_key_value_heads=2, pad_token_id=PAD, query_pre_attn_scalar=16, rms_norm_eps=1e-6,
        rope_local_base_freq=10000, rope_scaling={"factor": 8.0, "rope_type": "linear"},
        rope_theta=1000000, sliding_window=16, sliding_window_pattern=4, dtype="float32",
        use_cache=True, vocab_size=V), 109),
    "phi3": ("Phi3Config", PHI3_KEYS, 110),
    "phi3-longrope": ("Phi3Config", PHI4_KEYS, 111),
    "gpt2": ("GPT2Config", dict(  # openai-community/gpt2
        activation_function="gelu_new", attn_pdrop=0.1, bos_token_id=BOS, embd_pdrop=0.1,
        eos_token_id=EOS, initializer_range=0.02, layer_norm_epsilon=1e-5, n_ctx=MAXPOS,
        n_embd=H, n_head=NH, n_inner=None, n_layer=L, n_positions=MAXPOS, resid_pdrop=0.1,
        summary_activation=None, summary_first_dropout=0.1, summary_proj_to_labels=True,
        summary_type="cls_index", summary_use_proj=True,
        task_specific_params={"text-generation": {"do_sample": True, "max_length": 50}},
        dtype="float32", vocab_size=V), 112),
    "pythia": ("GPTNeoXConfig", NEOX_KEYS, 113),
    "neox-sequential": ("GPTNeoXConfig", dict(
        NEOX_KEYS, use_parallel_residual=False, rotary_pct=1.0), 114),
    "olmo2": ("Olmo2Config", dict(  # allenai/OLMo-2-0425-1B
        attention_bias=False, attention_dropout=0.0, bos_token_id=BOS, eos_token_id=EOS,
        hidden_act="silu", hidden_size=H, initializer_range=0.02, intermediate_size=I,
        max_position_embeddings=MAXPOS, num_attention_heads=NH, num_hidden_layers=L,
        num_key_value_heads=2, pad_token_id=PAD, rms_norm_eps=1e-6, rope_scaling=None,
        rope_theta=500000, tie_word_embeddings=False, dtype="float32", use_cache=True,
        vocab_size=V), 115),
}

ROPE_SCALED = ["llama3", "llama-linear", "llama-dynamic", "llama-yarn", "gemma3", "phi3-longrope"]
SLIDING = {"phi3": 48, "gemma2": 16, "gemma3": 16}
# name: length above which the RoPE frequencies change
LENGTH_THRESHOLD = {"llama-dynamic": 48, "phi3-longrope": 32}
GEMMA_TYPES = {"gemma", "gemma2", "gemma3_text"}


# ---------------------------------------------------------------------------
# Models


def make_config(class_name, keys):
    import transformers

    return getattr(transformers, class_name)(attn_implementation="eager", **keys)


def redraw_weights(model, seed):
    """lm_fixtures.redraw_weights generalised to every module kind here."""
    tied = bool(model.config.tie_word_embeddings)
    gemma = model.config.model_type in GEMMA_TYPES
    owner = {}
    for mname, module in model.named_modules():
        for pname, _ in module.named_parameters(recurse=False):
            owner[f"{mname}.{pname}" if mname else pname] = module
    embedding = model.get_input_embeddings().weight
    gen = torch.Generator().manual_seed(seed)
    params = dict(model.named_parameters())  # a tied weight appears once
    with torch.no_grad():
        for name in sorted(params):
            p = params[name]
            z = torch.randn(p.shape, generator=gen, dtype=torch.float32)
            is_norm = "Norm" in type(owner[name]).__name__
            if name.endswith(".bias"):
                p.copy_(0.3 * z)
            elif is_norm:
                assert p.dim() == 1, name
                p.copy_(0.2 * z if gemma else 1.0 + 0.2 * z)
            elif p is embedding:
                p.copy_((0.35 if tied else 1.0) * z)
            else:
                assert p.dim() == 2, name
                p.copy_(0.15 * z)


def reset_rope(model):
    """Put every rotary embedding back in its freshly-initialised state."""
    for module in model.modules():
        for name, buf in list(module.named_buffers(recurse=False)):
            if not name.endswith("original_inv_freq"):
                continue
            prefix = name[: -len("original_inv_freq")]
            # a copy: longrope updates inv_freq in place
            module.register_buffer(prefix + "inv_freq", buf.clone(), persistent=False)
            if hasattr(module, prefix + "max_seq_len_cached"):
                setattr(module, prefix + "max_seq_len_cached", module.original_max_seq_len)


def stateless(model):
    model.register_forward_pre_hook(lambda module, args: reset_rope(module))
    return model


def load(path, **kw):
    return stateless(lf.load_model(path, **kw))


def params_count(model):
    return sum(p.numel() for p in model.parameters())


# ---------------------------------------------------------------------------
# Losses


@torch.inference_mode()
def one_window(model, ids, begin, end, first):
    window = ids[begin:end]
    logits = model(input_ids=torch.tensor([window])).logits[0]
    logp = logits.to(torch.float64).log_softmax(-1)
    targets = torch.tensor(window[first:])
    return (-logp[first - 1 : len(window) - 1].gather(1, targets[:, None])[:, 0]).tolist()


def compare(model, ids, base):
    """Relative change of the (64, 64) mean NLL against the case `base`, and
    the mean absolute per-token change."""
    losses = lf.window_nll(model, ids, 64, 64)[1]
    rel = lf.summary(losses)["mean_nll"] / base["mean_nll"] - 1
    per_token = math.fsum(abs(a - b) for a, b in zip(losses, base["losses"])) / len(losses)
    return rel, per_token


def with_config(name, **changes):
    from transformers import AutoConfig

    cfg = AutoConfig.from_pretrained(FAMILIES / name)
    for key, value in changes.items():
        setattr(cfg, key, value)
    return load(FAMILIES / name, config=cfg)


def default_rope(params):
    """The same rope_parameters with any scaling removed."""
    if "full_attention" in params or "sliding_attention" in params:
        return {k: default_rope(v) for k, v in params.items()}
    kept = {"rope_type": "default", "rope_theta": params["rope_theta"]}
    if "partial_rotary_factor" in params:
        kept["partial_rotary_factor"] = params["partial_rotary_factor"]
    return kept


def check_window_semantics(name, window):
    """On the first layer alone, a token at position p changes the output at
    position q exactly when q - window < p <= q."""
    from transformers import AutoConfig

    cfg = AutoConfig.from_pretrained(FAMILIES / name)
    cfg.num_hidden_layers = 1
    if getattr(cfg, "layer_types", None):
        cfg.layer_types = cfg.layer_types[:1]
        assert cfg.layer_types == ["sliding_attention"], cfg.layer_types
    cut = load(FAMILIES / name, config=cfg)
    ids = torch.tensor([[(7 * i + 3) % V for i in range(64)]])
    changed = ids.clone()
    p = 10
    changed[0, p] = (changed[0, p] + 100) % V
    with torch.inference_mode():
        a = cut(input_ids=ids).logits[0]
        b = cut(input_ids=changed).logits[0]
    differs = [(a[q] - b[q]).abs().max().item() > 0 for q in range(64)]
    expected = [p <= q < p + window for q in range(64)]
    assert differs == expected, (name, [q for q in range(64) if differs[q] != expected[q]])
    print(f"{name}: one layer, position {p} reaches positions {p}..{p + window - 1}")


def check_stateless(name, ids, reference_cases):
    """Every window's losses must not depend on the windows run before it."""
    path = FAMILIES / name
    model = load(path)
    for (context, stride), case in zip(CASES, reference_cases):
        wins = lf.windows(len(ids), context, stride)
        expected = [one_window(load(path), ids, *w) for w in wins]  # fresh model each
        assert sum(expected, []) == case["losses"], (name, context, stride, "fresh")
        backwards = [one_window(model, ids, *w) for w in reversed(wins)][::-1]
        assert backwards == expected, (name, context, stride, "reversed")
    # What a stateful model would give (informative): one model, all cases in a row.
    plain = lf.load_model(path)
    stateful = sum((sum((one_window(plain, ids, *w) for w in lf.windows(len(ids), c, s)), [])
                    for c, s in CASES), [])
    stateless_all = sum((c["losses"] for c in reference_cases), [])
    moved = sum(a != b for a, b in zip(stateful, stateless_all))
    print(f"{name}: windows independent of their predecessors (fresh model, reversed order); "
          f"without the reset {moved} of {len(stateless_all)} losses would differ")
    # longrope's cached long_inv_freq is the same whatever window computed it
    from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

    for module in model.modules():
        if getattr(module, "long_inv_freq", None) is not None:
            cfg = module.config
            fresh, _ = ROPE_INIT_FUNCTIONS[module.rope_type](
                cfg, None, seq_len=cfg.rope_parameters["original_max_position_embeddings"] + 1)
            assert torch.equal(module.long_inv_freq, fresh), name
            print(f"{name}: cached long_inv_freq equals a fresh computation")


def check_thresholds(name, n):
    limit = LENGTH_THRESHOLD[name]
    short = [e - b for b, e, _ in lf.windows(n, 24, 24)]
    long = [e - b for b, e, _ in lf.windows(n, 64, 64)]
    assert max(short) <= limit, (name, max(short))
    assert max(long) > limit, (name, max(long))
    print(f"{name}: (24, 24) windows <= {limit} tokens, (64, 64) windows up to {max(long)}")


# ---------------------------------------------------------------------------


def write_text():
    full = (lf.FIXTURES / "text.txt").read_text(encoding="utf-8")
    text = full[:TEXT_CHARS]
    text = text[: text.rindex(" ")]
    (FAMILIES / "text.txt").write_text(text, encoding="utf-8")
    return text


def build(name):
    class_name, keys, seed = MODELS[name]
    out = FAMILIES / name
    shutil.rmtree(out, ignore_errors=True)
    torch.manual_seed(seed)
    config = make_config(class_name, keys)
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_config(config, attn_implementation="eager").eval()
    redraw_weights(model, seed)
    model.save_pretrained(out)
    (out / "generation_config.json").unlink(missing_ok=True)
    for f in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copyfile(TOKENIZER_SOURCE / f, out / f)
    files = sorted(p.name for p in out.iterdir())
    assert files == ["config.json", "model.safetensors", "tokenizer.json",
                     "tokenizer_config.json"], (name, files)
    # The saved model must be the one in memory.
    probe = torch.tensor([list(range(1, 65))])
    reset_rope(model)
    with torch.inference_mode():
        before = model(input_ids=probe).logits
        after = load(out)(input_ids=probe).logits
    assert torch.equal(before, after), f"{name}: reloaded model differs"
    return params_count(model)


def generate(_args):
    lf.quiet()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    start = time.time()
    shutil.rmtree(FAMILIES, ignore_errors=True)
    FAMILIES.mkdir(parents=True)
    text = write_text()

    params = {name: build(name) for name in MODELS}

    from transformers import AutoTokenizer

    hf = AutoTokenizer.from_pretrained(FAMILIES / "llama3")
    ids = hf(text, add_special_tokens=True)["input_ids"]
    assert ids[0] == BOS and BOS not in ids[1:]
    assert hf.decode(ids, skip_special_tokens=True) == text
    print(f"text.txt: {len(text)} characters, {len(ids)} tokens")

    models = {}
    for name in MODELS:
        model = load(FAMILIES / name)
        cases = []
        for context, stride in CASES:
            positions, losses = lf.window_nll(model, ids, context, stride)
            skipped = sorted(set(range(1, len(ids))) - set(positions))
            cases.append(dict(data="text.txt", context=context, stride=stride, skipped=skipped,
                              losses=losses, **lf.summary(losses)))
        models[name] = {"params": params[name], "cases": cases}

        base = cases[0]
        spread = lf.std(base["losses"])
        line = f"{name:16s} params {params[name]:6d}  mean nll {base['mean_nll']:.4f}  " \
               f"loss std {spread:.3f}"
        assert spread > 0.5, (name, spread)
        if name in ROPE_SCALED:
            plain = with_config(name, rope_parameters=default_rope(model.config.rope_parameters))
            rel, per_token = compare(plain, ids, base)
            line += f"\n    default rope: mean {rel:+.3e} relative, |per token| {per_token:.4f}"
            assert abs(rel) > 1e-3, (name, rel)
        if name == "gemma2-capped":
            plain = with_config(name, attn_logit_softcapping=None, final_logit_softcapping=None)
            rel, per_token = compare(plain, ids, base)
            line += f"\n    no softcapping: mean {rel:+.3e} relative, |per token| {per_token:.4f}"
            assert abs(rel) > 1e-3, (name, rel)
        if name in SLIDING:
            if getattr(model.config, "layer_types", None):
                plain = with_config(name, layer_types=["full_attention"] * len(
                    model.config.layer_types))
            else:
                plain = with_config(name, sliding_window=None)
            rel, per_token = compare(plain, ids, base)
            line += (f"\n    no sliding window: mean {rel:+.3e} relative, "
                     f"|per token| {per_token:.4f}")
        print(line)
        for c in cases:
            print(f"    context {c['context']:3d} stride {c['stride']:3d}: "
                  f"ppl {c['perplexity']:9.3f} over {c['scored_tokens']} tokens")

    for name, window in SLIDING.items():
        check_window_semantics(name, window)
    for name in LENGTH_THRESHOLD:
        check_thresholds(name, len(ids))
        check_stateless(name, ids, models[name]["cases"])

    doc = {"tokens": ids, "models": models}
    (FAMILIES / "reference.json").write_text(lf.dump_json(doc) + "\n")
    lf.fix_permissions(FAMILIES)
    total = sum(p.stat().st_size for p in FAMILIES.rglob("*") if p.is_file())
    print(f"{FAMILIES.relative_to(lf.REPO)}: {total} bytes, "
          f"reference.json {(FAMILIES / 'reference.json').stat().st_size} bytes")
    print(f"done after {time.time() - start:.0f}s")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("generate", help="write tests/fixtures/lm/families")
    args = parser.parse_args()
    {"generate": generate}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
