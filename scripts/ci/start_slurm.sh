#!/usr/bin/env bash
# Start (or stop) a single-node SLURM cluster on this machine for tests and CI.
#
# Usage:
#   scripts/ci/start_slurm.sh [start]   configure and start munged, slurmctld, slurmd;
#                                       wait (bounded) until the node is idle
#   scripts/ci/start_slurm.sh stop      cancel jobs, stop the daemons this script started
#   scripts/ci/start_slurm.sh status    print sinfo/squeue
#
# Installs nothing. Needs, as root, Debian's packages (install them before):
#   apt-get install -y slurm-wlm munge
# (the smaller set `slurmctld slurmd slurm-client munge` is enough).
#
# The cluster: one node named after this host, all its CPUs, RealMemory 90% of
# MemTotal, two fake GPUs (gres gpu:2 backed by /dev/zero, /dev/null) so rules with
# `resources: gpu=1` (sbatch --gpus=1) can be scheduled on a CPU box, one
# partition `debug` (default), no accounting database
# (AccountingStorageType=accounting_storage/none: use `slurm-status-command: squeue`,
# sacct answers "accounting storage is disabled"). MinJobAge=300 keeps finished
# jobs visible to squeue long enough for Snakemake's status checks. No systemd and
# no cgroups are needed: proctrack/linuxproc, task/none.
#
# The config is written to /etc/slurm/slurm.conf, the path compiled into Debian's
# SLURM: job steps do not see SLURM_CONF, so a config elsewhere would break srun
# inside jobs. Starting is idempotent: a running cluster with the same config is
# left alone; a changed config restarts slurmctld and slurmd.
#
# Environment (optional):
#   SLURM_START_TIMEOUT  seconds to wait for the node to become idle (default 60)
#   SLURM_FAKE_GPUS      number of fake GPUs on the node (default 2, at most 5: two
#                        GPU jobs at a time, as a local run on 2 cores)
set -euo pipefail

ETC=/etc/slurm
CONF="$ETC/slurm.conf"
STATE_DIR=/run/daml-slurm          # which daemons this script started
LOG_DIR=/var/log/slurm
SPOOL=/var/lib/slurm
TIMEOUT="${SLURM_START_TIMEOUT:-60}"
GPUS="${SLURM_FAKE_GPUS:-2}"

die() { echo "start_slurm.sh: $*" >&2; exit 1; }

need_root() {
    [ "$(id -u)" = 0 ] || die "must run as root (it writes $CONF and starts daemons)"
}

need_binaries() {
    local b missing=""
    for b in munged slurmctld slurmd sinfo squeue scontrol; do
        command -v "$b" >/dev/null 2>&1 || [ -x "/usr/sbin/$b" ] || missing="$missing $b"
    done
    [ -z "$missing" ] || die "missing binaries:$missing; install them with: apt-get install -y slurm-wlm munge"
}

pid_alive() { [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null; }

pid_of() {  # pid of a daemon from its pidfile, empty if not running
    local f="$1" p
    [ -f "$f" ] || return 0
    p="$(cat "$f" 2>/dev/null || true)"
    if pid_alive "$p"; then echo "$p"; fi
}

render_conf() {
    local host cpus mem_kb real_mem
    host="$(hostname -s)"
    cpus="$(nproc --all)"
    mem_kb="$(awk '/^MemTotal:/ {print $2}' /proc/meminfo)"
    real_mem=$(( mem_kb / 1024 * 9 / 10 ))
    cat <<EOF
# Written by scripts/ci/start_slurm.sh: single-node test cluster. Do not edit by hand.
ClusterName=daml-test
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=500
GresTypes=gpu
MinJobAge=300
ReturnToService=2
SlurmctldPort=6817
SlurmdPort=6818
StateSaveLocation=$SPOOL/slurmctld
SlurmdSpoolDir=$SPOOL/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=$LOG_DIR/slurmctld.log
SlurmdLogFile=$LOG_DIR/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
KillWait=5
NodeName=$host CPUs=$cpus RealMemory=$real_mem Gres=gpu:$GPUS State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
}

render_gres() {
    # Each fake GPU needs its own device file; any character device will do.
    local host i files=(/dev/zero /dev/null /dev/full /dev/urandom /dev/random)
    host="$(hostname -s)"
    [ "$GPUS" -le "${#files[@]}" ] || die "SLURM_FAKE_GPUS=$GPUS: at most ${#files[@]} fake GPUs"
    echo "# Written by scripts/ci/start_slurm.sh: fake GPU(s) for a CPU-only test node."
    echo "AutoDetect=off"
    for ((i = 0; i < GPUS; i++)); do
        echo "NodeName=$host Name=gpu File=${files[$i]} Count=1"
    done
}

write_if_changed() {  # write_if_changed <file> <content>; returns 0 if it changed
    local f="$1" content="$2"
    if [ -f "$f" ] && [ "$(cat "$f")" = "$content" ]; then
        return 1
    fi
    printf '%s\n' "$content" > "$f.tmp.$$"
    mv -f "$f.tmp.$$" "$f"
    return 0
}

start_munge() {
    if [ -n "$(pid_of /run/munge/munged.pid)" ] && munge -n </dev/null | unmunge >/dev/null 2>&1; then
        return 0
    fi
    install -d -o munge -g munge -m 0755 /run/munge
    install -d -o munge -g munge -m 0700 /etc/munge /var/log/munge
    install -d -o munge -g munge -m 0711 /var/lib/munge
    if [ ! -s /etc/munge/munge.key ]; then
        runuser -u munge -- mungekey --create --keyfile=/etc/munge/munge.key \
            || die "could not create /etc/munge/munge.key"
    fi
    chown munge:munge /etc/munge/munge.key
    chmod 0400 /etc/munge/munge.key
    rm -f /run/munge/munged.pid
    runuser -u munge -- /usr/sbin/munged --force \
        || die "munged failed to start; see /var/log/munge/munged.log"
    touch "$STATE_DIR/munged"
    local i
    for ((i = 0; i < 50; i++)); do
        if munge -n </dev/null | unmunge >/dev/null 2>&1; then return 0; fi
        sleep 0.2
    done
    die "munged does not answer; see /var/log/munge/munged.log"
}

stop_pidfile() {  # stop_pidfile <name> <pidfile>
    local name="$1" f="$2" p i
    p="$(pid_of "$f")"
    if [ -n "$p" ]; then
        kill "$p" 2>/dev/null || true
        for ((i = 0; i < 50; i++)); do
            pid_alive "$p" || break
            sleep 0.2
        done
        if pid_alive "$p"; then kill -9 "$p" 2>/dev/null || true; fi
    fi
    rm -f "$STATE_DIR/$name"
}

node_state() {
    sinfo -h -N -n "$(hostname -s)" -o '%T' 2>/dev/null | head -n 1 || true
}

wait_idle() {
    local deadline=$(( $(date +%s) + TIMEOUT )) state="" host
    host="$(hostname -s)"
    while [ "$(date +%s)" -lt "$deadline" ]; do
        state="$(node_state)"
        case "$state" in
            idle|mixed|allocated) return 0 ;;
            down*|drain*)
                scontrol update NodeName="$host" State=RESUME >/dev/null 2>&1 || true ;;
        esac
        sleep 1
    done
    echo "---- slurmctld.log (tail)" >&2; tail -n 20 "$LOG_DIR/slurmctld.log" >&2 || true
    echo "---- slurmd.log (tail)" >&2; tail -n 20 "$LOG_DIR/slurmd.log" >&2 || true
    die "node $host not idle after ${TIMEOUT}s (state: '${state:-unknown}')"
}

start() {
    need_root
    need_binaries
    install -d -m 0755 "$STATE_DIR" "$ETC" "$LOG_DIR" "$SPOOL" "$SPOOL/slurmctld" "$SPOOL/slurmd"
    local changed=0
    write_if_changed "$CONF" "$(render_conf)" && changed=1
    write_if_changed "$ETC/gres.conf" "$(render_gres)" && changed=1
    # proctrack/linuxproc + task/none: cgroups stay unused; an empty cgroup.conf
    # keeps slurmd from complaining in containers without a cgroup hierarchy.
    [ -f "$ETC/cgroup.conf" ] || echo "CgroupPlugin=autodetect" > "$ETC/cgroup.conf"
    start_munge
    if [ "$changed" = 1 ]; then
        stop_pidfile slurmd /run/slurmd.pid
        stop_pidfile slurmctld /run/slurmctld.pid
    fi
    if [ -z "$(pid_of /run/slurmctld.pid)" ]; then
        /usr/sbin/slurmctld -i || die "slurmctld failed; see $LOG_DIR/slurmctld.log"
        touch "$STATE_DIR/slurmctld"
    fi
    if [ -z "$(pid_of /run/slurmd.pid)" ]; then
        /usr/sbin/slurmd || die "slurmd failed; see $LOG_DIR/slurmd.log"
        touch "$STATE_DIR/slurmd"
    fi
    wait_idle
    sinfo
}

stop() {
    need_root
    # Cancel leftover jobs while the controller still answers.
    if [ -n "$(pid_of /run/slurmctld.pid)" ]; then
        scancel --user=root >/dev/null 2>&1 || true
    fi
    # Only daemons this script started are stopped.
    [ -f "$STATE_DIR/slurmd" ] && stop_pidfile slurmd /run/slurmd.pid
    [ -f "$STATE_DIR/slurmctld" ] && stop_pidfile slurmctld /run/slurmctld.pid
    [ -f "$STATE_DIR/munged" ] && stop_pidfile munged /run/munge/munged.pid
    return 0
}

status() {
    sinfo || true
    squeue || true
}

case "${1:-start}" in
    start) start ;;
    stop) stop ;;
    status) status ;;
    *) die "usage: $0 [start|stop|status]" ;;
esac
