"""Sweeps: one Optuna study in which each trial is one training run.

``python -m core sweep --data DIR --out SWEEP_DIR --trials N`` (core/cli/sweep.py) prepares a
:class:`Job` here, then runs it in one or more worker processes (core.sweep_workers). The
search space comes from the rule book (core.sweep_space). Files of a sweep::

    sweep.json          the latest command's settings: space, fixed train settings, base recipe,
                        storage (password hidden), study name, pruner
    study.log           the study, when no --storage is given (Optuna's JournalStorage with
                        its file backend: safe for several processes on one host)
    best.json           the best trial: trial, value, params, recipe, train, argv (the
                        ``python -m core train`` command that repeats it); rewritten atomically
    best_recipe.json    the best trial's recipe, which best.json's argv names
    trials.json         every trial's number, state, value, params and run directory
    runs/               one run directory per trial (its number is in the trial's user attrs)
    STOP                ask every worker to stop after its current batch (the app's Stop)
    .jobs/              each command's job file (with the storage URL) and trial tickets
"""

from __future__ import annotations

import dataclasses
import json
import re
import secrets
import shlex
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.errors import UserError
from core.fileio import atomic_write, locked
from core.recipe import Recipe
from core.training.config import TrainConfig, train_argv

SWEEP_JSON, BEST_JSON, BEST_RECIPE, JOURNAL = "sweep.json", "best.json", "best_recipe.json", "study.log"
RUNS, STOP, JOBS, TRIALS_JSON = "runs", "STOP", ".jobs", "trials.json"
# RDB storages (PostgreSQL, MySQL): a trial whose worker stopped beating for GRACE_S seconds is
# failed by the next trial to start anywhere (Optuna's heartbeat and fail_stale_trials).
HEARTBEAT_S, GRACE_S = 30, 120


class SweepStopped(Exception):
    """A stop was asked for (the STOP file, SIGTERM): the trial ends as failed, the worker stops."""


@dataclass
class Job:
    """What one ``sweep`` command runs: everything a worker process needs, as JSON."""

    sweep_dir: str
    data: str
    trials: int
    space: dict  # field -> spec (core.sweep_space), as checked
    fixed: dict  # TrainConfig fields given as flags (fixed for every trial), device defaults filled
    recipe: dict  # the base recipe every trial changes
    study: str = "sweep"
    storage: str | None = None  # a database URL; None: the journal file
    pruner: str = "median"
    prune_startup: int = 4
    prune_warmup: int = 3
    workers: int = 1
    batch: str = field(default_factory=lambda: time.strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(3))
    device_kind: str = "cpu"

    @property
    def dir(self) -> Path:
        return Path(self.sweep_dir)

    def base_config(self) -> TrainConfig:
        return TrainConfig(**{**self.fixed, "data": self.data, "out": str(self.dir / RUNS)})

    def base_recipe(self) -> Recipe:
        return Recipe.from_dict(self.recipe)

    def job_file(self) -> Path:
        return self.dir / JOBS / f"{self.batch}.json"

    def save(self) -> Path:
        """The job file workers read (0600: it may hold a database password) and sweep.json (without it)."""
        path = self.job_file()
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, json.dumps(dataclasses.asdict(self), indent=2) + "\n", mode=0o600)
        shown_job = {**dataclasses.asdict(self), "storage": storage_label(self.storage), "journal": self.storage is None}
        atomic_write(self.dir / SWEEP_JSON, json.dumps(shown_job, indent=2) + "\n")
        return path

    @classmethod
    def load(cls, path: str | Path) -> Job:
        data = json.loads(Path(path).read_text())
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def read_sweep(sweep_dir: str | Path) -> dict | None:
    """sweep.json of a sweep folder (the latest command's settings), or None."""
    try:
        return json.loads((Path(sweep_dir) / SWEEP_JSON).read_text())
    except (OSError, ValueError):
        return None


# ----------------------------------------------------------------------------- storage

def storage_label(url: str | None) -> str:
    """The storage as messages and sweep.json show it: the password hidden."""
    if url is None:
        return f"journal file {JOURNAL}"
    return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", url)


SQLITE = re.compile(r"(?P<scheme>sqlite(\+[A-Za-z0-9_]+)?)://(?P<rest>.*)")


def resolve_sqlite(url: str | None) -> str | None:
    """A ``sqlite:///FILE`` URL with FILE made absolute by the project's path rule (core.paths:
    relative to $MASKLAB_HOME, else the start folder; ``~`` is home), as the workers, the app's
    background start and a later command all need one file; other URLs unchanged. An in-memory
    database (``sqlite://``, ``:memory:``) is refused: it lives and dies with one process."""
    match = SQLITE.fullmatch(url or "")
    if match is None:
        return url
    rest, query = (match["rest"].split("?", 1) + [""])[:2]
    name = rest.removeprefix("/")
    if not name or name == ":memory:":
        raise UserError(f"--storage {url}: an in-memory SQLite database lives only as long as one process, so no "
                        "worker or later command could read the study; give a file (sqlite:///FILE) or leave out "
                        "--storage for the journal file SWEEP_DIR/study.log")
    from core.paths import user_path

    try:
        path = user_path(name)
    except UserError as exc:
        raise UserError(f"--storage {url}: {exc}") from None
    if not path.parent.is_dir():
        raise UserError(f"--storage {url}: the folder {path.parent} does not exist; create it first (relative "
                        "files start at $MASKLAB_HOME, else the folder the command was started in)")
    return f"{match['scheme']}:///{path}" + (f"?{query}" if query else "")


def check_storage(url: str | None, workers: int) -> None:
    """Refuse SQLite for several workers: Optuna's FAQ advises against SQLite for parallel
    optimisation (concurrent writers get 'database is locked'; SELECT ... FOR UPDATE is missing)."""
    if url is not None and url.startswith("sqlite") and workers > 1:
        raise UserError(f"--storage {storage_label(url)} with --workers {workers}: Optuna's FAQ advises against "
                        "SQLite for parallel optimization (concurrent writers lock the file); leave out --storage "
                        "for the journal file (safe for several processes on one host), or use postgresql://...")


def open_storage(job: Job):
    """Optuna storage of the job: the journal file, or RDBStorage with a heartbeat for a URL."""
    import optuna
    from optuna.storages import JournalStorage, RDBStorage
    from optuna.storages.journal import JournalFileBackend

    if job.storage is None:
        return JournalStorage(JournalFileBackend(str(job.dir / JOURNAL)))
    import sqlalchemy.exc

    where = f"--storage {storage_label(job.storage)}"
    # postgresql:// means psycopg 3 (requirements.txt) with any SQLAlchemy: before 2.1 it meant psycopg2
    url = "postgresql+psycopg://" + job.storage.removeprefix("postgresql://") if job.storage.startswith(
        "postgresql://") else job.storage
    try:
        for attempt in range(5):
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # the heartbeat's arguments
                    return RDBStorage(url, heartbeat_interval=HEARTBEAT_S, grace_period=GRACE_S,
                                      engine_kwargs={"pool_pre_ping": True})
            except sqlalchemy.exc.IntegrityError:
                # Two machines creating the empty database's tables at once: one wins; the other's
                # CREATE collides. Once they exist, opening them works.
                if attempt == 4:
                    raise
                time.sleep(0.5 + attempt)
    except ImportError as exc:  # Optuna's words for a missing driver
        raise UserError(f"{where}: its database driver is not installed ({_first_line(exc)}); PostgreSQL's, psycopg, "
                        "is in requirements.txt; for MySQL pip install pymysql and use mysql+pymysql://") from None
    except (sqlalchemy.exc.SQLAlchemyError, ValueError, optuna.exceptions.StorageInternalError) as exc:
        raise UserError(f"{where}: cannot be used: {_first_line(exc)}") from None


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip()
    return (text.splitlines() or [exc.__class__.__name__])[0][:300]


def make_pruner(job: Job):
    """MedianPruner (prune_startup complete trials first, never before epoch prune_warmup, checked
    each epoch), or none."""
    import optuna

    if job.pruner == "none":
        return optuna.pruners.NopPruner()
    return optuna.pruners.MedianPruner(n_startup_trials=job.prune_startup, n_warmup_steps=job.prune_warmup,
                                       interval_steps=1)


def open_study(job: Job, create: bool = False):
    """The job's study (created with ``create``); UserError where its storage cannot be used."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)  # the workers print their own lines (failures too)
    storage = open_storage(job)
    sampler = optuna.samplers.TPESampler(constant_liar=True)  # workers in parallel avoid each other's points
    try:
        if create:
            return optuna.create_study(storage=storage, study_name=job.study, direction="maximize", sampler=sampler,
                                       pruner=make_pruner(job), load_if_exists=True)
        return optuna.load_study(study_name=job.study, storage=storage, sampler=sampler, pruner=make_pruner(job))
    except KeyError:
        raise UserError(f"study {job.study!r} does not exist in {storage_label(job.storage)}") from None
    except ValueError as exc:  # e.g. a study of the same name that minimises
        raise UserError(f"study {job.study!r} in {storage_label(job.storage)}: {_first_line(exc)}") from None


def study_from_folder(sweep_dir: str | Path):
    """The study of a sweep folder whose storage is the journal file (the app reads it), or None."""
    info = read_sweep(sweep_dir)
    if info is None or not info.get("journal") or not (Path(sweep_dir) / JOURNAL).is_file():
        return None
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = JournalStorage(JournalFileBackend(str(Path(sweep_dir) / JOURNAL)))
    try:
        return optuna.load_study(study_name=info.get("study", "sweep"), storage=storage)
    except KeyError:
        return None


# ----------------------------------------------------------------------------- stop

def request_stop(sweep_dir: str | Path) -> Path:
    path = Path(sweep_dir) / STOP
    path.write_text("stop\n")
    return path


def stop_requested(sweep_dir: str | Path) -> bool:
    return (Path(sweep_dir) / STOP).exists()


def clear_stop(sweep_dir: str | Path) -> None:
    (Path(sweep_dir) / STOP).unlink(missing_ok=True)


# ----------------------------------------------------------------------------- results

def trial_settings(cfg: TrainConfig) -> dict:
    """What a trial records as its user attr ``train``: every TrainConfig field it ran with (the
    command's fixed flags and the searched values), as JSON, less the recipe (its own attr)."""
    from core.training.config import config_dict

    return {k: v for k, v in config_dict(cfg).items() if k != "recipe"}


def trial_config(job: Job, train: dict) -> TrainConfig:
    """The TrainConfig a trial ran with, from its ``train`` attr alone: every field, whichever
    command ran it. A trial recorded before the attr held every field (it has no ``data``) gets
    the rest from this command's job."""
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    train = {k: v for k, v in train.items() if k in known}
    if "data" in train:
        return TrainConfig(**train)
    return dataclasses.replace(job.base_config(), **train)


def best_record(job: Job, trial) -> dict:
    """best.json's content for FrozenTrial ``trial``: argv repeats it with best_recipe.json."""
    recipe_file = job.dir / BEST_RECIPE
    cfg = dataclasses.replace(trial_config(job, trial.user_attrs.get("train", {})), recipe=str(recipe_file))
    argv = train_argv(cfg)
    return {"study": job.study, "trial": trial.number, "value": trial.value, "params": trial.params,
            "recipe": trial.user_attrs.get("recipe", job.recipe), "train": trial.user_attrs.get("train", {}),
            "argv": argv, "command": shlex.join(argv), "recipe_file": str(recipe_file),
            "run_dir": trial.user_attrs.get("run_dir"), "updated": time.strftime("%Y-%m-%d %H:%M:%S")}


def write_best(study, job: Job) -> dict | None:
    """Rewrite trials.json, and best.json (with best_recipe.json) from the study's best trial, atomically; the
    record, or None before any trial completed. A lock orders the writers, so the last write
    always reads the study after every earlier one."""
    with locked(job.dir / "best"):
        atomic_write(job.dir / TRIALS_JSON, json.dumps(trial_rows(study), indent=1, default=str) + "\n")
        if not any(t.state.name == "COMPLETE" for t in study.get_trials(deepcopy=False)):
            return None
        record = best_record(job, study.best_trial)
        atomic_write(job.dir / BEST_RECIPE, json.dumps(record["recipe"], indent=2) + "\n")
        atomic_write(job.dir / BEST_JSON, json.dumps(record, indent=2, default=str) + "\n")
        return record


def read_trials(sweep_dir: str | Path) -> list[dict]:
    """trials.json: each trial's number, state, value, params and run directory, as of the last
    trial to finish (the Runs page reads it without opening the study)."""
    try:
        rows = json.loads((Path(sweep_dir) / TRIALS_JSON).read_text())
    except (OSError, ValueError):
        return []
    return rows if isinstance(rows, list) else []


def read_best(sweep_dir: str | Path) -> dict | None:
    try:
        return json.loads((Path(sweep_dir) / BEST_JSON).read_text())
    except (OSError, ValueError):
        return None


def trial_rows(study, batch: str | None = None) -> list[dict[str, Any]]:
    """One row per trial (``batch``: only those one command added): number, state, value,
    params, epochs reported, run directory, seconds, and why a trial failed."""
    rows = []
    for t in study.get_trials(deepcopy=False):
        if batch is not None and t.user_attrs.get("batch") != batch:
            continue
        end = t.datetime_complete
        seconds = (end - t.datetime_start).total_seconds() if end and t.datetime_start else None
        rows.append({"trial": t.number, "state": t.state.name.lower(), "value": t.value,
                     "epochs": len(t.intermediate_values), **{k: v for k, v in t.params.items()},
                     "seconds": round(seconds, 1) if seconds is not None else None,
                     "run_dir": t.user_attrs.get("run_dir"), "note": t.user_attrs.get("error", "")})
    return rows


# ----------------------------------------------------------------------------- a command's job

def check_compatible(study, dims: list) -> None:
    """Refuse a space that searches a field of the study another way than its earlier trials did
    (Optuna keeps one kind, one scale and one choice list per parameter name)."""
    from optuna.distributions import check_distribution_compatibility

    earlier = {}
    for t in study.get_trials(deepcopy=False):
        earlier.update(t.distributions)
    for d in dims:
        new = d.distribution()
        if new is None or d.name not in earlier:
            continue
        try:
            check_distribution_compatibility(earlier[d.name], new)
        except ValueError as exc:
            raise UserError(f"{d.name}: study {study.study_name!r} searched it as {earlier[d.name]} before; "
                            f"{str(exc).rstrip('.').lower()}: keep that, or start another study with --study NAME "
                            "or another --out") from None


def prepare(given: dict, out: str | Path, trials: int, space: str | Path | None = None, storage: str | None = None,
            study: str = "sweep", workers: int = 1, pruner: str = "median", prune_startup: int = 4,
            prune_warmup: int = 3) -> tuple[Job, list[str]]:
    """Check everything a sweep needs before any trial starts, create its study and write its
    job; (the job, notes to show). ``given``: TrainConfig fields fixed for every trial (flags)."""
    from core.devices import resolve_device
    from core.sweep_space import default_space, load_space, space_dict
    from core.training.config import DEVICE_FILLED, device_defaults, validate_config, with_device_defaults
    from core.training.data import scan_labelled
    from core.training.resolve import resolve_recipe

    check_storage(storage, workers)
    storage = resolve_sqlite(storage)
    dims = load_space(space) if space is not None else default_space()
    base = TrainConfig(**{**given, "out": str(Path(out) / RUNS)})
    validate_config(base)
    notes = [f"{d.name} is not searched: --{d.field.path[0].replace('_', '-')} fixes it" for d in dims
             if d.field.target == "train" and d.field.path[0] in given]
    dims = [d for d in dims if not (d.field.target == "train" and d.field.path[0] in given)]
    if not any(not d.fixed for d in dims):
        raise UserError("sweep: nothing left to search: every field of the space is fixed (by a flag or a value); "
                        "leave a flag out or give a space with low/high or choices")
    kind = resolve_device(base.device).type
    base = with_device_defaults(base, kind)
    ds, _ = scan_labelled(base.data, base.corrections)  # a dataset problem is named once, not by every trial
    recipe = resolve_recipe(base.recipe, ds.layout, device_defaults(kind)["input_size"] if base.recipe is None else None)
    loss = next((d.value for d in dims if d.name == "train.loss" and d.fixed), base.loss)
    if any(d.name == "train.smoothing" for d in dims) and loss != "label_smoothing" and not any(
            d.name == "train.loss" and not d.fixed for d in dims):
        notes.append(f"train.smoothing acts only with the label_smoothing loss; these trials use {loss}")
    fixed = {k: getattr(base, k) for k in (*given, *DEVICE_FILLED) if k not in ("data", "out", "recipe")}
    job = Job(sweep_dir=str(Path(out).resolve()), data=str(Path(base.data).expanduser().resolve()), trials=trials, space=space_dict(dims), fixed=fixed,
              recipe=recipe.to_dict(), study=study, storage=storage, pruner=pruner, prune_startup=prune_startup,
              prune_warmup=prune_warmup, workers=workers, device_kind=kind)
    (job.dir / RUNS).mkdir(parents=True, exist_ok=True)
    check_compatible(open_study(job, create=True), dims)  # a storage that cannot be used is named here, once
    clear_stop(job.dir)
    job.save()
    return job, notes
