"""Every edge named: any input to any command ends in exit 0, or in exit 2 with one line that names
the value, the rule and the way out; never a traceback.

Property-based (Hypothesis), bounded to a few seconds each. The flags fuzzed are read from the
parser itself, so a new command or flag is covered the day it is added. Inputs Hypothesis once
found to break a command are kept as ``@example`` cases (see the ``FOUND`` lists).
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from core.cli import build_parser, main
from core.errors import RecipeError, UserError
from core.recipe import Recipe
from core.rules import Param, Rule
from tests.helpers import layout_eval, layout_train, make_person

FAST = settings(max_examples=60, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

# Odd text that has broken parsers before: digits int() or str.isdigit() disagree on, numbers
# Python reads but people do not mean, paths that are not paths.
ODD = ["²", "٣", "١٢", "1e400", "-0", "0x10", "1_000", " 5 ", "", "nan", "inf", "-inf", "1,5", "+3", "∞", "10" * 40,
       "~no_such_user_xyz/data", "a" * 300, "x\x00y", "/dev/null/x", ".", "..", "../..", "\udcff", "é.csv"]
VALUES = st.one_of(st.sampled_from(ODD), st.integers(-10**30, 10**30).map(str),
                   st.floats(allow_nan=True, allow_infinity=True).map(repr), st.text(max_size=40))


def run_cli(argv: list[str]) -> tuple[int, str]:
    """(exit status, stderr) of ``python -m core ARGV`` run in this process."""
    err, out = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        code = main(argv)  # anything but a UserError (a traceback) fails the test right here
    return code, err.getvalue()


def assert_exit_0_or_one_line(code: int, err: str) -> str:
    assert code in (0, 2), (code, err)
    assert "Traceback" not in err
    if code == 2:
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), err
        return lines[0]
    return ""


@pytest.fixture()
def home(tmp_path, monkeypatch) -> Path:
    """An empty folder where relative paths start (MASKLAB_HOME): fuzzed paths land here."""
    monkeypatch.setenv("MASKLAB_HOME", str(tmp_path))
    return tmp_path


# ----------------------------------------------------------------------------- every flag

def typed_flags() -> list[tuple[str, str, Rule]]:
    """(command, --flag, rule) of every flag of every command whose value a rule checks."""
    found = []
    sub = next(a for a in build_parser()._actions if a.__class__.__name__ == "_SubParsersAction")
    for command, parser in sub.choices.items():
        for action in parser._actions:
            rule = getattr(action.type, "rule", None)
            if rule is not None:
                found.append((command, action.option_strings[0], rule))
    return found


# What makes each command stop at a path check when the fuzzed value is fine: nothing runs.
MISSING = "/nonexistent-masklab/folder"
BASE = {"demo": ["--out", "/dev/null/demo", "--people", "0"], "info": ["--data", MISSING],
        "faces": ["--data", MISSING],
        "predict": ["--run", MISSING, "--data", MISSING], "evaluate": ["--pred", MISSING, "--gt", MISSING],
        "train": ["--data", MISSING], "lr-find": ["--data", MISSING], "label-issues": ["--data", MISSING],
        "sweep": ["--data", MISSING, "--out", "/dev/null/sweep"], "health": ["--data", MISSING, "--eval", MISSING]}


def test_every_typed_flag_is_fuzzed():
    flags = typed_flags()
    assert {c for c, _, _ in flags} == set(BASE)  # a new command needs its BASE entry
    assert ("train", "--seed", ) in {(c, f) for c, f, _ in flags}
    assert len(flags) > 60


@pytest.mark.parametrize("command, flag, rule", typed_flags(), ids=lambda v: v if isinstance(v, str) else "")
def test_any_value_of_any_flag_ends_in_exit_2_naming_the_flag(command, flag, rule, home):
    base = list(BASE[command])
    if flag in base:  # the fuzzed flag replaces its BASE value (the other BASE entry still stops it)
        i = base.index(flag)
        del base[i:i + 2]

    @FAST
    @given(value=VALUES)
    def check(value):
        code, err = run_cli([command, f"{flag}={value}", *base])
        line = assert_exit_0_or_one_line(code, err)
        assert code == 2  # BASE never holds a usable path or count, so nothing ran
        try:
            rule.parse(value, flag)
        except UserError:
            assert flag in line, line  # a bad value is named by its flag

    check()


# ----------------------------------------------------------------------------- CSV files

CELLS = st.one_of(st.sampled_from(ODD + ["male", "female", "gender", "age", "race", "swap", "incorrect_mask:normal",
                                         "normal:mask1", "17", "18", "-1", "000001", "/etc/passwd", "img000.jpg"]),
                  st.text(max_size=12))
HEADERS = st.sampled_from(["person,field,value", "ImageID,ans", "id,gender,race,age,path", "", "a,b", "person"])


@st.composite
def csv_files(draw) -> bytes:
    """A CSV with one of the project's headers (or not) and rows of odd cells; or raw bytes."""
    if draw(st.booleans()) and draw(st.booleans()):
        return draw(st.binary(max_size=200))
    buf = io.StringIO()
    header = draw(HEADERS)
    if header:
        buf.write(header + "\n")
    writer = csv.writer(buf)
    for row in draw(st.lists(st.lists(CELLS, max_size=4), max_size=4)):
        writer.writerow(row)
    return buf.getvalue().encode("utf-8", "surrogateescape")


FOUND_CORRECTIONS = [b"person,field,value\n000001,age,\xc2\xb2\n",  # '²': isdigit() yes, int() no
                     b"person,field,value\n"]  # header only: no corrections, nothing to refuse


@pytest.fixture()
def train_root(tmp_path) -> Path:
    return layout_train(tmp_path / "train")


@FAST
@given(content=csv_files())
@example(content=FOUND_CORRECTIONS[0])
@example(content=FOUND_CORRECTIONS[1])
def test_any_corrections_file_is_applied_or_refused_in_one_line(train_root, content):
    path = train_root.parent / "fix.csv"
    path.write_bytes(content)
    assert_exit_0_or_one_line(*run_cli(["info", "--data", str(train_root), "--corrections", str(path)]))


@FAST
@given(pred=csv_files(), gt=csv_files())
@example(pred=b"ImageID,ans\nimg000.jpg,99\n", gt=b"ImageID,ans\nimg000.jpg,1\n")  # a class id out of range
@example(pred=b"ImageID,ans\n", gt=b"ImageID,ans\n")  # header only
def test_any_submission_is_scored_or_refused_in_one_line(tmp_path, pred, gt):
    (tmp_path / "pred.csv").write_bytes(pred)
    (tmp_path / "gt.csv").write_bytes(gt)
    assert_exit_0_or_one_line(*run_cli(["evaluate", "--pred", str(tmp_path / "pred.csv"),
                                        "--gt", str(tmp_path / "gt.csv")]))


@pytest.fixture()
def eval_root(tmp_path) -> Path:
    return layout_eval(tmp_path / "eval")


@FAST
@given(info=csv_files(), gt=csv_files())
@example(info=b"ImageID,ans\n/etc/passwd,0\n", gt=b"ImageID,ans\n")  # an absolute path out of the dataset
@example(info=b"ImageID,ans\n../train.csv,0\nimg000.jpg,0\n", gt=b"ImageID,ans\nimg000.jpg,\xc2\xb2\n")
def test_any_eval_csvs_are_read_or_refused_in_one_line(eval_root, info, gt):
    (eval_root / "info.csv").write_bytes(info)
    (eval_root / "gt.csv").write_bytes(gt)
    assert_exit_0_or_one_line(*run_cli(["info", "--data", str(eval_root)]))


def test_an_image_id_outside_the_eval_folder_is_a_problem_not_a_read(eval_root):
    (eval_root / "info.csv").write_text("ImageID,ans\n/etc/passwd,0\n../gt.csv,0\nimg000.jpg,0\n")
    code, err = run_cli(["info", "--data", str(eval_root)])
    assert code == 0, err
    from core.dataset import scan

    ds = scan(eval_root)
    assert list(ds.df["image_id"]) == ["img000.jpg"]
    rules = [p.rule for p in ds.problems]
    assert any("ImageID '/etc/passwd': must be non-empty a file or folder name without / or \\" in r for r in rules)
    assert any("ImageID '../gt.csv'" in r for r in rules)


@FAST
@given(table=csv_files())
@example(table=b"id,gender,race,age,path\n000001,female,Asian,45,/etc\n")
def test_any_train_csv_is_read_or_refused_in_one_line(train_root, table):
    (train_root / "train.csv").write_bytes(table)
    assert_exit_0_or_one_line(*run_cli(["info", "--data", str(train_root)]))


# ----------------------------------------------------------------------------- names in a dataset

NAMES = st.one_of(st.sampled_from(["000009_female_Asian_²", "000009_female_Asian_٣٠", "000009_male_Asian_-4",
                                   "000009_male_Asian_999", "a_b_c_d", "\udcff_male_x_30", "x\ny_male_A_3",
                                   "000009_female_Asian_45 ", "._000009_male_A_30"]),
                  st.text(min_size=1, max_size=40))


@FAST
@given(folder=NAMES, stem=NAMES)
def test_any_folder_or_file_name_is_indexed_or_listed_as_a_problem(train_root, folder, stem):
    images = train_root / "images"
    try:
        make_person(images, folder)
        (images / "000001_female_Asian_45" / f"{stem}.jpg").write_bytes((images / "000001_female_Asian_45" /
                                                                        "normal.jpg").read_bytes())
    except (OSError, ValueError, UnicodeError):
        assume(False)  # a name this filesystem cannot hold is nothing a dataset can contain
    assert_exit_0_or_one_line(*run_cli(["info", "--data", str(train_root)]))


# ----------------------------------------------------------------------------- recipes

JSON = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(-10**20, 10**20), st.floats(), st.text(max_size=8)),
                    lambda inner: st.one_of(st.lists(inner, max_size=4),
                                            st.dictionaries(st.sampled_from(["input_size", "crop", "mode", "box",
                                                                             "enhance", "contrast", "sampling",
                                                                             "method", "x"]), inner, max_size=4)),
                    max_leaves=12)


@FAST
@given(data=JSON)
@example(data={"input_size": ["96", 96]})  # a number as text: refused, not coerced
@example(data={"enhance": {"contrast": float("nan")}})
def test_any_recipe_json_loads_or_is_refused_by_key(tmp_path, data):
    path = tmp_path / "r.json"
    path.write_text(json.dumps(data))
    try:
        recipe = Recipe.load(path)
    except RecipeError as exc:
        assert str(path) in str(exc) and "\n" not in str(exc)
    else:
        assert Recipe.from_dict(recipe.to_dict()) == recipe


@FAST
@given(raw=st.binary(max_size=300))
@example(raw=b"[" * 100_000)  # nested past Python's recursion limit
@example(raw="{\"enhance\": {\"contrast\": 1}}".encode("utf-16"))
def test_any_bytes_as_a_recipe_file_are_refused_in_one_line(tmp_path, raw):
    path = tmp_path / "r.json"
    path.write_bytes(raw)
    with contextlib.suppress(RecipeError):
        Recipe.load(path)
    (tmp_path / "d").mkdir(exist_ok=True)  # an empty dataset folder: a valid recipe is refused there
    line = assert_exit_0_or_one_line(*run_cli(["train", "--data", str(tmp_path / "d"), "--recipe", str(path)]))
    assert str(path) in line or "dataset folder is empty" in line


def test_param_check_names_the_value_and_the_rule():
    from core.rulebook import SEED

    for value in ("²", 2**40, -1, 1.5, True, None, [1]):
        with pytest.raises(UserError) as info:
            Param(SEED.rule, "seed").check(value, "--seed")
        assert str(info.value).endswith("must be a whole number from 0 to 4294967295")
