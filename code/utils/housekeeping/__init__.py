"""housekeeping: a year of results: disk use (usage), old checkpoints removed (collect), runs
removed and restored (trash), archives (archive) and runs of another clone merged in (merge)."""
