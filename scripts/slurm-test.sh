#!/usr/bin/env bash
# The sharded run on a real Slurm cluster: starts a one-node cluster
# (scripts/slurm-cluster.sh, which installs Debian's slurm-wlm and munge if
# they are missing), submits tests/slurm/mixed.tv as 3 shards and a merge
# job with `tv slurm --submit`, waits for the merge, and compares the
# merged report byte for byte with an unsharded run. Stops the daemons it
# started. Prints "slurm test: ok" and exits 0 on success.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cargo build --locked --quiet --manifest-path "$root/Cargo.toml"
tv=${CARGO_TARGET_DIR:-$root/target}/debug/tv
case $tv in /*) ;; *) tv=$root/$tv ;; esac
work=$(mktemp -d)
# Ports of their own, so the test runs beside another cluster on this machine.
port=$((20000 + RANDOM % 5000 * 2))
export SLURMCTLD_PORT=${SLURMCTLD_PORT:-$port} SLURMD_PORT=${SLURMD_PORT:-$((port + 1))}
cluster=$work/cluster
trap '"$root/scripts/slurm-cluster.sh" stop "$cluster" || true; rm -rf "$work"' EXIT
eval "$("$root/scripts/slurm-cluster.sh" start "$cluster")"

fail() {
    echo "slurm test: FAILED: $*" >&2
    scontrol show job >&2 || true
    for f in "$exp"/merged.csv.slurm/logs/*.log "$cluster"/log/*.log; do
        [ -f "$f" ] && { echo "==== $f" >&2; tail -n 30 "$f" >&2; }
    done
    exit 1
}

# The experiment, on storage the "nodes" share (here: one folder, whose
# name has a space, a quote and a `%`, which Slurm would otherwise expand).
exp="$work/my exp's %j"
mkdir -p "$exp"
cp "$root/tests/slurm/mixed.tv" "$exp/"
cp -r "$root/experiments/configs" "$exp/"
(cd "$root" && cargo run --locked --quiet --example make_digit_tasks "$exp/data/tasks" >/dev/null)
cd "$exp"
"$tv" run mixed.tv --allow-commands -o whole.csv 2> whole.log || { cat whole.log >&2; fail "the unsharded run"; }

out=$("$tv" slurm mixed.tv --shards 3 -o merged.csv --allow-commands --cpus-per-task 1 --time 10:00 --submit) \
    || fail "tv slurm"
echo "$out"
shards=$(echo "$out" | sed -n 's/^shards=//p')
merge=$(echo "$out" | sed -n 's/^merge=//p')
[ -n "$shards" ] && [ -n "$merge" ] || fail "tv slurm printed no job ids"

# Waits (at most five minutes) until no task of job $1 is pending or running.
for _ in $(seq 600); do
    [ -z "$(squeue -h -j "$merge,$shards" -o %i 2>/dev/null)" ] && break
    sleep 0.5
done
state=$(scontrol -o show job "$merge" | grep -o '\bJobState=[^ ]*' | cut -d= -f2)
[ "$state" = COMPLETED ] || fail "the merge job $merge ended $state"
cmp merged.csv whole.csv || fail "the merged report differs from the unsharded run's"
for i in 0 1 2; do
    grep -q "\"index\": $i" "merged.csv.slurm/parts/part-$i.csv.json" || fail "part $i has no shard record"
done
echo "slurm test: ok ($(($(wc -l < merged.csv) - 1)) rows, 3 shards, merged by job $merge)"
