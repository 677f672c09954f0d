"""The one place where tests reach into product code: fault injection through environment variables.

Never set in normal use. Each hook is read where the fault would happen, so nothing changes unless
a test sets the variable.
"""

from __future__ import annotations

import errno
import json
import os
import time

# Seconds to sleep before a checkpoint directory is renamed into place, so that kill and signal
# tests can land inside the write window.
SAVE_DELAY = "PAIRTRAIN_TEST_SAVE_DELAY"
# A directory: each rank (and streaming worker) writes the sample indices of its training batches
# per epoch there, so tests can check exactly-once coverage through the real CLI.
RECORD_PLAN = "PAIRTRAIN_TEST_RECORD_PLAN"
# Seconds to sleep before each evaluation batch, so that signal tests can land inside an evaluation.
EVAL_DELAY = "PAIRTRAIN_TEST_EVAL_DELAY"
# "ERRNAME@STEP" (e.g. "ENOSPC@4"): the checkpoint for global step STEP fails with that OSError
# after part of it was written, as a full disk would.
SAVE_ERROR = "PAIRTRAIN_TEST_SAVE_ERROR"


def record_plan(batches, epoch: int, who: str) -> None:
    folder = os.environ.get(RECORD_PLAN)
    if not folder:
        return
    ids = [int(i) for b in batches for i in b]
    with open(os.path.join(folder, f"{who}-epoch{epoch}.json"), "w") as f:
        json.dump(ids, f)


def delay_save() -> None:
    delay = float(os.environ.get(SAVE_DELAY, "0") or 0)
    if delay:
        time.sleep(delay)


def delay_eval_batch() -> None:
    delay = float(os.environ.get(EVAL_DELAY, "0") or 0)
    if delay:
        time.sleep(delay)


def fail_save(step: int, path: str) -> None:
    spec = os.environ.get(SAVE_ERROR, "")
    if not spec:
        return
    name, _, at = spec.partition("@")
    if int(at) == step:
        code = getattr(errno, name)
        raise OSError(code, os.strerror(code), path)
