"""bench/bench_quality.py end to end on a tiny demo: one line per seed (macro F1, accuracy, F1 by
task), then mean, min and max of each task's F1 and of macro F1."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from core.predict import evaluate
from tests.helpers import tiny_recipe

ROOT = Path(__file__).resolve().parents[1]
SEED_LINE = re.compile(r"^seed (\d+): eval macro F1 ([\d.]+)  accuracy ([\d.]+)  "
                       r"F1 by task: mask ([\d.]+)  gender ([\d.]+)  age ([\d.]+)  train (\d+) s  run (\S+)$")
SUMMARY = re.compile(r"^macro F1 over (\d+) seed\(s\): mean ([\d.]+)  min ([\d.]+)  max ([\d.]+)$")
TASK_SUMMARY = re.compile(r"^(mask|gender|age) F1 over (\d+) seed\(s\): mean ([\d.]+)  min ([\d.]+)  max ([\d.]+)$")


def bench(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "bench" / "bench_quality.py"), *args], cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=900)


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("quality")


def test_two_seeds_are_trained_scored_and_summarised(base):
    recipe = tiny_recipe(base / "recipe.json")
    args = ["--seeds", "0", "1", "--demo", str(base / "demo"), "--people", "12", "--eval-people", "4",
            "--out", str(base / "runs"), "--", "--recipe", str(recipe), "--model", "smallcnn", "--epochs", "1",
            "--batch-size", "16", "--workers", "1"]
    done = bench(*args)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    assert lines[0].startswith("configuration: train --recipe") and "(28 eval images)" in lines[1]
    seeds = [SEED_LINE.match(line) for line in lines if line.startswith("seed ")]
    assert [int(m.group(1)) for m in seeds] == [0, 1]
    f1s = [float(m.group(2)) for m in seeds]
    runs = [Path(m.group(8)) for m in seeds]
    assert len(set(runs)) == 2 and all((r / "eval_submission.csv").is_file() for r in runs)
    gt = base / "demo" / "eval" / "gt.csv"
    for m, run in zip(seeds, runs):  # each seed's task scores are evaluate's, to the printed digit
        scored = evaluate(run / "eval_submission.csv", gt)["task_f1"]
        assert [float(m.group(g)) for g in (4, 5, 6)] == [round(scored[t], 4) for t in ("mask", "gender", "age")]
    tasks = [TASK_SUMMARY.match(line) for line in lines[-4:-1]]
    assert [t.group(1) for t in tasks] == ["mask", "gender", "age"] and {t.group(2) for t in tasks} == {"2"}
    for t, group in zip(tasks, (4, 5, 6)):
        per_seed = [float(m.group(group)) for m in seeds]
        assert float(t.group(3)) == pytest.approx(sum(per_seed) / 2, abs=1e-4)
        assert (float(t.group(4)), float(t.group(5))) == (min(per_seed), max(per_seed))
    summary = SUMMARY.match(lines[-1])
    assert summary and summary.group(1) == "2"
    assert float(summary.group(2)) == pytest.approx(sum(f1s) / 2, abs=1e-4)
    assert float(summary.group(3)) == min(f1s) and float(summary.group(4)) == max(f1s)

    stamp = (base / "demo" / "eval" / "gt.csv").stat().st_mtime_ns
    again = bench(*args[:2], *args[3:])  # one seed, same demo: reused, not written again
    assert again.returncode == 0, again.stderr[-2000:]
    assert (base / "demo" / "eval" / "gt.csv").stat().st_mtime_ns == stamp
    assert SUMMARY.match(again.stdout.splitlines()[-1]).group(1) == "1"


def test_flags_the_script_sets_are_refused(base):
    done = bench("--demo", str(base / "none"), "--seed", "3")
    assert done.returncode != 0 and "--seed, --data, --out and --resume are set by this script" in done.stderr
    assert not (base / "none").exists()  # refused before any demo is written
