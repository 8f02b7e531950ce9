"""Applies the task-arithmetic protocol to the reports of the digits
experiments and prints the tables of experiments/README.md.

    for e in negation addition analogy cosine; do
        tv run experiments/digits_$e.tv -o digits_$e.csv
    done
    python3 scripts/summarize_digits.py .

Every number printed is read from those CSV files (standard library only);
the choices made here are the protocol's: the scaling coefficient is chosen
on validation accuracy, and results are reported on the test split.
"""
import csv
import sys
from collections import defaultdict


def rows(folder, name):
    with open(f"{folder}/digits_{name}.csv") as f:
        return [{k: v for k, v in r.items() if v != ""} for r in csv.DictReader(f)]


def pct(x):
    return f"{100 * float(x):.1f}"


def negation(folder):
    by_task = defaultdict(list)
    for r in rows(folder, "negation"):
        by_task[r["task"]].append(r)
    print("| task | pretrained target | negated target | drop (points) | control | control / pretrained | lambda |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for task, rs in by_task.items():
        base = next(r for r in rs if float(r["lambda"]) == 0)
        allowed = [r for r in rs if float(r["control_val"]) >= 0.95 * float(base["control_val"])]
        best = min(allowed, key=lambda r: (float(r["target_val"]), -float(r["lambda"])))
        drop = 100 * (float(base["target_test"]) - float(best["target_test"]))
        ratio = float(best["control_test"]) / float(base["control_test"])
        print(f"| {task} | {pct(base['target_test'])} | {pct(best['target_test'])} | {drop:.1f} | "
              f"{pct(best['control_test'])} | {ratio:.3f} | {best['lambda']} |")


def addition(folder):
    by_k = defaultdict(lambda: defaultdict(list))
    for r in rows(folder, "addition"):
        by_k[r["k"]][r["lambda"]].append(r)
    print("| tasks added | lambda | mean test accuracy | normalized accuracy |")
    print("| --- | --- | --- | --- |")
    for k, by_lambda in by_k.items():
        def mean(rs, key):
            return sum(float(r[key]) for r in rs) / len(rs)
        lam, rs = max(by_lambda.items(), key=lambda kv: (mean(kv[1], "val"), -float(kv[0])))
        normalized = sum(float(r["test"]) / float(r["finetuned"]) for r in rs) / len(rs)
        print(f"| {k} | {lam} | {pct(mean(rs, 'test'))} | {normalized:.3f} |")


def analogy(folder):
    by_d = defaultdict(list)
    for r in rows(folder, "analogy"):
        by_d[(r["d"], r["c"], r["b"])].append(r)
    print("| D (from C, B) | pretrained | scaling tau_C only | analogy | fine-tuned on D |")
    print("| --- | --- | --- | --- | --- |")
    for (d, c, b), rs in by_d.items():
        base = next(r for r in rs if float(r["lambda"]) == 0)
        scaled = max(rs, key=lambda r: float(r["scaled_val"]))
        best = max(rs, key=lambda r: float(r["analogy_val"]))
        print(f"| {d} (from {c}, {b}) | {pct(base['analogy_test'])} | {pct(scaled['scaled_test'])} "
              f"(lambda {scaled['lambda']}) | {pct(best['analogy_test'])} (lambda {best['lambda']}) | "
              f"{pct(best['finetuned_test'])} |")


def cosine(folder):
    table = defaultdict(dict)
    for r in rows(folder, "cosine"):
        table[r["a"]][r["b"]] = float(r["cosine"])
    names = list(table)
    print("| | " + " | ".join(names) + " |")
    print("| --- " * (len(names) + 1) + "|")
    for a in names:
        print(f"| {a} | " + " | ".join(f"{table[a][b]:.2f}" for b in names) + " |")


if __name__ == "__main__":
    folder = sys.argv[1] if len(sys.argv) > 1 else "."
    for title, part in [("Forgetting by negation", negation), ("Learning by addition", addition),
                        ("Task analogies", analogy), ("Cosine similarity of task vectors", cosine)]:
        print(f"### {title}\n")
        part(folder)
        print()
