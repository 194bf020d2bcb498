#!/usr/bin/env bash
# Stops what start.sh started: the jobs, slurmd, slurmctld, munged.
scancel --user=root 2>/dev/null || true
for daemon in slurmd slurmctld munged; do pkill -x "$daemon" || true; done
for _ in $(seq 50); do pgrep -x 'slurmd|slurmctld|munged' >/dev/null || exit 0; sleep 0.2; done
echo "stop.sh: a daemon is still alive: $(pgrep -a -x 'slurmd|slurmctld|munged')" >&2; exit 1
