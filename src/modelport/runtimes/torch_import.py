"""Import torch with OpenMP told to sleep, not spin, while its threads wait for work.

By default OpenMP threads spin between parallel regions. When the cores are shared (other
models' predict processes, the server's own event loop, other programs), a spinning thread
holds a core that the thread it waits for needs, and every region can wait out a
scheduler time slice: on a busy two-core machine MiniLM-L6 took 860-1,270 ms for 16
sentences with two torch threads, against 92-118 ms with ``OMP_WAIT_POLICY=PASSIVE``
(and 127-150 ms with one thread). OpenMP reads the setting once, when torch loads it, so
it must be in the environment before the process first imports torch; an explicit
setting from the user is kept.
"""

from __future__ import annotations

import os
from types import ModuleType


def import_torch() -> ModuleType:
    """``torch``, imported (the first time) with ``OMP_WAIT_POLICY=PASSIVE`` unless set."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    import torch

    return torch
