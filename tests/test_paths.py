"""core.paths: the one rule for paths a user types, and its refusals."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.errors import UserError
from core.paths import eval_dir_beside, user_base, user_file, user_path


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
    assert user_file("fix.csv", ".csv", "corrections CSV") == tmp_path.resolve() / "fix.csv"
    assert user_file("new.json", ".json", "recipe", must_exist=False) == tmp_path.resolve() / "new.json"


@pytest.mark.parametrize("typed, must_exist, needle", [
    ("", True, "no recipe path given: type the path of a .json file (relative paths start at $MASKLAB_HOME"),
    (".", True, "is a folder, not a recipe file: type the path of a .json file"),
    ("secret.txt", True, "a recipe file must end in .json; type the path of a .json file"),
    ("nope.json", True, "nope.json: no such recipe file (relative paths start at $MASKLAB_HOME"),
    ("no/such/dir/r.json", False, "the folder"),
])
def test_refusals_name_the_path_the_rule_and_the_way_out(tmp_path, typed, must_exist, needle):
    (tmp_path / "secret.txt").write_text("password=hunter2")
    with pytest.raises(UserError) as info:
        user_file(typed, ".json", "recipe", must_exist=must_exist)
    message = str(info.value)
    assert needle in message
    assert "hunter2" not in message
    if typed:
        assert str(user_path(typed)) in message


def test_eval_folder_beside_a_dataset(tmp_path):
    (tmp_path / "demo" / "train").mkdir(parents=True)
    assert eval_dir_beside("demo/train") is None
    (tmp_path / "demo" / "eval").mkdir()
    assert eval_dir_beside("demo/train") == tmp_path.resolve() / "demo" / "eval"
    assert eval_dir_beside("") is None and eval_dir_beside(None) is None
