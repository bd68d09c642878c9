"""Tiny synthetic datasets for the training tests (fast to decode, easy to learn).

Each image is 48x64 (w x h): the background colour tells the gender, a band over the lower
half tells the mask state and a square in the top corner tells the age group, so even a
small model learns something in one or two epochs.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
from PIL import Image

from core.labels import encode

SIZE = (48, 64)
STEMS = ("mask1", "mask2", "mask3", "mask4", "mask5", "incorrect_mask", "normal")
STEM_MASK = {"mask1": 0, "mask2": 0, "mask3": 0, "mask4": 0, "mask5": 0, "incorrect_mask": 1, "normal": 2}
AGES = (22, 45, 61)
GENDERS = ("male", "female")


def draw(mask: int, gender: int, age_grp: int, rng: np.random.Generator) -> Image.Image:
    w, h = SIZE
    img = np.empty((h, w, 3), np.float32)
    img[:] = (60, 90, 200) if gender == 0 else (200, 80, 70)
    img[h // 2 + 4 * mask: h, :] = ((250, 250, 250), (30, 200, 30), (120, 60, 20))[mask]
    img[2:14, 2:14] = ((0, 0, 0), (250, 250, 0), (0, 250, 250))[age_grp]
    img += rng.normal(0, 8, img.shape)
    return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))


def make_train(root: Path, people: int = 12, seed: int = 0) -> Path:
    """Competition train layout: root/images/<id>_<gender>_Asian_<age>/<stem>.jpg."""
    rng = np.random.default_rng(seed)
    for i in range(people):
        gender, age_grp = i % 2, (i // 2) % 3
        folder = root / "images" / f"{i + 1:06d}_{GENDERS[gender]}_Asian_{AGES[age_grp]}"
        folder.mkdir(parents=True, exist_ok=True)
        for stem in STEMS:
            draw(STEM_MASK[stem], gender, age_grp, rng).save(folder / f"{stem}.jpg", quality=95)
    return root


def make_eval(root: Path, people: int = 4, seed: int = 1, corrupt: int = 0, gt: bool = True) -> list[int]:
    """Eval layout (info.csv in a shuffled order, images/<sha1>.jpg, gt.csv); returns the answers.

    The first ``corrupt`` images in info.csv's order are truncated JPEGs.
    """
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(people):
        gender, age_grp = rng.integers(2), rng.integers(3)
        for stem in STEMS:
            mask = STEM_MASK[stem]
            image_id = hashlib.sha1(f"{seed}-{i}-{stem}".encode()).hexdigest()[:16] + ".jpg"
            draw(mask, gender, age_grp, rng).save(root / "images" / image_id, quality=95)
            rows.append((image_id, encode(mask, int(gender), int(age_grp))))
    order = rng.permutation(len(rows))
    rows = [rows[i] for i in order]
    for image_id, _ in rows[:corrupt]:
        path = root / "images" / image_id
        path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])
    (root / "info.csv").write_text("ImageID,ans\n" + "".join(f"{i},0\n" for i, _ in rows))
    if gt:
        (root / "gt.csv").write_text("ImageID,ans\n" + "".join(f"{i},{a}\n" for i, a in rows))
    return [a for _, a in rows]


def make_folders(root: Path, per_class: int = 6, seed: int = 2) -> Path:
    """One folder per class (cat, dog) with distinct colours."""
    rng = np.random.default_rng(seed)
    for c, name in enumerate(("cat", "dog")):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            draw(c * 2, c, c, rng).save(root / name / f"{i}.png")
    return root


def tiny_recipe(path: Path, **augment) -> Path:
    """A recipe for 24x32 inputs (fast) written to ``path``."""
    from core.recipe import Recipe

    recipe = Recipe().replace(input_size=(24, 32), augment=augment) if augment else Recipe().replace(input_size=(24, 32))
    recipe.save(path)
    return path
