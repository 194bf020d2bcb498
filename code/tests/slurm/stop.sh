#!/usr/bin/env bash
# Stops what start.sh started: the jobs, then slurmd (and its job steps), slurmctld, munged.
# Politely first (SIGTERM, 10 s), then SIGKILL: a step left behind would hold the next start.sh up.
DAEMONS=(slurmd slurmstepd slurmctld munged)
alive() { for name in "${DAEMONS[@]}"; do pgrep -r R,S,D -x "$name"; done; }  # zombies do not count
scancel --user=root 2>/dev/null || true
for _ in $(seq 75); do [ -z "$(squeue -h 2>/dev/null)" ] && break; sleep 0.2; done  # jobs end while slurmctld listens
for name in slurmd slurmctld munged; do pkill -x "$name" || true; done
for _ in $(seq 50); do [ -z "$(alive)" ] && exit 0; sleep 0.2; done
for pid in $(alive); do kill -KILL "$pid" 2>/dev/null || true; done
sleep 0.5
if [ -n "$(alive)" ]; then echo "stop.sh: still alive: $(alive | xargs)" >&2; exit 1; fi
