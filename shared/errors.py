"""Error types that the CLIs turn into one-line messages instead of tracebacks."""


class UserError(Exception):
    """A problem with the user's input (files, flags, directories) that they can fix.

    The message must name the offending file (and line/field where there is one).
    """


class CheckpointError(UserError):
    """A checkpoint or model file is missing, truncated, corrupt or unsafe to load."""
