"""The stages of core, lowest first. A module may import from its own stage and the stages below
it, never from a stage above (tests/test_layers.py checks every import, lazy ones included).

Data flows one way: a dataset folder is indexed (data), a recipe turns its images into model
inputs (pipeline), models and losses score them (modeling), the trainer writes a run directory
(training), and what comes after reads run directories (after training); the command line sits
on top. The app (explorer/) is above all of core, and core never imports it or streamlit.
"""

from __future__ import annotations

# Stage -> the top-level names under core/ (a module, or a package for all its modules).
LAYERS: dict[str, tuple[str, ...]] = {
    "base": ("errors", "rules", "rulebook", "labels", "paths", "fileio", "cores", "procs", "metrics", "devices",
             "layers"),
    "data": ("images", "listfiles", "dataset", "splits", "detectors", "faces", "stats", "demo", "health"),
    "pipeline": ("recipe", "preprocess", "augment", "cache", "sampling", "mixing"),
    "modeling": ("models", "weights", "losses", "inference"),
    "training": ("runs", "training"),
    "after training": ("predict", "label_issues", "explain", "launch", "sweep", "sweep_space", "sweep_workers"),
    "interface": ("cli", "__main__", "__init__"),
}


def stage_of(name: str) -> str:
    """The stage of core module ``name`` (``core.training.run`` or ``training.run``)."""
    top = name.removeprefix("core.").split(".")[0]
    for stage, names in LAYERS.items():
        if top in names:
            return stage
    raise KeyError(f"core module {name!r} is in no stage of core.layers.LAYERS; add it to one")


def rank(stage: str) -> int:
    return list(LAYERS).index(stage)
