#!/usr/bin/env python3
"""Extract the UCI optical-recognition handwritten digits into a plain CSV.

Source: "Optical Recognition of Handwritten Digits" by E. Alpaydin and
C. Kaynak (1998), UCI Machine Learning Repository, CC BY 4.0, as distributed
with scikit-learn (the file ``sklearn/datasets/data/digits.csv.gz`` inside the
installed package; it is the 1,797-image test portion used by
``sklearn.datasets.load_digits``).

In the bundled file each line is one image: 64 pixel values (0..16, the 8x8
image in row-major order) followed by the label as the LAST column. This
script writes ``experiments/data/digits.csv`` with the label FIRST:

    label,p0,p1,...,p63
    0,0,0,5,13,...

and checks that the result equals ``load_digits()``'s ``data`` and ``target``
exactly before writing.

Usage (from the repository root):

    pip install scikit-learn
    python3 scripts/extract_digits.py [OUTPUT_CSV]
"""

import gzip
import os
import sys

import sklearn.datasets
from sklearn.datasets import load_digits

DEFAULT_OUT = os.path.join("experiments", "data", "digits.csv")


def bundled_path():
    """Path of the digits file shipped inside the installed scikit-learn."""
    return os.path.join(os.path.dirname(sklearn.datasets.__file__), "data", "digits.csv.gz")


def read_bundled(path):
    """Rows of (label, [64 pixels]) from the bundled file (label last there)."""
    rows = []
    with gzip.open(path, "rt") as f:
        for number, line in enumerate(f, start=1):
            line = line.strip()
            if not line:
                continue
            values = [float(v) for v in line.split(",")]
            if len(values) != 65:
                raise ValueError(f"{path}:{number}: expected 65 values, found {len(values)}")
            ints = [int(v) for v in values]
            if any(float(i) != v for i, v in zip(ints, values)):
                raise ValueError(f"{path}:{number}: non-integer value")
            pixels, label = ints[:64], ints[64]
            if not 0 <= label <= 9 or any(not 0 <= p <= 16 for p in pixels):
                raise ValueError(f"{path}:{number}: value out of range")
            rows.append((label, pixels))
    return rows


def verify(rows):
    """Fail unless rows equal load_digits() exactly (order, pixels, labels)."""
    digits = load_digits()
    if len(rows) != len(digits.target):
        raise ValueError(f"{len(rows)} rows, load_digits() has {len(digits.target)}")
    for i, (label, pixels) in enumerate(rows):
        if label != int(digits.target[i]):
            raise ValueError(f"row {i}: label {label} != load_digits() target {digits.target[i]}")
        if [float(p) for p in pixels] != [float(v) for v in digits.data[i]]:
            raise ValueError(f"row {i}: pixels differ from load_digits() data")


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else DEFAULT_OUT
    rows = read_bundled(bundled_path())
    verify(rows)
    os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
    with open(out, "w", newline="\n") as f:
        f.write("label," + ",".join(f"p{i}" for i in range(64)) + "\n")
        for label, pixels in rows:
            f.write(str(label) + "," + ",".join(str(p) for p in pixels) + "\n")
    counts = [sum(1 for label, _ in rows if label == c) for c in range(10)]
    print(f"wrote {out}: {len(rows)} images, class counts {counts}")


if __name__ == "__main__":
    main()
