"""Worker processes that end with their launcher.

A process started by another one (a caching worker of ``--nj 2``, a training process of torchrun) must not
outlive it: when the launcher is killed (``kill -9``, a scheduler's time limit) an orphaned worker would go on
writing checkpoints or shards that nobody merges, holding a GPU, and racing the corrected run in the same folder.
Neither ``multiprocessing`` nor torchrun (whose workers run in sessions of their own) sees to that when the
launcher dies by SIGKILL.
"""
from __future__ import annotations

import os
import threading
import time

__all__ = ["exit_with_parent", "exit_with_torchrun_agent"]


def exit_with_parent(parent: int, every: float = 1.0) -> None:
    """Exit (status 1, at once) within ``every`` seconds of the process ``parent`` going away.

    A daemon thread polls ``os.getppid()``: when the parent dies the process is re-parented and the id changes.
    """
    def watch() -> None:
        while True:
            time.sleep(every)
            if os.getppid() != parent:
                os._exit(1)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def exit_with_torchrun_agent() -> bool:
    """Under torchrun (``TORCHELASTIC_RUN_ID`` set), end this process with its agent; True if watching.

    A process started by hand with ``WORLD_SIZE`` / ``RANK`` is left alone: its parent is a shell that may go.
    """
    if "TORCHELASTIC_RUN_ID" not in os.environ:
        return False
    exit_with_parent(os.getppid())
    return True
