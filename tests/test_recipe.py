"""The recipe: JSON round trip and strict validation that names key, value and rule."""

from __future__ import annotations

import json

import pytest

from core.errors import RecipeError
from core.recipe import Recipe, starter_recipe


def test_round_trip_through_json_file(tmp_path):
    r = Recipe().replace(enhance={"contrast": 1.7, "equalize": "clahe"}, crop={"mode": "fixed", "box": [0.1, 0.05, 0.8, 0.6]},
                         sampling={"method": "smote", "k_neighbors": 3}, input_size=[64, 80])
    loaded = Recipe.load(r.save(tmp_path / "r.json"))
    assert loaded == r
    assert loaded.enhance.contrast == 1.7 and loaded.crop.box == (0.1, 0.05, 0.8, 0.6)
    assert loaded.input_size == (64, 80)


def test_partial_recipe_fills_defaults():
    r = Recipe.from_dict({"enhance": {"sharpness": 2.0}})
    assert r.enhance.sharpness == 2.0 and r.enhance.contrast == 1.0 and r.crop.mode == "none"


@pytest.mark.parametrize("data, message", [
    ({"enhanse": {}}, "unknown key 'enhanse'; allowed keys: input_size, crop, enhance, augment, sampling"),
    ({"enhance": {"contrast": 5}}, "enhance.contrast 5.0: must be a number from 0 to 3"),
    ({"enhance": {"gamma": 1}}, "unknown key 'enhance.gamma'"),
    ({"crop": {"mode": "circle"}}, "crop.mode 'circle': must be one of: none, fixed, face"),
    ({"sampling": {"k_neighbors": 2.5}}, "sampling.k_neighbors 2.5: must be a whole number from 1 to 50"),
    ({"input_size": [96]}, "input_size [96]: must be a list of 2 values, each a whole number from 16 to 1024"),
    ({"input_size": ["96", 96]}, "input_size '96': must be a whole number from 16 to 1024"),
    ({"augment": {"hflip": "yes"}}, "augment.hflip 'yes': must be true or false"),
    ({"enhance": {"contrast": float("nan")}}, "enhance.contrast nan: must be a number from 0 to 3"),
    ({"crop": {"box": [0.5, 0.5, 0.8, 0.2]}}, "crop.box [0.5, 0.5, 0.8, 0.2]: must lie inside the image"),
    ([1, 2], "recipe must be an object"),
])
def test_bad_values_name_key_value_and_rule(data, message):
    with pytest.raises(RecipeError) as info:
        Recipe.from_dict(data)
    assert message in str(info.value)


def test_bad_file_names_the_file(tmp_path):
    f = tmp_path / "bad.json"
    f.write_text("{not json")
    with pytest.raises(RecipeError, match=r"bad.json: recipe is not valid JSON"):
        Recipe.load(f)
    f.write_text(json.dumps({"crop": {"margin": 1}}))
    with pytest.raises(RecipeError, match=r"bad.json: unknown key 'crop.margin'"):
        Recipe.load(f)
    with pytest.raises(RecipeError, match="missing.json: recipe file does not exist"):
        Recipe.load(tmp_path / "missing.json")


def test_preprocess_key_ignores_augmentation_and_sampling():
    base = Recipe()
    assert base.preprocess_key() == base.replace(augment={"rotate": 30}, sampling={"method": "random"}).preprocess_key()
    assert base.preprocess_key() != base.replace(enhance={"contrast": 1.2}).preprocess_key()
    assert base.preprocess_key() != base.replace(input_size=[64, 64]).preprocess_key()


def test_starter_recipe_is_tuned_for_competition_layouts_and_neutral_otherwise():
    for layout in ("train", "eval"):
        r = starter_recipe(layout)
        assert r == Recipe.from_dict(r.to_dict())  # valid and round-trips
        assert (r.crop.mode, r.crop.detector, r.enhance.equalize, r.sampling.method) == ("face", "both", "clahe",
                                                                                          "random")
        assert r.input_size == (80, 80) and r.crop.box == (0.0, 0.0, 1.0, 0.87) and r.crop.face_margin == 0.75
    assert starter_recipe("folders") == Recipe()
    assert starter_recipe(None) == Recipe()
