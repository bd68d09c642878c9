"""core.paths and the rule book's path rules: the one rule for paths a user types, and its refusals."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.errors import UserError
from core.paths import eval_dir_beside, user_base, user_path
from core.rulebook import RECIPE_FILE, RECIPE_SAVE


@pytest.fixture(autouse=True)
def _home(monkeypatch, tmp_path):
    monkeypatch.setenv("MASKLAB_HOME", str(tmp_path))


def test_relative_paths_start_at_masklab_home_and_tilde_is_the_home(tmp_path, monkeypatch):
    assert user_base() == tmp_path.resolve()
    assert user_path("a/b.json") == tmp_path.resolve() / "a" / "b.json"
    assert user_path("~/x.csv") == Path.home().resolve() / "x.csv"
    assert user_path(" /abs/r.json ") == Path("/abs/r.json")
    monkeypatch.delenv("MASKLAB_HOME")
    assert user_base() == Path.cwd()  # the start folder (pytest runs from the repository root)


def test_a_file_of_the_expected_kind_is_returned_absolute(tmp_path):
    (tmp_path / "fix.csv").write_text("person,field,value\n")
    from core.rulebook import CORRECTIONS_FILE

    assert CORRECTIONS_FILE.check("fix.csv", "path") == tmp_path.resolve() / "fix.csv"
    assert RECIPE_SAVE.check("new.json", "path") == tmp_path.resolve() / "new.json"


@pytest.mark.parametrize("typed, must_exist, needle", [
    ("", True, "Recipe file '': must be the path of an existing file ending in .json"),
    (".", True, "is a folder; give the path of a recipe file"),
    ("secret.txt", True, "must end in .json; give the path of such a recipe"),
    ("nope.json", True, "nope.json': does not exist; give the path of an existing file ending in .json; relative "
                        "paths start at $MASKLAB_HOME"),
    ("no/such/dir/r.json", False, "its folder"),
])
def test_refusals_name_the_path_the_rule_and_the_way_out(tmp_path, typed, must_exist, needle):
    (tmp_path / "secret.txt").write_text("password=hunter2")
    with pytest.raises(UserError) as info:
        (RECIPE_FILE if must_exist else RECIPE_SAVE).check(typed, "Recipe file")
    message = str(info.value)
    assert needle in message
    assert "hunter2" not in message
    if typed:
        assert str(user_path(typed)) in message


@pytest.mark.parametrize("typed, needle", [
    ("~no_such_user_xyz/data", "~no_such_user_xyz names no user on this machine"),
    ("a" * 300, "is longer than this filesystem's"),
    ("bad\x00name", "cannot hold a NUL character"),
])
def test_odd_paths_are_refused_with_the_reason(typed, needle):
    with pytest.raises(UserError, match=needle):
        user_path(typed)


def test_eval_folder_beside_a_dataset(tmp_path):
    (tmp_path / "demo" / "train").mkdir(parents=True)
    assert eval_dir_beside("demo/train") is None
    (tmp_path / "demo" / "eval").mkdir()
    assert eval_dir_beside("demo/train") == tmp_path.resolve() / "demo" / "eval"
    assert eval_dir_beside("") is None and eval_dir_beside(None) is None
