"""AppTest: the Train page's learning-rate finder and the Runs page's ensemble submission."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from core.predict import predict_probabilities
from core.recipe import Recipe
from core.training import TrainConfig, train
from tests.apptest import app_env, assert_clean, open_app, runs, tiny  # noqa: F401 - fixtures

TINY = {"recipe": Recipe().replace(input_size=(24, 32)), "t.model": "smallcnn", "t.epochs": 1, "t.batch_size": 16}


def test_lr_finder_fills_the_learning_rate_field(tiny, runs, monkeypatch):
    import core.training.lr_find as lr_find

    monkeypatch.setattr(lr_find, "default_steps", lambda batches: 8)  # a short sweep: the test is about the page
    at = open_app(tiny / "train", "train", **TINY, **{"t.lr": 0.002})
    assert "lr-find" in " ".join(c.value for c in at.main.code)  # the command line equivalent
    at.button(key="t.lr_find").click().run()
    assert_clean(at)
    result = at.session_state["t.lr_sweep"]
    sweep = result["sweep"]
    assert at.session_state["t.lr"] == result["set"] == pytest.approx(sweep.suggestion, rel=5e-3)
    assert at.number_input(key="t.lr").value == result["set"]  # the field shows it
    assert sweep.lrs.min() <= sweep.suggestion <= sweep.lrs.max() and len(sweep.lrs) <= 8
    assert any("now holds" in s.value and "was 0.002" in s.value for s in at.success)
    assert any(json.loads(c.proto.spec)["layout"]["title"]["text"] == "Learning-rate sweep"
               for c in at.get("plotly_chart"))
    saved = list((runs / "lr-find").glob("*/lr_find.csv"))
    assert len(saved) == 1 and len(pd.read_csv(saved[0])) == len(sweep.lrs)


def test_ensemble_submission_from_the_runs_page(tiny, runs):
    settings = dict(data=str(tiny / "train"), recipe=TINY["recipe"].to_dict(), model="smallcnn", epochs=1,
                    batch_size=16, lr=0.01, workers=1, out=str(runs))
    members = [train(TrainConfig(seed=seed, **settings)) for seed in (0, 1)]
    at = open_app(tiny / "train", "runs", **{"runs.ens.eval": str(tiny / "eval")})
    assert sorted(at.multiselect(key="runs.ens.pick").value) == sorted(m.name for m in members)
    assert at.selectbox(key="runs.ens.tta").value == "auto"
    at.button(key="runs.ens.predict").click().run()
    assert_clean(at)
    made = list((runs / "ensembles").glob("ensemble-2runs-eval-*.csv"))
    assert len(made) == 1
    sub = pd.read_csv(made[0], dtype={"ImageID": str})
    layout, df, _, probs, _ = predict_probabilities(members, tiny / "eval", device="cpu", workers=1)
    expected = dict(zip(df["image_id"], probs.argmax(1)))
    assert list(sub["ans"]) == [expected[i] for i in sub["ImageID"]]  # the mean of the two runs
    scores = next(d.value for d in at.dataframe if "eval macro F1" in d.value.columns)
    from core.predict import evaluate

    assert scores.loc[0, "submission"] == "ensemble of 2"
    scored = evaluate(made[0], tiny / "eval" / "gt.csv")
    assert scores.loc[0, "eval macro F1"] == pytest.approx(scored["macro_f1"], abs=1e-4)
    for task in ("mask", "gender", "age"):  # each task's F1 beside the 18-class one
        assert scores.loc[0, f"{task} F1"] == pytest.approx(scored["task_f1"][task], abs=1e-4)
    assert "Download the ensemble submission.csv" in [b.proto.label for b in at.get("download_button")]
    assert any("--run" in c.value and "--tta auto" in c.value for c in at.main.code)
