#!/usr/bin/env python3
"""Tokenizer and model config of the time-vector experiment (experiments/time/).

Trains a byte-level BPE tokenizer (vocabulary VOCAB_SIZE, specials ``<unk>``,
``<s>``, ``</s>`` at ids 0, 1, 2, a post-processor that prepends ``<s>``) on
the ``train.jsonl`` documents of every year in ``experiments/time/data/``
(written by ``scripts/dated_corpus.py``), built and saved exactly as
``scripts/lm_fixtures.py`` (``train_tokenizer``, ``save_tokenizer``) builds the
tokenizers of the tiny fixture models. Also writes the tiny Llama
``config.json`` that ``init`` starts from, and ``data/TOKENS.tsv``: tokens per
year and split (without the ``<s>`` each document gets).

Deterministic: the same data files give the same bytes (the documents are fed
in a fixed order; BPE training in ``tokenizers`` has no randomness).

Needs ``tokenizers`` and ``transformers`` (``scripts/requirements-fixtures.txt``).

Usage:  python scripts/time_tokenizer.py [--root experiments/time]
"""

import argparse
import json
import os
from pathlib import Path

# The special tokens' ids and the length limit are those the shared BPE
# training and saving use.
from lm_fixtures import BOS_ID, EOS_ID, MODEL_MAX_LENGTH, bpe_tokenizer, save_tokenizer

VOCAB_SIZE = 2048
SPLITS = ["train", "test", "security_train", "security_test"]

MODEL = dict(
    hidden_size=128,
    intermediate_size=352,
    num_hidden_layers=4,
    num_attention_heads=4,
    num_key_value_heads=2,
    head_dim=32,
    max_position_embeddings=MODEL_MAX_LENGTH,
    tie_word_embeddings=True,
    rms_norm_eps=1e-6,
    rope_theta=10_000.0,
)


def years(data):
    return sorted(int(p.name) for p in data.iterdir() if p.is_dir() and p.name.isdigit())


def read_docs(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line)["text"] for line in f]


def train_tokenizer(data):
    corpus = []
    for year in years(data):
        corpus += read_docs(data / str(year) / "train.jsonl")
    return bpe_tokenizer(corpus, VOCAB_SIZE)


def save_config(out_dir):
    from transformers import LlamaConfig

    kw = dict(MODEL)
    theta = kw.pop("rope_theta")
    cfg = LlamaConfig(
        vocab_size=VOCAB_SIZE,
        bos_token_id=BOS_ID,
        eos_token_id=EOS_ID,
        rope_parameters={"rope_type": "default", "rope_theta": theta},
        dtype="float32",
        architectures=["LlamaForCausalLM"],
        **kw,
    )
    cfg.save_pretrained(out_dir)


def count_tokens(tok, data):
    rows = []
    for year in years(data):
        row = [year]
        for split in SPLITS:
            docs = read_docs(data / str(year) / (split + ".jsonl"))
            n_bytes = sum(len(d.encode("utf-8")) for d in docs)
            n_tok = sum(len(e.ids) - 1 for e in tok.encode_batch(docs))
            row += [n_tok, n_bytes]
        rows.append(row)
    path = data / "TOKENS.tsv"
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write("year\t" + "\t".join("%s_tokens\t%s_bytes" % (s, s) for s in SPLITS) + "\n")
        for row in rows:
            f.write("\t".join(map(str, row)) + "\n")
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--root", default="experiments/time")
    args = ap.parse_args()
    root = Path(args.root)
    data, base = root / "data", root / "base"
    os.makedirs(base, exist_ok=True)
    tok = train_tokenizer(data)
    save_tokenizer(tok, base)
    save_config(base)
    for row in count_tokens(tok, data):
        print("\t".join(map(str, row)))


if __name__ == "__main__":
    main()
