"""Error types that the CLIs turn into one-line messages instead of tracebacks."""


class UserError(Exception):
    """A problem with the user's input (files, flags, directories) that they can fix.

    The message must name the offending file (and line/field where there is one).
    """


class CheckpointError(UserError):
    """A checkpoint or model file is missing, truncated, corrupt or unsafe to load."""


class WriteFailed(Exception):
    """Writing part of a run failed (disk full, quota, read-only, I/O error); the message names the
    file and the last complete checkpoint. Not the user's input, so the CLI exits with 1, not 2."""
