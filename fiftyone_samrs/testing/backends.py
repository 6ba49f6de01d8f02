"""Not SDK: backends for the tests of concurrent and distributed runs.

They live in the package (not in tests/) because Ray workers must import
them by name when they unpickle an ``engine=`` object.
"""

from __future__ import annotations

import os
import signal
import time

from fiftyone_samrs.segmenting.baselines import BoxFillBackend


class SlowBoxFill(BoxFillBackend):
    """``boxfill`` (same name, same masks), ``delay`` seconds per model call."""

    def __init__(self, delay: float = 0.0):
        self.delay = float(delay)

    def predict_batch(self, images, prompts):
        if self.delay:
            time.sleep(self.delay)
        return super().predict_batch(images, prompts)


class DieOnce(SlowBoxFill):
    """``boxfill`` whose process SIGKILLs itself on its ``after``-th model call
    (counted per process), once: the first process to get there creates
    ``marker`` and dies; the others (and the restarted one) see it and go on."""

    def __init__(self, marker: str, after: int = 2, delay: float = 0.0):
        super().__init__(delay)
        self.marker = marker
        self.after = int(after)
        self.calls = 0

    def predict_batch(self, images, prompts):
        self.calls += 1
        if self.calls >= self.after and not os.path.exists(self.marker):
            try:
                fd = os.open(self.marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                pass
            else:
                os.write(fd, str(os.getpid()).encode())
                os.close(fd)
                os.kill(os.getpid(), signal.SIGKILL)
        return super().predict_batch(images, prompts)


class ToyBackend(BoxFillBackend):
    """A backend added only through the registry (tests/test_backend_registry.py):
    boxfill's masks under another name and margin."""

    name = "toy"
    default_margin = None


def toy_factory(model=None, checkpoint=None, device=None, dtype=None, **kw):
    """The toy backend's registry factory (module level: rebuilt by name)."""
    return ToyBackend(**kw)
