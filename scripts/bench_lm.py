#!/usr/bin/env python3
"""CPU speed of tv's perplexity evaluation against transformers.

Builds, in a temporary folder, a random Llama of moderate size (vocab 512
with the committed byte-level BPE tokenizer of ``tests/fixtures/lm``, hidden
512, intermediate 1376, 6 layers, 8 heads, 4 key-value heads, untied,
about 18M parameters; saved as a float32 Hugging Face folder) and a long text (the committed fixture texts repeated to about
40,000 characters), then measures the same sliding-window perplexity
(context 256, stride 256, windows batched 8 at a time) two ways:

(a) transformers in this process: ``torch.inference_mode()``,
    ``torch.set_num_threads(T)``, eager or SDPA attention. The timed part is
    tokenizing the text and running every window (the model is already
    loaded); one warm-up run, then the best of ``--runs``.

(b) ``TV run bench.tv --threads T``, where the script writes ``bench.tv`` as::

        let m = load("MODEL_DIR")
        eval ppl = perplexity(m, "TEXT_PATH", context = 256, stride = 256, batch = 8)

    and reads the CSV it prints (a header line ``ppl``, then the value). The
    whole process is timed (start-up, loading the model, tokenizing and the
    forward passes); one warm-up run, then the best of ``--runs``.

(c) tv's start-up: the same program on a one-line text, timed the same
    way (starting the process, loading and packing the model, tokenizing).

Throughput is scored tokens per second for both: every token but the first
of each window is scored, as in the transformers guide "Perplexity of
fixed-length models" (see ``scripts/lm_fixtures.py`` for the exact scheme).
The script prints both perplexities, their relative difference and three
ratios of tv's throughput to transformers': tv's whole process against
transformers' scoring alone (the strictest); scoring alone on both sides
(tv's start-up subtracted); and loading included on both sides
(transformers' load time, measured once, added). It exits with status 1 when the
tv binary is missing or fails (``--skip-tv`` measures transformers alone).

``--model DIR`` times an existing Hugging Face model folder instead of the
random model (it must have a ``tokenizer.json``; e.g. ``models/smollm2-135m``
written by ``scripts/smollm2.py``), ``--text FILE`` an existing text instead
of the repeated fixture texts (``--chars`` is then ignored); either can be
given alone. ``--context``, ``--stride`` and ``--batch`` replace the 256, 256
and 8 above, for both transformers and tv.

The weights are not transformers' default init (which predicts an almost
uniform distribution, so any perplexity would be close to 512): matrices
are drawn from N(0, 1/fan_in), embeddings from N(0, 1), norm weights are 1,
with a fixed seed, so the two perplexities are a meaningful comparison.

Usage, from the repository root (environment as in
``scripts/requirements-fixtures.txt``; build tv first with
``cargo build --release``)::

    /tmp/fixvenv/bin/python scripts/bench_lm.py                 # all cores
    /tmp/fixvenv/bin/python scripts/bench_lm.py --threads 1 --tv target/release/tv
    /tmp/fixvenv/bin/python scripts/bench_lm.py --skip-tv --attn eager --runs 1
    /tmp/fixvenv/bin/python scripts/bench_lm.py --model models/smollm2-135m \\
        --text /usr/share/common-licenses/Apache-2.0 --threads 2 --skip-tv
"""

import argparse
import csv
import io
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from lm_fixtures import windows

REPO = Path(__file__).resolve().parent.parent
TOKENIZER_DIR = REPO / "tests" / "fixtures" / "lm" / "llama-untied"
TEXT_SOURCES = [REPO / "tests" / "fixtures" / "lm" / "text.txt"] + [
    REPO / "experiments" / "lm" / "data" / f"{year}.txt" for year in range(2018, 2023)
]

MODEL = dict(
    vocab_size=512,
    hidden_size=512,
    intermediate_size=1376,
    num_hidden_layers=6,
    num_attention_heads=8,
    num_key_value_heads=4,
    max_position_embeddings=2048,
    rms_norm_eps=1e-5,
    tie_word_embeddings=False,
    bos_token_id=1,
    eos_token_id=2,
)
CONTEXT = 256
STRIDE = 256
BATCH = 8
SEED = 0


def build_model(out_dir, attn):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(SEED)
    config = LlamaConfig(
        rope_parameters={"rope_type": "default", "rope_theta": 10_000.0},
        dtype="float32",
        attn_implementation=attn,
        **MODEL,
    )
    model = LlamaForCausalLM(config)
    gen = torch.Generator().manual_seed(SEED)
    params = dict(model.named_parameters())
    with torch.no_grad():
        for name in sorted(params):
            p = params[name]
            if name.endswith("norm.weight"):
                p.fill_(1.0)
            elif name.endswith("embed_tokens.weight"):
                p.copy_(torch.randn(p.shape, generator=gen))
            else:
                p.copy_(torch.randn(p.shape, generator=gen) / math.sqrt(p.shape[1]))
    model.save_pretrained(out_dir)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(TOKENIZER_DIR / name, out_dir / name)
    count = sum(p.numel() for p in model.parameters())
    return count


def build_text(path, chars):
    sources = [p.read_text(encoding="utf-8") for p in TEXT_SOURCES]
    parts, size, i = [], 0, 0
    while size < chars:
        parts.append(sources[i % len(sources)])
        size += len(parts[-1])
        i += 1
    text = "".join(parts)[:chars]
    path.write_text(text, encoding="utf-8")
    return text


@torch.inference_mode()
def transformers_perplexity(model, tokenizer, text, context=CONTEXT, stride=STRIDE,
                            batch_size=BATCH):
    """(perplexity, scored tokens); windows of equal length batched by batch_size."""
    ids = tokenizer(text, add_special_tokens=True)["input_ids"]
    spans = windows(len(ids), context, stride)
    by_length = {}
    for span in spans:
        by_length.setdefault(span[1] - span[0], []).append(span)
    total, count = 0.0, 0
    for length, group in sorted(by_length.items()):
        for i in range(0, len(group), batch_size):
            chunk = group[i : i + batch_size]
            batch = torch.tensor([ids[b:e] for b, e, _ in chunk])
            logp = model(input_ids=batch).logits.log_softmax(-1)
            nll = -logp[:, :-1].gather(2, batch[:, 1:, None])[..., 0]
            for row, (_, _, first) in enumerate(chunk):
                total += nll[row, first - 1 :].double().sum().item()
                count += length - first
    return math.exp(total / count), count


def time_transformers(model_dir, text, threads, runs, attn, context=CONTEXT, stride=STRIDE,
                      batch=BATCH):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(threads)
    start = time.perf_counter()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(
        model_dir, dtype=torch.float32, attn_implementation=attn
    ).eval()
    load = time.perf_counter() - start
    print(f"transformers: loaded in {load:.2f}s ({attn} attention, {threads} threads)")
    args = (context, stride, batch)
    ppl, count = transformers_perplexity(model, tokenizer, text, *args)  # warm-up
    best = math.inf
    for _ in range(runs):
        start = time.perf_counter()
        again, _ = transformers_perplexity(model, tokenizer, text, *args)
        best = min(best, time.perf_counter() - start)
        assert again == ppl, (again, ppl)
    return ppl, count, best, load


def run_tv(tv, program, threads):
    cmd = [str(tv), "run", str(program), "--threads", str(threads)]
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=program.parent)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        sys.stderr.write(done.stderr)
        raise RuntimeError(f"`{' '.join(cmd)}` exited with status {done.returncode}")
    rows = list(csv.reader(io.StringIO(done.stdout)))
    if len(rows) < 2 or "ppl" not in rows[0]:
        raise RuntimeError(f"unexpected output of `{' '.join(cmd)}`:\n{done.stdout}")
    return float(rows[1][rows[0].index("ppl")]), elapsed


def time_tv(tv, model_dir, text_path, threads, runs, work, context=CONTEXT, stride=STRIDE,
            batch=BATCH):
    for quote in ('"', "\\", "{", "}"):
        if quote in str(model_dir) + str(text_path):
            raise RuntimeError(f"model or text path contains {quote!r}; set TMPDIR elsewhere "
                               "or move the file")
    def program(name, text):
        path = work / name
        path.write_text(
            f'let m = load("{model_dir}")\n'
            f'eval ppl = perplexity(m, "{text}", context = {context}, stride = {stride}, '
            f"batch = {batch})\n"
        )
        return path

    def best_of(path):
        ppl, _ = run_tv(tv, path, threads)  # warm-up
        best = math.inf
        for _ in range(runs):
            again, elapsed = run_tv(tv, path, threads)
            best = min(best, elapsed)
            if again != ppl:
                print(f"warning: tv gave {again!r} after {ppl!r}")
        return ppl, best

    ppl, best = best_of(program("bench.tv", text_path))
    # The same process on one line of text: start-up, loading and packing.
    one_line = work / "one-line.txt"
    one_line.write_text("The quick brown fox jumps over the lazy dog.\n")
    _, start_up = best_of(program("start-up.tv", one_line))
    return ppl, best, start_up


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)),
                        help="threads for both (default: all cores available)")
    parser.add_argument("--tv", type=Path, default=REPO / "target" / "release" / "tv",
                        help="the tv binary (default: target/release/tv)")
    parser.add_argument("--runs", type=int, default=3, help="timed runs after a warm-up")
    parser.add_argument("--chars", type=int, default=40_000,
                        help="length of the built text (not with --text)")
    parser.add_argument("--model", type=Path, default=None,
                        help="time this Hugging Face model folder instead of a random model")
    parser.add_argument("--text", type=Path, default=None,
                        help="time on this text file instead of the repeated fixture texts")
    parser.add_argument("--context", type=int, default=CONTEXT, help="window length")
    parser.add_argument("--stride", type=int, default=STRIDE, help="window stride")
    parser.add_argument("--batch", type=int, default=BATCH, help="windows per forward pass")
    parser.add_argument("--attn", choices=["sdpa", "eager"], default="sdpa",
                        help="transformers attention implementation")
    parser.add_argument("--skip-tv", action="store_true", help="measure transformers only")
    parser.add_argument("--keep", type=Path, default=None,
                        help="build the model, text and bench.tv here and keep them")
    args = parser.parse_args()

    os.environ.setdefault("TQDM_DISABLE", "1")
    from transformers.utils import logging

    logging.disable_progress_bar()
    logging.set_verbosity_error()

    tmp = None
    if args.keep:
        work = args.keep.resolve()
        work.mkdir(parents=True, exist_ok=True)
    else:
        tmp = tempfile.TemporaryDirectory(prefix="tv-bench-lm-")
        work = Path(tmp.name)
    try:
        torch.set_num_threads(args.threads)
        if args.model:
            model_dir = args.model.resolve()
            model_desc = f"{model_dir} (given)"
        else:
            model_dir = work / "model"
            model_desc = f"{build_model(model_dir, args.attn)} parameters in {model_dir}"
        if args.text:
            text_path = args.text.resolve()
            text = text_path.read_text(encoding="utf-8")
        else:
            text_path = work / "text.txt"
            text = build_text(text_path, args.chars)
        print(f"model: {model_desc}; text: {len(text)} characters in {text_path}")
        print(f"windows: context {args.context}, stride {args.stride}, batch {args.batch}")
        shape = (args.context, args.stride, args.batch)

        hf_ppl, count, hf_time, hf_load = time_transformers(
            model_dir, text, args.threads, args.runs, args.attn, *shape
        )
        hf_rate = count / hf_time
        print(f"transformers: ppl {hf_ppl!r}, {count} scored tokens in {hf_time:.3f}s "
              f"(best of {args.runs}): {hf_rate:.0f} tokens/s")
        if args.skip_tv:
            return 0

        if not args.tv.is_file():
            print(f"error: no tv binary at {args.tv}; build it with `cargo build --release` "
                  "or pass --tv PATH", file=sys.stderr)
            return 1
        try:
            tv_ppl, tv_time, tv_start = time_tv(args.tv.resolve(), model_dir, text_path, args.threads,
                                      args.runs, work, *shape)
        except (OSError, RuntimeError) as err:
            print(f"error: tv failed: {err}", file=sys.stderr)
            return 1
        tv_rate = count / tv_time
        print(f"tv:           ppl {tv_ppl!r}, {count} scored tokens in {tv_time:.3f}s "
              f"(whole process, best of {args.runs}): {tv_rate:.0f} tokens/s")
        print(f"relative difference of the perplexities: {abs(tv_ppl - hf_ppl) / hf_ppl:.3e}")
        print(f"tv start-up (the same program on one line of text): {tv_start:.3f}s")
        print(f"tv / transformers tokens/s: {tv_rate / hf_rate:.2f} "
              "(tv's whole process against transformers' scoring alone)")
        print(f"  scoring alone on both sides: {hf_time / max(tv_time - tv_start, 1e-9):.2f} "
              "(tv's start-up subtracted)")
        print(f"  loading included on both sides: {(hf_time + hf_load) / tv_time:.2f}")
        return 0
    finally:
        if tmp is not None:
            tmp.cleanup()


if __name__ == "__main__":
    sys.exit(main())
