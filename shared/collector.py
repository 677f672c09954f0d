"""When CPython's cyclic garbage collector runs in a command-line process: not while the heavy libraries
are imported, never over them afterwards, and not at exit.

Importing torch and transformers creates millions of long-lived objects (modules, functions, classes)
and no garbage; the collector, which runs every 700 new objects, walks them again and again as the heap
grows, and at exit the interpreter runs one more full pass over all of them. Measured on the 2-core
development CPU: `import afqmc.train` took 5.9-7.0 s with the collector paused against 7.7-8.0 s with it
running, and a process that had imported it took 2.2 s to exit, 0.25 s when everything was frozen first.
Whole commands, before and after, alternating (medians): the 150-step `afqmc train` of
benchmarks/afqmc_vs_hf_trainer.py 61.8 -> 56.8 s, `afqmc predict` on AFQMC's dev file 19.1 -> 15.8 s,
`fashion train` 24.9 -> 23.6 s, `fashion eval` 3.6 -> 2.7 s.

``gc.freeze()`` moves every object alive at that moment into a generation the collector never visits
(the documented use is before a fork; it serves here for the same reason: those objects stay for the
life of the process). Cyclic garbage made later is still collected as usual, but garbage alive at a
freeze never is: so the pause is only for one-off stretches of a command (its imports, tokenising the
training set), never for work a long-lived process repeats (each request to ``afqmc serve``).
"""

from __future__ import annotations

import atexit
import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def collector_paused() -> Iterator[None]:
    """Pause the collector for the block (imports), then freeze what it left alive and resume it."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if was_enabled:
            gc.enable()


def no_collection_at_exit() -> None:
    """Freeze everything when the interpreter exits, so that its final collection has nothing to walk.

    Registered once however often it is called. Nothing may rely on that last collection anyway (Python
    does not promise to finalize objects alive at exit): the runs' files are written, closed and renamed
    into place before the command returns, and logging flushes in its own exit handler."""
    atexit.unregister(gc.freeze)
    atexit.register(gc.freeze)
