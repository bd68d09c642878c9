"""Tiny datasets built in a temp folder, for tests that check one rule at a time."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

STEMS = ["mask1", "mask2", "mask3", "mask4", "mask5", "incorrect_mask", "normal"]


def write_image(path: Path, size=(48, 64), color=(120, 130, 140), fmt: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = np.full((size[1], size[0], 3), color, dtype=np.uint8)
    arr[size[1] // 4: size[1] // 2, size[0] // 4: 3 * size[0] // 4] = 255 - np.array(color, dtype=np.uint8)
    Image.fromarray(arr).save(path, format=fmt)
    return path


def make_person(images: Path, folder: str, ext: str = ".jpg", stems=STEMS, size=(48, 64)) -> Path:
    d = images / folder
    for i, stem in enumerate(stems):
        write_image(d / f"{stem}{ext}", size=size, color=(40 * i % 255, 90, 160))
    return d


def make_train(root: Path, people=("000001_female_Asian_45", "000002_male_Asian_25", "000003_female_Asian_60"),
               csv: bool = True, size=(48, 64)) -> Path:
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


def make_eval(root: Path, answers=(0, 7, 17), gt: bool = True, size=(48, 64)) -> Path:
    """Competition eval layout: root/info.csv, root/images/<ImageID> (+ root/gt.csv)."""
    ids = [f"img{i:03d}.jpg" for i in range(len(answers))]
    for image_id in ids:
        write_image(root / "images" / image_id, size=size)
    (root / "info.csv").write_text("ImageID,ans\n" + "".join(f"{i},0\n" for i in ids))
    if gt:
        (root / "gt.csv").write_text("ImageID,ans\n" + "".join(f"{i},{a}\n" for i, a in zip(ids, answers)))
    return root


def make_folders(root: Path, classes=("cat", "dog"), per_class: int = 3, size=(48, 64)) -> Path:
    """One folder per class: root/<class>/<n>.png."""
    for c, name in enumerate(classes):
        for n in range(per_class):
            write_image(root / name / f"{n}.png", size=size, color=(60 * c, 100, 200 - 60 * c))
    return root
