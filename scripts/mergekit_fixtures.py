#!/usr/bin/env python3
"""Reference fixtures for tv's merge methods, produced by mergekit.

Two subcommands:

``generate``
    Builds four tiny llama-shaped Hugging Face checkpoints under
    ``tests/fixtures/merge/{base,m1,m2,m3}/`` (f32, one ``model.safetensors``
    each; ``base`` also gets a small word-level tokenizer), runs mergekit on
    them for every case in ``CASES`` and stores each merged state dict as
    ``tests/fixtures/merge/expected/<case>.safetensors``. The exact YAML that
    mergekit was given for each case is written to
    ``tests/fixtures/merge/cases.json`` as ``{case: {"yaml": ..., "random": ...}}``
    (model names in the YAML are folders relative to ``tests/fixtures/merge``).
    Deterministic cases produce the same bytes on every run; the ``random``
    ones (DARE, DELLA) are seeded, so they repeat with the same pinned
    versions on the same platform, but their values are not something to
    compare exactly against another implementation.

``check-load DIR [--compare FILE.safetensors]``
    Loads a Hugging Face folder written by another tool (tv) with
    ``AutoModelForCausalLM`` (and ``AutoTokenizer`` when tokenizer files are
    present), runs a forward pass, prints the parameter count and
    ``loads in transformers: ok``. With ``--compare`` every tensor of the
    loaded model must equal the tensor of the same name in FILE within 1e-6.
    Exits non-zero on any failure.

Usage, from the repository root:

    python3 -m venv /tmp/fixvenv
    /tmp/fixvenv/bin/pip install -r scripts/requirements-fixtures.txt
    /tmp/fixvenv/bin/python scripts/mergekit_fixtures.py generate
    /tmp/fixvenv/bin/python scripts/mergekit_fixtures.py check-load OUT_DIR \\
        --compare tests/fixtures/merge/expected/ties.safetensors
"""

import argparse
import copy
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
import yaml
from safetensors.numpy import load_file as load_numpy
from safetensors.torch import load_file, save_file

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "tests" / "fixtures" / "merge"

# Model shape. Every tensor name mergekit's llama architecture knows is
# present (tie_word_embeddings is off so lm_head.weight is stored separately).
MODEL_CONFIG = dict(
    vocab_size=64,
    hidden_size=32,
    intermediate_size=64,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    tie_word_embeddings=False,
    bos_token_id=1,
    eos_token_id=2,
    pad_token_id=3,
)

BASE_SEED = 0
DELTA_STD = 0.02
# Each fine-tune's delta is a mix of m1's delta and fresh noise, so the
# variants are correlated the way real fine-tunes of one base tend to be:
# m2 partly opposes m1 (sign election in TIES has real conflicts to resolve),
# m3 mostly agrees with it. Mixing weights keep every delta's std at DELTA_STD.
#   name: (noise seed, coefficient on m1's delta)
VARIANTS = {"m1": (1, 0.0), "m2": (2, -0.3), "m3": (3, 0.7)}

# Words for the tokenizer; ids 0..3 are the special tokens.
SPECIAL_TOKENS = ["<unk>", "<s>", "</s>", "<pad>"]
WORDS = (
    "the a an of to in and is are was on with for by at from model weight "
    "merge task vector base sum mean sign mask keep drop scale layer tensor "
    "hello world one two three four"
).split()

# Seed for the randomized methods; also passed to mergekit as random_seed.
MERGE_SEED = 1234


# ---------------------------------------------------------------------------
# Input checkpoints


def llama_config():
    from transformers import LlamaConfig

    return LlamaConfig(dtype="float32", **MODEL_CONFIG)


def base_state_dict():
    """Random-init weights of the tiny llama, in f32, keyed by checkpoint name."""
    from transformers import LlamaForCausalLM

    torch.manual_seed(BASE_SEED)
    model = LlamaForCausalLM(llama_config())
    state = {k: v.detach().to(torch.float32).clone() for k, v in model.state_dict().items()}
    # transformers initialises RMSNorm weights to exactly 1.0; perturb them so a
    # merge of norm weights is distinguishable from "copied from base".
    gen = torch.Generator().manual_seed(BASE_SEED + 100)
    for name in sorted(state):
        if name.endswith("norm.weight"):
            state[name] += 0.1 * torch.randn(state[name].shape, generator=gen)
    return state


def noise(state, seed):
    """One N(0, DELTA_STD) tensor per weight, drawn in sorted-name order."""
    gen = torch.Generator().manual_seed(seed)
    return {
        name: DELTA_STD * torch.randn(state[name].shape, generator=gen, dtype=torch.float32)
        for name in sorted(state)
    }


def variant_deltas(base):
    d1 = noise(base, VARIANTS["m1"][0])
    deltas = {}
    for variant, (seed, along_m1) in VARIANTS.items():
        if variant == "m1":
            deltas[variant] = d1
            continue
        fresh = noise(base, seed)
        keep = float(np.sqrt(1.0 - along_m1**2))
        deltas[variant] = {n: along_m1 * d1[n] + keep * fresh[n] for n in base}
    return deltas


def save_checkpoint(state, out_dir):
    from transformers import LlamaForCausalLM

    model = LlamaForCausalLM(llama_config())
    missing, unexpected = model.load_state_dict(state, strict=True)
    assert not missing and not unexpected
    out_dir.mkdir(parents=True, exist_ok=True)
    # transformers 5 always writes safetensors (the safe_serialization flag of
    # 4.x is gone); the default shard size keeps this one file.
    model.save_pretrained(out_dir)
    files = sorted(p.name for p in out_dir.glob("*.safetensors"))
    assert files == ["model.safetensors"], files


def save_tokenizer(out_dir):
    """A word-level tokenizer built offline; vocab fits in vocab_size."""
    from tokenizers import Tokenizer, pre_tokenizers, processors
    from tokenizers.models import WordLevel
    from transformers import PreTrainedTokenizerFast

    vocab = {tok: i for i, tok in enumerate(SPECIAL_TOKENS + WORDS)}
    assert len(vocab) <= MODEL_CONFIG["vocab_size"], len(vocab)
    tok = Tokenizer(WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A", special_tokens=[("<s>", vocab["<s>"])]
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="<unk>",
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
    )
    fast.save_pretrained(out_dir)


def build_inputs():
    for name in ["base", *VARIANTS, "expected"]:
        shutil.rmtree(FIXTURES / name, ignore_errors=True)
    base = base_state_dict()
    save_checkpoint(base, FIXTURES / "base")
    save_tokenizer(FIXTURES / "base")
    for variant, delta in variant_deltas(base).items():
        save_checkpoint({n: base[n] + delta[n] for n in base}, FIXTURES / variant)


# ---------------------------------------------------------------------------
# Merge cases


def models(*entries):
    """mergekit `models:` list from (name, {parameters}) pairs or bare names."""
    out = []
    for entry in entries:
        if isinstance(entry, str):
            out.append({"model": entry})
        else:
            name, params = entry
            out.append({"model": name, "parameters": params})
    return out


def each(params):
    """The same per-model parameters for m1, m2 and m3."""
    # Deep copies: shared objects would come out of PyYAML as &anchors/*aliases.
    return models(*[(m, copy.deepcopy(params)) for m in ("m1", "m2", "m3")])


def weighted(weights, **common):
    return models(*[(m, {"weight": w, **common}) for m, w in zip(("m1", "m2", "m3"), weights)])


# case -> (merge_method, base_model or None, models, top-level parameters, random?)
CASES = {
    "linear": ("linear", None, weighted([0.5, 0.3, 0.2]), None, False),
    "linear_sum": ("linear", None, weighted([0.6, 0.3, 0.4]), {"normalize": False}, False),
    "task_arithmetic": (
        "task_arithmetic", "base", weighted([1.0, 0.5, 0.7]), {"lambda": 0.8}, False,
    ),
    "task_arithmetic_normalized": (
        "task_arithmetic", "base", weighted([1.0, 0.5, 0.7]),
        {"normalize": True, "lambda": 1.0}, False,
    ),
    "ties": ("ties", "base", weighted([1.0, 0.5, 0.8], density=0.5), None, False),
    "ties_per_model": (
        "ties", "base",
        models(
            ("m1", {"density": 0.3, "weight": 0.7}),
            ("m2", {"density": 0.6, "weight": 1.0}),
            ("m3", {"density": 0.9, "weight": 0.4}),
        ),
        {"lambda": 0.9, "normalize": False}, False,
    ),
    "ties_filtered": (
        "ties", "base",
        each({"weight": 1.0,
              "density": [{"filter": "self_attn", "value": 0.3}, {"value": 0.7}]}),
        None, False,
    ),
    "ties_rescaled": (
        "ties", "base", each({"weight": 1.0, "density": 0.4}), {"rescale": True}, False,
    ),
    "breadcrumbs": (
        "breadcrumbs", "base", weighted([1.0, 0.6, 0.8], density=0.8, gamma=0.05), None, False,
    ),
    "breadcrumbs_ties": (
        "breadcrumbs_ties", "base", each({"weight": 1.0, "density": 0.7, "gamma": 0.02}),
        None, False,
    ),
    "dare_linear": ("dare_linear", "base", each({"weight": 1.0, "density": 0.5}), None, True),
    "dare_ties": ("dare_ties", "base", weighted([1.0, 0.5, 0.8], density=0.6), None, True),
    "della": (
        "della", "base", each({"weight": 1.0, "density": 0.5, "epsilon": 0.1}), None, True,
    ),
    "della_linear": (
        "della_linear", "base", each({"weight": 1.0, "density": 0.6, "epsilon": 0.15}),
        None, True,
    ),
    "slerp": ("slerp", "base", models("base", "m1"), {"t": 0.3}, False),
    "slerp_filtered": (
        "slerp", "base", models("base", "m1"),
        {"t": [{"filter": "self_attn", "value": 0.2},
               {"filter": "mlp", "value": 0.7},
               {"value": 0.5}]},
        False,
    ),
    "model_stock": ("model_stock", "base", models("m1", "m2", "m3"), None, False),
    "model_stock_filter_wise": (
        "model_stock", "base", models("m1", "m2", "m3"), {"filter_wise": True}, False,
    ),
}


def case_yaml(method, base_model, model_list, parameters):
    doc = {"merge_method": method}
    if base_model:
        doc["base_model"] = base_model
    doc["models"] = model_list
    if parameters:
        doc["parameters"] = parameters
    doc["dtype"] = "float32"
    doc["out_dtype"] = "float32"
    return yaml.safe_dump(doc, sort_keys=False)


def run_mergekit(config_yaml, out_dir, random):
    from mergekit.config import MergeConfiguration
    from mergekit.merge import MergeOptions, run_merge

    config = MergeConfiguration.model_validate(yaml.safe_load(config_yaml))
    options = MergeOptions(
        device="cpu",
        random_seed=MERGE_SEED if random else None,
        copy_tokenizer=False,
        write_model_card=False,
        quiet=True,
    )
    # Model names in the YAML are folders relative to the fixture directory.
    cwd = os.getcwd()
    os.chdir(FIXTURES)
    try:
        torch.manual_seed(MERGE_SEED)
        run_merge(config, str(out_dir), options=options)
    finally:
        os.chdir(cwd)
    tensors = {}
    for shard in sorted(Path(out_dir).glob("*.safetensors")):
        tensors.update(load_file(shard))
    return tensors


def generate(_args):
    os.environ.setdefault("TQDM_DISABLE", "1")  # mergekit's shard-writer progress bars
    build_inputs()
    cases = {}
    (FIXTURES / "expected").mkdir(parents=True, exist_ok=True)
    inputs = {n: load_file(FIXTURES / n / "model.safetensors") for n in ["base", *VARIANTS]}
    names = set(inputs["base"])
    for case, (method, base_model, model_list, parameters, random) in CASES.items():
        text = case_yaml(method, base_model, model_list, parameters)
        cases[case] = {"yaml": text, "random": random}
        with tempfile.TemporaryDirectory() as tmp:
            merged = run_mergekit(text, tmp, random)
        if set(merged) != names:
            sys.exit(f"{case}: tensor names differ from the inputs: "
                     f"{sorted(set(merged) ^ names)}")
        wrong_dtype = sorted(n for n, t in merged.items() if t.dtype != torch.float32)
        if wrong_dtype:
            sys.exit(f"{case}: mergekit wrote non-f32 tensors: {wrong_dtype}")
        unchanged = [n for n in names if torch.equal(merged[n], inputs["base"][n])]
        if unchanged:
            sys.exit(f"{case}: tensors identical to base: {sorted(unchanged)}")
        save_file(merged, FIXTURES / "expected" / f"{case}.safetensors", metadata={"format": "pt"})
        print(f"{case:28s} {method:16s} {'random' if random else 'exact'}")
    (FIXTURES / "cases.json").write_text(json.dumps(cases, indent=2) + "\n")
    sanity_checks(cases)
    files = [p for p in FIXTURES.rglob("*") if p.is_file()]
    for p in files:
        p.chmod(0o644)  # safetensors creates its files owner-only
    total = sum(p.stat().st_size for p in files)
    print(f"fixtures in {FIXTURES.relative_to(REPO)}: {total} bytes")


# ---------------------------------------------------------------------------
# Independent numpy (float64) recomputation of every non-random case from the
# YAML mergekit was given. It catches a fixture that silently does not mean
# what its name says, and it spells out the semantics tv has to reproduce.


def setting(value, name):
    """A parameter value for one tensor: a scalar, or the first filter rule
    whose `filter` is a substring of the tensor name (no filter = catch-all)."""
    if isinstance(value, list):
        for rule in value:
            if rule.get("filter") in (None, "*") or rule["filter"] in name:
                return rule["value"]
        raise ValueError(f"no rule matches {name}")
    return value


def keep_largest(delta, density):
    """TIES mask: the max(1, int(density * n)) largest |delta| of the tensor."""
    if density >= 1:
        return np.ones_like(delta)
    k = max(1, int(density * delta.size))
    mask = np.zeros(delta.size)
    mask[np.argsort(-np.abs(delta).ravel())[:k]] = 1
    return mask.reshape(delta.shape)


def keep_middle(delta, density, gamma):
    """Breadcrumbs mask: drop the int(gamma * n) largest |delta| and as many of
    the smallest as needed to leave int(density * n)."""
    if density >= 1:
        return np.ones_like(delta)
    n, kept, top = delta.size, int(density * delta.size), int(gamma * delta.size)
    bottom = max(0, n - kept - top)
    mask = np.zeros(n)
    mask[np.argsort(np.abs(delta).ravel())[bottom : bottom + kept]] = 1
    return mask.reshape(delta.shape)


# method: (sparsifier, sign election?, default normalize, default rescale)
TASK_VECTOR_METHODS = {
    "task_arithmetic": (None, False, False, False),
    "ties": (keep_largest, True, True, False),
    "breadcrumbs": (keep_middle, False, False, False),
    "breadcrumbs_ties": (keep_middle, True, False, False),
}


def ref_task_vectors(cfg, w, name):
    sparsifier, elect, normalize, rescale = TASK_VECTOR_METHODS[cfg["merge_method"]]
    shared = cfg.get("parameters") or {}
    normalize = shared.get("normalize", normalize)
    rescale = shared.get("rescale", rescale)
    base = w["base"][name]
    deltas, weights = [], []
    for entry in cfg["models"]:
        p = entry["parameters"]
        delta = w[entry["model"]][name] - base
        density = setting(p.get("density", 1.0), name)
        if sparsifier is keep_middle:
            kept = delta * keep_middle(delta, density, setting(p.get("gamma", 0.01), name))
        elif sparsifier:
            kept = delta * keep_largest(delta, density)
        else:
            kept = delta
        if rescale and sparsifier and density < 1:
            # mergekit's "rescale" restores the tensor's L1 norm (not 1/density).
            kept *= np.abs(delta).sum() / np.abs(kept).sum()
        weight = setting(p["weight"], name)
        deltas.append(weight * kept)  # weights apply before sign election
        weights.append(np.full(base.shape, weight))
    deltas, weights = np.stack(deltas), np.stack(weights)
    if elect:
        # Majority sign of the weighted sum (ties go to +); entries that are
        # zero or disagree drop out of both the sum and the normaliser.
        agree = np.sign(deltas) == np.where(deltas.sum(0) >= 0, 1, -1)
        mixed, divisor = (deltas * agree).sum(0), (weights * agree).sum(0)
        divisor[divisor == 0] = 1
    else:
        mixed, divisor = deltas.sum(0), weights.sum(0)
        divisor[np.abs(divisor) < 1e-8] = 1
    if normalize:
        mixed = mixed / divisor
    return base + shared.get("lambda", 1.0) * mixed


def ref_linear(cfg, w, name):
    weights = [e["parameters"]["weight"] for e in cfg["models"]]
    total = sum(c * w[e["model"]][name] for c, e in zip(weights, cfg["models"]))
    normalize = (cfg.get("parameters") or {}).get("normalize", True)
    return total / sum(weights) if normalize else total


def ref_slerp(cfg, w, name):
    # Each tensor is interpolated as one flattened vector.
    t = setting(cfg["parameters"]["t"], name)
    a, b = w["base"][name], w["m1"][name]
    dot = np.clip((a.ravel() / np.linalg.norm(a)) @ (b.ravel() / np.linalg.norm(b)), -1, 1)
    if abs(dot) > 0.9995:
        # Nearly parallel (here: the norm weights): mergekit falls back to lerp.
        return (1 - t) * a + t * b
    theta = np.arccos(dot)
    return (np.sin((1 - t) * theta) * a + np.sin(t * theta) * b) / np.sin(theta)


def ref_model_stock(cfg, w, name):
    filter_wise = (cfg.get("parameters") or {}).get("filter_wise", False)

    def rows(x):
        # One interpolation ratio per row when filter_wise (a 1-D tensor is a
        # single row), otherwise one for the whole flattened tensor.
        if filter_wise:
            return x.reshape(1, -1) if x.ndim == 1 else x
        return x.reshape(-1)

    w0 = rows(w["base"][name])
    ws = [rows(w[e["model"]][name]) for e in cfg["models"]]
    offsets = [x - w0 for x in ws]
    cosines = []
    for i, a in enumerate(offsets):
        for b in offsets[i + 1 :]:
            norms = np.maximum(np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1), 1e-6)
            cosines.append(np.clip((a * b).sum(-1) / norms, -1, 1))
    cos = np.mean(cosines, axis=0)[..., None]
    n = len(ws)
    denominator = 1 + (n - 1) * cos
    singular = np.abs(denominator) < 1e-6  # mergekit keeps the base there
    t = np.where(singular, 0.0, n * cos / np.where(singular, 1.0, denominator))
    return (t * sum(ws) / n + (1 - t) * w0).reshape(w["base"][name].shape)


REFERENCES = {
    "linear": ref_linear,
    "slerp": ref_slerp,
    "model_stock": ref_model_stock,
    **{method: ref_task_vectors for method in TASK_VECTOR_METHODS},
}


def sanity_checks(cases):
    def load(path):
        return {k: v.astype(np.float64) for k, v in load_numpy(path).items()}

    w = {n: load(FIXTURES / n / "model.safetensors") for n in ["base", *VARIANTS]}
    ok = True
    for case, entry in cases.items():
        if entry["random"]:
            continue
        cfg = yaml.safe_load(entry["yaml"])
        got = load(FIXTURES / "expected" / f"{case}.safetensors")
        reference = REFERENCES[cfg["merge_method"]]
        err = max(float(np.max(np.abs(got[n] - reference(cfg, w, n)))) for n in got)
        ok &= err <= 1e-6
        print(f"sanity {case:28s} max |mergekit - numpy| = {err:.1e}"
              f" {'ok' if err <= 1e-6 else 'FAILED'}")
    if not ok:
        sys.exit("sanity checks failed")


# ---------------------------------------------------------------------------
# check-load


def check_load(args):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = Path(args.dir)
    model, info = AutoModelForCausalLM.from_pretrained(folder, output_loading_info=True)
    # transformers only warns about these and fills the gaps with fresh random
    # weights; for a checkpoint writer that is a bug, so fail loudly.
    problems = {kind: found for kind, found in info.items() if found}
    if problems:
        sys.exit(f"loading {folder}: {problems}")
    model.eval()

    ids = [[1, 5, 9, 17, 2]]
    if any((folder / f).exists() for f in ("tokenizer.json", "tokenizer.model")):
        tokenizer = AutoTokenizer.from_pretrained(folder)
        ids = [tokenizer("hello world merge the model")["input_ids"]]
        print(f"tokenizer: {type(tokenizer).__name__}, ids {ids[0]}")
    with torch.no_grad():
        logits = model(torch.tensor(ids)).logits
    if logits.shape[-1] != model.config.vocab_size or not torch.isfinite(logits).all():
        sys.exit(f"bad logits: shape {tuple(logits.shape)}")

    n_params = sum(p.numel() for p in model.parameters())
    print(f"parameters: {n_params}")

    if args.compare:
        reference = load_file(args.compare)
        loaded = {k: v.detach().to(torch.float32) for k, v in model.state_dict().items()}
        bad = []
        for name in sorted(set(reference) | set(loaded)):
            if name not in loaded or name not in reference:
                bad.append(f"{name}: only in {'reference' if name in reference else 'model'}")
                continue
            a, b = loaded[name], reference[name].to(torch.float32)
            if a.shape != b.shape:
                bad.append(f"{name}: shape {tuple(a.shape)} vs {tuple(b.shape)}")
            elif (err := float((a - b).abs().max())) > 1e-6:
                bad.append(f"{name}: max abs diff {err:.3e}")
        if bad:
            print("\n".join(bad))
            sys.exit(f"{len(bad)} tensor(s) differ from {args.compare}")
        print(f"all {len(reference)} tensors match {args.compare} within 1e-6")

    print("loads in transformers: ok")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("generate", help="rebuild tests/fixtures/merge").set_defaults(func=generate)
    check = sub.add_parser("check-load", help="load a Hugging Face folder with transformers")
    check.add_argument("dir")
    check.add_argument("--compare", metavar="FILE.safetensors")
    check.set_defaults(func=check_load)
    args = parser.parse_args()
    args.func(args)


if __name__ == "__main__":
    main()
