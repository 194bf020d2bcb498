#!/usr/bin/env bash
# A one-node Slurm on this machine, for the Slurm tests (code/tests/test_slurm.py), as root:
#   apt-get install -y slurm-wlm munge && bash code/tests/slurm/start.sh   ... bash code/tests/slurm/stop.sh
# munged, slurmctld and slurmd, no systemd, no accounting database. SlurmUser root,
# proctrack/linuxproc, select/cons_tres: one partition `debug` of this machine's cores.
set -euo pipefail
CONF=/etc/slurm/slurm.conf
MARK="# runtag: a one-node Slurm for the tests"
STATE=/var/spool/runtag-slurm
command -v slurmctld >/dev/null || { echo "start.sh: no slurmctld — apt-get install -y slurm-wlm munge" >&2; exit 2; }
if [ -e "$CONF" ] && ! grep -qF "$MARK" "$CONF"; then
    echo "start.sh: $CONF is not ours — stop: this script would replace a real cluster's configuration" >&2; exit 2
fi
host=$(hostname -s)
read -r cpus mem < <(slurmd -C | sed -n 's/.*CPUs=\([0-9]*\).*RealMemory=\([0-9]*\).*/\1 \2/p')
mkdir -p /etc/slurm "$STATE/ctld" "$STATE/d" "$STATE/log" /run/munge
cat > "$CONF" <<CONF
$MARK (code/tests/slurm/start.sh)
ClusterName=runtag
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=none
ReturnToService=2
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
KillWait=10
MinJobAge=300
SchedulerParameters=batch_sched_delay=0,sched_min_interval=0
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/d
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
NodeName=$host CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF
chown munge:munge /run/munge
alive() { pgrep -r R,S,D -x "$1" >/dev/null; }  # a zombie left by an earlier cluster does not count
alive munged || runuser -u munge -- munged
alive slurmctld || slurmctld
alive slurmd || slurmd
for _ in $(seq 50); do  # the node reports idle within a few seconds
    sinfo -h -o %t 2>/dev/null | grep -qx idle && { echo "start.sh: Slurm is up: $(sinfo -h -o '%P %D %c %t')"; exit 0; }
    sleep 0.2
done
echo "start.sh: the node did not come up — see $STATE/log/" >&2; exit 1
