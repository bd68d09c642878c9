"""How the app draws images on screen: boxes over photos, thumbnails, pixel-exact enlargements,
and which confusion-table cell a click selected. Plain numpy and OpenCV; no streamlit."""

from __future__ import annotations

import cv2
import numpy as np

from core.images import resize_to_height  # noqa: F401 - the app's thumbnails use it from here too


def box_to_pixels(box: tuple[float, float, float, float], size: tuple[int, int]) -> tuple[int, int, int, int]:
    """(x, y, w, h) fractions -> (left, top, right, bottom) pixels of an image of ``size`` (w, h)."""
    x, y, w, h = box
    W, H = size
    return int(round(x * W)), int(round(y * H)), int(round((x + w) * W)), int(round((y + h) * H))


def draw_box(img: np.ndarray, ltrb: tuple[int, int, int, int], color=(255, 215, 0), thickness: int = 3) -> np.ndarray:
    """A copy of ``img`` (H, W, 3 uint8) with a rectangle outline (left, top, right, bottom)."""
    out = np.ascontiguousarray(img).copy()
    left, top, right, bottom = (int(v) for v in ltrb)
    cv2.rectangle(out, (left, top), (max(left, right - 1), max(top, bottom - 1)), tuple(int(c) for c in color), thickness)
    return out


def display_scale(shape: tuple[int, ...], target_height: int) -> int:
    """Whole-number factor that brings an image near ``target_height`` without shrinking it."""
    return max(1, int(round(target_height / shape[0])))


def upscale_nearest(img: np.ndarray, factor: int) -> np.ndarray:
    """Every pixel repeated ``factor`` x ``factor`` times: bigger on screen, values untouched."""
    if factor <= 1:
        return img
    return np.repeat(np.repeat(img, factor, axis=0), factor, axis=1)


def confusion_cell(cells: list, columns: list[str]) -> tuple[int, int] | None:
    """(true class, predicted class) of a single-cell selection on the confusion table, whose row
    i is true class i and whose columns are ``columns`` (column j = predicted class j); None when
    nothing, or a cell outside the class columns, is selected. ``cells`` is what st.dataframe's
    selection holds: [(row position, column name)]."""
    if not cells:
        return None
    row, column = cells[0]
    if column not in columns:
        return None
    return int(row), columns.index(column)
