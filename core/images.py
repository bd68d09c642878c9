"""Reading image files: a cheap validity check, decoding as RGB, and a thumbnail at a height.

The dataset scan, the preprocessing, the image statistics and the app all read images through
these, so a truncated or foreign file is judged the same way everywhere.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageOps


def check_image(path: Path) -> tuple[str | None, tuple[int, int]]:
    """Return (problem or None, (width, height)) for one file, cheaply.

    A truncated JPEG opens fine and fails only when decoded, so besides reading the header
    we check that the file ends with its format's end marker (JPEG EOI ``FFD9``, PNG
    ``IEND``). That catches truncation without decoding every pixel.
    """
    try:
        with Image.open(path) as im:
            fmt, size = im.format, im.size
    except Image.DecompressionBombError:  # an image, but more pixels than PIL will decode
        limit = 2 * (Image.MAX_IMAGE_PIXELS or 0)
        return (f"too large to decode: over {limit:,} pixels, PIL's guard against decompression bombs; "
                "resize it or move it out of the dataset", (0, 0))
    except Exception:  # noqa: BLE001 - PIL raises many types for junk files
        return "not an image (PIL cannot open it); delete it or move it out of the dataset", (0, 0)
    try:
        with open(path, "rb") as fh:
            fh.seek(max(0, path.stat().st_size - 1024))
            tail = fh.read()
    except OSError as exc:
        return f"unreadable ({exc.strerror})", (0, 0)
    if fmt == "JPEG" and b"\xff\xd9" not in tail:
        return "truncated JPEG (no end-of-image marker); re-copy or re-export the file", size
    if fmt == "PNG" and b"IEND" not in tail:
        return "truncated PNG (no IEND chunk); re-copy or re-export the file", size
    if fmt not in ("JPEG", "PNG"):
        try:
            with Image.open(path) as im:
                im.load()
        except Exception:  # noqa: BLE001
            return f"unreadable {fmt} image; re-copy or re-export the file", size
    return None, size


def load_rgb(path: str | Path) -> Image.Image:
    """Open an image as RGB (PNG alpha and greyscale are converted)."""
    with Image.open(path) as im:
        im = ImageOps.exif_transpose(im) if im.format == "JPEG" else im
        return im.convert("RGB")


def cv_read(path: str | Path, flags: int) -> np.ndarray | None:
    """``cv2.imread(path, flags)``, or None where OpenCV cannot give that decode: a format it
    does not read, and a reduced decode (``IMREAD_REDUCED_*_N``) of a PNG, WebP or other non-JPEG
    narrower or shorter than N pixels, where OpenCV's own downscale raises ``cv2.error``
    (a 1x1 PNG at a quarter). The callers then fall back to PIL or report no result."""
    try:
        return cv2.imread(str(path), flags)
    except cv2.error:
        return None


def resize_to_height(img: np.ndarray, height: int) -> np.ndarray:
    """Thumbnail of ``img`` with the given height and its own aspect (area averaging)."""
    h, w = img.shape[:2]
    width = max(1, int(round(w * height / h)))
    interp = cv2.INTER_AREA if height < h else cv2.INTER_LINEAR
    return cv2.resize(np.ascontiguousarray(img), (width, height), interpolation=interp)
