"""The recipe: every preprocessing choice made in the explorer, as one typed object.

A recipe round-trips through JSON. ``Recipe.from_dict`` is strict: an unknown key or a value
out of range raises :class:`RecipeError` naming the key, the value and what is allowed, so a
typo in a saved recipe never silently trains on defaults.

The deterministic part (crop, input size, enhancement) keys the preprocessed-image cache;
augmentation and sampling change per run and per batch.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.errors import RecipeError
from core.fileio import atomic_write


def _rng(lo: float, hi: float, **kw) -> dict:
    return {"range": (lo, hi), **kw}


def _choices(*options: str) -> dict:
    return {"choices": options}


@dataclass
class Crop:
    # none: the whole frame; fixed: one box for every image; face: each image's own face box
    # grown by face_margin, falling back to the fixed box where no face was found.
    mode: str = field(default="none", metadata=_choices("none", "fixed", "face"))
    # Fixed box as fractions of the image (x, y, w, h), so it fits any image size.
    box: tuple[float, float, float, float] = field(default=(0.0, 0.0, 1.0, 1.0), metadata=_rng(0.0, 1.0))
    # Face mode: how much to grow the face box on each side, as a fraction of its size.
    face_margin: float = field(default=0.5, metadata=_rng(0.0, 3.0))


@dataclass
class Enhance:
    # PIL ImageEnhance factors: 1 leaves the image unchanged, 0 removes the property.
    brightness: float = field(default=1.0, metadata=_rng(0.0, 3.0))
    contrast: float = field(default=1.0, metadata=_rng(0.0, 3.0))
    sharpness: float = field(default=1.0, metadata=_rng(0.0, 3.0))
    color: float = field(default=1.0, metadata=_rng(0.0, 3.0))
    grayscale: bool = False
    # Histogram equalisation of the luminance: global (hist) or adaptive (clahe).
    equalize: str = field(default="none", metadata=_choices("none", "hist", "clahe"))


@dataclass
class Augment:
    # Train-time only; validation and prediction never see these.
    hflip: bool = True  # faces are left-right symmetric, labels are too
    rotate: float = field(default=10.0, metadata=_rng(0.0, 45.0))  # max degrees either way
    translate: float = field(default=0.05, metadata=_rng(0.0, 0.3))  # max shift, fraction of size
    scale: float = field(default=0.1, metadata=_rng(0.0, 0.5))  # max zoom in/out fraction
    brightness: float = field(default=0.2, metadata=_rng(0.0, 1.0))  # colour jitter strengths
    contrast: float = field(default=0.2, metadata=_rng(0.0, 1.0))
    saturation: float = field(default=0.2, metadata=_rng(0.0, 1.0))
    erasing: float = field(default=0.0, metadata=_rng(0.0, 1.0))  # probability of one erased box
    noise: float = field(default=0.0, metadata=_rng(0.0, 0.5))  # Gaussian noise std, pixel range 0..1


@dataclass
class Sampling:
    # Oversampling of the training split only.
    # random / smote add samples to the training split; weighted keeps it and draws each epoch
    # with class weights instead (no sample is listed twice; rare images recur across epochs).
    method: str = field(default="none", metadata=_choices("none", "random", "smote", "weighted"))
    # Each class is raised to at least target x the largest class (1.0 = fully balanced);
    # for weighted, in expectation per epoch.
    target: float = field(default=1.0, metadata=_rng(0.05, 1.0))
    k_neighbors: int = field(default=5, metadata=_rng(1, 50))  # SMOTE neighbours
    # SMOTE finds neighbours on images downsized to this (width, height), never full size.
    smote_size: tuple[int, int] = field(default=(24, 32), metadata=_rng(4, 128))


@dataclass
class Recipe:
    # Model input (width, height): every crop is resized to it so each batch has one shape.
    input_size: tuple[int, int] = field(default=(96, 128), metadata=_rng(16, 1024))
    crop: Crop = field(default_factory=Crop)
    enhance: Enhance = field(default_factory=Enhance)
    augment: Augment = field(default_factory=Augment)
    sampling: Sampling = field(default_factory=Sampling)

    # --- JSON ------------------------------------------------------------------------
    def to_dict(self) -> dict:
        return json.loads(json.dumps(dataclasses.asdict(self)))

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_dict(cls, data: Any) -> "Recipe":
        recipe = _build(cls, data, "")
        validate_crop_box(recipe.crop.box)
        return recipe

    @classmethod
    def from_json(cls, text: str) -> "Recipe":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise RecipeError(f"recipe is not valid JSON: {exc.msg} at line {exc.lineno}") from None
        return cls.from_dict(data)

    def save(self, path: str | Path) -> Path:
        return atomic_write(path, self.to_json() + "\n")  # the app and the CLI may save at once

    @classmethod
    def load(cls, path: str | Path) -> "Recipe":
        path = Path(path)
        if not path.is_file():
            raise RecipeError(f"{path}: recipe file does not exist")
        try:
            return cls.from_json(path.read_text())
        except RecipeError as exc:
            raise RecipeError(f"{path}: {exc}") from None

    # --- cache keys --------------------------------------------------------------------
    def preprocess_dict(self) -> dict:
        """The deterministic part: what a cached, preprocessed image depends on."""
        d = self.to_dict()
        return {"input_size": d["input_size"], "crop": d["crop"], "enhance": d["enhance"]}

    def preprocess_key(self) -> str:
        blob = json.dumps(self.preprocess_dict(), sort_keys=True).encode()
        return hashlib.sha1(blob).hexdigest()[:16]

    def replace(self, **sections) -> "Recipe":
        """A copy with whole sections or fields replaced, validated like a loaded recipe."""
        d = self.to_dict()
        for key, value in sections.items():
            if dataclasses.is_dataclass(value):
                value = dataclasses.asdict(value)
            if isinstance(value, dict) and isinstance(d.get(key), dict):
                d[key] = {**d[key], **value}
            else:
                d[key] = value
        return Recipe.from_dict(d)


def _build(cls, data: Any, prefix: str):
    """Construct dataclass ``cls`` from ``data``, validating every key and value."""
    where = prefix.rstrip(".") or "recipe"
    if not isinstance(data, dict):
        raise RecipeError(f"{where} must be an object, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise RecipeError(f"unknown key '{prefix}{unknown[0]}'; allowed keys: {', '.join(fields)}")
    kwargs = {}
    for name, value in data.items():
        f = fields[name]
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        if dataclasses.is_dataclass(default):
            kwargs[name] = _build(type(default), value, f"{prefix}{name}.")
        else:
            kwargs[name] = _check_value(f"{prefix}{name}", value, default, f.metadata)
    return cls(**kwargs)


def _check_value(key: str, value: Any, default: Any, meta) -> Any:
    """Validate one leaf value against the type of its default and its metadata."""
    if isinstance(default, tuple):
        if not isinstance(value, (list, tuple)) or len(value) != len(default):
            raise RecipeError(f"{key} must be a list of {len(default)} numbers, got {value!r}")
        return tuple(_check_value(key, v, default[0], meta) for v in value)
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise RecipeError(f"{key} must be true or false, got {value!r}")
        return value
    if isinstance(default, (int, float)):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise RecipeError(f"{key} must be a number, got {value!r}")
        if isinstance(default, int) and not float(value).is_integer():
            raise RecipeError(f"{key} must be a whole number, got {value!r}")
        value = type(default)(value)
    if "range" in meta:
        lo, hi = meta["range"]
        if not lo <= value <= hi:
            raise RecipeError(f"{key}={value!r} is out of range; allowed: {lo} to {hi}")
    if "choices" in meta:
        if value not in meta["choices"]:
            raise RecipeError(f"{key}={value!r} is not allowed; allowed: {', '.join(meta['choices'])}")
    if isinstance(default, str) and not isinstance(value, str):
        raise RecipeError(f"{key} must be a string, got {value!r}")
    return value


def validate_crop_box(box: tuple[float, float, float, float]) -> None:
    x, y, w, h = box
    if w <= 0 or h <= 0 or x + w > 1.0 + 1e-6 or y + h > 1.0 + 1e-6:
        raise RecipeError(f"crop.box={list(box)!r} must lie inside the image: w, h > 0, x + w <= 1 and y + h <= 1")


# The recipe a competition-layout dataset starts from, in the app and in `train` without
# --recipe. Tuned on the demo set (see the README's "Default training" section): a square
# 96x96 input of the head-and-shoulders part of the frame (top 72%, which holds every face
# in the demo set and the real set's framing), CLAHE to even out the lighting, and random
# oversampling of the rarest classes (the 60+ groups) up to 15% of the largest class.
COMPETITION_STARTER = {
    "input_size": [96, 96],
    "crop": {"mode": "fixed", "box": [0.0, 0.0, 1.0, 0.72]},
    "enhance": {"equalize": "clahe"},
    "sampling": {"method": "random", "target": 0.15},
}


def starter_recipe(layout: str | None) -> Recipe:
    """The starting recipe for a dataset layout ("train", "eval", "folders" or None).

    Competition layouts get :data:`COMPETITION_STARTER`; a folder-per-class dataset, whose
    framing we know nothing about, gets the neutral defaults (whole frame, no enhancement).
    """
    if layout in ("train", "eval"):
        return Recipe.from_dict(COMPETITION_STARTER)
    return Recipe()
