#!/usr/bin/env bash
# Starts and stops a throwaway one-node Slurm cluster on this machine, for
# tests that submit real jobs with sbatch.
#
#   scripts/slurm-cluster.sh start STATE_DIR   # prints `export SLURM_CONF=...`
#   scripts/slurm-cluster.sh stop STATE_DIR
#
# Everything the cluster writes (config, munge key and socket, state, spool,
# logs, pids) lives in STATE_DIR, and it runs its own munged on its own
# socket, so no system service or file under /etc is touched. The only
# system change is installing the Debian packages slurm-wlm and munge when
# they are missing. The daemons run as the calling user (root on CI boxes and
# containers: slurmd has to be root to start jobs as their owner).
#
# Ports default to Slurm's 6817/6818; set SLURMCTLD_PORT / SLURMD_PORT to run
# beside another cluster.
set -euo pipefail

usage() { echo "usage: $0 start|stop STATE_DIR" >&2; exit 2; }
[ $# -eq 2 ] || usage
cmd=$1
mkdir -p "$2"
state=$(cd "$2" && pwd)
conf=$state/slurm.conf
export SLURM_CONF=$conf
# The daemons live in /usr/sbin, which is not on every user's PATH.
PATH=$PATH:/usr/sbin:/sbin

# Runs a command as root: directly, or through sudo when there is one.
as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"
    elif command -v sudo >/dev/null; then sudo "$@"
    else echo "need root to run: $*" >&2; return 1; fi
}

install_packages() {
    local missing=0 tool
    for tool in slurmctld slurmd sbatch munged; do
        command -v "$tool" >/dev/null || missing=1
    done
    [ "$missing" -eq 0 ] && return 0
    echo "installing slurm-wlm and munge" >&2
    as_root apt-get update -qq >&2
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge >&2
}

# Prints the daemons' logs, so a failed start explains itself: the
# timestamped NAME.log when the daemon got as far as opening it, else what it
# wrote to stderr (NAME.out).
show_logs() {
    local name f
    for name in munged slurmctld slurmd; do
        f=$state/log/$name.log
        [ -f "$f" ] || f=$state/log/$name.out
        [ -f "$f" ] && { echo "==== $f" >&2; tail -n 30 "$f" >&2; }
    done
    return 0
}

# True while the process with that pid is alive and is the named program
# (so a recycled pid is never taken for one of ours; zombies count as gone).
alive() {
    local pid=$1 name=$2
    [ -r "/proc/$pid/stat" ] || return 1
    [ "$(cut -d' ' -f3 "/proc/$pid/stat")" != Z ] || return 1
    [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$name" ]
}

# Starts one daemon in the foreground, detached from this shell, and records
# its pid as STATE_DIR/run/NAME.pid.
launch() {
    local name=$1; shift
    setsid "$@" </dev/null >>"$state/log/$name.out" 2>&1 &
    echo $! >"$state/run/$name.pid"
}

write_config() {
    local host cpus mem_mb
    host=$(hostname -s)
    cpus=$(nproc)
    # Declare 90% of the memory: a node claiming more than it has is drained.
    mem_mb=$(awk '/^MemTotal:/ { print int($2 / 1024 * 0.9) }' /proc/meminfo)
    cat >"$conf" <<EOF
# One-node test cluster written by scripts/slurm-cluster.sh.
ClusterName=testcluster
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=${SLURMCTLD_PORT:-6817}
SlurmdPort=${SLURMD_PORT:-6818}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$state/munge/munge.socket
CredType=cred/munge

StateSaveLocation=$state/ctld
SlurmdSpoolDir=$state/spool
SlurmctldPidFile=$state/run/slurmctld.pidfile
SlurmdPidFile=$state/run/slurmd.pidfile
SlurmctldLogFile=$state/log/slurmctld.log
SlurmdLogFile=$state/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info

# No cgroups: containers rarely let us manage them.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MailProg=/bin/true
MpiDefault=none
SwitchType=switch/none

# Hand out single CPUs, so one-CPU array tasks run side by side.
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
# Schedule every couple of seconds rather than every 30-60.
SchedulerParameters=sched_interval=2,bf_interval=2
# Cancel jobs whose dependency can never be met (e.g. afterok on a failed
# job) instead of leaving them pending forever. Slurm >= 20.02 reads this
# here, not in SchedulerParameters.
DependencyParameters=kill_invalid_depend
ReturnToService=2
MessageTimeout=10
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
KillWait=5
# Keep finished jobs visible to squeue/scontrol for five minutes.
MinJobAge=300

NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
}

# Runs a private munged: its own key (0400) and socket in STATE_DIR/munge.
# The folder is 0711 so clients can reach the socket; --force lets munged
# run even if a folder above STATE_DIR is writable by others, and replaces
# a socket a killed run left behind.
start_munge() {
    local dir=$state/munge i
    mkdir -p "$dir"
    chmod 0711 "$dir"
    if [ ! -s "$dir/munge.key" ]; then
        (umask 077; dd if=/dev/urandom of="$dir/munge.key" bs=1024 count=1 status=none)
        chmod 0400 "$dir/munge.key"
    fi
    rm -f "$dir/munge.socket"
    launch munged munged --foreground --force \
        --key-file="$dir/munge.key" --socket="$dir/munge.socket" \
        --pid-file="$dir/munged.pidfile" --seed-file="$dir/munged.seed"
    for i in $(seq 50); do
        [ -S "$dir/munge.socket" ] && return 0
        alive "$(cat "$state/run/munged.pid")" munged || break
        sleep 0.1
    done
    echo "munged did not start" >&2
    return 1
}

start() {
    local host i pid name
    install_packages
    if [ -s "$state/run/slurmctld.pid" ] && alive "$(cat "$state/run/slurmctld.pid")" slurmctld; then
        echo "a cluster is already running from $state" >&2
        exit 1
    fi
    mkdir -p "$state"/{ctld,spool,log,run}
    host=$(hostname -s)
    write_config
    start_munge || { show_logs; exit 1; }
    # -c: start from a clean job state, whatever an earlier run left.
    launch slurmctld slurmctld -D -c -f "$conf"
    launch slurmd slurmd -D -N "$host" -f "$conf"

    # Wait (bounded) for the node to report idle.
    for i in $(seq 120); do
        if [ "$(sinfo -h -n "$host" -o %T 2>/dev/null)" = idle ]; then
            echo "export SLURM_CONF=$conf"
            return 0
        fi
        for name in munged slurmctld slurmd; do
            pid=$(cat "$state/run/$name.pid")
            alive "$pid" "$name" || { echo "$name (pid $pid) exited" >&2; break 2; }
        done
        sleep 0.5
    done
    echo "slurm cluster in $state did not come up" >&2
    sinfo -N -l >&2 2>&1 || true
    show_logs
    stop
    exit 1
}

stop() {
    local name pid i
    # Cancel leftover jobs first, so no job step outlives the daemons.
    if [ -s "$state/run/slurmctld.pid" ] && alive "$(cat "$state/run/slurmctld.pid")" slurmctld; then
        scancel --quiet --user="$(id -un)" 2>/dev/null || true
        for i in $(seq 20); do
            [ -z "$(squeue -h -t RUNNING,COMPLETING -o %i 2>/dev/null)" ] && break
            sleep 0.5
        done
    fi
    for name in slurmd slurmctld munged; do
        [ -s "$state/run/$name.pid" ] || continue
        pid=$(cat "$state/run/$name.pid")
        alive "$pid" "$name" && kill -TERM "$pid"
        for i in $(seq 100); do
            alive "$pid" "$name" || break
            [ "$i" -eq 60 ] && kill -KILL "$pid" 2>/dev/null
            sleep 0.1
        done
        alive "$pid" "$name" && { echo "$name (pid $pid) would not exit" >&2; exit 1; }
        rm -f "$state/run/$name.pid"
    done
    return 0
}

case $cmd in
    start) start ;;
    stop) stop ;;
    *) usage ;;
esac
