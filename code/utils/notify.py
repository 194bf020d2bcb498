"""notify: config `notify`, a shell command run when a run ends (finished, failed, interrupted,
killed, pruned, cancelled) and when a sweep ends, with the facts in RUNTAG_* variables (docs/notify.md).

Its launcher calls `run_ended` once the run's processes are gone (utils/supervisor.py), so that an
end the run could not record itself (SIGKILL) is told too, and only once. A notifier is the
researcher's own: one that fails or hangs is killed after `notify_timeout` seconds, said in one
line of the run's log, and changes nothing else. Nothing here raises.
"""
import os
import signal
import subprocess
import sys
import tempfile

from utils import overrides, paths, runs
from utils.settings import NOTIFY_TIMEOUT_S as TIMEOUT_S
BY_SWEEP = []  # non-empty in a `run` a local or Ray sweep started (supervisor.report_name)
NAME_FD = "RUNTAG_NAME_FD"  # ... or in its `continue`: the sweep's pipe is in the environment (sweep/job.py)


def run_ended(run, checkout=None, record=None):
    """Run the notify command of this run, if it has one, with its end in the environment."""
    try:
        record = record or run.read()
        if not record or record.get("status") in ("running", "queued"):
            return  # not ended (a DDP node's launcher, a record lost): nothing to tell
        if record["status"] == "interrupted" and (BY_SWEEP or os.environ.get(NAME_FD)):
            return  # its sweep's driver tells it, once it knows whether its pruner stopped it (sweep/drive.py)
        command, timeout = settings_of(record, checkout)
        if command:
            call(command, facts(run, record), timeout, lambda line: say(run, line))
    except Exception as err:  # noqa: BLE001 -- a notifier never changes how the run ended
        print(f"runtag: notify of {run} not run: {type(err).__name__}: {err}", file=sys.stderr, flush=True)


def sweep_ended(tag, names, stopped, seconds):
    """The sweep's one word: RUNTAG_SWEEP, its status and how its runs ended (`finished 5, failed 1`)."""
    try:
        command, timeout = settings_of({}, paths.root())
        if not command:
            return
        statuses = [((runs.Run.parse(name).read() or {}).get("status") if name else None) or "not started"
                    for name in names]
        counts = {status: statuses.count(status) for status in dict.fromkeys(statuses)}
        status = "interrupted" if stopped else "finished" if set(counts) <= {"finished"} else "failed"
        env = {"RUNTAG_SWEEP": tag, "RUNTAG_RUN": tag, "RUNTAG_STATUS": status,
               "RUNTAG_SUMMARY": ", ".join(f"{s} {n}" for s, n in counts.items()) or "no runs",
               "RUNTAG_RUNS": " ".join(name for name in names if name), "RUNTAG_DURATION_S": f"{seconds:.1f}"}
        call(command, env, timeout, lambda line: print(f"runtag: sweep {tag}: {line}", file=sys.stderr, flush=True))
    except Exception as err:  # noqa: BLE001
        print(f"runtag: notify of sweep {tag} not run: {type(err).__name__}: {err}", file=sys.stderr, flush=True)


def settings_of(record, checkout):
    """(notify, notify_timeout) the run ran with: its hparams (main.py's whole config), else its
    overrides over config.py of the commit it ran (a run killed or cancelled before main.py began)."""
    config = record.get("hparams") or {}
    if "notify" not in config:
        code = (checkout or paths.root()) / "code"
        config = {**overrides.load_config(code), **(record.get("overrides") or {})}
    timeout = config.get("notify_timeout", TIMEOUT_S)
    return config.get("notify") or "", timeout if isinstance(timeout, (int, float)) and timeout > 0 else TIMEOUT_S


def facts(run, record):
    """The RUNTAG_* variables of a run's end."""
    metric = (record.get("hparams") or {}).get("best_metric") or "val/acc"
    key = "best/" + metric.replace("/", "_")
    value = (record.get("metrics") or {}).get(key)
    env = {"RUNTAG_RUN": str(run), "RUNTAG_STATUS": record["status"],
           "RUNTAG_BEST": f"{key}={value}" if value is not None else "",
           "RUNTAG_DURATION_S": str(record.get("duration_s") or 0), "RUNTAG_LOG": str(run.log),
           "RUNTAG_COMMIT": record.get("commit") or "", "RUNTAG_HOST": record.get("host") or ""}
    if record["status"] in ("failed", "killed"):
        env["RUNTAG_ERROR"] = record.get("error") or (f"killed by {record['signal']}" if record.get("signal")
                                                      else last_error(run.log))
    return env


def last_error(log):
    """The last line of the log's last traceback (`ValueError: ...`); "" if none."""
    try:
        with open(log, "rb") as f:
            f.seek(max(0, os.path.getsize(log) - 65536))  # a traceback's end is in the last 64 KiB
            text = f.read().decode(errors="replace")
    except OSError:
        return ""
    _, found, after = text.rpartition("Traceback (most recent call last):")
    lines = [line for line in after.splitlines() if line.strip() and not line[0].isspace()] if found else []
    return lines[-1].strip() if lines else ""


def call(command, env, timeout, said):
    """`sh -c command` in a session of its own, killed with its children after `timeout` seconds;
    a failure or a timeout is one line given to `said`."""
    with tempfile.TemporaryFile() as err:
        try:
            child = subprocess.Popen(["sh", "-c", command], env={**os.environ, **env}, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=err, start_new_session=True)
        except OSError as error:
            return said(f"notify could not start: {error}")
        try:
            rc = child.wait(timeout)
        except subprocess.TimeoutExpired:
            kill(child)
            return said(f"notify `{shorter(command)}` killed after {timeout:g} s")
        except BaseException:  # a Ctrl-C while it runs: it goes, the launcher's exit goes on
            kill(child)
            raise
        if rc != 0:
            err.seek(0)
            tail = [line.strip() for line in err.read().decode(errors="replace").splitlines() if line.strip()]
            said(f"notify `{shorter(command)}` exited {rc}" + (f": {tail[-1][:200]}" if tail else ""))


def kill(child):
    try:
        os.killpg(child.pid, signal.SIGKILL)  # its group: a `sleep` it started goes too
    except OSError:
        pass
    child.wait()


def shorter(command):
    return command if len(command) <= 60 else command[:57] + "..."


def say(run, line):
    """The notifier's failure: one line in the run's log, and on stderr."""
    text = f"runtag: {line} (the run's status is unchanged)"
    try:
        with open(run.log, "a") as f:
            f.write(text + "\n")
    except OSError:
        pass
    print(f"runtag: {run}: {line}", file=sys.stderr, flush=True)
