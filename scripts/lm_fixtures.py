#!/usr/bin/env python3
"""Reference fixtures for tv's language-model forward pass and perplexity.

tv evaluates llama-family checkpoints itself (no Python at run time). This
script produces what that implementation is checked against: tiny models
in Hugging Face format (random weights, briefly trained), a byte-level BPE
tokenizer, texts, and the per-token losses transformers computes for them.
It also builds the three small models of the time-vector interpolation
experiment in ``experiments/lm/``.

Subcommands
-----------

``generate``
    Writes everything below, deterministically: with the versions pinned in
    ``scripts/requirements-fixtures.txt`` every file comes out byte for byte
    the same on every run. It runs single-threaded (``torch.set_num_threads(1)``)
    and takes about two minutes, most of it training.

    ``tests/fixtures/lm/``

    - ``text.txt``: about 6,000 characters of English prose (digits,
      punctuation, newlines, a few non-ASCII characters).
    - ``docs.jsonl``: five records ``{"id", "text", "period"}``, short
      documents (40 to 600 characters) in the synthetic language of the
      time-vector experiment.
    - Five model folders, each with ``config.json``, ``generation_config.json``,
      ``model.safetensors`` (float32), ``tokenizer.json`` and
      ``tokenizer_config.json``:

      ==================  =======================================================
      ``llama-untied``    LlamaForCausalLM, 2 KV heads (GQA), rope theta 1e4,
                          rms eps 1e-6, separate ``lm_head.weight``
      ``llama-tied``      LlamaForCausalLM, 4 KV heads, rope theta 5e5, rms eps
                          1e-5, tied embeddings; config.json rewritten in the
                          transformers-4 style (top-level ``rope_theta``,
                          ``rope_scaling: null``, ``torch_dtype``)
      ``qwen2-tied``      Qwen2ForCausalLM (q/k/v biases), 2 KV heads, rope
                          theta 1e6, tied embeddings
      ``qwen2-untied``    Qwen2ForCausalLM, 1 KV head, untied
      ``mistral-window``  MistralForCausalLM, 2 KV heads, ``sliding_window`` 24,
                          ``head_dim`` 16, untied
      ==================  =======================================================

      All have vocab 512, hidden 64, intermediate 160, 2 layers, 4 heads
      (head dim 16), max_position_embeddings 256. Tied models store no
      ``lm_head.weight``. Weights are not transformers' default init (std
      0.02 makes every prediction nearly uniform, so a broken attention would
      hardly move the losses): every matrix is redrawn from N(0, 0.15^2),
      untied input embeddings from N(0, 1), tied ones from N(0, 0.35^2),
      RMSNorm weights from 1 + 0.2 N(0, 1) and biases from 0.3 N(0, 1), and
      the model is then trained for 300 AdamW steps on ``text.txt`` and the
      experiment's training text, so that it relies on its context. The
      script asserts that the per-token losses on ``text.txt`` have a
      standard deviation above 0.5 and that the mean loss moves by more than
      0.01 when rope theta is multiplied by 10 or, for Mistral, when the
      sliding window is removed.
    - ``reference.json``: token ids and per-token losses, see below.

    ``experiments/lm/``

    - ``data/{2018..2022}.txt``: held-out text of each period (about 3,000
      characters) from a synthetic generator whose vocabulary drifts
      linearly from the first period to the last.
    - ``base/``: a tiny Llama (hidden 64, 2 layers, 4 heads, 2 KV heads,
      untied) trained on a mixture of all periods; ``2018/`` and ``2022/``:
      ``base`` fine-tuned on that period's training text (which is generated
      here from other seeds and not committed).
    - ``reference.json``: perplexity of ``base + a*(ft2018 - base) +
      (1 - a)*(ft2022 - base)`` on every period's text, for a in 0..1 step
      0.25. The script asserts the qualitative result: on 2020 some interior
      ``a`` beats both ends, 2018 is best near a = 1 and 2022 near a = 0.

``perplexity MODEL_DIR TEXT_FILE [--context N] [--stride N]``
    Prints mean NLL, perplexity and the number of scored tokens of any
    Hugging Face model on a text file (or on the ``text`` field of a
    ``.jsonl`` file, one document per line), with the scheme below. Handy
    when comparing tv against transformers on other checkpoints.

Tokenizer
---------
Byte-level BPE trained with the ``tokenizers`` library on ``text.txt`` and
the five ``experiments/lm/data`` texts: ByteLevel pre-tokenizer
(``add_prefix_space=False``) and decoder, no normalizer, vocabulary 512.
Special tokens: ``<unk>`` = 0, ``<s>`` = 1 (BOS), ``</s>`` = 2 (EOS); ids
3..258 are the 256 byte symbols, 259..511 the 253 merges (stored in
``tokenizer.json`` as pairs, ``["Ġ", "t"]``, not as ``"Ġ t"`` strings). The post-processor is
``TemplateProcessing(single="<s> $A")``: encoding with special tokens
prepends BOS and appends nothing, as Llama tokenizers do. The same
``tokenizer.json`` is copied into every model folder together with a
``tokenizer_config.json`` (``tokenizer_class`` PreTrainedTokenizerFast, which
transformers 5 maps to its TokenizersBackend; model_max_length 256).

Losses (``reference.json``)
---------------------------
Text is tokenized with ``AutoTokenizer`` and ``add_special_tokens=True``, so
ids start with BOS. Losses follow the sliding-window scheme of the
transformers guide "Perplexity of fixed-length models"::

    prev_end = 0
    for begin in range(0, n, stride):
        end = min(begin + context, n)
        trg = end - prev_end           # tokens not scored by an earlier window
        window = ids[begin:end]        # positions restart at 0 in every window
        # window[j] for j >= max(1, len(window) - trg) is scored, from the
        # logits at window position j - 1
        prev_end = end
        if end == n:
            break

With stride < context every token but the first of a document is scored
exactly once. With stride = context the windows do not overlap and, as in
the guide, the first token of every window is not scored either (it has no
predecessor in its window); those token indices are listed in ``skipped``.
Each window is one unbatched float32 forward pass on CPU with eager
attention, no attention mask beyond the causal (and, for Mistral,
sliding-window) one; the NLL is taken from ``log_softmax`` of the logits in
float64. For Mistral, query position i attends to key positions j with
i - 24 < j <= i (the window counts the query itself); the script checks
this on a one-layer cut of the model.

Layout::

    {"tokenizer": {"unk": 0, "bos": 1, "eos": 2, "vocab_size": 512},
     "tokens": {"text.txt": [ids], "docs.jsonl": [[ids of doc 0], ...]},
     "models": {"llama-untied": {"cases": [
         {"data": "text.txt", "context": 64, "stride": 64,
          "skipped": [64, 128, ...], "losses": [...], "mean_nll": x,
          "perplexity": exp(x), "scored_tokens": k},
         ...
         {"data": "docs.jsonl", "field": "text", "context": 64, "stride": 32,
          "skipped": [[...doc 0], [...doc 1], ...],
          "losses": [doc 0 losses..., doc 1 losses..., ...], ...}]},
      ...}}

``losses`` are in token order (tokens 1 to n - 1 of the text less
``skipped``; documents concatenated in file order); for ``docs.jsonl`` the
mean is over all scored tokens of all documents. Cases, for every model:
``text.txt`` with (context, stride) = (64, 64), (64, 24), (200, 200), and
``docs.jsonl`` with (64, 32).

Usage, from the repository root (environment as in
``scripts/requirements-fixtures.txt``)::

    /tmp/fixvenv/bin/python scripts/lm_fixtures.py generate
    /tmp/fixvenv/bin/python scripts/lm_fixtures.py perplexity \\
        tests/fixtures/lm/llama-untied tests/fixtures/lm/text.txt --context 64
"""

import argparse
import json
import math
import os
import random
import shutil
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "tests" / "fixtures" / "lm"
EXPERIMENT = REPO / "experiments" / "lm"

# ---------------------------------------------------------------------------
# Texts

PROSE = """\
The river town of Marrowfield wakes slowly. At 6:15 the first ferry leaves the eastern pier, carrying 14 passengers, two bicycles and a crate of pears bound for the market on the far bank. The ferry pilot, a patient woman named Odile, has made the crossing more than 9,000 times; she keeps a log of every trip in a green notebook, noting the wind, the height of the water and anything unusual she sees along the way. Most entries are short \u2014 "calm, grey, heron on the post" \u2014 but some run for a page, and the town library keeps copies of the older volumes on a shelf near the reading room.

Across the square from the pier stands a small caf\u00e9 with a crooked blue awning. Its owner opens the shutters at 7:00 sharp, sweeps the step, and writes the day's soup on a slate: lentil on Mondays, leek and potato on Thursdays, something improvised on Saturdays. Regulars arrive in a predictable order. The retired surveyor comes first and orders black coffee with exactly one sugar; the two nurses from the night shift come next, tired and cheerful; then the schoolchildren rush past without stopping, because the bell rings at 8:30 and the walk up the hill takes twelve minutes if nobody dawdles.

The surveyor likes to say that every town is a set of measurements waiting to be written down. He once worked out that the square is 48 metres across at its widest point and 31 at its narrowest, that the clock on the hall runs about 40 seconds fast each week, and that the pavement outside the bakery has sunk by nearly 2 centimetres since 1994. Some people find this habit tiresome. Others, especially the children, think it is wonderful. It would be na\u00efve, he admits, to believe that numbers explain everything, but they do make arguments shorter: when the council debated whether the old bridge needed repair, his notebook settled the matter in ten minutes.

Autumn changes the rhythm of the place. The river rises, the fog lingers until noon, and the ferry timetable shifts from every 20 minutes to every 45. Leaves collect in the gutters, and the street sweeper, who whistles the same three tunes every morning, spends an extra hour clearing them. In October the market adds a stall for apples and another for wool; in November the caf\u00e9 begins serving hot chocolate, thick enough to stand a spoon in, for 3.50 a cup. By December the square is strung with lights, and on the shortest day of the year the whole town gathers at 5 o'clock to watch them switched on.

On market days the square fills before dawn. Vendors back their vans into the same spots they have used for decades, and an unwritten rule says that the cheese seller always sets up beside the fishmonger, although nobody remembers why. A typical Saturday brings 60 to 70 stalls and perhaps 2,500 visitors, more if the weather is fair. Prices are chalked on boards: eggs at 2.20 for six, honey at 7.00 a jar, a bunch of radishes for 1.10. Bargaining is rare but not forbidden; the oldest traders treat it as a kind of conversation, a way of asking how your week has been.

The library is older than most of the houses around it. Its fa\u00e7ade is plain brick, but inside there are tall windows, long oak tables and a card catalogue that nobody has had the heart to throw away, even though the records moved to a computer years ago. The librarian, Mr. Castell, answers questions of every kind: how to patch a bicycle tyre, when the flood of 1953 reached its peak, which plants survive in a shaded window box. He says the most common question is also the hardest one: "Where should I start?" His answer is always the same \u2014 start with what you already know, and write down what you find.

Last spring the school on the hill began a project to record the town's sounds. Each pupil was given a small recorder and a list of places to visit: the pier at high tide, the bakery at 5 in the morning, the bell tower at noon, the football pitch during a match. The recordings were labelled, dated and stored in the library, where anyone can listen to them. One girl, aged 11, captured the exact moment the ferry's engine coughed and restarted in the middle of the river; her clip has been played more often than any other. The teacher hopes to repeat the project every 5 years, so that the town can hear itself change.

Not everything in Marrowfield runs to a timetable. The allotments on the north slope are governed by a loose agreement among 23 gardeners, who share tools, argue about slugs and trade surplus courgettes in August, when everybody has too many. Each plot is 10 metres by 4, and the waiting list for a new one is about three years long. The oldest gardener, who is 87, grows nothing but beans and sweet peas; she says that after six decades she has earned the right to be predictable.

Visitors sometimes ask what the town is famous for, and the honest answer is: nothing in particular. There is no castle, no cathedral, no battle that changed history. There is a river, a ferry, a square, a library and about 4,200 people who mostly know each other by sight. Yet people who move away often come back, and those who arrive by chance often stay longer than they planned. Perhaps it is the pace of things \u2014 slow enough to notice, quick enough not to be dull.

In the evening the town grows quiet again. The last ferry crosses at 21:40, its lamp swinging over the dark water, and Odile writes her final entry of the day. Lights go out one by one along the hill. A dog barks twice and stops. Somewhere a radio plays an old song about a harbour, and a window is closed against the cold. Tomorrow the pattern will repeat, with small differences that only a careful observer would notice: a new poster on the notice board, a different soup on the slate, a boat tied where no boat was tied before. That, the surveyor would say, is exactly why it is worth keeping records at all.
"""

PERIODS = [2018, 2019, 2020, 2021, 2022]

# The synthetic "news of a small town" language of the time-vector
# experiment. Each slot has neutral words (always available) and early and
# late words; with t = 0 for the first period and 1 for the last, a word of
# the early list gets weight 2(1 - t), a late one 2t, a neutral one 1. So
# early words never occur in the last period, late words never in the
# first, and the periods in between mix both in proportion.
SLOTS = {
    "group": (
        ["council", "neighbours", "committee", "school board"],
        ["parish club", "rotary members"],
        ["climate panel", "startup crowd"],
    ),
    "venue": (
        ["library", "market square"],
        ["town hall", "church hall", "post office"],
        ["coworking hub", "community garden", "repair cafe"],
    ),
    "topic": (
        ["budget"],
        ["new road", "coal prices", "parking meters", "harbour wall"],
        ["bike lanes", "heat pumps", "flood sensors", "charging points"],
    ),
    "transport": (
        ["foot"],
        ["bus", "train", "car"],
        ["electric bike", "scooter", "car share"],
    ),
    "medium": (
        [],
        ["letter", "leaflet", "phone call", "newspaper"],
        ["phone app", "group chat", "podcast", "video call"],
    ),
    "event": (
        ["summer fair"],
        ["brass band concert", "dance night", "quiz evening"],
        ["drone show", "gaming festival", "zero waste market"],
    ),
    "shop": (
        ["bakery"],
        ["video rental shop", "camera store", "record shop"],
        ["bubble tea bar", "vegan deli", "phone repair kiosk"],
    ),
    "goods": (
        ["bread"],
        ["films on tape", "rolls of film", "vinyl records"],
        ["oat milk", "refurbished phones", "house plants"],
    ),
    "feeling": (
        ["pleased", "surprised"],
        ["grateful", "doubtful"],
        ["excited", "frustrated"],
    ),
}
WEEKDAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
MONTHS = ["March", "April", "June", "September", "October", "November"]

# (template, era): era "early" or "late" templates are weighted like words.
TEMPLATES = [
    ("The {group} met at the {venue} to discuss the {topic}.", "both"),
    ("Tickets for the {event} cost {price} and were gone by {weekday}.", "both"),
    ("A new {shop} opened next to the {venue}, selling {goods}.", "both"),
    ("On {weekday} the {group} sent a {medium} to every household about the {topic}.", "both"),
    ("Many families went to the {event} and came home by {transport}.", "both"),
    ("The {group} said they were {feeling} about the {topic}.", "both"),
    ("The {shop} near the {venue} now sells {goods} for {price}.", "both"),
    ("Most people heard about the {event} through a {medium}.", "both"),
    ("It was reported by {medium} that the {topic} would be delayed until {month}.", "early"),
    ("Queues formed outside the {shop} before {hour} o'clock on {weekday}.", "early"),
    ("Update: the {topic} is now expected in {month}, according to a {medium}.", "late"),
    ("Residents posted photos of the {event} in the {medium} all {weekday} evening.", "late"),
]


def era_weight(era, t):
    return {"both": 1.0, "early": 2.0 * (1.0 - t), "late": 2.0 * t}[era]


def period_t(year):
    return (year - PERIODS[0]) / (PERIODS[-1] - PERIODS[0])


def pick_word(rng, slot, t):
    neutral, early, late = SLOTS[slot]
    words = neutral + early + late
    weights = [1.0] * len(neutral) + [era_weight("early", t)] * len(early) + [
        era_weight("late", t)
    ] * len(late)
    return rng.choices(words, weights)[0]


def period_sentence(rng, t):
    templates = [text for text, _ in TEMPLATES]
    weights = [era_weight(era, t) for _, era in TEMPLATES]
    template = rng.choices(templates, weights)[0]
    # Prices drift upwards too: about 3-6 in the first period, 9-12 in the last.
    price = f"{3 + round(6 * t) + rng.randint(0, 3)}.{rng.choice([0, 2, 5, 8])}0"
    fields = {slot: pick_word(rng, slot, t) for slot in SLOTS}
    fields.update(
        price=price,
        weekday=rng.choice(WEEKDAYS),
        month=rng.choice(MONTHS),
        hour=rng.randint(6, 9),
    )
    return template.format(**fields)


def period_text(year, n_chars, seed):
    """Paragraphs of 3 to 6 sentences, one per line, until n_chars is reached."""
    rng = random.Random(seed * 10_000 + year)
    t = period_t(year)
    lines, size = [], 0
    while size < n_chars:
        line = " ".join(period_sentence(rng, t) for _ in range(rng.randint(3, 6)))
        lines.append(line)
        size += len(line) + 1
    return "\n".join(lines) + "\n"


def period_doc(year, max_chars, seed):
    """Whole sentences, as many as fit in max_chars (at least one)."""
    rng = random.Random(seed * 10_000 + year)
    t = period_t(year)
    text = period_sentence(rng, t)
    while True:
        nxt = period_sentence(rng, t)
        if len(text) + 1 + len(nxt) > max_chars:
            return text
        text += " " + nxt


EVAL_SEED = 1  # experiments/lm/data/{year}.txt
TRAIN_SEED = 2  # the experiment's training text (not committed)
DOCS_SEED = 3  # docs.jsonl
EVAL_CHARS = 3000
TRAIN_CHARS = 300_000
# docs.jsonl: (period, max characters)
DOCS = [(2018, 60), (2020, 600), (2022, 150), (2019, 420), (2021, 280)]


def write_texts():
    FIXTURES.mkdir(parents=True, exist_ok=True)
    (EXPERIMENT / "data").mkdir(parents=True, exist_ok=True)
    (FIXTURES / "text.txt").write_text(PROSE, encoding="utf-8")
    for year in PERIODS:
        text = period_text(year, EVAL_CHARS, EVAL_SEED)
        (EXPERIMENT / "data" / f"{year}.txt").write_text(text, encoding="utf-8")
    lines = []
    for i, (year, max_chars) in enumerate(DOCS):
        text = period_doc(year, max_chars, DOCS_SEED + i)
        assert 40 <= len(text) <= 600, (i, len(text))
        lines.append(json.dumps({"id": i, "text": text, "period": str(year)}, ensure_ascii=False))
    (FIXTURES / "docs.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")


def read_docs(path, field="text"):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line)[field] for line in f if line.strip()]


# ---------------------------------------------------------------------------
# Tokenizer

VOCAB_SIZE = 512
SPECIAL_TOKENS = ["<unk>", "<s>", "</s>"]  # ids 0, 1, 2
BOS_ID, EOS_ID, UNK_ID = 1, 2, 0
MODEL_MAX_LENGTH = 256


def train_tokenizer():
    corpus = [PROSE] + [
        (EXPERIMENT / "data" / f"{year}.txt").read_text(encoding="utf-8") for year in PERIODS
    ]
    return bpe_tokenizer(corpus, VOCAB_SIZE)


def bpe_tokenizer(corpus, vocab_size):
    """A byte-level BPE of ``vocab_size`` tokens trained on ``corpus`` (a list
    of strings), the specials first, prepending ``<s>`` to every text."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(corpus, trainer=trainer)
    assert tok.get_vocab_size() == vocab_size, tok.get_vocab_size()
    for i, s in enumerate(SPECIAL_TOKENS):
        assert tok.token_to_id(s) == i, (s, tok.token_to_id(s))
    byte_symbols = {tok.id_to_token(i) for i in range(3, 259)}
    assert byte_symbols == set(pre_tokenizers.ByteLevel.alphabet())
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A", special_tokens=[("<s>", BOS_ID)]
    )
    return tok


def save_tokenizer(tok, out_dir):
    from transformers import PreTrainedTokenizerFast

    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        model_max_length=MODEL_MAX_LENGTH,
    )
    fast.save_pretrained(out_dir)
    # transformers 5 names its class TokenizersBackend; the older name loads
    # in transformers 4 as well and maps to the same class in 5.
    path = Path(out_dir) / "tokenizer_config.json"
    cfg = json.loads(path.read_text())
    cfg["tokenizer_class"] = "PreTrainedTokenizerFast"
    path.write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")


# ---------------------------------------------------------------------------
# Fixture models

COMMON = dict(
    vocab_size=VOCAB_SIZE,
    hidden_size=64,
    intermediate_size=160,
    num_hidden_layers=2,
    num_attention_heads=4,
    max_position_embeddings=MODEL_MAX_LENGTH,
    bos_token_id=BOS_ID,
    eos_token_id=EOS_ID,
)

# name: (architecture, config overrides, weight seed)
FIXTURE_MODELS = {
    "llama-untied": ("llama", dict(
        num_key_value_heads=2, rope_theta=10_000.0, rms_norm_eps=1e-6,
        tie_word_embeddings=False,
    ), 11),
    "llama-tied": ("llama", dict(
        num_key_value_heads=4, rope_theta=500_000.0, rms_norm_eps=1e-5,
        tie_word_embeddings=True, attention_bias=False,
    ), 12),
    "qwen2-tied": ("qwen2", dict(
        num_key_value_heads=2, rope_theta=1_000_000.0, rms_norm_eps=1e-6,
        tie_word_embeddings=True,
    ), 13),
    "qwen2-untied": ("qwen2", dict(
        num_key_value_heads=1, rope_theta=1_000_000.0, rms_norm_eps=1e-6,
        tie_word_embeddings=False,
    ), 14),
    "mistral-window": ("mistral", dict(
        num_key_value_heads=2, rope_theta=10_000.0, rms_norm_eps=1e-6,
        tie_word_embeddings=False, sliding_window=24, head_dim=16,
    ), 15),
}

# A short training run after the redraw: random weights, however large, give
# losses whose mean hardly moves when attention changes (the per-token
# changes have random signs), whereas a model that has learnt to use its
# context gets systematically worse when its positions or mask are wrong.
FIXTURE_STEPS = 300
FIXTURE_LR = 3e-3

# Models whose config.json is rewritten in the transformers-4 layout.
LEGACY_CONFIG = {"llama-tied"}

CASES = [
    ("text.txt", 64, 64),
    ("text.txt", 64, 24),
    ("text.txt", 200, 200),
    ("docs.jsonl", 64, 32),
]


def make_config(arch, **kw):
    from transformers import LlamaConfig, MistralConfig, Qwen2Config

    kw = dict(kw)
    theta = kw.pop("rope_theta")
    cls = {"llama": LlamaConfig, "qwen2": Qwen2Config, "mistral": MistralConfig}[arch]
    return cls(
        rope_parameters={"rope_type": "default", "rope_theta": theta},
        dtype="float32",
        attn_implementation="eager",
        **kw,
    )


def model_class(arch):
    from transformers import LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM

    return {"llama": LlamaForCausalLM, "qwen2": Qwen2ForCausalLM, "mistral": MistralForCausalLM}[
        arch
    ]


def redraw_weights(model, seed, tied):
    """Replace every parameter with a draw from a seeded generator, in
    sorted-name order, so predictions are far from uniform."""
    gen = torch.Generator().manual_seed(seed)
    params = dict(model.named_parameters())  # a tied lm_head appears once
    with torch.no_grad():
        for name in sorted(params):
            p = params[name]
            z = torch.randn(p.shape, generator=gen, dtype=torch.float32)
            if name.endswith("norm.weight"):
                p.copy_(1.0 + 0.2 * z)
            elif name.endswith(".bias"):
                p.copy_(0.3 * z)
            elif name.endswith("embed_tokens.weight"):
                p.copy_((0.35 if tied else 1.0) * z)
            else:
                assert p.dim() == 2, name
                p.copy_(0.15 * z)


def load_model(path, **kw):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(
        path, attn_implementation="eager", dtype=torch.float32, **kw
    )
    return model.eval()


def write_legacy_config(path):
    """Rewrite a transformers-5 config.json in the transformers-4 layout."""
    cfg = json.loads(path.read_text())
    rope = cfg.pop("rope_parameters")
    assert rope == {"rope_type": "default", "rope_theta": rope["rope_theta"]}, rope
    cfg["rope_theta"] = float(rope["rope_theta"])
    cfg["rope_scaling"] = None
    cfg["torch_dtype"] = cfg.pop("dtype")
    path.write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")


def build_fixture_models(tok):
    # Training data: the prose itself plus every period's training text.
    streams = [tok.encode(PROSE).ids] + [
        tok.encode(period_text(year, TRAIN_CHARS, TRAIN_SEED)).ids for year in PERIODS
    ]
    for name, (arch, overrides, seed) in FIXTURE_MODELS.items():
        out = FIXTURES / name
        shutil.rmtree(out, ignore_errors=True)
        torch.manual_seed(seed)
        model = model_class(arch)(make_config(arch, **overrides, **COMMON))
        redraw_weights(model, seed, overrides["tie_word_embeddings"])
        print(f"{name}: {FIXTURE_STEPS} steps from the redrawn weights")
        train(model, streams, FIXTURE_STEPS, FIXTURE_LR, seed)
        model.save_pretrained(out)
        save_tokenizer(tok, out)
        files = sorted(p.name for p in out.iterdir())
        assert "model.safetensors" in files and "tokenizer.json" in files, files
        if name in LEGACY_CONFIG:
            probe = torch.tensor([list(range(1, 200))])
            with torch.inference_mode():
                before = load_model(out)(input_ids=probe).logits
            write_legacy_config(out / "config.json")
            loaded = load_model(out)
            assert loaded.config.rope_parameters["rope_theta"] == overrides["rope_theta"]
            with torch.inference_mode():
                after = loaded(input_ids=probe).logits
            assert torch.equal(before, after), "legacy config changes the logits"
            print(f"{name}: legacy config.json loads with identical logits")


# ---------------------------------------------------------------------------
# Losses


def windows(n, context, stride):
    """(begin, end, first scored position in the window) of each window that
    scores a token, in the scheme of window_nll."""
    out, prev_end = [], 0
    for begin in range(0, n, stride):
        end = min(begin + context, n)
        first = max(1, (end - begin) - (end - prev_end))
        if first < end - begin:
            out.append((begin, end, first))
        prev_end = end
        if end == n:
            break
    return out


@torch.inference_mode()
def window_nll(model, ids, context, stride):
    """Per-token NLL with the sliding-window scheme of the HF guide.

    Returns (positions, losses): the indices into ids of the scored tokens,
    increasing, and their NLLs. With stride < context that is every token
    from 1 on; with stride >= context the first token of each window has no
    predecessor in its window and is skipped, as in the guide."""
    n = len(ids)
    positions, losses = [], []
    for begin, end, first in windows(n, context, stride):
        window = ids[begin:end]
        logits = model(input_ids=torch.tensor([window])).logits[0]
        logp = logits.to(torch.float64).log_softmax(-1)
        targets = torch.tensor(window[first:])
        nll = -logp[first - 1 : len(window) - 1].gather(1, targets[:, None])[:, 0]
        positions.extend(range(begin + first, end))
        losses.extend(nll.tolist())
    assert positions == sorted(set(positions)) and all(0 < p < n for p in positions)
    if stride < context:
        assert positions == list(range(1, n)), "a token is not scored"
    return positions, losses


def case_losses(model, data_ids, context, stride):
    """data_ids: one id list (a text) or a list of them (documents).
    Returns the losses and, per document, the positions > 0 not scored."""
    docs = data_ids if data_ids and isinstance(data_ids[0], list) else [data_ids]
    losses, skipped = [], []
    for ids in docs:
        positions, nll = window_nll(model, ids, context, stride)
        losses.extend(nll)
        skipped.append(sorted(set(range(1, len(ids))) - set(positions)))
    return losses, skipped


def summary(losses):
    mean = math.fsum(losses) / len(losses)
    return {"mean_nll": mean, "perplexity": math.exp(mean), "scored_tokens": len(losses)}


def std(values):
    mean = math.fsum(values) / len(values)
    return math.sqrt(math.fsum((v - mean) ** 2 for v in values) / len(values))


def tokenize_fixture_data(tok):
    from transformers import AutoTokenizer

    hf = AutoTokenizer.from_pretrained(FIXTURES / "llama-untied")
    text = (FIXTURES / "text.txt").read_text(encoding="utf-8")
    docs = read_docs(FIXTURES / "docs.jsonl")
    tokens = {
        "text.txt": hf(text, add_special_tokens=True)["input_ids"],
        "docs.jsonl": [hf(d, add_special_tokens=True)["input_ids"] for d in docs],
    }
    # AutoTokenizer must agree with the raw tokenizer and round-trip the text.
    assert tokens["text.txt"] == tok.encode(text).ids
    assert tokens["text.txt"][0] == BOS_ID and BOS_ID not in tokens["text.txt"][1:]
    assert hf.decode(tokens["text.txt"], skip_special_tokens=True) == text
    for d, ids in zip(docs, tokens["docs.jsonl"]):
        assert ids == tok.encode(d).ids and ids[0] == BOS_ID
    assert (hf.bos_token_id, hf.eos_token_id, hf.unk_token_id) == (BOS_ID, EOS_ID, UNK_ID)
    return tokens


def with_config(name, **changes):
    """The model `name` from disk with some config values replaced."""
    from transformers import AutoConfig

    cfg = AutoConfig.from_pretrained(FIXTURES / name)
    for key, value in changes.items():
        if key == "rope_theta":
            cfg.rope_parameters = {**cfg.rope_parameters, "rope_theta": value}
        else:
            setattr(cfg, key, value)
    return load_model(FIXTURES / name, config=cfg)


def check_window_semantics(name):
    """On the first layer alone, a token at position p changes the output at
    position q exactly when q - sliding_window < p <= q."""
    from transformers import AutoConfig

    cfg = AutoConfig.from_pretrained(FIXTURES / name)
    window = cfg.sliding_window
    cfg.num_hidden_layers = 1
    cut = load_model(FIXTURES / name, config=cfg)
    ids = torch.tensor([[(7 * i + 3) % VOCAB_SIZE for i in range(64)]])
    changed = ids.clone()
    p = 10
    changed[0, p] = (changed[0, p] + 100) % VOCAB_SIZE
    with torch.inference_mode():
        a = cut(input_ids=ids).logits[0]
        b = cut(input_ids=changed).logits[0]
    differs = [(a[q] - b[q]).abs().max().item() > 0 for q in range(64)]
    expected = [p <= q < p + window for q in range(64)]
    assert differs == expected, [q for q in range(64) if differs[q] != expected[q]]
    print(f"{name}: one layer, position {p} reaches positions {p}..{p + window - 1}")


def reference(tok):
    tokens = tokenize_fixture_data(tok)
    print(f"text.txt: {len(PROSE)} characters, {len(tokens['text.txt'])} tokens; "
          f"docs.jsonl: {[len(d) for d in tokens['docs.jsonl']]} tokens")
    models = {}
    for name in FIXTURE_MODELS:
        model = load_model(FIXTURES / name)
        cases = []
        for data, context, stride in CASES:
            losses, skipped = case_losses(model, tokens[data], context, stride)
            case = {"data": data}
            if data.endswith(".jsonl"):
                case["field"] = "text"
            else:
                skipped = skipped[0]
            case.update(context=context, stride=stride, skipped=skipped, losses=losses,
                        **summary(losses))
            cases.append(case)
        models[name] = {"cases": cases}

        # Sanity: the losses must depend strongly on everything the Rust side
        # has to get right, or agreement with them would prove little.
        base = cases[0]
        spread = std(base["losses"])
        theta = model.config.rope_parameters["rope_theta"]
        rope = with_config(name, rope_theta=theta * 10)
        rope_delta = summary(case_losses(rope, tokens["text.txt"], 64, 64)[0])["mean_nll"] - base[
            "mean_nll"
        ]
        line = (f"{name:15s} mean nll {base['mean_nll']:.4f}  loss std {spread:.3f}  "
                f"rope theta x10: {rope_delta:+.4f}")
        assert spread > 0.5, (name, spread)
        assert abs(rope_delta) > 1e-2, (name, rope_delta)
        if getattr(model.config, "sliding_window", None):
            full = with_config(name, sliding_window=None)
            window_delta = summary(case_losses(full, tokens["text.txt"], 64, 64)[0])[
                "mean_nll"
            ] - base["mean_nll"]
            line += f"  no sliding window: {window_delta:+.4f}"
            assert abs(window_delta) > 1e-2, (name, window_delta)
        print(line)
        for c in cases:
            print(f"    {c['data']:10s} context {c['context']:3d} stride {c['stride']:3d}: "
                  f"ppl {c['perplexity']:9.3f} over {c['scored_tokens']} tokens")
    check_window_semantics("mistral-window")
    doc = {
        "tokenizer": {"unk": UNK_ID, "bos": BOS_ID, "eos": EOS_ID, "vocab_size": VOCAB_SIZE},
        "tokens": tokens,
        "models": models,
    }
    (FIXTURES / "reference.json").write_text(dump_json(doc) + "\n")


def dump_json(obj, indent=0):
    """Indented JSON with lists of numbers kept on one line; floats as repr."""
    pad = "  " * (indent + 1)
    if isinstance(obj, dict):
        items = [f"{pad}{json.dumps(k)}: {dump_json(v, indent + 1)}" for k, v in obj.items()]
        return "{\n" + ",\n".join(items) + "\n" + "  " * indent + "}"
    if isinstance(obj, list) and obj and all(isinstance(v, (dict, list)) for v in obj):
        items = [pad + dump_json(v, indent + 1) for v in obj]
        return "[\n" + ",\n".join(items) + "\n" + "  " * indent + "]"
    return json.dumps(obj, ensure_ascii=False)


# ---------------------------------------------------------------------------
# Time-vector experiment

EXP_CONFIG = dict(
    COMMON,
    num_key_value_heads=2,
    rope_theta=10_000.0,
    rms_norm_eps=1e-6,
    tie_word_embeddings=False,
)
EXP_CONTEXT = 64
BATCH = 16
# (steps, peak learning rate, seed)
BASE_TRAINING = (1200, 3e-3, 21)
FINETUNING = (400, 1e-3, 22)
ALPHAS = [0.0, 0.25, 0.5, 0.75, 1.0]


def train(model, streams, steps, lr, seed):
    """AdamW on random windows of EXP_CONTEXT tokens from the id streams
    (each period's stream equally likely), linear decay to 10% of lr."""
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0 - 0.9 * s / steps)
    model.train()
    data = [torch.tensor(s) for s in streams]
    for step in range(steps):
        which = torch.randint(len(data), (BATCH,), generator=gen).tolist()
        batch = []
        for w in which:
            start = torch.randint(len(data[w]) - EXP_CONTEXT + 1, (1,), generator=gen).item()
            batch.append(data[w][start : start + EXP_CONTEXT])
        batch = torch.stack(batch)
        loss = model(input_ids=batch, labels=batch).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if step % 100 == 0 or step == steps - 1:
            print(f"    step {step:4d} loss {loss.item():.4f}")
    model.eval()
    return model


def save_experiment_model(model, tok, out):
    shutil.rmtree(out, ignore_errors=True)
    model.save_pretrained(out)
    save_tokenizer(tok, out)


def perplexity_of(model, ids, context=EXP_CONTEXT, stride=EXP_CONTEXT):
    return summary(window_nll(model, ids, context, stride)[1])["perplexity"]


def experiment(tok):
    arch = "llama"
    streams = {
        year: tok.encode(period_text(year, TRAIN_CHARS, TRAIN_SEED)).ids for year in PERIODS
    }
    evals = {
        year: tok.encode((EXPERIMENT / "data" / f"{year}.txt").read_text(encoding="utf-8")).ids
        for year in PERIODS
    }
    print(f"experiment: training tokens per period {[len(s) for s in streams.values()]}, "
          f"evaluation tokens {[len(s) for s in evals.values()]}")

    steps, lr, seed = BASE_TRAINING
    torch.manual_seed(seed)
    base = model_class(arch)(make_config(arch, **EXP_CONFIG))
    print("  base on all periods")
    train(base, list(streams.values()), steps, lr, seed)
    save_experiment_model(base, tok, EXPERIMENT / "base")

    steps, lr, seed = FINETUNING
    tuned = {}
    for year in (PERIODS[0], PERIODS[-1]):
        model = load_model(EXPERIMENT / "base")
        print(f"  fine-tune on {year}")
        tuned[year] = train(model, [streams[year]], steps, lr, seed + year)
        save_experiment_model(tuned[year], tok, EXPERIMENT / str(year))

    base_sd = load_model(EXPERIMENT / "base").state_dict()
    sd18 = load_model(EXPERIMENT / str(PERIODS[0])).state_dict()
    sd22 = load_model(EXPERIMENT / str(PERIODS[-1])).state_dict()
    grid = {str(year): [] for year in PERIODS}
    probe = load_model(EXPERIMENT / "base")
    for a in ALPHAS:
        mixed = {
            k: base_sd[k] + a * (sd18[k] - base_sd[k]) + (1.0 - a) * (sd22[k] - base_sd[k])
            for k in base_sd
        }
        probe.load_state_dict(mixed)
        for year in PERIODS:
            grid[str(year)].append(perplexity_of(probe, evals[year]))
    base_ppl = {str(year): perplexity_of(load_model(EXPERIMENT / "base"), evals[year])
                for year in PERIODS}

    print("  perplexity of base + a*t2018 + (1-a)*t2022 (context 64, stride 64)")
    print("    year  base    " + "  ".join(f"a={a:<5}" for a in ALPHAS))
    for year in PERIODS:
        row = grid[str(year)]
        print(f"    {year}  {base_ppl[str(year)]:6.3f}  " + "  ".join(f"{v:7.3f}" for v in row))
    first, mid, last = grid[str(PERIODS[0])], grid["2020"], grid[str(PERIODS[-1])]
    best = lambda row: ALPHAS[min(range(len(row)), key=row.__getitem__)]  # noqa: E731
    assert min(mid[1:4]) < min(mid[0], mid[4]), mid
    assert best(first) >= 0.75, first
    assert best(last) <= 0.25, last

    doc = {
        "description": "Perplexity of base + a * (ft2018 - base) + (1 - a) * (ft2022 - base) "
                       "on experiments/lm/data/{year}.txt, tokenized with BOS, sliding "
                       "window context 64, stride 64. Written by scripts/lm_fixtures.py.",
        "context": EXP_CONTEXT,
        "stride": EXP_CONTEXT,
        "alphas": ALPHAS,
        "base": base_ppl,
        "perplexity": grid,
        "best_alpha": {year: best(row) for year, row in grid.items()},
        "training": {
            "base": {"steps": BASE_TRAINING[0], "lr": BASE_TRAINING[1],
                     "data": "all periods, equally weighted"},
            "finetune": {"steps": FINETUNING[0], "lr": FINETUNING[1]},
            "batch": BATCH, "context": EXP_CONTEXT, "optimizer": "AdamW, weight decay 0.01, "
            "learning rate decaying linearly to 10%",
            "train_chars_per_period": TRAIN_CHARS,
        },
    }
    (EXPERIMENT / "reference.json").write_text(json.dumps(doc, indent=2) + "\n")


# ---------------------------------------------------------------------------


def fix_permissions(root):
    for p in root.rglob("*"):
        if p.is_file():
            p.chmod(0o644)  # safetensors creates its files owner-only


def quiet():
    os.environ.setdefault("TQDM_DISABLE", "1")
    from transformers.utils import logging

    logging.disable_progress_bar()
    logging.set_verbosity_error()  # e.g. "sequence longer than model_max_length"


def generate(_args):
    quiet()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    start = time.time()
    write_texts()
    tok = train_tokenizer()
    build_fixture_models(tok)
    reference(tok)
    print(f"fixtures done after {time.time() - start:.0f}s")
    experiment(tok)
    for root in (FIXTURES, EXPERIMENT):
        fix_permissions(root)
        total = sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
        print(f"{root.relative_to(REPO)}: {total} bytes")
    print(f"done after {time.time() - start:.0f}s")


def perplexity(args):
    from transformers import AutoTokenizer

    quiet()
    torch.set_num_threads(1)
    hf = AutoTokenizer.from_pretrained(args.model)
    path = Path(args.text)
    texts = read_docs(path, args.field) if path.suffix == ".jsonl" else [
        path.read_text(encoding="utf-8")
    ]
    model = load_model(args.model)
    ids = [hf(t, add_special_tokens=True)["input_ids"] for t in texts]
    s = summary(case_losses(model, ids, args.context, args.stride or args.context)[0])
    print(f"mean_nll {s['mean_nll']!r}\nperplexity {s['perplexity']!r}\n"
          f"scored_tokens {s['scored_tokens']}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("generate", help="write tests/fixtures/lm and experiments/lm")
    p = sub.add_parser("perplexity", help="sliding-window perplexity of a HF model")
    p.add_argument("model")
    p.add_argument("text", help="a text file, or a .jsonl file of documents")
    p.add_argument("--context", type=int, default=64)
    p.add_argument("--stride", type=int, default=None, help="defaults to --context")
    p.add_argument("--field", default="text", help="JSON field of a .jsonl file")
    args = parser.parse_args()
    {"generate": generate, "perplexity": perplexity}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
