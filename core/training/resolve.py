"""A TrainConfig resolved once, up front, into the frozen settings a run follows.

``train()`` (and the LR finder) call :func:`resolve_config` then :func:`resolve_run` before any
work; the trainer afterwards only reads the :class:`RunSettings` they return. Resolving means:

* validation of every field against its rule (core.training.config), the model name against
  the installed libraries, and the device against the machine;
* a resumed run's own stored settings (only device and workers may change);
* the data path made absolute, and the device's defaults (model, epochs, batch size, lr and
  the starter input size) filled in where a field was left as None, with why;
* the recipe: the file or object given, else the starter recipe for the dataset's layout;
* the head (flat or factorized) for the dataset's classes, and the weights to start from;
* under torchrun, the world size and whether folds train side by side.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import torch

from core.devices import resolve_device
from core.labels import CLASS_NAMES
from core.models import check_model_name, resolve_weights
from core.recipe import Recipe, starter_recipe
from core.training.config import (
    DEVICE_FILLED,
    TrainConfig,
    cli_command,
    config_dict,
    device_defaults,
    parallel_folds,
    resume_config,
    validate_config,
    with_device_defaults,
)


@dataclass(frozen=True)
class RunSettings:
    """Everything a run follows, decided before it starts; nothing changes it afterwards."""

    config: TrainConfig  # data absolute, device defaults filled in, nproc = the world size
    device: torch.device
    recipe: Recipe
    head: str  # flat | factorized
    weights: str  # what a fold starts from when it has no last.pt to resume: imagenet (in the cache), none, a file
    weights_note: str  # where the weights come from, in one line (for the run's log)
    class_names: tuple[str, ...]
    defaults_note: str | None  # why the device's defaults applied (None: every one was given)
    parallel_folds: bool  # --parallel-folds under torchrun: fold k on process k mod N

    @property
    def resumed(self) -> bool:
        return bool(self.config.resume)

    def config_dict(self) -> dict:
        return config_dict(self.config)

    def command(self, recipe_file: str | Path) -> str:
        """The ``python -m core train`` command that repeats this run (recipe saved as ``recipe_file``)."""
        return cli_command(self.config, Path(recipe_file))


def resolve_config(config: TrainConfig) -> tuple[TrainConfig, torch.device, str | None]:
    """(the config a run follows, its device, why the device's defaults applied or None).

    A resume takes the run's stored config (device and workers may change); a fresh run gets
    its data path made absolute and the device's defaults for the fields left as None.
    """
    if config.resume:
        cfg = resume_config(config.resume, config.device, config.workers)
        validate_config(cfg)
        return cfg, resolve_device(cfg.device), None
    data = str(Path(config.data).expanduser().resolve()) if config.data else ""
    cfg = dataclasses.replace(config, data=data)
    validate_config(cfg)
    if isinstance(cfg.recipe, (str, Path)):
        Recipe.load(cfg.recipe)  # a bad recipe file is named now, before the dataset is read
    if cfg.model is not None:
        check_model_name(cfg.model)  # a timm name is checked against the installed timm here
    device = resolve_device(cfg.device)
    left = [k for k in DEVICE_FILLED if getattr(cfg, k) is None]
    why = device_defaults(device.type)["why"] if left else None
    return with_device_defaults(cfg, device.type), device, why


def resolve_recipe(recipe: str | dict | Recipe | None, layout: str | None = None,
                   input_size: tuple[int, int] | None = None) -> Recipe:
    """The run's recipe; with none given, the starting recipe for the dataset's layout
    (at ``input_size`` when given: the device's default input)."""
    if recipe is None:
        start = starter_recipe(layout)
        return start.replace(input_size=tuple(input_size)) if input_size else start
    if isinstance(recipe, Recipe):
        return recipe
    if isinstance(recipe, dict):
        return Recipe.from_dict(recipe)
    return Recipe.load(recipe)


def resolve_head(head: str, class_names: list[str] | tuple[str, ...]) -> str:
    if head != "auto":
        return head
    return "factorized" if tuple(class_names) == tuple(CLASS_NAMES) else "flat"


def resolve_run(cfg: TrainConfig, device: torch.device, why: str | None, layout: str,
                class_names: list[str], world: int = 1) -> RunSettings:
    """The frozen settings of a run of ``cfg`` (from :func:`resolve_config`) on a dataset of
    ``layout`` with ``class_names``, by ``world`` processes."""
    if world > 1:
        cfg = dataclasses.replace(cfg, nproc=world)  # the command recorded repeats the world size
    input_size = device_defaults(device.type)["input_size"] if why else None
    recipe = resolve_recipe(cfg.recipe, layout, input_size)
    head = resolve_head(cfg.head, class_names)
    weights, note = resolve_weights(cfg.model, len(class_names), cfg.weights, head)
    return RunSettings(config=cfg, device=device, recipe=recipe, head=head, weights=weights, weights_note=note,
                       class_names=tuple(class_names), defaults_note=why, parallel_folds=parallel_folds(cfg, world))
