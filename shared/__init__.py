"""Generic training core shared by the `fashion` and `afqmc` apps.

Nothing in this package knows about images or BERT: it provides loops, data sharding,
checkpoints, seeding/device helpers, metrics and run-directory conventions.
"""

from shared.errors import UserError

__all__ = ["UserError"]
