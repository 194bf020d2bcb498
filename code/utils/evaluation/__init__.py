"""`eval` (shell `expeval`): finished runs' checkpoints scored again, the metrics added to their records."""
