"""sweep: one run per combination of a sweep file, in parallel on CPU workers, GPUs, Ray or Slurm.

Every run is a plain `python code/utils/cli.py run <tag> key=value ...` subprocess, so every rule
of `run` holds for it (tag on HEAD, clean code/, atomic ids); the sweep decides what to start
where, and reports. A combination with a finished run under the tag is not run again: repeating
the command resumes an interrupted sweep, and continues (`con`) a run of it that was interrupted
with a checkpoint. Each run writes its name `tag/id` into the pipe RUNTAG_NAME_FD names
(utils/supervisor.py), which is how the sweep tells which run is which. A sweep is owned like a run:
one driver per tag (a lock), its runs die with it (SIGTERM: they end `interrupted`), it outlives
its terminal, and a killed driver leaves no file behind.

    plan.py     the sweep file: YAML documents -> the list of combinations (overrides dicts)
    space.py    a file with `search:`: its settings and its space of distributions and lists
    search.py   a search's Optuna study in a file journal: trials asked, watched, pruned, told
    journal.py  that journal checked before Optuna reads it: a torn last line set aside, a damaged line refused
    reconcile.py  trials a gone driver left running, ended as their runs' records say
    verb.py     the `sweep` command: flags, git checks, the backend driven, the summary
    owner.py    one driver per sweep (a lock on __statistic__/sweep/<tag>.lock), and its closed terminal
    resume.py   what a repeat finds: runs still ending to wait for, finished ones, ones to continue
    drive.py    the jobs through a pool: START/DONE/FAIL lines, progress bar, Ctrl-C
    queued.py   `sweep --queue`: each combination left made a queued run (utils/runqueue/), and return
    job.py      Job (a combination and its outcome), Child (one `run` subprocess that dies with us, followed)
    local.py    backend `local`: worker threads on this machine (--workers, --gpus, --per-gpu)
    raypool.py  backend `ray`: one Ray task per run (--address)
    slurmarray.py  backend `slurm`: one Slurm job array, submitted; the command exits (utils/submit.py)

A backend is a module named in verb.BACKENDS, with:
    HELP              its clause of --backend's help
    OPTIONS           the dests of its own flags ("address"): given with another backend, a mistake
    add_options(p)    adds those flags to the parser
    check(args, gpus) its flag checks, a UserError each (imports what it needs lazily: Ray)
    Pool(args, gpus)  .start(jobs, cmd, events) runs the jobs (a list, or a search's iterator that asks
                      each trial when a worker frees up) in the background: cmd(job) is
                      the `run` (or `continue`) command, each event ("start" | "end", job) goes to the queue
                      `events`, with job.name/rc/seconds/why filled in; .alive() until every event
                      is out; .stop() starts no more runs and interrupts the running ones;
                      .interrupt(job) interrupts one (a search prunes it).
                      A backend that hands the runs to a scheduler has submit_runs(args, todo, tag_it)
                      instead: it submits the combinations `todo`, calling tag_it() first, and returns.
"""
