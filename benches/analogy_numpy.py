"""The analogy sweep as a researcher would write it with numpy: load the
checkpoints once, then recompute the edited model for every grid point.

    python3 benches/analogy_numpy.py DIR OUT.csv

Reads DIR/{base,task_j,lm_j,lm_k,target}.safetensors and writes the same
report as benches' analogy.tv (columns a1, a2, distance, cosine).
"""
import sys

import numpy as np
from safetensors.numpy import load_file


def main(folder, out):
    load = lambda name: load_file(f"{folder}/{name}.safetensors")
    base, theta_j, lm_j, lm_k, target = (load(n) for n in ["base", "task_j", "lm_j", "lm_k", "target"])
    names = [k for k, v in base.items() if v.dtype.kind == "f"]
    tau_j = {k: lm_j[k] - base[k] for k in names}
    tau_k = {k: lm_k[k] - base[k] for k in names}
    rows = []
    for a1 in [-1, -0.5, 0, 0.5, 1]:
        for step in range(20):
            a2 = round(step * 0.1, 1)
            sq = dot = n1 = n2 = 0.0
            for k in names:
                theta = theta_j[k] + a1 * tau_j[k] + a2 * (tau_k[k] - tau_j[k])
                diff = (theta - target[k]).ravel()
                u = (theta - base[k]).ravel()
                v = (target[k] - base[k]).ravel()
                sq += float(np.dot(diff, diff))
                dot += float(np.dot(u, v))
                n1 += float(np.dot(u, u))
                n2 += float(np.dot(v, v))
            rows.append((a1, a2, sq ** 0.5, dot / (n1 * n2) ** 0.5))
    with open(out, "w") as f:
        f.write("a1,a2,distance,cosine\n")
        for a1, a2, d, c in rows:
            f.write(f"{a1},{a2},{d!r},{c!r}\n")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
