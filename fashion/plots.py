"""`fashion predict --grid`: the predicted images with their top class and probability."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from shared.errors import UserError
from shared.report import pyplot, save_figure


def prediction_grid(path: Path, images: np.ndarray, results: Sequence[dict[str, Any]]) -> bool:
    """Draw ``images`` (N, 28, 28, values in [0, 1]) in a grid titled by their predictions."""
    plt = pyplot()
    if plt is None:
        return False
    if not path.parent.is_dir():
        raise UserError(f"--grid {path}: folder {path.parent} does not exist")
    n = len(images)
    cols = min(n, 6)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(2.2 * cols, 2.6 * rows), dpi=100, squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, img, r in zip(axes.flat, images, results):
        ax.imshow(img, cmap="gray", vmin=0, vmax=1)
        ax.set_title(f"{r['class']} {100 * r['probability']:.1f}%\n{Path(r['file']).name[:24]}", fontsize=9)
    fig.tight_layout()
    save_figure(fig, path, plt)
    return True
