#!/usr/bin/env bash
# Stops what start.sh started: the jobs, then slurmd (and its job steps), slurmctld, munged.
# Politely first (SIGTERM, 10 s), then SIGKILL: a step left behind would hold the next start.sh up.
scancel --user=root 2>/dev/null || true
pattern='slurmd|slurmstepd|slurmctld|munged'
pkill -x 'slurmd|slurmctld|munged' || true
for _ in $(seq 50); do pgrep -r R,S,D -x "$pattern" >/dev/null || exit 0; sleep 0.2; done
pkill -KILL -x "$pattern" || true
sleep 0.5
if pgrep -r R,S,D -x "$pattern" >/dev/null; then echo "stop.sh: still alive: $(pgrep -a -x "$pattern")" >&2; exit 1; fi
