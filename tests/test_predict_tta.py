"""predict --tta none|flip|auto and ensembles (--run A --run B): computed by hand from the parts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from core.cache import build_cache
from core.cli import main
from core.dataset import scan
from core.errors import UserError
from core.predict import load_models, predict_logits, predict_probabilities
from core.recipe import Recipe
from core.training import TrainConfig, train
from tests.helpers import make_eval, make_folders, make_train, tiny_recipe

SETTINGS = dict(model="smallcnn", epochs=1, batch_size=16, lr=0.01, workers=1)


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> dict:
    base = tmp_path_factory.mktemp("tta")
    data = make_train(base / "train", people=12)
    make_eval(base / "eval", people=2)
    flips = tiny_recipe(base / "flips.json")  # 24x32, hflip on (the default)
    still = Recipe().replace(input_size=(32, 40), augment={"hflip": False})  # another size: its own cache
    still.save(base / "still.json")
    runs = {name: train(TrainConfig(data=str(data), recipe=str(base / f"{name}.json"), out=str(base / "runs"),
                                    seed=seed, **SETTINGS))
            for name, seed in (("flips", 0), ("still", 1))}
    return {"base": base, "eval": base / "eval", **runs}


def softmax(logits: np.ndarray) -> np.ndarray:
    return torch.softmax(torch.from_numpy(logits), 1).numpy()


def by_hand(run: Path, eval_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """(plain, mirror-averaged) probabilities of the eval images, from predict_logits itself."""
    models, meta = load_models(run, torch.device("cpu"))
    images = build_cache(scan(eval_dir).df, Recipe.from_dict(meta["recipe"]), workers=1)
    logits = predict_logits(models[0], images)
    mirrored = predict_logits(models[0], np.ascontiguousarray(images[:, :, ::-1]))
    return softmax(logits), (softmax(logits) + softmax(mirrored)) / 2


def probabilities(runs, eval_dir: Path, tta: str = "auto") -> np.ndarray:
    return predict_probabilities(runs, eval_dir, device="cpu", tta=tta, workers=1)[3]


def test_tta_none_and_flip_differ_only_by_the_mirror_average(base):
    plain, mirrored = by_hand(base["flips"], base["eval"])
    none, flip = probabilities(base["flips"], base["eval"], "none"), probabilities(base["flips"], base["eval"], "flip")
    assert np.allclose(none, plain, atol=1e-5)
    assert np.allclose(flip, mirrored, atol=1e-5)
    assert not np.allclose(none, flip, atol=1e-4)  # the mirror changes something


def test_auto_follows_each_runs_recipe(base):
    notes: list[str] = []
    auto = predict_probabilities(base["flips"], base["eval"], device="cpu", workers=1, log=notes.append)[3]
    assert np.allclose(auto, probabilities(base["flips"], base["eval"], "flip"), atol=1e-6)
    assert any("--tta auto = flip" in n for n in notes)
    assert np.allclose(probabilities(base["still"], base["eval"]), probabilities(base["still"], base["eval"], "none"),
                       atol=1e-6)


def test_an_ensemble_of_one_run_is_that_run(base):
    assert np.allclose(probabilities([base["flips"]], base["eval"]), probabilities(base["flips"], base["eval"]),
                       atol=1e-7)


def test_an_ensemble_of_two_runs_is_the_mean_of_their_probabilities(base):
    a, b = probabilities(base["flips"], base["eval"]), probabilities(base["still"], base["eval"])
    both = probabilities([base["flips"], base["still"]], base["eval"])
    assert np.allclose(both, (a + b) / 2, atol=1e-6)
    assert not np.allclose(a, b, atol=1e-3)  # two different models: the mean is not either one
    assert np.allclose(both.sum(1), 1, atol=1e-5)


def test_cli_ensemble_writes_the_mean_prediction(base, capsys):
    out = base["base"] / "ensemble.csv"
    code = main(["predict", "--run", str(base["flips"]), "--run", str(base["still"]), "--data", str(base["eval"]),
                 "--out", str(out), "--device", "cpu", "--workers", "1", "--tta", "flip"])
    assert code == 0
    assert "mean probabilities of 2 runs" in capsys.readouterr().out
    mean = (probabilities(base["flips"], base["eval"], "flip") + probabilities(base["still"], base["eval"], "flip")) / 2
    info = pd.read_csv(base["eval"] / "info.csv", dtype=str)
    sub = pd.read_csv(out, dtype={"ImageID": str})
    assert list(sub["ImageID"]) == list(info["ImageID"])
    ids = list(scan(base["eval"]).df["image_id"])  # the order predict_probabilities returns rows in
    expected = dict(zip(ids, mean.argmax(1)))
    assert [expected[i] for i in sub["ImageID"]] == list(sub["ans"])


def test_cli_tta_choices_and_bad_value(base, capsys):
    with pytest.raises(SystemExit):
        main(["predict", "--help"])
    help_text = capsys.readouterr().out
    assert "(one of: auto, none, flip) (default: auto)" in " ".join(help_text.split())
    code = main(["predict", "--run", str(base["flips"]), "--data", str(base["eval"]), "--tta", "mirror"])
    assert code == 2
    assert "argument --tta: 'mirror': must be one of: auto, none, flip" in capsys.readouterr().err


def test_runs_with_other_classes_cannot_be_ensembled(base, tmp_path):
    pets = make_folders(tmp_path / "pets", per_class=6)
    other = train(TrainConfig(data=str(pets), recipe=str(tiny_recipe(tmp_path / "r.json")), out=str(tmp_path / "runs"),
                              **SETTINGS))
    with pytest.raises(UserError, match="classes differ"):
        predict_probabilities([base["flips"], other], base["eval"], device="cpu", workers=1)
    with pytest.raises(UserError, match="--tta 'mirror': must be one of: auto, none, flip"):
        predict_probabilities(base["flips"], base["eval"], device="cpu", tta="mirror")
