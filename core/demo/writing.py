"""Writing the dataset: image files, the AppleDouble traps, the CSVs and ``make_demo``."""

from __future__ import annotations

import csv
import hashlib
import json
import shutil
from multiprocessing import get_context
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from core import rulebook as rb
from core.cores import usable_cores
from core.demo import defects, noise
from core.demo.effects import render_photos
from core.demo.person import Person, _person_rng, plan_people
from core.demo.population import RACE, STEMS
from core.errors import UserError
from core.labels import STEM_TO_MASK, age_group, encode

JPEG_QUALITY = 90
MARKER = ".masklab_demo.json"


class DemoError(UserError, ValueError):
    """A bad argument to make_demo (a ValueError the CLI prints as one line)."""


def encode_image(rgb: np.ndarray, ext: str) -> bytes:
    bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    if ext == ".png":
        ok, buf = cv2.imencode(".png", bgr, [cv2.IMWRITE_PNG_COMPRESSION, 3])
    else:
        ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:  # pragma: no cover - OpenCV always encodes these
        raise RuntimeError(f"could not encode a {ext} image")
    return buf.tobytes()


def appledouble_bytes(rng) -> bytes:
    """A macOS '._' resource-fork file: AppleDouble magic, a header, then junk. Not an image."""
    header = bytes.fromhex("00051607" "00020000") + b"Mac OS X        " + bytes.fromhex("0002")
    body = rng.integers(0, 256, size=4096 - len(header), dtype=np.uint8).tobytes()
    return header + body


def eval_image_id(seed: int, index: int, stem: str) -> str:
    return hashlib.sha1(f"masklab-demo:{seed}:{index}:{stem}".encode()).hexdigest() + ".jpg"


# Below this many people a worker pool costs more to start than it saves.
MIN_PEOPLE_FOR_PROCESSES = 40


def drawing_processes(workers: int | None, people: int) -> int:
    """Processes that draw: 1 (this one) for small demos, else `workers` (default: every
    available core), never more than there are people to draw."""
    if workers == 1 or people < MIN_PEOPLE_FOR_PROCESSES:
        return 1
    return min(workers or usable_cores(), people)


def _write_person(job: tuple[Person, int, Path]) -> list[tuple[str, int]]:
    """Draw and write one person's photos; returns eval (ImageID, class) rows (none for train)."""
    p, seed, root = job
    rng = _person_rng(seed, p.split, p.index, stream=1)  # make_person used stream 0
    photos = render_photos(p, rng)
    rows = []
    if p.split == "train":
        folder = root / "train" / "images" / p.folder
        folder.mkdir(parents=True, exist_ok=True)
        for stem, img in photos.items():
            (folder / f"{stem}{p.ext}").write_bytes(encode_image(img, p.ext))
        if p.appledouble:
            for stem in rng.choice(STEMS, size=int(rng.integers(1, 4)), replace=False):
                (folder / f"._{stem}{p.ext}").write_bytes(appledouble_bytes(rng))
    else:
        for stem, img in photos.items():
            image_id = eval_image_id(seed, p.index, stem)
            (root / "eval" / "images" / image_id).write_bytes(encode_image(img, ".jpg"))
            rows.append((image_id, encode(STEM_TO_MASK[stem], p.gender_code, age_group(p.age))))
    return rows


def _plain(value):
    """numpy scalars as Python numbers (the rules take Python's)."""
    return value.item() if isinstance(value, np.generic) else value


def _prepare_out(out: Path) -> None:
    """Create `out`, or clear a previous demo in it; never touch anything else."""
    if out.exists() and not out.is_dir():
        raise DemoError(f"demo output {out} exists and is not a folder; choose another path")
    if out.is_dir() and any(out.iterdir()):
        if not (out / MARKER).is_file():
            raise DemoError(f"demo output {out} is a non-empty folder that is not a previous demo; "
                            "choose an empty or new folder (a demo folder can be regenerated)")
        for sub in ("train", "eval"):
            if (out / sub).is_dir():
                shutil.rmtree(out / sub)
        for name in (noise.TRUTH_FILE, noise.CORRECTIONS_FILE, defects.TRUTH_FILE):
            (out / name).unlink(missing_ok=True)
    out.mkdir(parents=True, exist_ok=True)


def _draw_all(jobs: list, processes: int, progress: Callable[[int, int], None] | None,
              total: int) -> list[tuple[str, int]]:
    """Draw and write every person in submission order; returns the eval rows in that order."""
    done = 0
    eval_rows: list[tuple[str, int]] = []
    if processes == 1:
        results = map(_write_person, jobs)
        pool = None
    else:
        # spawn, not fork: forking a threaded process (Streamlit) can copy a held lock into
        # the child. imap keeps the submission order, so nothing depends on process timing.
        pool = get_context("spawn").Pool(processes)
        results = pool.imap(_write_person, jobs, chunksize=2)
    try:
        for rows in results:
            eval_rows.extend(rows)
            done += 7
            if progress is not None:
                progress(done, total)
    finally:
        if pool is not None:
            # Like `with Pool()`: idle workers go; after an error, or a progress callback that
            # raised to stop, nobody draws on.
            pool.terminate()
            pool.join()
    return eval_rows


def _write_train_csv(path: Path, train: list[Person]) -> None:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "gender", "race", "age", "path"])
        for p in train:
            w.writerow([f"{p.index + 1:06d}", p.gender, RACE, p.age, p.folder])


def _write_eval_csvs(folder: Path, eval_rows: list[tuple[str, int]], seed: int) -> None:
    """info.csv (answers 0) and gt.csv (true classes), rows shuffled so persons are not grouped."""
    order = np.random.default_rng(np.random.SeedSequence([seed, 3])).permutation(len(eval_rows))
    eval_rows = [eval_rows[i] for i in order]
    for name, with_answers in (("info.csv", False), ("gt.csv", True)):
        with open(folder / name, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["ImageID", "ans"])
            for image_id, label in eval_rows:
                w.writerow([image_id, label if with_answers else 0])


def _write_marker(out: Path, seed: int, people: int, eval_people: int, label_noise: float,
                  defect_rate: float = 0.0) -> None:
    """The file that marks `out` as a demo folder (so it may be regenerated) and its arguments."""
    args = {"generator": "core.demo.make_demo", "seed": seed, "people": people, "eval_people": eval_people}
    if label_noise > 0:  # absent at 0, so the marker, like every file, is unchanged by the option
        args["label_noise"] = label_noise
    if defect_rate > 0:
        args["defects"] = defect_rate
    (out / MARKER).write_text(json.dumps(args, indent=1) + "\n")


def make_demo(out: str | Path, people: int = 270, seed: int = 0, eval_people: int | None = None,
              progress: Callable[[int, int], None] | None = None, workers: int | None = None,
              label_noise: float = 0.0, defect_rate: float = 0.0) -> dict:
    """Write a synthetic dataset in the competition's layout to `out` and summarise it.

    people: training people (7 photos each); eval_people: distinct evaluation people
    (default round(0.3 * people)); seed: same seed and arguments -> byte-identical files;
    progress(done, total): called with image counts as people are written; workers: drawing
    processes (default: every available core; the files do not depend on it; small demos
    are drawn in this process); label_noise: share of training persons whose labels are made
    wrong on purpose, with the truth written beside train/ (see core.demo.noise); defect_rate:
    share of training persons given a data fault on purpose (duplicates, leaks, bad photos), the
    truth in OUT/defects.csv (see core.demo.defects).

    The workers are spawned, so a script that calls this at import time needs the usual
    ``if __name__ == "__main__":`` guard (``python -m core demo`` and Streamlit are fine).
    """
    people = rb.DEMO_PEOPLE.check(_plain(people), "people", DemoError)
    seed = rb.SEED.check(_plain(seed), "seed", DemoError)
    if eval_people is None:
        eval_people = int(round(people * 0.3))
    eval_people = rb.DEMO_EVAL_PEOPLE.check(_plain(eval_people), "eval_people", DemoError)
    workers = rb.WORKERS.check(_plain(workers), "workers", DemoError) if workers is not None else None
    label_noise = rb.LABEL_NOISE.check(_plain(label_noise), "label_noise", DemoError)
    defect_rate = rb.DEFECTS.check(_plain(defect_rate), "defects", DemoError)
    out = Path(out)
    _prepare_out(out)
    _write_marker(out, seed, people, eval_people, label_noise, defect_rate)
    (out / "train" / "images").mkdir(parents=True)
    (out / "eval" / "images").mkdir(parents=True)

    train = plan_people(people, seed, "train")
    evals = plan_people(eval_people, seed, "eval")
    plants = noise.plan_label_noise(train, label_noise, seed)
    jobs = [(p, seed, out) for p in train + evals]
    processes = drawing_processes(workers, len(jobs))
    eval_rows = _draw_all(jobs, processes, progress, total=7 * (people + eval_people))
    noise.plant_on_disk(out / "train" / "images", plants)
    listed = noise.labelled(train, plants)
    faults = defects.plant_defects(out, listed, defect_rate, seed, avoid={p.true.index for p in plants})
    _write_train_csv(out / "train" / "train.csv", listed + faults.people)
    _write_eval_csvs(out / "eval", eval_rows + faults.eval_rows, seed)
    faults_file = defects.write_truth(out, faults) if faults.rows else None
    truth = noise.write_truth(out, plants) if plants else (None, None)
    return {
        "out": str(out),
        "seed": seed,
        "people": people,
        "eval_people": eval_people,
        "train_images": 7 * (people + len(faults.people)),
        "eval_images": 7 * eval_people,
        "appledouble_files": sum(1 for _ in (out / "train" / "images").glob("*/._*")),
        "processes": processes,
        "label_noise": {kind: sum(p.kind == kind for p in plants) for kind in noise.KINDS},
        "label_noise_file": str(truth[0]) if truth[0] else None,
        "label_noise_corrections": str(truth[1]) if truth[1] else None,
        "defects": faults.counts,
        "defects_file": str(faults_file) if faults_file else None,
    }
