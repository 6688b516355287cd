"""Where a measurement was made: the git commit of the source tree and the machine.

The one definition of these details: ``compare.json`` records them, and the benchmarks
in ``benchmarks/`` print them in the header of their tables.
"""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path


def git_commit() -> dict:
    """The git HEAD of the abrnet source tree, and whether the tree differs from it
    (modified or untracked, not ignored, files); nulls when git or the repository is missing."""
    where = Path(__file__).resolve().parent

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", *args], cwd=where, capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    head = git("rev-parse", "HEAD")
    # Untracked (not ignored) files count: a new module the runs used may not be committed yet.
    status = git("status", "--porcelain") if head else None
    return {"id": head, "dirty": None if status is None else bool(status)}


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo, else what :mod:`platform` knows of it."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def machine_info(device: str = "auto", threads: int | None = None) -> dict:
    """Platform, Python, torch, CPU, GPUs and the device runs use (``auto`` resolved).

    ``threads``: torch's threads per run, where they differ from this process's
    (runs in worker processes); default :func:`torch.get_num_threads`.
    """
    import torch

    cuda = (
        [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else []
    )
    return {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads() if threads is None else threads,
        "cuda": cuda,
        "device": device if device != "auto" else ("cuda" if cuda else "cpu"),
    }
