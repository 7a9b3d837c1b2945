"""A strict parser of Prometheus' text exposition format (0.0.4), for the operator's ``/metrics`` in tests.

No client library here (the operator has none, and the tests add none): ``parse`` reads the whole text and raises
``ExpositionError`` naming the line for anything Prometheus would refuse, and for a few things it would tolerate but
the operator must not do (stricter than the format):

- lines: ``# HELP``, ``# TYPE`` and samples only — no other comment, no blank line, no ``\\r``, a final line feed;
- names ``[a-zA-Z_:][a-zA-Z0-9_:]*``, label names ``[a-zA-Z_][a-zA-Z0-9_]*`` (not ``__``-prefixed), label values with
  only the ``\\\\``, ``\\"`` and ``\\n`` escapes, no trailing comma, no label twice; values Go's floats (``+Inf``,
  ``-Inf``, ``NaN``); no timestamps (the operator sends none);
- a family: at most one HELP and one TYPE, both before its first sample; every sample under a TYPE; a family's samples
  contiguous; no series twice;
- counters: not negative, not NaN; ``le`` only on a histogram's ``_bucket``s, ``quantile`` only in summaries;
- histograms: per label set, ``_bucket`` bounds strictly ascending and ending at ``+Inf``, counts cumulative (never
  decreasing) whole numbers, ``_count`` equal to the ``+Inf`` bucket, one ``_sum``.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = ["ExpositionError", "Family", "Sample", "parse", "sample_value"]

_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_VALUE = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|[+-]Inf|NaN")
_TYPES = frozenset({"counter", "gauge", "histogram", "summary", "untyped"})
_SUFFIXES = {"histogram": ("_bucket", "_sum", "_count"), "summary": ("", "_sum", "_count")}


class ExpositionError(ValueError):
    """The text is not (strictly) valid exposition format."""


@dataclass(frozen=True)
class Sample:
    name: str
    labels: tuple[tuple[str, str], ...]  # sorted
    value: float

    def label(self, key: str) -> str | None:
        return dict(self.labels).get(key)


@dataclass
class Family:
    name: str
    type: str | None = None
    help: str | None = None
    samples: list[Sample] = field(default_factory=list)


def parse(text: str) -> dict[str, Family]:
    """Every metric family of ``text``, in order, validated (see the module's docstring)."""
    if not text.endswith("\n"):
        raise ExpositionError("the text does not end with a line feed")
    if "\r" in text:
        raise ExpositionError("the text has a carriage return")
    families: dict[str, Family] = {}
    current: Family | None = None
    closed: set[str] = set()  # families whose samples are over (another family's began)
    seen: set[tuple[str, tuple[tuple[str, str], ...]]] = set()
    for number, line in enumerate(text[:-1].split("\n"), start=1):
        where = f"line {number} ({line[:120]!r})"
        if not line:
            raise ExpositionError(f"{where}: blank line")
        if line.startswith("#"):
            match = re.fullmatch(r"# (HELP|TYPE) (\S+) ?(.*)", line)
            if match is None:
                raise ExpositionError(f"{where}: a comment that is neither HELP nor TYPE")
            keyword, name, rest = match.groups()
            if not _NAME.fullmatch(name):
                raise ExpositionError(f"{where}: invalid metric name")
            family = families.setdefault(name, Family(name))
            if family.samples or name in closed:
                raise ExpositionError(f"{where}: {keyword} after the family's samples")
            if keyword == "HELP":
                if family.help is not None:
                    raise ExpositionError(f"{where}: a second HELP")
                family.help = _unescape(rest, where, quotes=False)
            else:
                if family.type is not None:
                    raise ExpositionError(f"{where}: a second TYPE")
                if rest not in _TYPES:
                    raise ExpositionError(f"{where}: unknown type {rest!r}")
                family.type = rest
            if current is not None and current.name != name:
                closed.add(current.name)
            current = family
            continue
        sample = _sample(line, where)
        owner = _owner(sample.name, families)
        if owner is None or owner.type is None:
            raise ExpositionError(f"{where}: a sample without a TYPE")
        if owner is not current:
            raise ExpositionError(f"{where}: the samples of {owner.name} are not contiguous")
        key = (sample.name, sample.labels)
        if key in seen:
            raise ExpositionError(f"{where}: the series is there twice")
        seen.add(key)
        _check_sample(owner, sample, where)
        owner.samples.append(sample)
    for family in families.values():
        if family.type == "histogram":
            _check_histogram(family)
    return families


def sample_value(families: Mapping[str, Family], name: str, **labels: str) -> float | None:
    """The value of the series ``name`` with exactly ``labels``, or None when it is not there."""
    wanted = tuple(sorted(labels.items()))
    for family in families.values():
        for sample in family.samples:
            if sample.name == name and sample.labels == wanted:
                return sample.value
    return None


def _owner(sample_name: str, families: Mapping[str, Family]) -> Family | None:
    family = families.get(sample_name)
    if family is not None and family.type not in _SUFFIXES:
        return family
    for kind, suffixes in _SUFFIXES.items():
        for suffix in suffixes:
            if suffix and sample_name.endswith(suffix):
                candidate = families.get(sample_name[: -len(suffix)])
                if candidate is not None and candidate.type == kind:
                    return candidate
    if family is not None and family.type == "summary":
        return family
    return None


def _sample(line: str, where: str) -> Sample:
    match = _NAME.match(line)
    if match is None:
        raise ExpositionError(f"{where}: no metric name")
    name, rest = match.group(), line[match.end() :]
    labels: dict[str, str] = {}
    if rest.startswith("{"):
        rest = _labels(rest[1:], labels, where)
    if not rest.startswith(" "):
        raise ExpositionError(f"{where}: no space before the value")
    value_text = rest[1:]
    if " " in value_text:
        raise ExpositionError(f"{where}: a timestamp or trailing text after the value")
    if not _VALUE.fullmatch(value_text):
        raise ExpositionError(f"{where}: {value_text!r} is not a float")
    return Sample(name, tuple(sorted(labels.items())), float(value_text))


def _labels(text: str, labels: dict[str, str], where: str) -> str:
    """Read ``name="value",...}`` into ``labels``; return what follows the ``}``."""
    if text.startswith("}"):
        raise ExpositionError(f"{where}: empty braces")
    while True:
        match = _LABEL_NAME.match(text)
        if match is None:
            raise ExpositionError(f"{where}: invalid label name")
        key = match.group()
        if key.startswith("__"):
            raise ExpositionError(f"{where}: reserved label name {key!r}")
        if key in labels:
            raise ExpositionError(f"{where}: label {key!r} twice")
        text = text[match.end() :]
        if not text.startswith('="'):
            raise ExpositionError(f'{where}: label {key!r} without ="')
        value, text = _quoted(text[2:], where)
        labels[key] = value
        if text.startswith(","):
            text = text[1:]
            if text.startswith("}"):
                raise ExpositionError(f"{where}: trailing comma")
            continue
        if text.startswith("}"):
            return text[1:]
        raise ExpositionError(f"{where}: expected , or }} after label {key!r}")


def _quoted(text: str, where: str) -> tuple[str, str]:
    """The label value up to its closing quote (unescaped), and the text after the quote."""
    out: list[str] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char == '"':
            return "".join(out), text[i + 1 :]
        if char == "\\":
            escaped = text[i + 1 : i + 2]
            if escaped not in ("\\", '"', "n"):
                raise ExpositionError(f"{where}: invalid escape \\{escaped} in a label value")
            out.append("\n" if escaped == "n" else escaped)
            i += 2
            continue
        if char == "\n":
            raise ExpositionError(f"{where}: a raw line feed in a label value")
        out.append(char)
        i += 1
    raise ExpositionError(f"{where}: unterminated label value")


def _unescape(text: str, where: str, *, quotes: bool) -> str:
    allowed = ("\\", "n", '"') if quotes else ("\\", "n")
    out: list[str] = []
    i = 0
    while i < len(text):
        if text[i] == "\\":
            escaped = text[i + 1 : i + 2]
            if escaped not in allowed:
                raise ExpositionError(f"{where}: invalid escape \\{escaped}")
            out.append("\n" if escaped == "n" else escaped)
            i += 2
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def _check_sample(family: Family, sample: Sample, where: str) -> None:
    keys = {key for key, _ in sample.labels}
    is_bucket = family.type == "histogram" and sample.name == family.name + "_bucket"
    if ("le" in keys) != is_bucket:
        raise ExpositionError(f"{where}: 'le' belongs on a histogram's buckets, and only there")
    if "quantile" in keys and family.type != "summary":
        raise ExpositionError(f"{where}: 'quantile' outside a summary")
    if family.type == "counter" and (math.isnan(sample.value) or sample.value < 0):
        raise ExpositionError(f"{where}: a counter must be a number >= 0")
    is_count = family.type == "histogram" and sample.name == family.name + "_count"
    if is_count and (not sample.value.is_integer() or sample.value < 0):
        raise ExpositionError(f"{where}: a histogram's count must be a whole number >= 0")


def _check_histogram(family: Family) -> None:
    series: dict[tuple[tuple[str, str], ...], dict[str, list[Sample]]] = {}
    for sample in family.samples:
        base = tuple((k, v) for k, v in sample.labels if k != "le")
        suffix = sample.name[len(family.name) :]
        series.setdefault(base, {}).setdefault(suffix, []).append(sample)
    for base, parts in series.items():
        what = f"histogram {family.name}{dict(base) or ''}"
        buckets = parts.get("_bucket", [])
        if not buckets:
            raise ExpositionError(f"{what}: no buckets")
        if len(parts.get("_count", [])) != 1 or len(parts.get("_sum", [])) != 1:
            raise ExpositionError(f"{what}: needs exactly one _count and one _sum")
        bounds: list[float] = []
        for bucket in buckets:
            le = bucket.label("le")
            if le is None or not _VALUE.fullmatch(le) or math.isnan(float(le)):
                raise ExpositionError(f"{what}: bucket bound {le!r} is not a number")
            bounds.append(float(le))
        if any(later <= earlier for earlier, later in itertools.pairwise(bounds)):
            raise ExpositionError(f"{what}: bucket bounds are not strictly ascending: {bounds}")
        if bounds[-1] != math.inf:
            raise ExpositionError(f"{what}: the last bucket is not +Inf")
        counts = [bucket.value for bucket in buckets]
        if any(not c.is_integer() or c < 0 for c in counts):
            raise ExpositionError(f"{what}: bucket counts must be whole numbers >= 0: {counts}")
        if any(later < earlier for earlier, later in itertools.pairwise(counts)):
            raise ExpositionError(f"{what}: bucket counts are not cumulative: {counts}")
        if parts["_count"][0].value != counts[-1]:
            raise ExpositionError(f"{what}: _count {parts['_count'][0].value} != +Inf bucket {counts[-1]}")
        if math.isnan(parts["_sum"][0].value):
            raise ExpositionError(f"{what}: _sum is NaN")
