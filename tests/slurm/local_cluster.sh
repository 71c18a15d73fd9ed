#!/usr/bin/env bash
# A throw-away single-node SLURM cluster on localhost, to test the workflow's SLURM
# profile for real: munged, MariaDB, slurmdbd, slurmctld and slurmd, with two fake GPUs.
#
#   tests/slurm/local_cluster.sh start  STATE_DIR             install what is missing, write
#                                                             the configs, start what is not
#                                                             running, wait until a GPU job runs
#   tests/slurm/local_cluster.sh stop   STATE_DIR [DAEMON...] stop the daemons this script
#                                                             started there (all by default)
#   tests/slurm/local_cluster.sh status STATE_DIR
#
# DAEMON is one of: munged mariadbd slurmdbd slurmctld slurmd.
#
# Everything lives in STATE_DIR: configs, database, sockets, spool, logs and the PID of each
# daemon started. Apart from installing the packages nothing under /etc is changed, no
# system service is used or started, and `stop` ends only the processes whose PIDs this
# script recorded (after cancelling the cluster's jobs). Clients find the cluster through
#   export SLURM_CONF=STATE_DIR/etc/slurm.conf PATH=STATE_DIR/bin:$PATH
# (STATE_DIR/bin holds an srun that keeps SLURM_CONF inside snakemake's job steps).
# Ports: SLURM_LOCAL_PORT_BASE (default 26817) for slurmctld, +1 slurmd, +2 slurmdbd,
# +3 MariaDB, all on 127.0.0.1.
#
# The cluster: node `localhost` (its CPUs and memory as `slurmd -C` reports them) with
# Gres=gpu:fake:2, two character devices standing in for GPUs (a job that asks for one gets
# CUDA_VISIBLE_DEVICES=0 or 1); partitions `cpu` (the default) and `gpu`, both on that node.
# Job accounting goes through slurmdbd and MariaDB: snakemake's SLURM executor asks sacct
# for job states and, without accounting, never learns that a job ended.
#
# Needs root and apt-get (Debian 12 ships Slurm 22.05). Every wait is bounded: a step
# that does not come up in time fails with the tail of its log.
set -euo pipefail

readonly PACKAGES=(munge slurmctld slurmd slurm-client slurmdbd mariadb-server)
readonly DAEMONS=(munged mariadbd slurmdbd slurmctld slurmd)
readonly PORT_BASE=${SLURM_LOCAL_PORT_BASE:-26817}
readonly CTLD_PORT=$PORT_BASE SLURMD_PORT=$((PORT_BASE + 1))
readonly DBD_PORT=$((PORT_BASE + 2)) DB_PORT=$((PORT_BASE + 3))
readonly START_TIMEOUT=${SLURM_LOCAL_START_TIMEOUT:-60} # seconds for one daemon to come up
readonly STOP_TIMEOUT=20                                # seconds for one daemon to exit
readonly APT_TIMEOUT=600                                # seconds for one apt-get call

say() { echo "local_cluster: $*" >&2; }
die() {
    say "error: $*"
    exit 1
}

usage() {
    sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
    exit 2
}

# ---- paths

set_paths() {
    STATE=$(realpath -m "$1")
    ETC=$STATE/etc RUN=$STATE/run LOG=$STATE/log
    MUNGE_SOCKET=$RUN/munge.socket DB_SOCKET=$RUN/mariadb.sock
    export SLURM_CONF=$ETC/slurm.conf
}

pid_file() { echo "$RUN/$1.pid"; }

# The PID of a daemon this script started, if it is still running (not a zombie: PID 1
# of a container may not reap, so a stopped daemon can linger in the process table).
running_pid() {
    local file pid state
    file=$(pid_file "$1")
    [[ -f $file ]] || return 1
    pid=$(<"$file")
    [[ -r /proc/$pid/status ]] || return 1
    [[ $(cat "/proc/$pid/comm" 2>/dev/null) == "$1" ]] || return 1 # gone, or PID reused
    state=$(awk '/^State:/ {print $2}' "/proc/$pid/status" 2>/dev/null) || return 1
    [[ $state != Z && $state != X ]] || return 1
    echo "$pid"
}

# ---- install

require_root_and_apt() {
    ((EUID == 0)) || die "must run as root (it installs packages and starts system daemons)"
    command -v apt-get >/dev/null || die "needs apt-get (Debian or Ubuntu)"
}

install_packages() {
    local missing=() package
    for package in "${PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "ok installed" ||
            missing+=("$package")
    done
    ((${#missing[@]})) || return 0
    say "installing ${missing[*]}"
    local apt=(timeout -k 10 "$APT_TIMEOUT" env DEBIAN_FRONTEND=noninteractive
        apt-get -q -o DPkg::Lock::Timeout=300)
    # Try the package lists there are; update them only when that fails (fresh machine).
    if ! "${apt[@]}" install -y --no-install-recommends "${missing[@]}" >"$LOG/apt.log" 2>&1; then
        "${apt[@]}" update >>"$LOG/apt.log" 2>&1 || {
            tail -n 20 "$LOG/apt.log" >&2
            die "apt-get update failed (log: $LOG/apt.log)"
        }
        "${apt[@]}" install -y --no-install-recommends "${missing[@]}" >>"$LOG/apt.log" 2>&1 || {
            tail -n 20 "$LOG/apt.log" >&2
            die "apt-get install ${missing[*]} failed (log: $LOG/apt.log)"
        }
    fi
}

# ---- configuration

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

write_configs() {
    [[ -f $SLURM_CONF ]] && return 0 # written by an earlier `start`
    local port
    for port in "$CTLD_PORT" "$SLURMD_PORT" "$DBD_PORT" "$DB_PORT"; do
        ! port_in_use "$port" || die "port $port on 127.0.0.1 is in use: set SLURM_LOCAL_PORT_BASE"
    done
    mkdir -p "$ETC" "$STATE/spool/slurmctld" "$STATE/spool/slurmd" "$STATE/dev"
    # gres.conf wants a device file per GPU: these are what /dev/null is
    mknod "$STATE/dev/gpu0" c 1 3
    mknod "$STATE/dev/gpu1" c 1 3
    mungekey --create --keyfile="$ETC/munge.key"
    od -An -tx1 -N16 /dev/urandom | tr -d ' \n' >"$ETC/db-password"
    chmod 600 "$ETC/db-password"

    local hardware
    hardware=$(slurmd -C | head -n 1 | sed 's/^NodeName=[^ ]* //') # CPUs=… RealMemory=…
    cat >"$ETC/slurm.conf" <<EOF
ClusterName=sdcnnlocal
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$MUNGE_SOCKET
CredType=cred/munge
StateSaveLocation=$STATE/spool/slurmctld
SlurmdSpoolDir=$STATE/spool/slurmd
SlurmctldPidFile=$RUN/slurmctld.slurm-pid
SlurmdPidFile=$RUN/slurmd.slurm-pid
SlurmctldLogFile=$LOG/slurmctld.log
SlurmdLogFile=$LOG/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
MpiDefault=none
ReturnToService=2
MailProg=/bin/true
JobCompType=jobcomp/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStoragePort=$DBD_PORT
# for slurmdbd this is the MUNGE socket slurmctld authenticates through
AccountingStoragePass=$MUNGE_SOCKET
AccountingStorageTRES=gres/gpu
GresTypes=gpu
NodeName=localhost NodeAddr=127.0.0.1 $hardware Gres=gpu:fake:2 State=UNKNOWN
PartitionName=cpu Nodes=localhost Default=YES MaxTime=INFINITE State=UP
PartitionName=gpu Nodes=localhost MaxTime=INFINITE State=UP
EOF
    cat >"$ETC/gres.conf" <<EOF
NodeName=localhost Name=gpu Type=fake File=$STATE/dev/gpu[0-1]
EOF
    cat >"$ETC/slurmdbd.conf" <<EOF
AuthType=auth/munge
AuthInfo=socket=$MUNGE_SOCKET
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort=$DBD_PORT
SlurmUser=root
LogFile=$LOG/slurmdbd.log
PidFile=$RUN/slurmdbd.slurm-pid
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DB_PORT
StorageUser=slurm
StoragePass=$(<"$ETC/db-password")
StorageLoc=slurm_acct_db
EOF
    chmod 600 "$ETC/slurmdbd.conf" # slurmdbd refuses a config others can read

    # Snakemake's SLURM job step runs each job through srun after dropping every SLURM_*
    # variable, SLURM_CONF too (snakemake-executor-plugin-slurm issue #164): fine where the
    # config is at /etc/slurm/slurm.conf, not here. This srun, first on the PATH, puts it back.
    mkdir -p "$STATE/bin"
    cat >"$STATE/bin/srun" <<EOF
#!/bin/sh
SLURM_CONF='$SLURM_CONF' exec $(command -v srun) "\$@"
EOF
    chmod 755 "$STATE/bin/srun"
}

# ---- start

# Start a daemon in the foreground of its own session, detached from ours; record its PID.
launch() {
    local name=$1
    shift
    setsid "$@" </dev/null >>"$LOG/$name.out" 2>&1 &
    local pid=$! deadline=$((SECONDS + 10))
    echo "$pid" >"$(pid_file "$name")"
    # That PID runs bash, then setsid, then the daemon: until the last exec, running_pid
    # would take it for another program. Wait for it (bounded); an early exit is for
    # wait_until to report.
    until [[ $(cat "/proc/$pid/comm" 2>/dev/null) == "$name" || ! -e /proc/$pid ]]; do
        ((SECONDS < deadline)) || die "$name was not running 10 s after its start"
        sleep 0.05
    done
}

# Wait, at most START_TIMEOUT seconds, until "$@" succeeds; fail early if the daemon died.
wait_until() {
    local name=$1 deadline=$((SECONDS + START_TIMEOUT))
    shift
    until "$@" >/dev/null 2>&1; do
        if ! running_pid "$name" >/dev/null; then
            tail -n 20 "$LOG/$name.out" >&2 || true
            die "$name exited while starting (log: $LOG/$name.out)"
        fi
        if ((SECONDS >= deadline)); then
            tail -n 20 "$LOG/$name.out" >&2 || true
            die "$name did not come up within ${START_TIMEOUT} s (log: $LOG/$name.out)"
        fi
        sleep 0.25
    done
}

# Readiness checks; each client call is bounded too (a client can block on a dead socket).
bounded() { timeout -k 2 10 "$@"; }
munge_works() { bounded munge -n -S "$MUNGE_SOCKET" | bounded unmunge -S "$MUNGE_SOCKET"; }
database_answers() { bounded mariadb-admin --no-defaults --socket="$DB_SOCKET" ping; }
accounting_answers() { bounded sacctmgr -n show cluster; }
controller_answers() { bounded scontrol ping | grep -q "is UP"; }
node_is_idle() { [[ $(bounded sinfo -h -N -n localhost -p cpu -o %t) == idle ]]; }

start_munged() {
    rm -f "$MUNGE_SOCKET" "$MUNGE_SOCKET.lock"
    launch munged munged --foreground --force --socket="$MUNGE_SOCKET" \
        --key-file="$ETC/munge.key" --pid-file="$RUN/munged.munge-pid" \
        --seed-file="$STATE/munged.seed"
    wait_until munged munge_works
}

start_mariadbd() {
    local fresh=0
    if [[ ! -d $STATE/mariadb/mysql ]]; then
        fresh=1
        mariadb-install-db --no-defaults --user=root --datadir="$STATE/mariadb" \
            --auth-root-authentication-method=socket --skip-test-db >"$LOG/mariadb-install.log" 2>&1 ||
            die "mariadb-install-db failed (log: $LOG/mariadb-install.log)"
    fi
    launch mariadbd mariadbd --no-defaults --user=root --datadir="$STATE/mariadb" \
        --socket="$DB_SOCKET" --bind-address=127.0.0.1 --port="$DB_PORT" \
        --pid-file="$RUN/mariadbd.mariadb-pid" --skip-log-bin --innodb-buffer-pool-size=64M
    wait_until mariadbd database_answers
    if ((fresh)); then
        mariadb --no-defaults --socket="$DB_SOCKET" -u root <<EOF
CREATE DATABASE slurm_acct_db;
CREATE USER 'slurm'@'127.0.0.1' IDENTIFIED BY '$(<"$ETC/db-password")';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';
EOF
    fi
}

start_slurmdbd() {
    launch slurmdbd slurmdbd -D
    wait_until slurmdbd accounting_answers
}

start_slurmctld() {
    launch slurmctld slurmctld -D # registers the cluster with slurmdbd itself
    wait_until slurmctld controller_answers
}

start_slurmd() {
    launch slurmd slurmd -D -N localhost
    wait_until slurmd node_is_idle
}

# A job that asks for the GPU runs and sees it: the proof that the cluster works.
check_gpu_job() {
    local visible
    visible=$(timeout -k 5 "$START_TIMEOUT" srun --partition=gpu --gpus=1 --mem=10 --time=1 \
        printenv CUDA_VISIBLE_DEVICES 2>"$LOG/check.err") || {
        cat "$LOG/check.err" >&2
        die "a test job on the gpu partition did not run"
    }
    [[ $visible == [01] ]] || die "a GPU job saw CUDA_VISIBLE_DEVICES='$visible', not 0 or 1"
}

STARTED=() # the daemons this `start` launched: stopped again if it fails half-way

stop_started_on_failure() {
    local status=$?
    if ((status != 0 && ${#STARTED[@]})); then
        say "stopping what this start launched: ${STARTED[*]}"
        stop "${STARTED[@]}"
    fi
    exit "$status"
}

start() {
    require_root_and_apt
    mkdir -p "$STATE" "$RUN" "$LOG"
    install_packages
    write_configs
    trap stop_started_on_failure EXIT
    local daemon
    for daemon in "${DAEMONS[@]}"; do
        if running_pid "$daemon" >/dev/null; then
            continue
        fi
        STARTED+=("$daemon")
        "start_$daemon"
    done
    check_gpu_job
    say "up (started: ${STARTED[*]:-none, all were running}); for clients and snakemake:"
    say "  export SLURM_CONF=$SLURM_CONF PATH=$STATE/bin:\$PATH"
}

# ---- stop

stop_daemon() {
    local name=$1 pid deadline
    pid=$(running_pid "$name") || {
        rm -f "$(pid_file "$name")"
        return 0
    }
    kill -TERM "$pid" 2>/dev/null || true
    deadline=$((SECONDS + STOP_TIMEOUT))
    while running_pid "$name" >/dev/null && ((SECONDS < deadline)); do
        sleep 0.25
    done
    if running_pid "$name" >/dev/null; then
        say "$name (pid $pid) ignored SIGTERM for ${STOP_TIMEOUT} s: killing it"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$(pid_file "$name")"
}

# Before the whole cluster goes, end its jobs: their processes are not the daemons' children.
cancel_all_jobs() {
    controller_answers 2>/dev/null || return 0
    local deadline=$((SECONDS + STOP_TIMEOUT))
    bounded scancel --quiet --user="$(id -un)" || true
    while [[ -n $(bounded squeue -h -o %i 2>/dev/null) ]] && ((SECONDS < deadline)); do
        sleep 0.25
    done
}

stop() {
    local names=("$@") index name
    ((${#names[@]})) || names=("${DAEMONS[@]}")
    for name in "${names[@]}"; do
        [[ " ${DAEMONS[*]} " == *" $name "* ]] || die "unknown daemon '$name' (${DAEMONS[*]})"
    done
    [[ " ${names[*]} " == *" slurmd "* ]] && cancel_all_jobs
    for ((index = ${#DAEMONS[@]} - 1; index >= 0; index--)); do # reverse start order
        name=${DAEMONS[index]}
        [[ " ${names[*]} " == *" $name "* ]] && stop_daemon "$name"
    done
    return 0
}

status() {
    local name pid
    for name in "${DAEMONS[@]}"; do
        if pid=$(running_pid "$name"); then
            echo "$name running (pid $pid)"
        else
            echo "$name stopped"
        fi
    done
}

(($# >= 2)) || usage
action=$1
set_paths "$2"
shift 2
case $action in
start | status)
    (($# == 0)) || usage
    "$action"
    ;;
stop) stop "$@" ;;
*) usage ;;
esac
