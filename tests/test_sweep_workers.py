"""Sweep workers as real processes: K workers share one journal, a killed worker's trial is failed,
and several machines join one study through a real PostgreSQL server (started here)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna
import pytest
from test_sweep import FLAGS, journal_study, states, sweep, tiny  # noqa: F401 - the tiny fixture

ROOT = Path(__file__).resolve().parents[1]
LIMIT_S = 240


def command(tiny: dict, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "core", "sweep", "--data", str(tiny["data"]), "--recipe", str(tiny["recipe"]),
            "--out", str(out), "--space", str(tiny["space"]), *FLAGS, *extra]


def run(argv: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(argv, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True,
                          text=True, timeout=LIMIT_S, check=False)


def test_two_worker_processes_share_one_journal_and_add_exactly_n_trials(tiny):
    out = tiny["base"] / "two-workers"
    done = run(command(tiny, out, "--workers", "2", "--trials", "3"))
    assert done.returncode == 0, done.stderr
    study = journal_study(out)
    assert states(study) == ["COMPLETE"] * 3
    assert {t.user_attrs["worker"] for t in study.get_trials()} <= {0, 1}
    assert os.getpid() not in {t.user_attrs["pid"] for t in study.get_trials()}  # trained in the workers
    assert "added 3 trial(s): 3 complete" in done.stdout


def test_a_killed_worker_leaves_its_trial_failed_and_the_next_command_goes_on(tiny):
    out = tiny["base"] / "killed"
    proc = subprocess.Popen(command(tiny, out, "--trials", "1", "--epochs", "500"), cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + LIMIT_S
        while True:  # until the trial has reported an epoch: its worker is inside training
            assert proc.poll() is None and time.monotonic() < deadline, "the sweep ended or never trained"
            if (out / "study.log").is_file() and any(t.intermediate_values for t in journal_study(out).get_trials()):
                break
            time.sleep(0.3)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert states(journal_study(out)) == ["RUNNING"]  # nothing could tell the study
    code, stdout, stderr = sweep(tiny, out, "--trials", "1")
    assert code == 0, stderr
    assert "trial 0 marked failed: its worker ended before it did" in stdout
    first, second = journal_study(out).get_trials()
    assert (first.state.name, second.state.name) == ("FAIL", "COMPLETE")
    assert first.user_attrs["error"] == f"its worker (pid {proc.pid}) ended before the trial did (killed?)"


# ----------------------------------------------------------------------------- PostgreSQL

def _server_binaries() -> Path | None:
    found = shutil.which("initdb")
    if found:
        return Path(os.path.realpath(found)).parent
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    return versions[-1].parent if versions else None


def _unavailable(reason: str):
    message = f"PostgreSQL test not run: {reason}"
    if os.environ.get("CI") == "true":
        pytest.fail(message + " (CI installs it: make test runs apt-get install postgresql as root)")
    pytest.skip(message)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def postgres_url():
    """A throwaway PostgreSQL cluster in a temporary folder, on a free port of 127.0.0.1."""
    bin_dir = _server_binaries()
    if bin_dir is None:
        _unavailable("the server binaries (initdb, pg_ctl) are not installed; as root: apt-get install postgresql")
    as_user: list[str] = []
    folder = Path(tempfile.mkdtemp(prefix="masklab-pg-"))
    if os.geteuid() == 0:  # initdb refuses root: run the server as the package's postgres user
        try:
            import pwd

            entry = pwd.getpwnam("postgres")
        except KeyError:
            shutil.rmtree(folder)
            _unavailable("running as root, and there is no 'postgres' user to run the server as")
        os.chown(folder, entry.pw_uid, entry.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"] if shutil.which("runuser") else None
        if as_user is None:
            shutil.rmtree(folder)
            _unavailable("running as root without runuser to start the server as the postgres user")
    data, port = folder / "data", _free_port()

    def pg(*argv: str) -> subprocess.CompletedProcess:
        return subprocess.run([*as_user, *argv], capture_output=True, text=True, timeout=120, check=False)

    init = pg(str(bin_dir / "initdb"), "-D", str(data), "-A", "trust", "-U", "masklab", "-E", "UTF8", "--no-sync")
    assert init.returncode == 0, init.stderr
    start = pg(str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(folder / "server.log"), "-w", "-o",
               f"-p {port} -c listen_addresses=127.0.0.1 -k {folder} -c fsync=off", "start")
    assert start.returncode == 0, start.stderr + start.stdout
    try:
        yield f"postgresql://masklab@127.0.0.1:{port}/postgres"
    finally:
        pg(str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(folder, ignore_errors=True)


def test_two_machines_join_one_study_through_postgresql(tiny, postgres_url):
    # Two commands with their own sweep folders (as on two machines), one storage and study name.
    outs = [tiny["base"] / "machine-a", tiny["base"] / "machine-b"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [subprocess.Popen(command(tiny, out, "--storage", postgres_url, "--study", "shared", "--trials", "2"),
                              cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for out in outs]
    results = [p.communicate(timeout=LIMIT_S) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err for _, err in results]
    study = optuna.load_study(study_name="shared", storage=postgres_url)
    trials = study.get_trials()
    assert [t.state.name for t in trials] == ["COMPLETE"] * 4
    assert len({t.user_attrs["batch"] for t in trials}) == 2  # two commands, two trials each
    assert {Path(t.user_attrs["run_dir"]).parents[1] for t in trials} == set(outs)
    bests = [json.loads((out / "best.json").read_text()) for out in outs]
    assert max(b["value"] for b in bests) == study.best_value
    assert "in postgresql://masklab@127.0.0.1" in results[0][0]
    # the sweep.json a person reads never shows a password; the job file the workers read is private
    assert json.loads((outs[0] / "sweep.json").read_text())["storage"] == postgres_url
    jobs = list((outs[0] / ".jobs").glob("*.json"))
    assert jobs and all(oct(p.stat().st_mode & 0o777) == "0o600" for p in jobs)


# ----------------------------------------------------------------------------- Ctrl-C, leaked trainings

def test_ctrl_c_on_two_workers_stops_them_cleanly_with_exit_130(tiny):
    """A terminal's Ctrl-C reaches the whole process group: the command alone answers it (STOP
    file); the workers end their trials after the current batch, with no traceback."""
    out = tiny["base"] / "ctrl-c"
    proc = subprocess.Popen(command(tiny, out, "--workers", "2", "--trials", "2", "--epochs", "500"), cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + LIMIT_S
        while True:  # until both workers' trials have reported an epoch: both are inside training
            assert proc.poll() is None and time.monotonic() < deadline, "the sweep ended or never trained"
            if (out / "study.log").is_file() and sum(bool(t.intermediate_values)
                                                     for t in journal_study(out).get_trials()) == 2:
                break
            time.sleep(0.3)
        os.killpg(proc.pid, signal.SIGINT)  # as the terminal does: every process of the group
        stdout, stderr = proc.communicate(timeout=LIMIT_S)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert "Traceback" not in stdout + stderr, stdout + stderr
    assert proc.returncode == 130, stderr
    assert "stopping: each worker ends its trial after the current batch" in stderr
    assert stderr.strip().splitlines()[-1].startswith("interrupted: the trials that were running are marked failed")
    trials = journal_study(out).get_trials()
    assert [t.state.name for t in trials] == ["FAIL", "FAIL"]
    assert {t.user_attrs["error"] for t in trials} == {"stopped on request"}
    assert [row["state"] for row in json.loads((out / "trials.json").read_text())] == ["fail", "fail"]
    assert "added 2 trial(s): 2 fail" in stdout


def test_a_worker_leaving_a_torchrun_trial_early_ends_its_training(tmp_path, monkeypatch):
    """The trial's training runs in its own session; a worker interrupted while following it
    ends that whole process group instead of leaving it to train alone."""
    import types

    import core.sweep_workers as workers
    from core.procs import pid_alive, start_background
    from core.recipe import Recipe
    from core.sweep import Job
    from core.training.config import TrainConfig

    started = {}

    def sleeper(argv, log, env=None):
        started["pid"] = start_background([sys.executable, "-c", "import time; time.sleep(120)"], log)
        return started["pid"]

    def interrupted(*_):
        raise KeyboardInterrupt

    monkeypatch.setattr(workers, "start_background", sleeper)
    monkeypatch.setattr(workers, "_find_run", interrupted)
    job = Job(sweep_dir=str(tmp_path), data=str(tmp_path), trials=1, space={}, fixed={}, recipe={})
    for sub in ("runs", ".jobs"):  # as job.save and prepare make them
        (tmp_path / sub).mkdir()
    trial = types.SimpleNamespace(number=0, set_user_attr=lambda *_: None)
    follower = workers.Follower(trial, job, 0, epochs=1, folds=0)
    with pytest.raises(KeyboardInterrupt):
        workers.run_torchrun(TrainConfig(data=str(tmp_path), nproc=2), Recipe(), follower)
    deadline = time.monotonic() + 30
    while pid_alive(started["pid"]):
        assert time.monotonic() < deadline, "the trial's training still runs"
        time.sleep(0.1)
