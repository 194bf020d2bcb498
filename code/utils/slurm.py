"""slurm: what Slurm says about jobs (squeue, sacct) and what a job's environment says about
itself. Plain subprocess calls: listing runs never imports submitit (utils/submit.py does that)."""
import os

WAITING = {"PENDING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "RESV_DEL_HOLD", "SUSPENDED"}
RUNNING = {"RUNNING", "CONFIGURING", "COMPLETING", "RESIZING", "SIGNALING", "STAGE_OUT"}
ENDS = {"CANCELLED", "TIMEOUT", "PREEMPTED", "NODE_FAIL", "OUT_OF_MEMORY", "DEADLINE"}  # why, shown as is
ASKED = ("running", "interrupted")  # recorded statuses that a job's state may contradict: see runs.status


def job_id():
    """This job's id as squeue takes it (`123_4` for task 4 of array 123); None outside a job."""
    array, task = os.environ.get("SLURM_ARRAY_JOB_ID"), os.environ.get("SLURM_ARRAY_TASK_ID")
    return f"{array}_{task}" if array and task else os.environ.get("SLURM_JOB_ID")


def job_fields():
    """The record's Slurm keys for a run started in a job: its id, its array task, how often
    Slurm requeued it. {} outside a job."""
    job = job_id()
    if not job:
        return {}
    fields = {"slurm_job_id": job, "requeues": int(os.environ.get("SLURM_RESTART_COUNT") or 0)}
    if os.environ.get("SLURM_ARRAY_TASK_ID"):
        fields["slurm_array_task_id"] = int(os.environ["SLURM_ARRAY_TASK_ID"])
    return fields


def available(command="squeue"):
    import shutil  # here: listings import this module, and most of them ask Slurm nothing
    return shutil.which(command) is not None


def states(jobs):
    """{job id: Slurm state (PENDING, RUNNING, CANCELLED, ...)} of the jobs Slurm still knows;
    None when Slurm cannot be asked here (no squeue, no controller): then the records speak.
    A job missing from the answer has left the queue and its accounting (or there is none)."""
    jobs = sorted({str(j) for j in jobs if j})
    if not jobs or not available():
        return {} if jobs == [] else None
    out = call(["squeue", "-h", "-r", "--states=all", "-o", "%i|%T", "-j", ",".join(jobs)])
    if out is None:  # every id unknown (a restarted controller) is an error too: ask once more, unfiltered
        out = call(["squeue", "-h", "-r", "--states=all", "-o", "%i|%T"])
        if out is None:
            return None
    found = parsed(out)
    missing = [j for j in jobs if j not in found]
    if missing and available("sacct"):  # past the controller's memory (MinJobAge): accounting, where kept
        found.update(parsed(call(["sacct", "-n", "-X", "-P", "-o", "JobID,State", "-j", ",".join(missing)]) or ""))
    return {j: found[j] for j in jobs if j in found}


def parsed(text):
    """`id|STATE` lines as a dict; sacct's `CANCELLED by 0` is CANCELLED."""
    found = {}
    for line in text.splitlines():
        job, _, state = line.strip().partition("|")
        if job and state:
            found[job] = state.split()[0].rstrip("+")
    return found


def call(cmd):
    """The command's stdout, or None when it failed or hung."""
    import subprocess  # here: a listing asks Slurm only when a run is in a job
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout if out.returncode == 0 else None


def queue_of(records):
    """The states of the jobs of those records whose status a job may contradict (see
    runs.status): one squeue call for a whole listing, none when no record ran in a job."""
    return states(r.get("slurm_job_id") for r in records if r and r.get("status") in ASKED)


def live_status(recorded, state):
    """A record's status as its job's state corrects it: `pending` while a requeued run waits,
    `running` once its job runs again, and for a record left `running` by a job that has ended
    without a word the job's end, when Slurm says why (`cancelled`, `timeout`, `node_fail`), else `dead`."""
    if state in WAITING:
        return "pending"
    if state in RUNNING:
        return "running"
    if recorded == "running":  # its processes died without a word: Slurm may say why
        return state.lower() if state in ENDS else "dead"
    return recorded
