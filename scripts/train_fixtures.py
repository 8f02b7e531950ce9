#!/usr/bin/env python3
"""Reference fixtures for tv's language-model training (full fine-tuning and LoRA).

Usage, from the repository root (environment of
``scripts/requirements-fixtures.txt`` plus ``peft``)::

    /tmp/fixvenv/bin/python scripts/train_fixtures.py generate
    /tmp/fixvenv/bin/python scripts/train_fixtures.py check

``generate`` (re)writes ``tests/fixtures/train/<case>/`` for every case of
``CASES`` (deterministic: fixed seeds, one thread,
``torch.use_deterministic_algorithms``; two runs give byte-identical files).
It starts from the tiny models of ``tests/fixtures/lm/`` (made by
``lm_fixtures.py`` and ``lm_families.py``), which it only reads.

Each case folder holds

- ``case.json``: ``model`` (the model folder, relative to the repository
  root), ``steps``, ``lr``, ``batch``, ``accumulate``, ``context``,
  ``warmup``, ``clip``, ``weight_decay``, ``lora`` (null or ``{"rank",
  "alpha", "modules"}``), ``windows`` ([steps][accumulate][batch][context]
  token ids, in the order used) and ``losses`` (one per step: the mean of
  its micro-batch losses);
- ``after.safetensors``: every tensor of the model's ``model.safetensors``,
  same names, float32, after training (LoRA: with the adapters merged);
- LoRA cases: ``adapters.safetensors``, the initial ``lora_A`` of each adapted
  tensor as PEFT drew it, named ``<checkpoint tensor name>.lora_A``
  (shape [rank, in]; the initial B is zero).

How a case is computed
----------------------
- The model is loaded with transformers (float32, eager attention) and put in
  training mode with every dropout probability of its config set to 0 (GPT-2's
  config says 0.1; tv has no dropout); the script asserts that no
  ``nn.Dropout`` with p > 0 is left and that the first micro-batch's loss is
  the same in training and evaluation mode.
- The text next to the model folder (``tests/fixtures/lm/text.txt`` or
  ``tests/fixtures/lm/families/text.txt``) is tokenized with the folder's
  tokenizer and its special tokens (BOS first), as tv's ``perplexity`` does;
  the stream is cut into consecutive non-overlapping blocks of ``context``
  tokens (a trailing partial block dropped) and the windows are
  ``random.Random(zlib.crc32(case name)).sample`` of the blocks (no block
  used twice).
- Per step: for each of ``accumulate`` micro-batches,
  ``loss = model(input_ids=x, labels=x).loss`` and ``(loss /
  accumulate).backward()``; ``torch.nn.utils.clip_grad_norm_(params, clip)``
  when clip > 0; ``torch.optim.AdamW(params, lr, betas=(0.9, 0.999),
  eps=1e-8, weight_decay=wd, foreach=False)`` with
  ``transformers.get_linear_schedule_with_warmup(opt, warmup, steps)``;
  ``opt.step(); sched.step(); opt.zero_grad()``. Tied embeddings are one
  parameter (one gradient, the sum of both uses).
- LoRA: ``peft.LoraConfig(r, lora_alpha, target_modules=<exact module
  names>, lora_dropout=0, bias="none", init_lora_weights=True)`` (and
  ``fan_in_fan_out=True`` for GPT-2's Conv1D), after
  ``torch.manual_seed(zlib.crc32(case name))``. The adapted modules are those
  whose 2-D ``.weight`` in the checkpoint lies inside the transformer blocks
  and matches the case's ``modules`` glob (``*`` only). After training,
  ``merge_and_unload()``.

``check`` recomputes every committed case without torch's optimizer, scheduler,
clipping or PEFT, from the formulas of the training spec (AdamW, linear
schedule, clipping written out in float32 tensors; LoRA as a
parametrization W + (alpha/r) B A, transposed for Conv1D, with A read from
``adapters.safetensors``), once in float32 and once in float64, and prints
per case the largest relative difference to the fixture and the number of
elements beyond the parity tolerance (1e-5 of the tensor's largest value).
The float32 run must agree within 1e-5 everywhere except the elements of
``zero_gradient`` (key biases with no rotation after them: GPT-2, Pythia),
which may only differ by twice the summed learning rates; the float64 run
shows how much rounding alone moves the fixtures (see the README).
"""

import argparse
import json
import math
import random
import re
import shutil
import sys
import time
import zlib
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import lm_fixtures as lf  # noqa: E402

REPO = lf.REPO
OUT = REPO / "tests" / "fixtures" / "train"
LM = "tests/fixtures/lm"
FAM = "tests/fixtures/lm/families"

FULL_DEFAULTS = dict(steps=2, lr=1e-3, batch=2, accumulate=1, context=16, warmup=0, clip=1.0,
                     weight_decay=0.01, lora=None)

# Family folders trained by a "<family>-full" case. Not included (fixture size;
# they differ from llama/phi3 only in the RoPE table, a constant that has no
# gradient and is covered by the forward-pass fixtures): llama-dynamic,
# llama-linear, llama-yarn, phi3-longrope.
FAMILIES = ["gemma", "gemma2", "gemma2-capped", "gemma3", "gpt2", "llama3", "neox-sequential",
            "olmo2", "phi3", "pythia", "qwen3"]

CASES = {
    "llama-full": dict(model=f"{LM}/llama-untied", steps=3, lr=1e-3, batch=2, accumulate=2,
                       context=16, warmup=1, clip=1.0, weight_decay=0.01, lora=None),
    "llama-one-step": dict(model=f"{LM}/llama-untied", steps=1, lr=1e-3, batch=2, accumulate=1,
                           context=16, warmup=0, clip=0.0, weight_decay=0.0, lora=None),
    "llama-lora": dict(model=f"{LM}/llama-untied", steps=2, lr=1e-2, batch=2, accumulate=1,
                       context=16, warmup=0, clip=0.5, weight_decay=0.01,
                       lora=dict(rank=4, alpha=8, modules="*self_attn*")),
    **{f"{f}-full": dict(FULL_DEFAULTS, model=f"{FAM}/{f}") for f in FAMILIES},
    "gpt2-lora": dict(FULL_DEFAULTS, model=f"{FAM}/gpt2",
                      lora=dict(rank=2, alpha=2, modules="*attn*")),
}
KEYS = ["model", "steps", "lr", "batch", "accumulate", "context", "warmup", "clip",
        "weight_decay", "lora"]


def seed_of(name):
    return zlib.crc32(name.encode())


def glob_match(pattern, name):
    """tv's globs: `*` is any run of characters, everything else literal."""
    return re.fullmatch(".*".join(map(re.escape, pattern.split("*"))), name) is not None


# ---------------------------------------------------------------------------
# Model, names, data


def checkpoint_tensors(folder):
    from safetensors.torch import load_file

    return load_file(str(REPO / folder / "model.safetensors"))


def load(folder):
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(REPO / folder)
    zeroed = {}
    for key, value in config.to_dict().items():
        if ("dropout" in key or "pdrop" in key) and isinstance(value, float) and value != 0:
            zeroed[key] = 0.0
    model = AutoModelForCausalLM.from_pretrained(
        REPO / folder, attn_implementation="eager", dtype=torch.float32, **zeroed)
    model.config.use_cache = False
    left = [n for n, m in model.named_modules() if isinstance(m, torch.nn.Dropout) and m.p != 0]
    assert not left, (folder, left)
    return model.train(), zeroed


def name_map(model, checkpoint):
    """Checkpoint tensor name -> the model's state_dict name (transformers 5
    renames GPT-NeoX's embed_out to lm_head); every other model tensor must be
    tied to a mapped one."""
    sd = model.state_dict()
    out = {}
    for k, t in checkpoint.items():
        if k in sd:
            out[k] = k
        else:
            same = [m for m in sd if m not in checkpoint and torch.equal(sd[m], t)]
            assert len(same) == 1, (k, same)
            out[k] = same[0]
    for k, v in out.items():
        assert torch.equal(sd[v], checkpoint[k]), k
    mapped = {sd[v].data_ptr() for v in out.values()}
    for m, t in sd.items():
        assert m in out.values() or t.data_ptr() in mapped, f"{m} is neither saved nor tied"
    return out


def text_ids(folder):
    from tokenizers import Tokenizer
    from transformers import AutoTokenizer

    text = (REPO / folder).parent.joinpath("text.txt").read_text(encoding="utf-8")
    ids = AutoTokenizer.from_pretrained(REPO / folder)(text, add_special_tokens=True)["input_ids"]
    raw = Tokenizer.from_file(str(REPO / folder / "tokenizer.json")).encode(text).ids
    assert ids == raw, folder
    return ids


def pick_windows(name, case, ids):
    c = case["context"]
    blocks = [ids[i * c:(i + 1) * c] for i in range(len(ids) // c)]
    need = case["steps"] * case["accumulate"] * case["batch"]
    assert need <= len(blocks), (name, need, len(blocks))
    picks = iter(random.Random(seed_of(name)).sample(range(len(blocks)), need))
    return [[[blocks[next(picks)] for _ in range(case["batch"])]
             for _ in range(case["accumulate"])] for _ in range(case["steps"])]


def adapted(model, checkpoint, names, modules):
    """(checkpoint name, module name, module) of every adapted weight."""
    from transformers.pytorch_utils import Conv1D

    mods = dict(model.named_modules())
    out = []
    for k, v in names.items():
        if not (glob_match(modules, k) and k.endswith(".weight") and checkpoint[k].dim() == 2):
            continue
        module_name = v[: -len(".weight")]
        m = mods[module_name]
        if not isinstance(m, (torch.nn.Linear, Conv1D)):
            continue
        if not re.search(r"\.(layers|h)\.\d+\.", module_name):  # inside the blocks
            continue
        out.append((k, module_name, m))
    assert out, modules
    return out


# ---------------------------------------------------------------------------
# Training with torch's optimizer and PEFT



def backward_step(model, step, accumulate):
    """Accumulates one step's gradients over its micro-batches (each loss
    divided by ``accumulate``, as transformers' Trainer does); returns the
    step's loss, the mean of the micro-batch losses."""
    micro = []
    for batch in step:
        x = torch.tensor(batch)
        loss = model(input_ids=x, labels=x).loss
        (loss / accumulate).backward()
        micro.append(loss.item())
    return sum(micro) / len(micro)

def train_reference(name, case):
    import peft
    from transformers import get_linear_schedule_with_warmup
    from transformers.pytorch_utils import Conv1D

    checkpoint = checkpoint_tensors(case["model"])
    model, zeroed = load(case["model"])
    names = name_map(model, checkpoint)
    windows = pick_windows(name, case, text_ids(case["model"]))
    first = torch.tensor(windows[0][0])
    with torch.no_grad():
        a = model(input_ids=first, labels=first).loss
        b = model.eval()(input_ids=first, labels=first).loss
        model.train()
    assert torch.equal(a, b), (name, a, b)

    adapters = None
    lora = case["lora"]
    if lora:
        targets = adapted(model, checkpoint, names, lora["modules"])
        torch.manual_seed(seed_of(name))
        config = peft.LoraConfig(
            r=lora["rank"], lora_alpha=lora["alpha"], target_modules=[t[1] for t in targets],
            lora_dropout=0.0, bias="none", init_lora_weights=True,
            fan_in_fan_out=isinstance(targets[0][2], Conv1D))
        model = peft.get_peft_model(model, config)
        model.train()
        inner = dict(model.base_model.model.named_modules())
        adapters = {}
        for k, module_name, _ in targets:
            layer = inner[module_name]
            assert layer.scaling["default"] == lora["alpha"] / lora["rank"]
            assert not layer.lora_B["default"].weight.any()
            adapters[f"{k}.lora_A"] = layer.lora_A["default"].weight.detach().clone().contiguous()
        params = [p for p in model.parameters() if p.requires_grad]
        assert len(params) == 2 * len(targets), (len(params), len(targets))
    else:
        params = list(model.parameters())

    opt = torch.optim.AdamW(params, lr=case["lr"], betas=(0.9, 0.999), eps=1e-8,
                            weight_decay=case["weight_decay"], foreach=False)
    sched = get_linear_schedule_with_warmup(opt, case["warmup"], case["steps"])
    losses = []
    for step in windows:
        losses.append(backward_step(model, step, case["accumulate"]))
        if case["clip"] > 0:
            torch.nn.utils.clip_grad_norm_(params, case["clip"])
        opt.step()
        sched.step()
        opt.zero_grad()
    assert all(math.isfinite(v) for v in losses), (name, losses)

    if lora:
        model = model.merge_and_unload()
    sd = model.state_dict()
    after = {k: sd[v].detach().to(torch.float32).contiguous().clone() for k, v in names.items()}
    return windows, losses, after, adapters, zeroed


def generate(_args):
    from safetensors.torch import save_file

    lf.quiet()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    start = time.time()
    OUT.mkdir(parents=True, exist_ok=True)
    for old in OUT.iterdir():  # README.md stays
        if old.is_dir():
            shutil.rmtree(old)
    for name, case in CASES.items():
        windows, losses, after, adapters, zeroed = train_reference(name, case)
        before = checkpoint_tensors(case["model"])
        changed = [k for k in before if not torch.equal(before[k], after[k])]
        if case["lora"]:
            expect = {k[: -len(".lora_A")] for k in adapters}
            assert set(changed) == expect, (name, sorted(set(changed) ^ expect))
        else:
            assert len(changed) == len(before), (name, sorted(set(before) - set(changed)))
        folder = OUT / name
        folder.mkdir()
        doc = {k: case[k] for k in KEYS}
        doc.update(windows=windows, losses=losses)
        (folder / "case.json").write_text(lf.dump_json(doc) + "\n")
        save_file(after, str(folder / "after.safetensors"))
        if adapters:
            save_file(adapters, str(folder / "adapters.safetensors"))
        moved = max((after[k] - before[k]).abs().max().item() for k in before)
        print(f"{name:22s} losses {' '.join(f'{v:.5f}' for v in losses)}  "
              f"{len(changed)}/{len(before)} tensors changed, max |change| {moved:.3e}"
              + (f"  (dropout zeroed: {sorted(zeroed)})" if zeroed else ""))
    lf.fix_permissions(OUT)
    total = sum(p.stat().st_size for p in OUT.rglob("*") if p.is_file())
    print(f"{OUT.relative_to(REPO)}: {total} bytes, done after {time.time() - start:.0f}s")


# ---------------------------------------------------------------------------
# The spec's formulas, written out


def schedule(s, steps, warmup):
    if s < warmup:
        return s / max(1, warmup)
    return max(0.0, (steps - s) / max(1, steps - warmup))


class Delta(torch.nn.Module):
    def __init__(self, a, b, scale, transposed):
        super().__init__()
        self.a, self.b, self.scale, self.transposed = a, b, scale, transposed

    def forward(self, w):
        d = self.scale * (self.b @ self.a)
        return w + (d.T if self.transposed else d)


def train_by_formula(name, case, folder, dtype=torch.float32):
    import torch.nn.utils.parametrize as P
    from safetensors.torch import load_file
    from transformers.pytorch_utils import Conv1D

    checkpoint = checkpoint_tensors(case["model"])
    model, _ = load(case["model"])
    names = name_map(model, checkpoint)
    model.to(dtype)
    doc = json.loads((folder / "case.json").read_text())
    assert doc["windows"] == pick_windows(name, case, text_ids(case["model"])), name
    lora = case["lora"]
    if lora:
        a0 = load_file(str(folder / "adapters.safetensors"))
        for p in model.parameters():
            p.requires_grad_(False)
        targets = adapted(model, checkpoint, names, lora["modules"])
        assert sorted(f"{t[0]}.lora_A" for t in targets) == sorted(a0), name
        params, deltas = [], []
        for k, _, m in targets:
            a = a0[f"{k}.lora_A"].to(dtype).requires_grad_(True)
            rows = m.weight.shape[1] if isinstance(m, Conv1D) else m.weight.shape[0]
            bound = 1 / math.sqrt(a.shape[1])
            assert a.shape[0] == lora["rank"] and a.abs().max() <= bound, k
            b = torch.zeros(rows, lora["rank"], dtype=dtype, requires_grad=True)
            delta = Delta(a, b, lora["alpha"] / lora["rank"], isinstance(m, Conv1D))
            P.register_parametrization(m, "weight", delta)
            params += [a, b]
            deltas.append((m, delta))
    else:
        params = list(model.parameters())
    m1 = [torch.zeros_like(p) for p in params]
    m2 = [torch.zeros_like(p) for p in params]
    losses = []
    for s, step in enumerate(doc["windows"]):
        for p in params:
            p.grad = None
        losses.append(backward_step(model, step, case["accumulate"]))
        grads = [p.grad for p in params]
        if case["clip"] > 0:
            n = torch.sqrt(sum((g * g).sum() for g in grads))
            grads = [g * torch.clamp(case["clip"] / (n + 1e-6), max=1.0) for g in grads]
        lr = torch.tensor(case["lr"] * schedule(s, case["steps"], case["warmup"]), dtype=dtype)
        t = s + 1
        bc1 = 1 - torch.tensor(0.9, dtype=dtype) ** t
        bc2 = 1 - torch.tensor(0.999, dtype=dtype) ** t
        with torch.no_grad():
            for i, (p, g) in enumerate(zip(params, grads)):
                p.mul_(1 - lr * case["weight_decay"])
                m1[i] = 0.9 * m1[i] + 0.1 * g
                m2[i] = 0.999 * m2[i] + 0.001 * g * g
                denom = torch.sqrt(m2[i]) / torch.sqrt(bc2) + 1e-8
                p.sub_((lr / bc1) * m1[i] / denom)
    if lora:
        for m, _ in deltas:
            P.remove_parametrizations(m, "weight", leave_parametrized=True)
    sd = model.state_dict()
    return losses, {k: sd[v].detach().float() for k, v in names.items()}, doc


def zero_gradient(folder, checkpoint):
    """Per tensor, a mask of the elements whose gradient is zero in exact
    arithmetic but not in floating point: the key biases that no rotation
    follows (softmax ignores a score added to every key of a query). Their
    computed gradient is rounding noise of about 1e-9, which Adam turns into
    an update of up to the learning rate, in a direction no two
    implementations share."""
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(REPO / folder)
    masks = {}
    for k, t in checkpoint.items():
        m = torch.zeros(t.shape, dtype=torch.bool)
        if config.model_type == "gpt2" and k.endswith(".attn.c_attn.bias"):
            d = config.n_embd
            m[d:2 * d] = True  # [q | k | v], no rotation
        elif config.model_type == "gpt_neox" and k.endswith(".attention.query_key_value.bias"):
            hd = config.hidden_size // config.num_attention_heads
            rot = int(hd * config.rope_parameters.get("partial_rotary_factor", 1.0))
            for h in range(config.num_attention_heads):  # per head [q | k | v]
                m[3 * hd * h + hd + rot:3 * hd * h + 2 * hd] = True
        if m.any():
            masks[k] = m
    return masks


def compare(after, want, masks):
    """Largest relative difference outside the masks (and where), the number
    of elements beyond the parity tolerance, and the largest absolute
    difference inside the masks."""
    rel, at, beyond, noise = 0.0, None, 0, 0.0
    for k, b in want.items():
        d = (after[k].float() - b).abs()
        if k in masks:
            noise = max(noise, d[masks[k]].max().item())
            d = d.masked_fill(masks[k], 0)
        scale = max(b.abs().max().item(), 1e-3)
        beyond += int((d > 1e-5 * scale).sum())
        if d.max().item() / scale > rel:
            rel, at = d.max().item() / scale, k
    return rel, at, beyond, noise


def check(_args):
    from safetensors.torch import load_file

    lf.quiet()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    worst = 0.0
    for name, case in CASES.items():
        folder = OUT / name
        doc = json.loads((folder / "case.json").read_text())
        assert {k: doc[k] for k in KEYS} == {k: case[k] for k in KEYS}, name
        want = load_file(str(folder / "after.safetensors"))
        masks = zero_gradient(case["model"], checkpoint_tensors(case["model"]))
        bound = 2 * sum(case["lr"] * schedule(s, case["steps"], case["warmup"])
                        for s in range(case["steps"]))
        line = f"{name:22s}"
        for dtype in (torch.float32, torch.float64):
            losses, after, _ = train_by_formula(name, case, folder, dtype)
            assert sorted(want) == sorted(after), name
            loss_rel = max(abs(a - b) / abs(b) for a, b in zip(losses, doc["losses"]))
            rel, at, beyond, noise = compare(after, want, masks)
            assert noise <= bound, (name, noise, bound)
            line += (f"\n    {str(dtype)[6:]}: losses {loss_rel:.1e}, tensors {rel:.1e} ({at}), "
                     f"{beyond} elements beyond 1e-5")
            if masks:
                line += f", zero-gradient elements off by {noise:.1e} (bound {bound:.0e})"
            if dtype == torch.float32:
                worst = max(worst, rel, loss_rel)
        print(line)
    print(f"the spec's formulas in float32 reproduce every fixture within {worst:.1e} relative "
          f"(parity tolerance 1e-5), zero-gradient elements aside")
    assert worst <= 1e-5, worst


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("generate", help="write tests/fixtures/train")
    sub.add_parser("check", help="recompute the fixtures from the spec's formulas")
    args = parser.parse_args()
    {"generate": generate, "check": check}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
