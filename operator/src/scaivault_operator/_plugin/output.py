"""What the plugin prints and how it ends: exit codes, ``PluginError``, tables, JSON/YAML, the ✓/✗ marks. Pure.

Every command builds a ``Report``: ``data`` (plain JSON-able values: what ``-o json`` / ``-o yaml`` print) and
``text`` (what the default table output prints), and the exit code. ``render`` turns a report into the text of the
chosen format; ``main`` prints it.

Exit codes, for scripts (``ExitCode``): 0 all is well (every object Ready), 1 something is not Ready or was not
found, 2 usage error, 3 the API server or ScaiVault cannot be reached (or answered 5xx), 4 forbidden (the API
server or ScaiVault refused the user's or the connection's credentials, or a right is missing).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any, Literal

import yaml

__all__ = [
    "FORMATS",
    "ExitCode",
    "Format",
    "Marks",
    "PluginError",
    "Report",
    "State",
    "UsageError",
    "format_report",
    "integer",
    "labels_of",
    "mapping",
    "marks_for",
    "short",
    "table",
    "text",
    "worst",
]

Format = Literal["table", "json", "yaml"]
FORMATS: tuple[Format, ...] = ("table", "json", "yaml")

#: How long a message may be in a table cell (``-o json`` / ``-o yaml`` carry it whole).
SHORT_MESSAGE = 80


class ExitCode(IntEnum):
    """The plugin's exit status."""

    OK = 0
    NOT_READY = 1
    USAGE = 2
    UNREACHABLE = 3
    FORBIDDEN = 4


#: When two problems meet, the exit code of the one a script must hear about: forbidden over unreachable over not
#: ready.
_SEVERITY = {ExitCode.OK: 0, ExitCode.NOT_READY: 1, ExitCode.UNREACHABLE: 2, ExitCode.FORBIDDEN: 3, ExitCode.USAGE: 4}


def worst(*codes: ExitCode) -> ExitCode:
    """The code that wins among ``codes`` (``OK`` when none)."""
    return max(codes, key=_SEVERITY.__getitem__, default=ExitCode.OK)


class PluginError(Exception):
    """A command cannot go on: ``message`` says why (names only — never a value or a token), ``code`` how it ends."""

    def __init__(self, message: str, code: ExitCode) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


class UsageError(PluginError):
    """A bad argument found after argparse (exit 2, like argparse's own errors)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, ExitCode.USAGE)


@dataclass
class Report:
    """A command's result: ``data`` for ``-o json|yaml``, ``text`` for the table output, and the exit code."""

    data: dict[str, Any]
    text: str
    code: ExitCode = ExitCode.OK
    #: Things the user should know that are not the answer (a list the user may not read...): printed to stderr in
    #: table output, carried as ``data["notes"]`` in JSON and YAML.
    notes: list[str] = field(default_factory=list)


def format_report(report: Report, fmt: Format) -> str:
    """The text to print on stdout for ``report`` in ``fmt`` (ending in a newline)."""
    if fmt == "table":
        return report.text if report.text.endswith("\n") else report.text + "\n"
    data = {**report.data, "notes": list(report.notes)} if report.notes else report.data
    if fmt == "json":
        return json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    dumped: str = yaml.safe_dump(data, sort_keys=False, allow_unicode=True, default_flow_style=False)
    return dumped


def short(message: Any, width: int = SHORT_MESSAGE) -> str:
    """``message`` on one line (whitespace collapsed), clipped to ``width`` characters with ``…``; ``-`` for
    nothing."""
    if message is None:
        return "-"
    text = " ".join(str(message).split())
    if not text:
        return "-"
    return text if len(text) <= width else text[: max(1, width - 1)] + "…"


def _cell(value: Any) -> str:
    if value is None or value == "":
        return "-"
    if isinstance(value, bool):
        return "True" if value else "False"
    return " ".join(str(value).split())


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A kubectl-style table: upper-case headers, columns left-aligned and three spaces apart, ``-`` for empty
    cells, no trailing spaces. No trailing newline."""
    cells = [[_cell(v) for v in row] for row in rows]
    head = [h.upper() for h in headers]
    widths = [len(h) for h in head]
    for row in cells:
        if len(row) != len(head):
            raise ValueError(f"a row has {len(row)} cells for {len(head)} columns")
        widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]
    lines = ["   ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in [head, *cells]]
    return "\n".join(lines)


#: The state of a check (``why``'s steps): passed, failed, cannot tell, or information only.
State = Literal["ok", "fail", "unknown", "info"]


@dataclass(frozen=True)
class Marks:
    """The mark printed before a check of each ``State``."""

    ok: str
    fail: str
    unknown: str
    info: str

    def of(self, state: State) -> str:
        mark: str = getattr(self, state)
        return mark


_UNICODE = Marks(ok="✓", fail="✗", unknown="?", info="•")
_ASCII = Marks(ok="+", fail="x", unknown="?", info="-")


def marks_for(encoding: str | None) -> Marks:
    """✓ ✗ ? • when ``encoding`` (the terminal's) can print them, else ``+ x ? -``."""
    try:
        "✓✗•".encode(encoding or "ascii")
    except (UnicodeEncodeError, LookupError):
        return _ASCII
    return _UNICODE


def mapping(value: Any) -> Mapping[str, Any]:
    """``value`` when it is a mapping, else an empty one (objects read from the API are never trusted)."""
    return value if isinstance(value, Mapping) else {}


def text(value: Any) -> str | None:
    """``value`` when it is a non-empty string, else None."""
    return value if isinstance(value, str) and value else None


def integer(value: Any) -> int | None:
    """``value`` when it is an int (not a bool), else None."""
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def labels_of(obj: Any) -> dict[str, str]:
    """The labels of an object read from the API (``{}`` for none)."""
    return {str(k): str(v) for k, v in mapping(mapping(mapping(obj).get("metadata")).get("labels")).items()}
