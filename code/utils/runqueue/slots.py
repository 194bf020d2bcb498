"""A queue's slots and its list of waiting runs, under __result__/.queue/.

A slot is a kernel lock (flock) on a file `slot-cpu-<k>.lock` or `slot-gpu<g>-<k>.lock`: the
process that runs a queued run holds it for the run's whole life, and the kernel lets go of it
however that process ends, so a dead process never holds a slot (no pid files to go stale).
The waiting list is one small file per queued run, `<sequence>.run`, holding its name; the run's
record (status `queued`, its `queue` field) is the truth, the file only spares a scan of every record.
"""
import fcntl
import os

from utils import paths

ENTRY = ".run"


def folder():
    where = paths.results() / ".queue"
    where.mkdir(parents=True, exist_ok=True)
    return where


def names(workers=None, gpus=None, per_gpu=1):
    """The slot set of a run: `cpu-0..cpu-{N-1}`, or `gpu<g>-<k>` for each GPU and K runs on each."""
    if gpus is not None:
        return [f"gpu{g}-{k}" for g in gpus for k in range(per_gpu)]
    return [f"cpu-{k}" for k in range(workers or 1)]


def gpu_of(slot):
    """The GPU a slot stands for (CUDA_VISIBLE_DEVICES), or None for a CPU worker."""
    return slot[3:].split("-")[0] if slot.startswith("gpu") else None


def shown(slots):
    """A slot set in a few characters: `cpu-0..1`, `gpu0-0,gpu1-0`."""
    if len(slots) > 1 and all(s.startswith("cpu-") for s in slots):
        return f"cpu-0..{len(slots) - 1}"
    return ",".join(slots)


def try_lock(path):
    """An open descriptor holding an exclusive flock on path, or None when another process holds it.
    Inheritable: the descriptor goes to the process that runs the run (or it is the waiter's own)."""
    fd = os.open(path, os.O_RDONLY | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    os.set_inheritable(fd, True)
    return fd


def take(slots, gpu_free_mb=None):
    """(slot, descriptor) of the first free slot of the set, or None when every one is held; with
    gpu_free_mb, a GPU slot only while its GPU uses less memory than that (someone else's process)."""
    base = folder()
    for slot in slots:
        if gpu_free_mb is not None and gpu_of(slot) is not None and used_mb(int(gpu_of(slot))) >= gpu_free_mb:
            continue
        fd = try_lock(base / f"slot-{slot}.lock")
        if fd is not None:
            return slot, fd
    return None


def used_mb(gpu):
    """The GPU's used memory in MiB (NVML's number: `--gpus` are physical GPUs, as nvidia-smi shows
    them); 0 without nvidia-ml-py, a driver or such a GPU: then the slots alone decide."""
    nvml = NVML or started_nvml()
    try:
        return nvml[0].nvmlDeviceGetMemoryInfo(nvml[0].nvmlDeviceGetHandleByIndex(gpu)).used / 2**20 if nvml[0] else 0
    except Exception:  # noqa: BLE001 -- no such device
        return 0


NVML = []  # [pynvml, initialised] or [None]: once per process, as the waiter asks every POLL_S


def started_nvml():
    try:
        import pynvml
        pynvml.nvmlInit()
        NVML.append(pynvml)
    except Exception:  # noqa: BLE001 -- not installed, no driver
        NVML.append(None)
    return NVML


def held(slot):
    """True while some process holds the slot."""
    fd = try_lock(folder() / f"slot-{slot}.lock")
    if fd is None:
        return True
    os.close(fd)
    return False


def next_sequence():
    """The next submission number, counted in a file under a lock: two `run --queue` at once get two."""
    base = folder()
    fd = os.open(base / "sequence.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        text = os.pread(fd, 32, 0).decode().strip()
        number = int(text) + 1 if text.isdigit() else 1
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{number}\n".encode(), 0)
        return number
    finally:
        os.close(fd)


def add(sequence, run):
    from utils import atomic
    atomic.write_text(folder() / f"{sequence:09d}{ENTRY}", f"{run}\n")


def waiting():
    """[(sequence, run name)] in submission order."""
    found = []
    for path in folder().glob(f"*{ENTRY}"):
        try:
            found.append((int(path.stem), path.read_text().strip()))
        except (OSError, ValueError):
            continue  # taken out meanwhile, or a stray file
    return sorted(found)


def remove(sequence):
    (folder() / f"{sequence:09d}{ENTRY}").unlink(missing_ok=True)
