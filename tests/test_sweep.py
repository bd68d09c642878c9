"""python -m core sweep end to end on a tiny dataset: trials, pruning, resume, best.json, the space's rules."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import optuna
import pytest
from tests.helpers import make_train, tiny_recipe
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend

from core.cli import build_parser, main
from core.errors import UserError
from core.recipe import Recipe, recipe_params
from core.runs import read_config, read_metrics, read_status
from core.sweep_space import DEFAULT_SPACE, default_space, parse_space, searchable_fields
from core.training.config import PARAMS, TrainConfig

# 1-epoch trials of the small CNN on 24x32 inputs: a trial takes a second or two.
FLAGS = ["--model", "smallcnn", "--epochs", "1", "--batch-size", "16", "--train-workers", "1"]
SPACE = {"train.lr": {"low": 0.002, "high": 0.02, "log": True},
         "recipe.enhance.contrast": {"choices": [1.0, 1.2]}}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> dict:
    base = tmp_path_factory.mktemp("sweep")
    space = base / "space.json"
    space.write_text(json.dumps(SPACE))
    return {"data": make_train(base / "data", people=12), "recipe": tiny_recipe(base / "recipe.json"),
            "space": space, "base": base}


def sweep(tiny: dict, out: Path, *extra: str, space: Path | None = None) -> tuple[int, str, str]:
    """(exit status, stdout, stderr) of ``python -m core sweep`` run in this process."""
    argv = ["sweep", "--data", str(tiny["data"]), "--recipe", str(tiny["recipe"]), "--out", str(out),
            "--space", str(space or tiny["space"]), *FLAGS, *extra]
    err, outs = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(outs):
        code = main(argv)
    return code, outs.getvalue(), err.getvalue()


def journal_study(out: Path, name: str = "sweep") -> optuna.Study:
    return optuna.load_study(study_name=name, storage=JournalStorage(JournalFileBackend(str(out / "study.log"))))


def states(study: optuna.Study) -> list[str]:
    return [t.state.name for t in study.get_trials()]


# ----------------------------------------------------------------------------- end to end

def test_a_three_trial_sweep_trains_three_runs_and_records_the_best(tiny):
    out = tiny["base"] / "three"
    code, stdout, stderr = sweep(tiny, out, "--trials", "3")
    assert code == 0, stderr
    study = journal_study(out)
    trials = study.get_trials()
    assert states(study) == ["COMPLETE"] * 3
    for t in trials:
        run = Path(t.user_attrs["run_dir"])
        assert run.parent == out / "runs"
        assert read_status(run)["state"] == "done"
        assert read_status(run)["result"]["macro_f1"] == t.value  # the trial's value is its run's validation score
        assert [r["macro_f1"] for r in read_metrics(run)] == [t.intermediate_values[1]]  # one report per epoch
        assert read_config(run)["config"]["lr"] == t.params["train.lr"]
        assert read_config(run)["recipe"]["enhance"]["contrast"] == t.params["recipe.enhance.contrast"]
    best = json.loads((out / "best.json").read_text())
    top = max(trials, key=lambda t: t.value)
    assert (best["trial"], best["value"], best["params"]) == (top.number, top.value, top.params)
    assert best["recipe"] == json.loads((out / "best_recipe.json").read_text())
    assert best["recipe"]["input_size"] == [24, 32]  # the --recipe given is the base of every trial
    assert "added 3 trial(s): 3 complete" in stdout
    assert f"best: trial {top.number}, val macro F1 {top.value:.4f}" in stdout


def test_running_again_adds_trials_to_the_same_study(tiny):
    out = tiny["base"] / "resume"
    assert sweep(tiny, out, "--trials", "1")[0] == 0
    code, stdout, stderr = sweep(tiny, out, "--trials", "2")
    assert code == 0, stderr
    study = journal_study(out)
    assert states(study) == ["COMPLETE"] * 3
    assert len({t.user_attrs["batch"] for t in study.get_trials()}) == 2  # two commands
    assert "added 2 trial(s): 2 complete" in stdout
    assert json.loads((out / "best.json").read_text())["value"] == study.best_value


def test_best_json_argv_is_a_train_command_that_repeats_the_best_trial(tiny):
    out = tiny["base"] / "three"  # from the first test, or made here
    if not (out / "best.json").is_file():
        assert sweep(tiny, out, "--trials", "3")[0] == 0
    best = json.loads((out / "best.json").read_text())
    argv = best["argv"]
    assert argv[:4] == ["python", "-m", "core", "train"]
    args = build_parser().parse_args(argv[3:])
    assert (args.command, args.lr, args.model, args.epochs) == ("train", best["params"]["train.lr"], "smallcnn", 1)
    assert Recipe.load(args.recipe) == Recipe.from_dict(best["recipe"])
    assert main(argv[3:]) == 0  # it runs: one epoch, into the sweep's runs folder
    again = max((out / "runs").iterdir(), key=lambda p: p.stat().st_mtime)
    assert read_config(again)["recipe"] == best["recipe"]
    assert read_config(again)["config"]["lr"] == best["params"]["train.lr"]


# ----------------------------------------------------------------------------- pruning

def seeded_study(out: Path) -> None:
    """A study whose one complete trial scored 1.0 at each of epochs 1-3: any real trial is below
    its median at epoch 1."""
    out.mkdir(parents=True)
    study = optuna.create_study(study_name="sweep", direction="maximize",
                                storage=JournalStorage(JournalFileBackend(str(out / "study.log"))))
    study.add_trial(optuna.trial.create_trial(
        params={"train.lr": 1e-6}, distributions={"train.lr": optuna.distributions.FloatDistribution(1e-6, 2e-6, log=True)},
        value=1.0, intermediate_values={1: 1.0, 2: 1.0, 3: 1.0}))


@pytest.mark.parametrize("pruner", ["median", "none"])
def test_a_trial_below_the_median_is_pruned_after_its_first_epoch(tiny, pruner):
    out = tiny["base"] / f"prune-{pruner}"
    seeded_study(out)
    space = tiny["base"] / "slow.json"
    space.write_text(json.dumps({"train.lr": {"low": 1e-6, "high": 2e-6, "log": True}}))  # learns nothing
    code, stdout, stderr = sweep(tiny, out, "--trials", "1", "--epochs", "3", "--pruner", pruner,
                                 "--prune-startup", "1", "--prune-warmup", "0", space=space)
    assert code == 0, stderr
    trial = journal_study(out).get_trials()[1]
    run = Path(trial.user_attrs["run_dir"])
    if pruner == "median":
        assert trial.state.name == "PRUNED"
        assert list(trial.intermediate_values) == [1]
        assert read_status(run)["state"] == "stopped"  # the run stopped right after epoch 1
        assert len(read_metrics(run)) == 1
        assert "added 1 trial(s): 1 pruned" in stdout
    else:
        assert trial.state.name == "COMPLETE"
        assert list(trial.intermediate_values) == [1, 2, 3]
        assert read_status(run)["state"] == "done"
    assert json.loads((out / "best.json").read_text())["trial"] == 0


# ----------------------------------------------------------------------------- the space's rules

def refusal(tiny: dict, space: object, *extra: str) -> str:
    path = tiny["base"] / "bad.json"
    path.write_text(json.dumps(space))
    code, _, stderr = sweep(tiny, tiny["base"] / "refused", *extra, space=path)
    lines = stderr.strip().splitlines()
    assert code == 2 and len(lines) == 1, stderr
    assert not (tiny["base"] / "refused" / "study.log").exists()  # nothing started
    return lines[0].replace(str(path), "SPACE")


def test_an_unknown_field_is_refused_in_one_line(tiny):
    assert refusal(tiny, {"recipe.enhance.contrst": {}}) == (
        "error: SPACE: unknown field 'recipe.enhance.contrst'; did you mean recipe.enhance.contrast? fields are "
        "recipe.<section>.<field> (core/recipe.py; recipe.crop.box.3 is one element) or train.<field> (python -m "
        "core train --help), except paths, speed settings and the split")
    assert "unknown field 'train.data'" in refusal(tiny, {"train.data": {}})  # a path is never searched


def test_a_bound_outside_the_rule_book_is_refused_in_one_line(tiny):
    assert refusal(tiny, {"recipe.enhance.contrast": {"low": 0.5, "high": 4.0}}) == (
        "error: SPACE: recipe.enhance.contrast high 4.0: must be a number from 0 to 3")
    assert refusal(tiny, {"train.lr": {"low": 0.0, "high": 0.1, "log": True}}) == (
        "error: SPACE: train.lr low 0.0: must be a number in (0, 10]")
    assert refusal(tiny, {"recipe.enhance.equalize": {"choices": ["none", "sharpen"]}}) == (
        "error: SPACE: recipe.enhance.equalize choice 'sharpen': must be one of: none, hist, clahe")


def test_a_bad_type_is_refused_in_one_line(tiny):
    assert refusal(tiny, {"recipe.augment.rotate": {"low": "5"}}) == (
        "error: SPACE: recipe.augment.rotate low '5': must be a number from 0 to 45")
    assert refusal(tiny, {"train.accum_steps": {"low": 1.5, "high": 4}}) == (
        "error: SPACE: train.accum_steps low 1.5: must be a whole number from 1 to 1024")
    assert refusal(tiny, ["train.lr"]).startswith("error: SPACE: a search space is a non-empty JSON object")
    assert refusal(tiny, {"train.lr": {"low": 0.001, "hi": 0.1}}) == (
        "error: SPACE: train.lr: unknown key 'hi'; allowed: low, high, log, step, choices, value, why")


def test_sqlite_is_refused_for_several_workers_with_the_reason(tiny):
    line = refusal(tiny, SPACE, "--workers", "2", "--storage", "sqlite:///study.db")
    assert line.startswith("error: --storage sqlite:///study.db with --workers 2: Optuna's FAQ advises against "
                           "SQLite for parallel optimization")


def test_the_default_space_comes_from_the_rule_book():
    dims = {d.name: d for d in default_space()}
    marked = {f"recipe.{n}" for n, p in recipe_params().items() if p.search} | {
        f"train.{n}" for n, p in PARAMS.items() if p.search}
    assert marked <= set(dims)  # every Param marked search=True is in it
    assert set(dims) == set(DEFAULT_SPACE)
    assert all(spec.get("why") for spec in DEFAULT_SPACE.values())  # each says why it is there
    lr = dims["train.lr"]
    assert (lr.low, lr.high, lr.log, lr.step) == (3e-4, 1e-2, True, None)  # log from the rule: continuous
    contrast = dims["recipe.enhance.contrast"]
    assert (contrast.low, contrast.high, contrast.step) == (0.7, 1.5, 0.05)  # the slider's grid
    assert dims["recipe.enhance.equalize"].choices == ("none", "hist", "clahe")
    assert dims["recipe.input_size"].choices == ("64x64", "80x80", "96x96", "112x112")
    assert dims["train.loss"].fixed and dims["train.loss"].value == "label_smoothing"
    assert searchable_fields()["recipe.crop.box.3"].label == "Fixed box: h (height)"


def test_a_space_narrows_never_widens():
    (d,) = parse_space({"recipe.augment.rotate": {"low": 5, "high": 20, "step": 5}}, "s")
    assert (d.low, d.high, d.step) == (5.0, 20.0, 5)
    (d,) = parse_space({"recipe.sampling.target": {"high": 0.33}}, "s")
    assert (d.low, d.high) == (0.05, 0.3)  # the rule's low, and high moved down onto the 0.05 grid
    with pytest.raises(UserError, match=r"^s: recipe.sampling.target low 0.01: must be a number from 0.05 to 1$"):
        parse_space({"recipe.sampling.target": {"low": 0.01}}, "s")


def test_a_space_that_searches_a_field_another_way_than_the_study_did_is_refused(tiny):
    out = tiny["base"] / "changed"
    seeded_study(out)  # train.lr on a log scale
    line = refusal_in(tiny, out, {"train.lr": {"low": 1e-3, "high": 1e-2, "log": False}})
    assert line == ("error: train.lr: study 'sweep' searched it as FloatDistribution(high=2e-06, log=True, low=1e-06, "
                    "step=None) before; cannot set different log configuration to the same parameter name: keep "
                    "that, or start another study with --study NAME or another --out")


def refusal_in(tiny: dict, out: Path, space: object) -> str:
    path = tiny["base"] / "changed.json"
    path.write_text(json.dumps(space))
    code, _, stderr = sweep(tiny, out, space=path)
    assert code == 2 and len(stderr.strip().splitlines()) == 1, stderr
    return stderr.strip()


# ----------------------------------------------------------------------------- best.json across commands

def test_best_json_repeats_the_best_trial_with_its_own_settings_after_another_command(tiny):
    """A later command with other fixed flags (its one trial fails before training: an impossible
    crop box) rewrites best.json; the best trial is still the first command's, with its settings."""
    out = tiny["base"] / "two-commands"
    assert sweep(tiny, out, "--trials", "1")[0] == 0
    failing = tiny["base"] / "box-off-image.json"
    failing.write_text(json.dumps({**SPACE, "recipe.crop.box.0": {"value": 0.5}}))  # x 0.5 + w 1 > 1
    code, _, stderr = sweep(tiny, out, "--trials", "1", "--epochs", "2", "--weight-decay", "0.3", "--batch-size", "8",
                            space=failing)
    assert code == 0, stderr
    first, second = journal_study(out).get_trials()
    assert (first.state.name, second.state.name) == ("COMPLETE", "FAIL")
    best = json.loads((out / "best.json").read_text())
    assert best["trial"] == 0
    ran = read_config(Path(first.user_attrs["run_dir"]))["config"]
    args = vars(build_parser().parse_args(best["argv"][3:]))
    assert (args["epochs"], args["weight_decay"], args["batch_size"]) == (1, TrainConfig().weight_decay, 16)
    assert args["lr"] == first.params["train.lr"]
    assert {k: args[k] for k in ran if k in args and k != "recipe"} == {k: v for k, v in ran.items()
                                                                      if k in args and k != "recipe"}
    assert best["train"] == {k: v for k, v in ran.items() if k != "recipe"}


# ----------------------------------------------------------------------------- exact values, fine grids

def test_list_choices_round_trip_exactly():
    (d,) = parse_space({"recipe.crop.box": {"choices": [[0.05, 0, 0.9, 0.723456789]]}}, "s")
    assert [d.decode(c) for c in d.choices] == [(0.05, 0.0, 0.9, 0.723456789)]
    (d,) = parse_space({"recipe.crop.box": {"choices": [[0, 0, 1, 0.1234561], [0, 0, 1, 0.1234562]]}}, "s")
    assert [d.decode(c) for c in d.choices] == [(0.0, 0.0, 1.0, 0.1234561), (0.0, 0.0, 1.0, 0.1234562)]
    assert d.to_spec() == {"choices": [[0.0, 0.0, 1.0, 0.1234561], [0.0, 0.0, 1.0, 0.1234562]]}
    (d,) = parse_space({"recipe.input_size": {"choices": [[96, 96]]}, }, "s")
    assert d.choices == ("96x96",)  # whole numbers keep their short form (earlier studies' choices)
    (d,) = parse_space({"recipe.crop.box": {"choices": [[0, 0, 1, 0.72]]}}, "s")
    assert d.choices == ("0, 0, 1, 0.72",)


@pytest.mark.parametrize("step", [1e-320, 1e-300, 1e-9])
def test_a_step_too_fine_for_its_range_is_refused_in_one_line(step):
    with pytest.raises(UserError) as caught:
        parse_space({"train.lr": {"low": 0.001, "high": 0.01, "log": False, "step": step}}, "s")
    assert str(caught.value) == (f"s: train.lr step {step:g}: makes more than 1,000,000 values from 0.001 to 0.01; "
                                 "give a larger step, or leave step out (the field's widget step)")


# ----------------------------------------------------------------------------- SQLite files, private job files

def test_sqlite_without_a_file_is_refused_in_one_line(tiny):
    assert refusal(tiny, SPACE, "--storage", "sqlite://") == (
        "error: --storage sqlite://: an in-memory SQLite database lives only as long as one process, so no worker or "
        "later command could read the study; give a file (sqlite:///FILE) or leave out --storage for the journal "
        "file SWEEP_DIR/study.log")


def test_a_relative_sqlite_file_follows_the_path_rule(tiny, tmp_path, monkeypatch):
    home, elsewhere = tmp_path / "home", tmp_path / "elsewhere"
    home.mkdir()
    elsewhere.mkdir()
    monkeypatch.setenv("MASKLAB_HOME", str(home))
    monkeypatch.chdir(elsewhere)
    out = tiny["base"] / "sqlite"
    code, stdout, stderr = sweep(tiny, out, "--trials", "1", "--storage", "sqlite:///studies.db")
    assert code == 0, stderr
    assert (home / "studies.db").is_file() and not list(elsewhere.iterdir())
    assert json.loads((out / "sweep.json").read_text())["storage"] == f"sqlite:///{home / 'studies.db'}"
    assert f"in sqlite:///{home / 'studies.db'};" in stdout
    assert "added 1 trial(s): 1 complete" in stdout


def test_the_job_file_is_private_before_it_takes_its_name(tmp_path, monkeypatch):
    import core.fileio
    from core.sweep import Job

    modes = {}
    replace = core.fileio.os.replace

    def spy(src, dst):
        modes[Path(dst).name] = Path(src).stat().st_mode & 0o777
        replace(src, dst)

    monkeypatch.setattr(core.fileio.os, "replace", spy)
    job = Job(sweep_dir=str(tmp_path), data="d", trials=1, space={}, fixed={}, recipe={},
              storage="postgresql://u:secret@host/db")
    path = job.save()
    assert modes[path.name] == 0o600 and path.stat().st_mode & 0o777 == 0o600
    assert "secret" not in (tmp_path / "sweep.json").read_text()
