"""CSV files under a schema: the columns a file must have and each column's rule."""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from core.errors import UserError, a
from core.rules.values import Depends, Rule, shown

MAX_CSV_BYTES = 200_000_000  # far beyond any CSV of this project; beyond it, something else was given


@dataclass(frozen=True)
class CsvSchema:
    """The columns a CSV must have and each column's rule.

    :meth:`read` refuses, naming the file and the way out: a file that is not text (binary,
    not UTF-8), an empty file, a header without rows (unless ``rows_required`` is False), a
    missing column, and, with ``on_bad="raise"``, the first cell that breaks its rule (row and
    column named). With ``on_bad="collect"`` bad rows are left out and returned as messages.
    """

    what: str
    columns: Mapping[str, Rule]
    rows_required: bool = True
    fix: str = ""  # the way out, added to every refusal: "see the README's Datasets section"

    def header(self) -> str:
        return ",".join(self.columns)

    def _error(self, path: Path, text: str, error) -> UserError:
        return error(f"{path}: {text}" + (f"; {self.fix}" if self.fix else ""))

    def read_text(self, path: Path, error=UserError) -> str:
        try:
            size = path.stat().st_size
            if not path.is_file():
                raise self._error(path, f"is not a file; give the path of {a(self.what)} CSV", error)
            if size > MAX_CSV_BYTES:
                raise self._error(path, f"is {size / 1e6:.0f} MB, not {a(self.what)} CSV", error)
            raw = path.read_bytes()
        except FileNotFoundError:
            raise self._error(path, f"{self.what} file does not exist", error) from None
        except OSError as exc:
            raise self._error(path, f"cannot be read ({exc.strerror})", error) from None
        if b"\x00" in raw:
            raise self._error(path, f"holds binary data, not {a(self.what)} CSV (columns {self.header()})", error)
        try:
            return raw.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise self._error(path, f"is not UTF-8 text (byte {exc.start}); save it as UTF-8 CSV with "
                                    f"columns {self.header()}", error) from None

    def read(self, path: str | Path, error: type[UserError] = UserError, on_bad: str = "raise"):
        """The table (all cells as stripped strings), and the bad rows' messages with ``on_bad="collect"``."""
        import pandas as pd

        path = Path(path)
        text = self.read_text(path, error)
        if not text.strip():
            raise self._error(path, f"is empty; {a(self.what)} CSV starts with the header {self.header()}", error)
        try:
            table = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False, skipinitialspace=True)
        except Exception as exc:  # noqa: BLE001 - pandas raises several parser errors
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
            raise self._error(path, f"cannot be read as CSV ({shown(first, 80)})", error) from None
        table.columns = [str(c).strip() for c in table.columns]
        table = table.fillna("")  # a short row's missing cells
        missing = [c for c in self.columns if c not in table.columns]
        if missing:
            raise self._error(path, f"missing column(s) {', '.join(missing)}; {a(self.what)} CSV has the columns "
                                    f"{self.header()}", error)
        if table.empty and self.rows_required:
            raise self._error(path, f"has a header but no rows; add one row per entry under {self.header()}", error)
        for c in self.columns:
            table[c] = table[c].astype(str).str.strip()
        bad = self._bad_rows(path, table, error, on_bad)
        if on_bad == "collect":
            return table.drop(index=[i for i, _ in bad]), [m for _, m in bad]
        return table

    def _bad_rows(self, path, table, error, on_bad) -> list[tuple[int, str]]:
        bad = []
        for i, row in enumerate(table[list(self.columns)].to_dict("records")):
            for column, rule in self.columns.items():
                name = column
                if isinstance(rule, Depends):
                    name = f"{row[rule.on]} {column}"  # "gender value"
                    rule = rule.for_row(row)
                if rule is None:
                    continue
                try:
                    rule.parse(row[column], name, error)
                except UserError as exc:
                    message = f"{path} row {i + 2}: {exc}"
                    if on_bad == "raise":
                        raise error(message + (f"; {self.fix}" if self.fix else "")) from None
                    bad.append((table.index[i], message))
                    break
        return bad


def parse_cell(rule: Rule, text: str, name: str) -> Any:
    """A CSV cell's value under its rule (the table :meth:`CsvSchema.read` returns keeps strings)."""
    return rule.parse(text, name)
