"""What a benchmark report records about the machine and the libraries."""

import os
import platform
import re

import keras
import keras_hub
import numpy as np
import timm
import torch
import torchvision

import keras_ssl


def machine_info():
    """CPU model, core count, RAM and load of this machine."""
    cpu = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            match = re.search(r"^model name\s*:\s*(.+)$", f.read(), re.M)
        cpu = match.group(1).strip() if match else cpu
        with open("/proc/meminfo") as f:
            ram_kb = int(re.search(r"MemTotal:\s+(\d+)", f.read()).group(1))
    except OSError:
        ram_kb = 0
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "ram_gb": round(ram_kb / 2**20, 1),
        "platform": platform.platform(),
        "load_average_start": os.getloadavg(),
    }


def library_versions():
    versions = {
        "python": platform.python_version(),
        "keras": keras.__version__,
        "keras_hub": keras_hub.__version__,
        "keras_ssl": keras_ssl.__version__,
        "numpy": np.__version__,
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "timm": timm.__version__,
    }
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        versions["tensorflow"] = tf.__version__
    elif backend == "jax":
        import jax

        versions["jax"] = jax.__version__
    return versions
