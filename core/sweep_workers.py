"""The sweep's workers: each asks the study for trials and trains one run per trial.

``python -m core sweep --workers K`` starts K processes of ``python -m core.sweep_workers JOB
INDEX`` (one per GPU where there are several; on the CPU each gets its share of the cores);
with K = 1 the command runs the worker itself. A worker takes a ticket before each trial
(``--trials N`` tickets per command, under a file lock), so the command adds exactly N trials
whichever worker runs them.

A trial's run reports the validation macro F1 of every epoch to the study (``trial.report``);
when the pruner says so the worker asks the run to stop through its STOP file, which the
trainer honours right after the epoch (under torchrun every rank at the same step). A trial
with ``--nproc N > 1`` runs as ``python -m core train --nproc N`` (torchrun) in its own
process group: its processes never open the study; the worker follows the run's
metrics.jsonl and reports for them.

A killed worker leaves its trial RUNNING in the study. Every worker, before each trial, marks
as failed the running trials of this host whose worker process is gone (pid and start time,
as core.procs tells); on PostgreSQL/MySQL Optuna's heartbeat also fails the trials of workers
on other machines that stopped beating (core.sweep.HEARTBEAT_S, GRACE_S).
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from core.errors import UserError
from core.fileio import atomic_write, locked
from core.procs import REPO, error_line, log_tail, pid_alive, start_background, terminate_group
from core.sweep import (
    JOBS,
    RUNS,
    Job,
    SweepStopped,
    open_study,
    request_stop,
    stop_requested,
    trial_settings,
    write_best,
)
from core.sweep_space import apply, parse_space

STARTED = time.time()  # this process's start (a bound for pid_alive: a reused pid started later)
POLL_S = 0.5


def say(job: Job, index: int, text: str) -> None:
    prefix = f"[worker {index}] " if job.workers > 1 else ""
    print(prefix + text, flush=True)


# ----------------------------------------------------------------------------- tickets and dead trials

def take_ticket(job: Job) -> bool:
    """One of the command's N trials for this worker, or False when all are taken."""
    path = job.dir / JOBS / f"{job.batch}.tickets"
    with locked(path):
        try:
            taken = int(path.read_text())
        except (OSError, ValueError):
            taken = 0
        if taken >= job.trials:
            return False
        atomic_write(path, f"{taken + 1}\n")
        return True


def mark_dead_trials(study) -> list[int]:
    """Fail the RUNNING trials of this host whose worker process has ended; their numbers."""
    import optuna
    from optuna.trial import TrialState

    host, failed = socket.gethostname(), []
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        a = t.user_attrs
        if a.get("host") != host or "pid" not in a or pid_alive(a.get("pid"), a.get("started")):
            continue
        try:
            optuna.trial.Trial(study, t._trial_id).set_user_attr(
                "error", f"its worker (pid {a['pid']}) ended before the trial did (killed?)")
            study.tell(t.number, state=TrialState.FAIL, skip_if_finished=True)
        except (optuna.exceptions.UpdateFinishedTrialError, RuntimeError, ValueError):
            continue  # another worker failed it meanwhile
        failed.append(t.number)
    return failed


# ----------------------------------------------------------------------------- one trial

class Follower:
    """Reports a trial's epochs to the study and decides when the run stops."""

    def __init__(self, trial, job: Job, index: int, epochs: int, folds: int):
        self.trial, self.job, self.index = trial, job, index
        self.epochs, self.steps = epochs, epochs * max(1, folds)
        self.pruned_at: int | None = None
        self.run_dir: Path | None = None
        self.stopping = False

    def found(self, run_dir: Path) -> None:
        self.run_dir = Path(run_dir)
        self.trial.set_user_attr("run_dir", str(run_dir))

    def epoch(self, record: dict) -> bool:
        """Report one metrics record; True when the run should stop (pruned)."""
        step = int(record.get("fold", 0)) * self.epochs + int(record["epoch"])
        value = float(record["macro_f1"])
        self.trial.report(value, step)
        say(self.job, self.index, f"trial {self.trial.number} epoch {step}/{self.steps}: val macro F1 {value:.4f}")
        if self.pruned_at is None and step < self.steps and self.trial.should_prune():
            self.pruned_at = step
            return True
        return False

    def stop_asked(self) -> bool:
        if not self.stopping and stop_requested(self.job.dir):
            self.stopping = True
            return True
        return False


def _callbacks(follower: Follower):
    from core.runs import request_stop as stop_run
    from core.training.callbacks import Callbacks, Stopped

    class TrialCallbacks(Callbacks):
        def on_cache_progress(self, done, total):
            if follower.stop_asked():
                raise Stopped()  # as the trainer's own STOP check does while preparing images

        def on_train_start(self, info):
            follower.found(Path(info["run_dir"]))

        def on_batch_end(self, epoch, batch, n_batches, loss):
            if follower.stop_asked():
                stop_run(follower.run_dir)  # the trainer stops after this batch

        def on_epoch_end(self, record):
            if follower.epoch(record):
                stop_run(follower.run_dir)  # honoured right after this epoch, by every rank

    return TrialCallbacks()


def run_in_process(cfg, follower: Follower) -> Path:
    from core.training import train

    return train(cfg, callbacks=[_callbacks(follower)])


def _find_run(job: Job, recipe_file: Path, since: float) -> Path | None:
    """The run directory whose config names ``recipe_file`` (written by a trial's own process)."""
    for path in (job.dir / RUNS).iterdir():
        config = path / "config.json"
        try:
            if config.stat().st_mtime < since - 5:
                continue
            if json.loads(config.read_text()).get("config", {}).get("recipe") == str(recipe_file):
                return path
        except (OSError, ValueError):
            continue
    return None


def run_torchrun(cfg, recipe, follower: Follower) -> Path:
    """``python -m core train --nproc N`` for the trial, followed through its run directory."""
    from core.runs import read_metrics
    from core.runs import request_stop as stop_run
    from core.training.config import train_argv

    job, number = follower.job, follower.trial.number
    recipe_file = job.dir / JOBS / f"{job.study}-trial-{number}-recipe.json"
    recipe.save(recipe_file)
    log = recipe_file.with_name(f"{job.study}-trial-{number}.log")
    since = time.time()
    pid = start_background(train_argv(dataclasses.replace(cfg, recipe=str(recipe_file)), python=sys.executable), log)
    seen = 0
    try:
        while True:
            alive = pid_alive(pid, since + 2)
            if follower.run_dir is None and (found := _find_run(job, recipe_file, since)) is not None:
                follower.found(found)
            if follower.run_dir is not None:
                records = read_metrics(follower.run_dir)
                for record in records[seen:]:
                    if follower.epoch(record):
                        stop_run(follower.run_dir)
                seen = len(records)
            if follower.stop_asked():
                stop_run(follower.run_dir) if follower.run_dir is not None else terminate_group(pid, since + 2)
            if not alive:
                break
            time.sleep(POLL_S)
    finally:
        # A worker leaving early (Ctrl-C, an error, SIGTERM's stop) never leaves torchrun training
        # alone in its own session, holding the GPUs: it ends the trial's whole process group.
        terminate_group(pid, since + 2)
    if follower.run_dir is None:
        raise UserError(f"trial {number}: the training ended before it made a run directory: "
                        f"{error_line(log_tail(log)) or 'see ' + str(log)}")
    return follower.run_dir


def objective(job: Job, index: int, dims: list):
    """Optuna's objective: one training run per trial; its value is the run's validation macro F1."""
    import optuna

    from core.runs import read_status

    base_cfg, base_recipe = job.base_config(), job.base_recipe()

    def run(trial) -> float:
        mark_dead_trials(trial.study)
        for key, value in {"batch": job.batch, "worker": index, "host": socket.gethostname(), "pid": os.getpid(),
                           "started": STARTED}.items():
            trial.set_user_attr(key, value)
        values = {d.name: d.suggest(trial) for d in dims}
        try:
            cfg, recipe = apply(values, base_cfg, base_recipe)
        except UserError as exc:
            trial.set_user_attr("error", str(exc))
            raise
        # Every setting the trial runs with, so best.json repeats it whichever command asks later
        trial.set_user_attr("train", trial_settings(cfg))
        trial.set_user_attr("recipe", recipe.to_dict())
        shown = ", ".join(f"{k}={v}" for k, v in trial.params.items())
        say(job, index, f"trial {trial.number}: {shown}")
        follower = Follower(trial, job, index, cfg.epochs, cfg.folds)
        try:
            if cfg.nproc > 1:
                run_dir = run_torchrun(cfg, recipe, follower)
            else:
                run_dir = run_in_process(dataclasses.replace(cfg, recipe=recipe), follower)
        except UserError as exc:
            trial.set_user_attr("error", str(exc))
            raise
        follower.found(run_dir)
        status = read_status(run_dir)
        if follower.pruned_at is not None:
            raise optuna.TrialPruned(f"pruned after epoch {follower.pruned_at}")
        if status.get("state") == "done":
            return float(status["result"]["macro_f1"])
        if status.get("state") == "stopped" or follower.stopping:
            trial.set_user_attr("error", "stopped on request")
            raise SweepStopped()
        message = str(status.get("message") or "the run ended without a result")
        trial.set_user_attr("error", message)
        raise UserError(f"trial {trial.number}: {message}")

    return run


# ----------------------------------------------------------------------------- a worker

def _share_cores(index: int, workers: int) -> None:
    """Give worker ``index`` of ``workers`` its share of this process's cores (torch threads and
    image workers follow the affinity: core.cores.usable_cores)."""
    if workers < 2 or not hasattr(os, "sched_setaffinity"):
        return
    cores = sorted(os.sched_getaffinity(0))
    share = cores[index::workers] or [cores[index % len(cores)]]
    os.sched_setaffinity(0, share)


def run_worker(job: Job, index: int = 0) -> str:
    """Run trials until the command's tickets are gone or a stop is asked; how it ended."""
    _share_cores(index, job.workers)
    study = open_study(job)
    dims = parse_space(job.space, "the sweep's space")
    for number in mark_dead_trials(study):
        say(job, index, f"trial {number} marked failed: its worker ended before it did")
    if stop_requested(job.dir) or not take_ticket(job):
        return "stopped" if stop_requested(job.dir) else "done"

    def after(study, trial) -> None:
        value = f"val macro F1 {trial.value:.4f}" if trial.value is not None else trial.user_attrs.get("error", "")
        say(job, index, f"trial {trial.number} {trial.state.name.lower()}" + (f": {value}" if value else ""))
        write_best(study, job)
        if stop_requested(job.dir) or not take_ticket(job):
            study.stop()

    old = signal.signal(signal.SIGTERM, lambda *_: request_stop(job.dir)) if _main_thread() else None
    try:
        study.optimize(objective(job, index, dims), callbacks=[after], catch=(UserError,), gc_after_trial=True)
    except SweepStopped:
        write_best(study, job)
        say(job, index, "stopped on request")
        return "stopped"
    finally:
        if old is not None:
            signal.signal(signal.SIGTERM, old)
    return "stopped" if stop_requested(job.dir) else "done"


def _main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def spawn(job: Job) -> int:
    """Start the job's K worker processes and wait for them; the worst exit status."""
    gpus = 0
    if job.device_kind == "cuda":
        import torch

        gpus = torch.cuda.device_count()
    nproc = int(job.fixed.get("nproc") or 1)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)}
    procs = []
    # The workers ignore SIGINT (inherited through exec, so from their first line on, and by their
    # own children): a Ctrl-C in the terminal reaches the whole process group, and this process
    # alone answers it, with the STOP file every worker reads after its current batch.
    old = signal.signal(signal.SIGINT, signal.SIG_IGN) if _main_thread() else None
    try:
        for k in range(job.workers):
            own = dict(env)
            if gpus > 1:  # one GPU (or nproc of them) per worker
                own["CUDA_VISIBLE_DEVICES"] = ",".join(str((k * nproc + i) % gpus) for i in range(nproc))
            procs.append(subprocess.Popen([sys.executable, "-m", "core.sweep_workers", str(job.job_file()), str(k)],
                                          cwd=REPO, env=own, stdin=subprocess.DEVNULL))
    finally:
        if old is not None:
            signal.signal(signal.SIGINT, old)
    interrupted = False
    while True:
        try:
            codes = [p.wait() for p in procs]
            break
        except KeyboardInterrupt:
            if not interrupted:
                print("stopping: each worker ends its trial after the current batch (the trial is marked failed)",
                      file=sys.stderr, flush=True)
            interrupted = True
            request_stop(job.dir)
    if interrupted:
        raise KeyboardInterrupt  # the command's summary, then exit 130 (core.cli.main)
    return max(codes)


# ----------------------------------------------------------------------------- in the background (the app)

ACTIVE = "ACTIVE.json"  # the latest background sweep of a folder: pid, start, argv, console log


def start_in_background(argv: list[str], sweep_dir: str | Path) -> dict:
    """Start ``python -m core sweep ...`` (``argv``) in its own session, as the app starts a
    training (core.procs); refused while the folder's last background sweep still runs."""
    from core.sweep import clear_stop

    folder = Path(sweep_dir)
    folder.mkdir(parents=True, exist_ok=True)
    with locked(folder / "launch"):  # two clicks at once start one sweep
        now = background(folder)
        if now is not None and now["live"]:
            raise UserError(f"a sweep is already running in {folder} (pid {now['pid']}); stop it or wait for it")
        clear_stop(folder)
        log = folder / JOBS / f"console-{time.strftime('%Y%m%d-%H%M%S')}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        record = {"pid": start_background(argv, log), "started": time.time(), "argv": argv, "log": str(log)}
        atomic_write(folder / ACTIVE, json.dumps(record, indent=2) + "\n")
    return {**record, "live": True}


def background(sweep_dir: str | Path) -> dict | None:
    """The folder's latest background sweep (with ``live``: whether it still runs), or None."""
    try:
        record = json.loads((Path(sweep_dir) / ACTIVE).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict):
        return None
    return {**record, "live": pid_alive(record.get("pid"), float(record.get("started") or 0) + 2)}


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2 or not args[1].isdigit():
        print("usage: python -m core.sweep_workers JOB_FILE INDEX (started by python -m core sweep)", file=sys.stderr)
        return 2
    try:
        run_worker(Job.load(args[0]), int(args[1]))
    except UserError as exc:
        print(f"error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
