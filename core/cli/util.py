"""What the command-line modules share: the one-line usage error, progress bars, flag values."""

from __future__ import annotations

import argparse
import sys
import time

from core.errors import UserError


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line and status 2 like every other bad input."""

    def error(self, message: str):  # noqa: D401 - argparse API
        raise UserError(f"{self.prog}: {message} (see --help)")


def progress_bar(label: str):
    """A progress callback(done, total) drawing a tqdm bar on stderr.

    On a terminal tqdm redraws one line, at most ten times a second (``mininterval``).
    Redirected to a file (the app's console.log, a CI log) it writes a plain line, formatted
    by tqdm, at each tenth of the way instead, so the log stays readable and small.
    """
    from tqdm import tqdm

    if sys.stderr.isatty():
        state: dict = {"bar": None}

        def redraw(done: int, total: int) -> None:
            bar = state["bar"]
            if bar is None or bar.total != total:
                bar = state["bar"] = tqdm(total=total, desc=label, file=sys.stderr, mininterval=0.1,
                                          dynamic_ncols=True)
            bar.update(done - bar.n)
            if done >= total:
                bar.close()
                state["bar"] = None

        return redraw

    start, last = time.monotonic(), {"tenth": -1}

    def line(done: int, total: int) -> None:
        tenth = int(10 * done / total) if total else 10
        if tenth == last["tenth"] and done < total:
            return
        last["tenth"] = tenth
        elapsed = time.monotonic() - start  # under a tenth of a second (a cache hit): no rate, not a silly one
        sys.stderr.write(tqdm.format_meter(done, total, elapsed if elapsed >= 0.1 else 0, prefix=label, ncols=90)
                         + "\n")
        sys.stderr.flush()

    return line


def corrections_arg(value: str | None) -> str | None:
    if value == "reported":
        from core.dataset import REPORTED_CORRECTIONS
        return str(REPORTED_CORRECTIONS)
    return value
