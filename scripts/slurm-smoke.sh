#!/usr/bin/env bash
# Smoke test of scripts/slurm-cluster.sh: starts a one-node cluster in a
# temporary folder, then checks that
#   1. a job array runs, and a job with --dependency=afterok on it runs after
#      every task and sees their output;
#   2. when an array task fails, the afterok job never runs (Slurm cancels
#      it as DependencyNeverSatisfied).
# Prints "slurm smoke: ok" and exits 0 on success; prints the job and daemon
# logs and exits non-zero otherwise.
# The job scripts below are in single quotes: the job expands $SLURM_*.
# shellcheck disable=SC2016
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
cluster=$work/cluster
shared=$work/shared
mkdir -p "$shared"
trap '"$here/slurm-cluster.sh" stop "$cluster" || true; rm -rf "$work"' EXIT
eval "$("$here/slurm-cluster.sh" start "$cluster")"

fail() {
    echo "slurm smoke: FAILED: $*" >&2
    scontrol show job >&2 || true
    for f in "$shared"/*.out "$cluster"/log/*.log; do
        [ -f "$f" ] && { echo "==== $f" >&2; tail -n 30 "$f" >&2; }
    done
    exit 1
}

# Submits a job and prints its id (sbatch --parsable may add ";cluster").
submit() {
    local id
    id=$(sbatch --parsable --chdir="$shared" "$@") || fail "sbatch $*"
    echo "${id%%;*}"
}

# Waits (at most two minutes) until no task of job $1 is pending or running.
wait_done() {
    local _
    for _ in $(seq 240); do
        [ -z "$(squeue -h -j "$1" -o %i 2>/dev/null)" ] && return 0
        sleep 0.5
    done
    fail "job $1 still queued after 2 minutes"
}

# Prints field $2 (JobState, Reason, StartTime, ...) of each task of job $1.
field() {
    scontrol -o show job "$1" | grep -o "\b$2=[^ ]*" | cut -d= -f2-
}

# 1. Array, then a job that depends on it and gathers its output.
array=$(submit --array=0-2 --output=array-%A_%a.out \
    --wrap 'sleep 1; echo "$SLURM_ARRAY_TASK_ID" > "task-$SLURM_ARRAY_TASK_ID"')
after=$(submit --dependency=afterok:"$array" --output=after-%j.out \
    --wrap 'cat task-0 task-1 task-2 > all')
wait_done "$after"
wait_done "$array"
[ "$(field "$array" JobState | sort -u)" = COMPLETED ] || fail "array $array did not complete"
[ "$(field "$after" JobState)" = COMPLETED ] || fail "job $after did not complete"
[ "$(cat "$shared/all" 2>/dev/null)" = "$(printf '0\n1\n2')" ] || fail "wrong output in $shared/all"
# Slurm times are ISO 8601 (same zone), so they compare as strings.
last_end=$(field "$array" EndTime | sort | tail -n 1)
[[ ! "$(field "$after" StartTime)" < "$last_end" ]] || fail "job $after started before array $array ended"

# 2. A failing array task: the afterok job must be cancelled, never run.
array=$(submit --array=0-1 --output=bad-%A_%a.out \
    --wrap '[ "$SLURM_ARRAY_TASK_ID" = 0 ]')
after=$(submit --dependency=afterok:"$array" --output=never-%j.out --wrap 'touch ran')
wait_done "$after"
[ "$(field "$after" JobState)" = CANCELLED ] || fail "job $after was not cancelled"
[ "$(field "$after" Reason)" = DependencyNeverSatisfied ] || fail "job $after: unexpected reason"
[ ! -e "$shared/ran" ] || fail "job $after ran despite a failed dependency"

echo "slurm smoke: ok"
