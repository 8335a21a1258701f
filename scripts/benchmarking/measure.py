"""Timing step functions interleaved, and sampling memory while they run."""

import os
import statistics
import threading
import time

import keras
import torch


class RSSSampler:
    """Samples the process' resident set size in a background thread.

    Args:
        interval: float. Seconds between samples.
    """

    _PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")

    def __init__(self, interval=0.002):
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()
        self._thread = None

    @classmethod
    def rss(cls):
        """Current RSS in bytes."""
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * cls._PAGE_SIZE

    def _sample(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self.rss())
            time.sleep(self.interval)

    def __enter__(self):
        self.start = self.rss()
        self.peak = self.start
        self._stop.clear()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc_info):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.rss())

    @property
    def growth(self):
        return self.peak - self.start


def backend_memory_info():
    """The backend's own device memory statistics, or None (e.g. on CPU)."""
    backend = keras.backend.backend()
    try:
        if backend == "tensorflow":
            import tensorflow as tf

            return tf.config.experimental.get_memory_info("GPU:0")
        if backend == "jax":
            import jax

            return jax.devices()[0].memory_stats()
        if backend == "torch" and torch.cuda.is_available():
            return {"peak_bytes": torch.cuda.max_memory_allocated()}
    except (ValueError, RuntimeError):
        pass  # No such device.
    return None


def time_interleaved(steps_fns, batch_size, warmup, runs, steps):
    """Times step functions run by run, alternating between them.

    Alternating means a burst of load from other processes slows every
    implementation in the same run, which keeps their ratio meaningful.

    Args:
        steps_fns: dict of name -> zero-argument function doing one step
            and returning only once its work is done.
        batch_size: int. Images per step.
        warmup: int. Untimed steps first (tracing, compilation, caches).
        runs: int. Number of timed runs.
        steps: int. Steps per timed run.

    Returns:
        dict of name -> `{"images_per_s": median, "min", "max", "runs",
        "rss_growth_mb"}`.
    """
    for fn in steps_fns.values():
        for _ in range(warmup):
            fn()
    rates = {name: [] for name in steps_fns}
    growth = dict.fromkeys(steps_fns, 0)
    for _ in range(runs):
        for name, fn in steps_fns.items():
            with RSSSampler() as sampler:
                start = time.perf_counter()
                for _ in range(steps):
                    fn()
                elapsed = time.perf_counter() - start
            rates[name].append(steps * batch_size / elapsed)
            growth[name] = max(growth[name], sampler.growth)
    return {
        name: {
            "images_per_s": statistics.median(values),
            "min": min(values),
            "max": max(values),
            "runs": values,
            "rss_growth_mb": growth[name] / 2**20,
        }
        for name, values in rates.items()
    }


def keras_steps(model, x, y):
    """Forward and train-step functions of a compiled Keras model."""
    # `predict_on_batch` and `train_on_batch` return NumPy values, so each
    # call waits for JAX's asynchronous dispatch to finish.
    return (
        lambda: model.predict_on_batch(x),
        lambda: model.train_on_batch(x, y),
    )


def torch_steps(model, images, labels):
    """Forward and train-step functions of a PyTorch reference model."""
    images = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()
    labels = torch.from_numpy(labels).long()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    loss_fn = torch.nn.CrossEntropyLoss()

    def forward():
        model.eval()
        with torch.no_grad():
            model(images)

    def train_step():
        model.train()
        optimizer.zero_grad(set_to_none=True)
        loss_fn(model(images), labels).backward()
        optimizer.step()

    return forward, train_step
