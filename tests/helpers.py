"""Tiny datasets built in a temp folder for the tests: one module, two kinds.

* Learnable datasets (``make_train``, ``make_eval``, ``make_folders``): each 48x64 image tells
  its class by colour (the background the gender, a band over the lower half the mask state, a
  square in the top corner the age group), so even a small model learns something in one or
  two epochs. The training, prediction and app tests use these.
* Layout datasets (``layout_train``, ``layout_eval``, ``layout_folders``, ``make_person``,
  ``write_image``): plain images whose content does not matter, for the tests of one rule at a
  time (folder names, CSV files, sizes, extensions).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
from PIL import Image

from core.labels import STEM_TO_MASK, encode

SIZE = (48, 64)
STEMS = tuple(STEM_TO_MASK)  # mask1..mask5, incorrect_mask, normal
STEM_MASK = STEM_TO_MASK
AGES = (22, 45, 61)
GENDERS = ("male", "female")


# ----------------------------------------------------------------------------- learnable datasets

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


# ----------------------------------------------------------------------------- layout datasets

def write_image(path: Path, size=SIZE, color=(120, 130, 140), fmt: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = np.full((size[1], size[0], 3), color, dtype=np.uint8)
    arr[size[1] // 4: size[1] // 2, size[0] // 4: 3 * size[0] // 4] = 255 - np.array(color, dtype=np.uint8)
    Image.fromarray(arr).save(path, format=fmt)
    return path


def make_person(images: Path, folder: str, ext: str = ".jpg", stems=STEMS, size=SIZE) -> Path:
    d = images / folder
    for i, stem in enumerate(stems):
        write_image(d / f"{stem}{ext}", size=size, color=(40 * i % 255, 90, 160))
    return d


def layout_train(root: Path, people=("000001_female_Asian_45", "000002_male_Asian_25", "000003_female_Asian_60"),
                 csv: bool = True, size=SIZE) -> Path:
    """Competition train layout: root/images/<person>/<stem>.jpg (+ root/train.csv)."""
    images = root / "images"
    for folder in people:
        make_person(images, folder, size=size)
    if csv:
        lines = ["id,gender,race,age,path"]
        for folder in people:
            pid, gender, race, age = folder.split("_")
            lines.append(f"{pid},{gender},{race},{age},{folder}")
        (root / "train.csv").write_text("\n".join(lines) + "\n")
    return root


def layout_eval(root: Path, answers=(0, 7, 17), gt: bool = True, size=SIZE) -> Path:
    """Competition eval layout: root/info.csv, root/images/<ImageID> (+ root/gt.csv)."""
    ids = [f"img{i:03d}.jpg" for i in range(len(answers))]
    for image_id in ids:
        write_image(root / "images" / image_id, size=size)
    (root / "info.csv").write_text("ImageID,ans\n" + "".join(f"{i},0\n" for i in ids))
    if gt:
        (root / "gt.csv").write_text("ImageID,ans\n" + "".join(f"{i},{a}\n" for i, a in zip(ids, answers)))
    return root


def layout_folders(root: Path, classes=("cat", "dog"), per_class: int = 3, size=SIZE) -> Path:
    """One folder per class: root/<class>/<n>.png."""
    for c, name in enumerate(classes):
        for n in range(per_class):
            write_image(root / name / f"{n}.png", size=size, color=(60 * c, 100, 200 - 60 * c))
    return root
