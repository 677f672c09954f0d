"""A user's picture as a Fashion-MNIST item: what ``fashion predict`` feeds the model.

Fashion-MNIST was made from Zalando's product photos (Xiao et al. 2017, section 2): edges within 5% of
the corner colour trimmed, the longer side resized to 28 pixels, the shorter one padded to 28 around the
centre, intensities negated (the photos are dark-ish items on white; the data set is light items on
black) and converted to grayscale. A photo that skips any of these steps looks nothing like the training
data: an untrimmed item fills a third of the frame, an un-negated one is a dark blob on white. So each
image goes through the same steps here, and the negation is decided per image (``invert="auto"``) by its
background: light (the median of the opaque border pixels above 0.5) or transparent (a cut-out, as the
originals were cut out on white) means negate. ``.npy`` arrays are taken as the model's own 28x28 input
and only inverted when asked (``yes``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from shared.errors import UserError

INVERT_CHOICES = ("auto", "yes", "no")
TRIM_TOLERANCE = 0.05  # Fashion-MNIST's own: within 5% of the maximum intensity of the corner colour
TRANSPARENT = 0.05  # alpha at or below this is background


@dataclass(frozen=True)
class Item:
    """``pixels``: (28, 28) float32 in [0, 1], a light item on black. ``inverted``: whether it was
    negated; ``why``: the background that decided it, in words."""
    pixels: np.ndarray
    inverted: bool
    why: str


def load_item(path: Path, invert: str = "auto") -> Item:
    """``path`` (an image, or a .npy of exactly 28x28) as the model's input; one-line error if unreadable."""
    if not path.is_file():
        raise UserError(f"{path}: not found" if not path.exists() else f"{path}: not a file")
    if path.suffix.lower() == ".npy":
        arr = _npy_item(path)
        return Item(1.0 - arr, True, "asked") if invert == "yes" else Item(arr, False, "a .npy array")
    lum, alpha = _read_image(path)
    negate, why = _background(lum, alpha) if invert == "auto" else (invert == "yes", "asked")
    item = 1.0 - lum if negate else lum
    if alpha is not None:
        item = item * alpha  # transparent parts on the data set's black background
    return Item(_frame(_trim(item, lum, alpha)), negate, why)


def _npy_item(path: Path) -> np.ndarray:
    try:
        arr = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as e:
        raise UserError(f"{path}: not a valid .npy array ({e})") from None
    arr = np.squeeze(arr)
    if arr.shape != (28, 28):
        raise UserError(f"{path}: array shape {arr.shape}, expected 28x28 (one grayscale image)")
    arr = arr.astype(np.float32)
    if arr.max(initial=0) > 1.0:  # uint8-style 0-255 values
        arr = arr / 255.0
    if not np.isfinite(arr).all() or arr.min() < 0:
        raise UserError(f"{path}: pixel values must be finite and non-negative")
    return arr


def _read_image(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    """Grayscale in [0, 1] (16-bit images scaled by their range, not clipped) and alpha (None: opaque)."""
    try:
        from PIL import Image, UnidentifiedImageError
    except ImportError:
        raise UserError(f"{path}: reading images needs Pillow: pip install 'pairtrain[images]' "
                        "(or pass .npy arrays)") from None
    try:
        with Image.open(path) as im:
            if im.mode == "P":  # a palette may carry transparency
                im = im.convert("RGBA")
            if im.mode.startswith("I"):  # 16-bit (and 32-bit integer) grayscale
                lum = np.asarray(im, dtype=np.float32) / 65535.0
            else:
                lum = np.asarray(im.convert("L"), dtype=np.float32) / 255.0
            alpha = np.asarray(im.getchannel("A"), dtype=np.float32) / 255.0 if "A" in im.getbands() else None
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, ValueError) as e:
        raise UserError(f"{path}: cannot read image ({e})") from None
    return np.clip(lum, 0.0, 1.0), alpha


def _border(a: np.ndarray) -> np.ndarray:
    return np.concatenate([a[0], a[-1], a[1:-1, 0], a[1:-1, -1]]) if min(a.shape) > 1 else a.ravel()


def _background(lum: np.ndarray, alpha: np.ndarray | None) -> tuple[bool, str]:
    """Whether to negate, and why: a transparent or light border means an item photographed on white."""
    edge, edge_alpha = _border(lum), None if alpha is None else _border(alpha)
    if edge_alpha is not None:
        if np.median(edge_alpha) <= TRANSPARENT:
            return True, "transparent background"
        edge = edge[edge_alpha > TRANSPARENT]
    level = float(np.median(edge))
    return (True, f"light background ({level:.2f})") if level > 0.5 else (False, f"dark background ({level:.2f})")


def _trim(item: np.ndarray, lum: np.ndarray, alpha: np.ndarray | None) -> np.ndarray:
    """``item`` cut to the rows and columns that hold anything but background: pixels within
    :data:`TRIM_TOLERANCE` of the corner colour (the median of the four corners), or transparent."""
    corner = float(np.median([lum[0, 0], lum[0, -1], lum[-1, 0], lum[-1, -1]]))
    content = np.abs(lum - corner) > TRIM_TOLERANCE
    if alpha is not None:
        content = np.where(alpha > TRANSPARENT, content | (alpha[0, 0] <= TRANSPARENT), False)
    rows, cols = np.flatnonzero(content.any(1)), np.flatnonzero(content.any(0))
    if rows.size == 0:  # a uniform picture: nothing to trim to
        return item
    return item[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]


def _frame(item: np.ndarray) -> np.ndarray:
    """Longer side resized to 28 (aspect ratio kept: a squashed dress looks like a shirt), centred."""
    from PIL import Image

    h, w = item.shape
    size = (max(1, round(28 * w / max(h, w))), max(1, round(28 * h / max(h, w))))
    scaled = np.asarray(Image.fromarray(item.astype(np.float32)).resize(size, Image.Resampling.LANCZOS),
                        dtype=np.float32)
    out = np.zeros((28, 28), dtype=np.float32)
    top, left = (28 - size[1]) // 2, (28 - size[0]) // 2
    out[top:top + size[1], left:left + size[0]] = np.clip(scaled, 0.0, 1.0)
    return out
