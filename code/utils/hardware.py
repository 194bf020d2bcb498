"""What the machine did during each epoch: this process's CPU and memory (psutil), and its GPU's
utilisation and memory (nvidia-ml-py, optional), sampled by a background thread once a second.
Missing libraries or no GPU mean fewer metrics, never an error."""
import os
import threading


class Sampler:
    """`take()` at each epoch's end: the mean of every metric sampled since the last take (the
    last sample when none was taken since: an epoch shorter than a second), as
    {"system/<name>": value}. The training thread only reads what the sampler thread wrote."""

    FIRST_S, INTERVAL_S = 0.2, 1.0  # the first sample soon, so that short runs have one

    def __init__(self, cuda_index=None):
        self.sources = [s for s in (process_source(), gpu_source(cuda_index)) if s]
        self.samples, self.last, self.lock, self.done = [], {}, threading.Lock(), threading.Event()
        if self.sources:
            threading.Thread(target=self.loop, name="runtag-hardware", daemon=True).start()

    def loop(self):
        wait = self.FIRST_S
        while not self.done.wait(wait):
            self.sample()
            wait = self.INTERVAL_S

    def sample(self):
        values = {}
        for source in self.sources:
            try:
                values.update(source())
            except Exception:  # noqa: BLE001 -- a metric that fails to read is left out, never fatal
                pass
        with self.lock:
            self.samples.append(values)

    def take(self):
        with self.lock:
            samples, self.samples = self.samples or [self.last], []
            self.last = samples[-1]
        keys = {k for s in samples for k in s}
        return {f"system/{k}": sum(s[k] for s in samples if k in s) / sum(k in s for s in samples)
                for k in sorted(keys)}

    def stop(self):
        self.done.set()


def process_source():
    try:
        import psutil
    except ImportError:
        return None
    me = psutil.Process()
    me.cpu_percent()  # the first call only starts the count
    return lambda: {"cpu_percent": me.cpu_percent(), "ram_mb": me.memory_info().rss / 2**20}


def gpu_source(index):
    """`index`: torch's CUDA device number, or None on a CPU."""
    if index is None:
        return None
    try:
        import pynvml
        pynvml.nvmlInit()
        handle = pynvml.nvmlDeviceGetHandleByIndex(physical(index))
    except Exception:  # noqa: BLE001 -- not installed, no driver, no such device: no GPU metrics
        return None

    def read():
        return {"gpu_util": pynvml.nvmlDeviceGetUtilizationRates(handle).gpu,
                "gpu_mem_mb": pynvml.nvmlDeviceGetMemoryInfo(handle).used / 2**20}
    return read


def physical(index):
    """NVML counts every GPU; torch only those CUDA_VISIBLE_DEVICES names, in its order."""
    visible = [d.strip() for d in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if d.strip()]
    return int(visible[index]) if index < len(visible) and visible[index].isdigit() else index
