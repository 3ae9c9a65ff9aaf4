#!/usr/bin/env bash
# A one-host Slurm for trying (and testing) the job array of docs/cluster.md:
# this host is the controller and the only node, with all its cores.
#   deploy/slurm/local-slurm.sh start    # as root: install slurm-wlm and munge if missing, configure, start, wait until idle
#   deploy/slurm/local-slurm.sh stop     # stop the daemons started by `start`
# Everything lives under $SLURM_LOCAL_DIR (default /var/tmp/sluice-slurm): the
# configuration, the munge key, state, logs and pid files. Nothing else on the
# host is changed but the packages (and /etc/slurm/slurm.conf, a link to ours,
# which the clients read).
set -euo pipefail
dir=${SLURM_LOCAL_DIR:-/var/tmp/sluice-slurm}
host=$(hostname -s)
cores=$(nproc)
memory_mb=$(($(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 512))

install_packages() {
    command -v slurmctld > /dev/null && command -v munged > /dev/null && return
    [ "$(id -u)" = 0 ] || { echo "local-slurm: slurm-wlm and munge are missing; run as root to install them" >&2; exit 2; }
    { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends slurm-wlm munge; } > "$dir/install.log" 2>&1 \
        || { echo "local-slurm: installing slurm-wlm and munge failed; see $dir/install.log" >&2; exit 2; }
}

write_configuration() {
    mkdir -p "$dir/state" "$dir/spool" "$dir/log" /etc/slurm /run/munge /var/log/munge /var/lib/munge /etc/munge
    [ -s /etc/munge/munge.key ] || dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
    chmod 0400 /etc/munge/munge.key
    chown -R munge:munge /etc/munge /run/munge /var/log/munge /var/lib/munge 2> /dev/null || true
    # No cgroups, accounting or systemd: a container or a CI sandbox has none to give.
    cat > "$dir/slurm.conf" <<CONF
ClusterName=sluice-local
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MpiDefault=none
NodeName=$host CPUs=$cores RealMemory=$memory_mb State=UNKNOWN
PartitionName=local Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF
    ln -sf "$dir/slurm.conf" /etc/slurm/slurm.conf
}

wait_for_idle() {
    for _ in $(seq 1 60); do
        state=$(sinfo -h -n "$host" -o %T 2> /dev/null || true)
        case "$state" in idle*) echo "local-slurm: node $host idle ($cores CPUs)"; return ;; esac
        sleep 1
    done
    echo "local-slurm: node $host did not become idle (state: ${state:-none}); logs in $dir/log" >&2
    exit 2
}

start() {
    mkdir -p "$dir"
    install_packages
    write_configuration
    pgrep -x munged > /dev/null || runuser -u munge -- /usr/sbin/munged --pid-file=/run/munge/munged.pid 2> /dev/null \
        || /usr/sbin/munged --force
    pgrep -x slurmctld > /dev/null || /usr/sbin/slurmctld -i -f "$dir/slurm.conf"
    pgrep -x slurmd > /dev/null || /usr/sbin/slurmd -f "$dir/slurm.conf"
    wait_for_idle
}

stop() {
    for daemon in slurmd slurmctld munged; do pkill -x "$daemon" 2> /dev/null || true; done
    for _ in $(seq 1 20); do
        pgrep -x slurmd > /dev/null || pgrep -x slurmctld > /dev/null || pgrep -x munged > /dev/null || break
        sleep 0.5
    done
    echo "local-slurm: stopped"
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
