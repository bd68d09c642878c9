"""Several processes, one model: torchrun + DistributedDataParallel on the CPU (gloo).

Tiny data and small timeouts keep these within the suite's time on a 2-core machine.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from core.cache import build_cache
from core.dataset import scan
from core.metrics import classification_metrics
from core.models import build_model
from core.predict import predict_logits
from core.recipe import Recipe
from core.runs import load_checkpoint, read_metrics, read_status
from core.training.distributed import Dist, deal
from tests.helpers import make_train, tiny_recipe

ROOT = Path(__file__).resolve().parents[1]
FLAGS = ["--epochs", "3", "--batch-size", "8", "--lr", "0.01", "--workers", "1", "--dist-timeout", "60"]
LIMIT_S = 240  # a run that is not over by then hangs


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("ddp")
    return make_train(root / "d", people=10), tiny_recipe(root / "r.json")


def _env() -> dict:
    return {**os.environ, "PYTHONPATH": str(ROOT)}


def _train(argv: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "core", "train", *argv], cwd=ROOT, env=_env(), capture_output=True,
                          text=True, timeout=LIMIT_S, **kw)


def _only_run(out: Path) -> Path:
    runs = [p for p in out.iterdir() if p.is_dir() and not p.name.startswith(".")]
    assert len(runs) == 1, runs
    return runs[0]


def test_deal_gives_equal_shards_that_cover_every_row_once_padding_aside():
    shards = [deal(10, Dist(rank=r, world=3, active=True)) for r in range(3)]
    assert [len(s) for s in shards] == [4, 4, 4]
    assert sorted(np.concatenate(shards).tolist()) == sorted(list(range(10)) + [0, 1])  # two rows padded


def test_two_processes_write_one_run_whose_metrics_equal_a_single_process_evaluation(tiny, tmp_path):
    data, recipe = tiny
    done = _train(["--data", str(data), "--recipe", str(recipe), "--out", str(tmp_path), "--nproc", "2", *FLAGS])
    assert done.returncode == 0, done.stderr[-3000:]
    run = _only_run(tmp_path)
    assert read_status(run)["state"] == "done"
    config = json.loads((run / "config.json").read_text())
    assert config["world_size"] == 2 and "--nproc 2" in config["command"]
    # The best checkpoint, evaluated here in one process on the run's validation rows.
    files = pd.read_csv(run / "dataset_files.csv")
    val = np.flatnonzero(files["val_fold"].to_numpy() == 0)
    best = load_checkpoint(run / "best.pt")
    model = build_model(best["model_name"], best["num_classes"], "none", best["head"])[0]
    model.load_state_dict(best["model"])
    rec = Recipe.from_dict(best["recipe"])
    images = build_cache(scan(data).df[lambda d: d["label"] >= 0].reset_index(drop=True), rec)
    labels = files["label"].to_numpy()
    epoch = next(r for r in read_metrics(run) if r["epoch"] == best["epoch"])
    logits = predict_logits(model, images, val)
    single = classification_metrics(labels[val], logits.argmax(1), config["class_names"])
    assert (single["macro_f1"], single["accuracy"]) == (epoch["macro_f1"], epoch["accuracy"])
    summary = json.loads((run / "summary.json").read_text())
    tta = predict_logits(model, images, val, tta=rec.augment.hflip)
    final = classification_metrics(labels[val], tta.argmax(1), config["class_names"])
    assert summary["images"] == len(val)  # every row once, the padding dropped
    assert (final["macro_f1"], final["accuracy"]) == (summary["macro_f1"], summary["accuracy"])


def test_one_process_under_torchrun_matches_the_plain_run(tiny, tmp_path):
    """The DDP code path with a world of one (what the one-GPU check runs with NCCL) changes nothing."""
    data, recipe = tiny
    plain = _train(["--data", str(data), "--recipe", str(recipe), "--out", str(tmp_path / "plain"), *FLAGS])
    assert plain.returncode == 0, plain.stderr[-2000:]
    ddp = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=1", "-m",
                          "core", "train", "--data", str(data), "--recipe", str(recipe), "--out",
                          str(tmp_path / "ddp"), *FLAGS], cwd=ROOT, env=_env(), capture_output=True, text=True,
                         timeout=LIMIT_S)
    assert ddp.returncode == 0, ddp.stderr[-2000:]
    keys = ("train_loss", "val_loss", "accuracy", "macro_f1")
    a, b = (read_metrics(_only_run(tmp_path / k)) for k in ("plain", "ddp"))
    assert [[r[k] for k in keys] for r in a] == [[r[k] for k in keys] for r in b]


KILL_RANK_1 = textwrap.dedent("""
    import os, sys
    import core.training.trainer as trainer
    calls = []
    real = trainer.train_steps

    def dying(*args, **kwargs):  # rank 1 dies hard at the start of its second epoch
        calls.append(1)
        if os.environ["RANK"] == "1" and len(calls) == 2:
            os._exit(137)
        return real(*args, **kwargs)

    trainer.train_steps = dying
    from core.cli import main
    sys.exit(main(sys.argv[1:]))
""")


def test_a_killed_rank_ends_the_run_with_a_message_and_the_run_resumes(tiny, tmp_path):
    data, recipe = tiny
    script = tmp_path / "kill_rank_1.py"
    script.write_text(KILL_RANK_1)
    out = tmp_path / "runs"
    killed = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                             str(script), "train", "--data", str(data), "--recipe", str(recipe), "--out", str(out),
                             *FLAGS], cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=LIMIT_S)
    assert killed.returncode != 0
    run = _only_run(out)
    status = read_status(run)
    assert status["state"] == "failed", status
    assert "distributed run stopped" in status["message"] and "--resume" in status["message"]
    assert load_checkpoint(run / "last.pt")["state"]["epoch"] == 1
    wrong = _train(["--resume", str(run), "--nproc", "1"])
    assert wrong.returncode == 2 and "resume it with --nproc 2" in wrong.stderr
    resumed = _train(["--resume", str(run)])  # starts torchrun with the run's own 2 processes
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert read_status(run)["state"] == "done"
    assert [r["epoch"] for r in read_metrics(run)] == [1, 2, 3]
    assert load_checkpoint(run / "best.pt")["kind"] == "best"


def test_folds_in_parallel_train_one_fold_per_process_into_one_run(tiny, tmp_path):
    """--folds 2 --nproc 2 --parallel-folds: each process trains a whole fold, as a single process
    would (same seeds, no gradient sharing), and rank 0 scores the out-of-fold predictions."""
    data, recipe = tiny
    flags = ["--data", str(data), "--recipe", str(recipe), "--folds", "2", *FLAGS]
    side = _train([*flags, "--out", str(tmp_path / "side"), "--nproc", "2", "--parallel-folds"])
    assert side.returncode == 0, side.stderr[-3000:]
    plain = _train([*flags, "--out", str(tmp_path / "plain")])
    assert plain.returncode == 0, plain.stderr[-2000:]
    a, b = _only_run(tmp_path / "side"), _only_run(tmp_path / "plain")
    assert (a / "fold0" / "best.pt").is_file() and (a / "fold1" / "best.pt").is_file()
    key = lambda r: (r["fold"], r["epoch"])  # noqa: E731
    ra, rb = sorted(read_metrics(a), key=key), sorted(read_metrics(b), key=key)
    assert [key(r) for r in ra] == [key(r) for r in rb] == [(f, e) for f in (0, 1) for e in (1, 2, 3)]
    # One thread per process instead of two: the same training up to float summation order.
    assert np.allclose([r["train_loss"] for r in ra], [r["train_loss"] for r in rb], rtol=0.02)
    sa, sb = (json.loads((r / "summary.json").read_text()) for r in (a, b))
    assert sa["scope"] == "out-of-fold" and sa["images"] == sb["images"] == 70
    assert read_status(a)["state"] == "done"
