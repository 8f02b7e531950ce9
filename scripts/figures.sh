#!/usr/bin/env bash
# Regenerates every figure in experiments/figures/ by running each
# experiment: the figures are declared in the .tv files with `plot` and
# written by `tv run` next to its report. The CSV reports go to a temporary
# folder, so only the figures change in the repository.
#
# Needs, once:
#   cargo run --release --example make_checkpoints   # experiments/checkpoints/
#   cargo run --release --example make_digit_tasks   # experiments/data/tasks/
# and, for the SmolLM2 figure, models/smollm2-135m (see experiments/README.md;
# skipped when missing). Trained models are read from experiments/.tv-cache/
# when there; time_vectors_real.tv trains for about 20 minutes otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --release
tv=target/release/tv

reports=$(mktemp -d)
trap 'rm -rf "$reports"' EXIT

run() {
    local file=$1 name
    name=$(basename "$file" .tv)
    echo "== $file"
    "$tv" run "$file" -o "$reports/$name.csv"
}

# Every experiment that declares a figure (a top-level `plot` line).
for file in experiments/*.tv experiments/smollm2/*.tv; do
    grep -q '^plot ' "$file" || continue
    if [[ $file == experiments/smollm2/* && ! -d models/smollm2-135m ]]; then
        echo "== skipping $file: models/smollm2-135m is missing (scripts/smollm2.py makes it)"
        continue
    fi
    run "$file"
done

echo "figures written to experiments/figures/"
