#!/usr/bin/env bash
# A real one-node SLURM cluster on this machine, for CI: slurmctld, slurmd and accounting
# (slurmdbd on MariaDB), every daemon listening on 127.0.0.1 only, one fake GPU.
#
#   .ci/slurm-cluster.sh start  [BASE]   install (apt) if needed, configure, start, wait for idle
#   .ci/slurm-cluster.sh stop   [BASE]   stop every daemon by its pid file; nothing is left running
#                                        (/etc/slurm/{slurm,gres}.conf stay, for the next start)
#   .ci/slurm-cluster.sh status [BASE]   exit 0 when the node is up and idle or busy
#
# BASE (default /tmp/prunebench-slurm, or $PRUNEBENCH_SLURM_BASE) holds the configs, the munge
# key and socket, MariaDB's datadir, state, spool, pid and log files. The config is also copied
# to /etc/slurm/slurm.conf (and gres.conf): the executor plugin's inner `srun` runs with every
# SLURM_* variable stripped, SLURM_CONF included, so clients must find it at the built-in path.
# Needs root (daemons run as root; apt-get installs missing packages). Debian/Ubuntu only.
#
# The node has one fake GPU (`Gres=gpu:fake:1`, gres.conf `File=/dev/null`) so that rules with
# `gpu=1` are submitted with `--gpus=1` exactly as on a real cluster; jobs see
# CUDA_VISIBLE_DEVICES=0 but no real device, so CI must train with device cpu.
# KillWait=60: a cancelled, preempted or timed-out job gets SIGTERM and 60 s to checkpoint
# before SIGKILL.
set -euo pipefail

usage() { echo "usage: $0 start|stop|status [BASE]" >&2; exit 2; }
[ $# -ge 1 ] || usage
ACTION=$1
BASE=${2:-${PRUNEBENCH_SLURM_BASE:-/tmp/prunebench-slurm}}
mkdir -p "$BASE" 2>/dev/null || true
BASE=$(cd "$BASE" 2>/dev/null && pwd || echo "$BASE")

HOST=$(hostname -s)
CTLD_PORT=${SLURM_CI_CTLD_PORT:-6817}
SLURMD_PORT=${SLURM_CI_SLURMD_PORT:-6818}
DBD_PORT=${SLURM_CI_DBD_PORT:-6819}
DB_PORT=${SLURM_CI_DB_PORT:-3306}
TIMEOUT=${SLURM_CI_TIMEOUT:-60}     # seconds to wait for any one daemon
ETC=/etc/slurm
MARK="# written by prunebench .ci/slurm-cluster.sh"

PACKAGES="slurmctld slurmd slurm-client munge slurmdbd mariadb-server"
BINARIES="slurmctld slurmd sinfo sbatch sacct sacctmgr scontrol munged mungekey slurmdbd mariadbd mariadb-install-db mariadb-admin mariadb"

say() { echo "slurm-cluster: $*"; }
die() { echo "slurm-cluster: error: $*" >&2; exit 1; }

# wait_for SECONDS WHAT COMMAND...: poll COMMAND every 0.2 s until it succeeds or time runs out.
wait_for() {
  local limit=$1 what=$2; shift 2
  local deadline=$(( $(date +%s) + limit ))
  until "$@" >/dev/null 2>&1; do
    if [ "$(date +%s)" -ge "$deadline" ]; then
      echo "slurm-cluster: error: timed out after ${limit}s waiting for $what" >&2
      return 1
    fi
    sleep 0.2
  done
}

pid_alive() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

# stop_pid NAME PIDFILE: SIGTERM, wait up to 20 s, then SIGKILL; remove the pid file.
stop_pid() {
  local name=$1 pidfile=$2 pid
  if ! [ -s "$pidfile" ]; then return 0; fi
  pid=$(cat "$pidfile")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    if ! wait_for 20 "$name (pid $pid) to exit" bash -c "! kill -0 $pid"; then
      say "$name (pid $pid) ignored SIGTERM; sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      wait_for 5 "$name (pid $pid) to die" bash -c "! kill -0 $pid" || true
    fi
    say "stopped $name (pid $pid)"
  fi
  rm -f "$pidfile"
}

install_packages() {
  local missing=""
  for b in $BINARIES; do command -v "$b" >/dev/null 2>&1 || missing="$missing $b"; done
  [ -z "$missing" ] && return 0
  [ "$(id -u)" = 0 ] || die "missing$missing; run as root so apt-get can install: $PACKAGES"
  command -v apt-get >/dev/null || die "missing$missing and no apt-get here; install: $PACKAGES"
  say "installing $PACKAGES (missing:$missing)"
  local t0=$SECONDS
  export DEBIAN_FRONTEND=noninteractive
  timeout 600 apt-get update -qq || die "apt-get update failed"
  timeout 900 apt-get install -y -qq $PACKAGES >"$BASE/log/apt-install.log" 2>&1 \
    || { tail -20 "$BASE/log/apt-install.log" >&2; die "apt-get install failed (log: $BASE/log/apt-install.log)"; }
  say "installed in $(( SECONDS - t0 )) s"
  for b in $BINARIES; do command -v "$b" >/dev/null 2>&1 || die "$b still missing after apt-get install"; done
}

write_configs() {
  local ncpu mem
  ncpu=$(nproc)
  mem=$(awk '/^MemTotal:/ {printf "%d", $2 / 1024 * 0.85}' /proc/meminfo)
  # Daemons bind to the address the host name resolves to instead of every interface: that is
  # loopback only where the host name resolves to 127.x (as on Debian CI machines).
  local COMM="# bind to what $HOST resolves to (127.x): loopback only
CommunicationParameters=NoInAddrAny,NoCtldInAddrAny"
  if ! getent ahostsv4 "$HOST" 2>/dev/null | awk '{print $1}' | grep -q '^127\.'; then
    # Never listen beyond loopback: refuse rather than bind every interface.
    say "error: $HOST does not resolve to 127.x, so the daemons could not stay on loopback;"
    say "       add '127.0.1.1 $HOST' to /etc/hosts and start again"
    exit 1
  fi
  cat >"$BASE/etc/slurm.conf" <<EOF
$MARK for BASE=$BASE
ClusterName=ci
SlurmctldHost=$HOST(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
# cred_expire (default 120 s) is also how long a requeued job waits before it may start again
AuthInfo=socket=$BASE/run/munge.socket,cred_expire=20
CredType=cred/munge
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
$COMM
StateSaveLocation=$BASE/state
SlurmdSpoolDir=$BASE/spool
SlurmctldPidFile=$BASE/run/slurmctld.pid
SlurmdPidFile=$BASE/run/slurmd.pid
SlurmctldLogFile=$BASE/log/slurmctld.log
SlurmdLogFile=$BASE/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
# backfill every 2 s (default 30 s): short jobs start beside a job waiting for the one GPU;
# the main scheduler every 5 s (default 60 s): a requeued job starts soon after it may
SchedulerParameters=bf_interval=2,sched_interval=5
MpiDefault=none
ReturnToService=2
MinJobAge=600
DefMemPerCPU=500
# SIGTERM first, SIGKILL KillWait seconds later: time for training to write its checkpoint
KillWait=60
JobRequeue=1
GresTypes=gpu
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/filetxt
JobCompLoc=$BASE/log/jobcomp.txt
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStoragePort=$DBD_PORT
AccountingStoragePass=$BASE/run/munge.socket
AccountingStorageTRES=gres/gpu,gres/gpu:fake
AccountingStoreFlags=job_comment
NodeName=$HOST NodeAddr=127.0.0.1 NodeHostname=$HOST CPUs=$ncpu RealMemory=$mem Gres=gpu:fake:1 State=UNKNOWN
PartitionName=debug Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
EOF
  cat >"$BASE/etc/gres.conf" <<EOF
$MARK for BASE=$BASE
AutoDetect=off
NodeName=$HOST Name=gpu Type=fake File=/dev/null
EOF
  (umask 077; cat >"$BASE/etc/slurmdbd.conf" <<EOF
$MARK for BASE=$BASE
AuthType=auth/munge
AuthInfo=socket=$BASE/run/munge.socket
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort=$DBD_PORT
$(grep -q NoInAddrAny <<<"$COMM" && echo CommunicationParameters=NoInAddrAny)
SlurmUser=root
LogFile=$BASE/log/slurmdbd.log
PidFile=$BASE/run/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DB_PORT
StorageUser=slurm
StoragePass=slurm-ci
StorageLoc=slurm_acct_db
EOF
  )
  chmod 600 "$BASE/etc/slurmdbd.conf"
  # the built-in path, for the clients (and the plugin's inner srun, which drops SLURM_CONF)
  mkdir -p "$ETC"
  local f
  for f in slurm.conf gres.conf; do
    if [ -e "$ETC/$f" ] && ! grep -q "^$MARK" "$ETC/$f" && ! [ -e "$ETC/$f.prunebench-saved" ]; then
      say "saving the existing $ETC/$f as $ETC/$f.prunebench-saved"
      mv "$ETC/$f" "$ETC/$f.prunebench-saved"
    fi
    cp "$BASE/etc/$f" "$ETC/$f.tmp" && mv "$ETC/$f.tmp" "$ETC/$f"
  done
}

sql() { mariadb --no-defaults --socket="$BASE/run/mysqld.sock" -u root "$@"; }

start_mariadb() {
  if ! [ -d "$BASE/mysql/mysql" ]; then
    rm -rf "$BASE/mysql"
    mariadb-install-db --no-defaults --datadir="$BASE/mysql" --user=root \
      --auth-root-authentication-method=socket --skip-test-db >"$BASE/log/mariadb-install.log" 2>&1 \
      || { tail -20 "$BASE/log/mariadb-install.log" >&2; die "mariadb-install-db failed"; }
  fi
  setsid nohup mariadbd --no-defaults --user=root --datadir="$BASE/mysql" \
    --bind-address=127.0.0.1 --port="$DB_PORT" --socket="$BASE/run/mysqld.sock" \
    --pid-file="$BASE/run/mariadb.pid" --log-error="$BASE/log/mariadb.log" \
    --innodb-buffer-pool-size=64M --skip-name-resolve </dev/null >/dev/null 2>&1 &
  wait_for "$TIMEOUT" "MariaDB on 127.0.0.1:$DB_PORT (log: $BASE/log/mariadb.log)" \
    mariadb-admin --no-defaults --socket="$BASE/run/mysqld.sock" -u root ping
  wait_for 10 "MariaDB's pid file" test -s "$BASE/run/mariadb.pid"
  sql -e "CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY 'slurm-ci';
          CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY 'slurm-ci';
          GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';
          GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';"
}

status() {
  pid_alive "$BASE/run/slurmctld.pid" && pid_alive "$BASE/run/slurmd.pid" || return 1
  local st
  st=$(timeout 10 sinfo -h -o %T 2>/dev/null | head -1) || return 1
  case "$st" in idle|mixed|allocated|completing) echo "$st"; return 0 ;; *) return 1 ;; esac
}

start() {
  [ "$(id -u)" = 0 ] || die "must run as root (the daemons run as root)"
  mkdir -p "$BASE"/{etc,run,log,state,spool}
  chmod 755 "$BASE" "$BASE/run"
  if st=$(status); then
    say "already up under $BASE (node $HOST: $st)"
    return 0
  fi
  install_packages
  # Half-started leftovers of an earlier run go first.
  stop quiet
  local t0
  t0=$(date +%s%N)
  write_configs
  export SLURM_CONF=$BASE/etc/slurm.conf

  [ -s "$BASE/etc/munge.key" ] || mungekey --create --keyfile="$BASE/etc/munge.key" >/dev/null
  chmod 600 "$BASE/etc/munge.key"
  munged --force --key-file="$BASE/etc/munge.key" --socket="$BASE/run/munge.socket" \
    --pid-file="$BASE/run/munged.pid" --log-file="$BASE/log/munged.log" \
    --seed-file="$BASE/run/munged.seed" \
    || die "munged did not start (log: $BASE/log/munged.log)"
  wait_for "$TIMEOUT" "munged (log: $BASE/log/munged.log)" \
    bash -c "munge -S '$BASE/run/munge.socket' -n | unmunge -S '$BASE/run/munge.socket'"

  start_mariadb

  slurmdbd || die "slurmdbd did not start (log: $BASE/log/slurmdbd.log)"
  wait_for "$TIMEOUT" "slurmdbd on 127.0.0.1:$DBD_PORT (log: $BASE/log/slurmdbd.log)" \
    bash -c "exec 3<>/dev/tcp/127.0.0.1/$DBD_PORT"

  slurmctld -i || die "slurmctld did not start (log: $BASE/log/slurmctld.log)"
  wait_for "$TIMEOUT" "slurmctld (log: $BASE/log/slurmctld.log)" timeout 5 scontrol ping
  slurmd || die "slurmd did not start (log: $BASE/log/slurmd.log)"
  wait_for "$TIMEOUT" "node $HOST to be idle (logs: $BASE/log/slurmd.log, slurmctld.log)" \
    bash -c "timeout 5 sinfo -h -o %T | grep -qx idle"
  # The cluster and root's account are created by slurmctld on registration; wait for them so
  # the first `sbatch -A root` does not race them.
  wait_for "$TIMEOUT" "the root account in slurmdbd" \
    bash -c "timeout 5 sacctmgr -n -P show assoc where user=root account=root | grep -q root"
  local t1
  t1=$(date +%s%N)
  say "up under $BASE: node $HOST ($(nproc) CPUs, gpu:fake:1), partition debug, accounting on"
  local ms=$(( (t1 - t0) / 1000000 ))
  printf 'slurm-cluster: start-up time %d.%03d s\n' $(( ms / 1000 )) $(( ms % 1000 ))
}

stop() {
  local quiet=${1:-}
  export SLURM_CONF=$BASE/etc/slurm.conf
  # Cancel what is left and let SLURM end it (SIGTERM, SIGKILL after KillWait) while slurmd
  # still runs, so that no job process outlives the cluster.
  if pid_alive "$BASE/run/slurmctld.pid" && pid_alive "$BASE/run/slurmd.pid" \
      && [ -n "$(timeout 10 squeue -h -o %i 2>/dev/null)" ]; then
    say "cancelling the jobs still queued or running"
    timeout 10 scancel --full --user=root >/dev/null 2>&1 || true
    wait_for 90 "cancelled jobs to end" bash -c '[ -z "$(timeout 5 squeue -h -o %i)" ]' || true
  fi
  stop_pid slurmd "$BASE/run/slurmd.pid"
  stop_pid slurmctld "$BASE/run/slurmctld.pid"
  stop_pid slurmdbd "$BASE/run/slurmdbd.pid"
  stop_pid mariadbd "$BASE/run/mariadb.pid"
  stop_pid munged "$BASE/run/munged.pid"
  [ -z "$quiet" ] && say "stopped (nothing of $BASE is running)"
  return 0
}

case "$ACTION" in
  start) start ;;
  stop) stop ;;
  status)
    if st=$(status); then say "up under $BASE: node $HOST is $st"; else say "not running under $BASE"; exit 1; fi ;;
  *) usage ;;
esac
