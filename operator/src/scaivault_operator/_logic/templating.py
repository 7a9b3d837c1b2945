"""Secret templates (``spec.template``): the Secret's keys rendered with Jinja2 in a hardened sandbox. Pure.

``apply_template(spec, data, version=..., sources=...)`` takes the Secret's ``data`` as ``manifests.secret_data``
built it (base64, after ``spec.keys``; for a composite VaultSecret the union of its sources and discovered secrets)
and returns the data the Secret should hold: with no template, ``data`` itself; with one, the keys of
``template.data`` rendered, the keys of ``template.literals`` as they are, and — ``mergePolicy: Merge`` — the synced
keys beneath them. ``_core/sync`` calls it between ``secret_data`` and ``desired_secret`` (which takes the template's
type, labels and annotations); ``kubectl scaivault render`` calls it too. Jinja2 is imported on the first
VaultSecret with a template, never before.

What a template sees: ``data`` (the Secret's synced keys, values as text — a JSON number is ``"5432"``, an object
its compact JSON) and ``sources``, one entry per named source (``SourceInput``): ``sources.<name>.data`` (that
source's keys after its own ``keys``, as text), ``.path`` and ``.version``. A single-path VaultSecret has one source
named ``main`` (``SOURCE_NAME``), whose ``data`` is ``data`` itself; a composite VaultSecret (``spec.sources`` and/or
``spec.dataFrom``) has its ``spec.sources`` by name, and ``data`` is their union with the keys ``spec.dataFrom``
found — the discovered secrets appear only in ``data``, never in ``sources``.
On a mapping a key wins over a method of the same name (``data.items`` is the key ``items`` when there is one).

The engine: ``ImmutableSandboxedEnvironment`` with ``StrictUndefined`` (every undefined name is an error), no loader
(``import``, ``include``, ``extends`` and ``from`` are refused when the template is compiled, as are recursive loops
and ``autoescape`` blocks), autoescape off, no constant folding at compile time, and the template's text kept as it
is (``keep_trailing_newline``: a YAML ``|`` block ends with a newline, ``|-`` does not). The sandbox is narrowed to an
allowlist: attributes only on strings (read-only methods such as ``split``, ``strip``, ``startswith``; not
``format``, ``center``, ``ljust`` or ``zfill``, whose width argument allocates), mappings (``items``, ``keys``,
``values``, ``get``), lists and Jinja's own loop, macro and namespace objects; the globals ``range`` (at most
``MAX_RANGE`` numbers), ``namespace``, ``htpasswd`` and ``dockerconfigjson``; a reviewed subset of Jinja's filters
(no ``format``, ``center``, ``wordwrap``, ``batch``, ``random``, ``pprint``, ``urlize``, ``attr``, ...) plus ours.

Bounds, per VaultSecret (all its templates together): ``MAX_STEPS`` steps — a loop iteration, a call, a filter, an
attribute or item lookup, an intercepted operator, an output —, checked with the wall-clock ``DEADLINE_SECONDS`` at
every step; every value a step builds is measured (an estimate of its memory, containers deeply) against
``MAX_VALUE_SIZE``, all of them together against ``MAX_WORK_SIZE``, before anything that stringifies or copies it
(output, ``~``, ``+``, ``*``, ``tojson``, ``join``, ...); ``*`` and ``**`` are checked before they compute (sizes,
``MAX_INT_BITS``), ``%``-formatting of strings is refused; each rendered value and the whole Secret are at most 1 MiB
(``MAX_OUTPUT_BYTES``). The template's syntax tree is rewritten so that every loop's iterable, every ``~`` and every
piece of literal text goes through the budget (``_Guard``) — ``environment.sv_*`` attributes that a template cannot
name or rebind.

Errors are ``TemplateError`` (a ``manifests.SourceDataError``, reason ``TemplateError`` in ``conditions``): the
message names the template's key, the line, and the missing name or the kind of error — never a value. Jinja's and
Python's exception texts can quote values, so none is used: the message is built from the exception's type, from
our own refusals, and from names that appear literally in the template's text (a name computed while rendering, e.g.
``data[data.user]``, may be a value and is not shown). A missing name is told with the names there are (sorted,
clipped): ``data``'s keys, the sources' names, a ``sources.<name>.data``'s keys, a source's fields. No exception of a
render is chained to the ``TemplateError``.

Compiled templates are cached by their text (``_compile``, LRU): a template is parsed once, not at every sync.
"""

from __future__ import annotations

import base64
import binascii
import contextvars
import functools
import hashlib
import json
import re
import time
from collections.abc import Callable, ItemsView, Iterable, Iterator, KeysView, Mapping, Sequence, ValuesView
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import quote

from scaivault_operator._cogs.api import Template, VaultSecretSpec
from scaivault_operator._logic.manifests import MAX_SECRET_BYTES, SourceDataError

if TYPE_CHECKING:
    import jinja2

__all__ = [
    "DEADLINE_SECONDS",
    "FILTERS",
    "MAX_OUTPUT_BYTES",
    "MAX_RANGE",
    "MAX_STEPS",
    "MAX_VALUE_SIZE",
    "MAX_WORK_SIZE",
    "SOURCE_NAME",
    "SourceInput",
    "TemplateError",
    "apply_template",
    "key_origins",
    "render",
]

#: The name of a single-path VaultSecret's one source in ``sources`` (``sources.main.data``).
SOURCE_NAME: Final = "main"
#: A rendered value, and the whole Secret: Kubernetes' limit.
MAX_OUTPUT_BYTES: Final = MAX_SECRET_BYTES
#: Any one value built while rendering, measured by ``_measure`` (about its memory in CPython).
MAX_VALUE_SIZE: Final = 4 * 1024 * 1024
#: All values built while rendering one VaultSecret's templates, measured the same way.
MAX_WORK_SIZE: Final = 32 * 1024 * 1024
#: Loop iterations, calls, filters, lookups, intercepted operators and outputs, for one VaultSecret's templates.
MAX_STEPS: Final = 100_000
#: Wall-clock bound of one VaultSecret's rendering (a backstop: the steps bound the work first).
DEADLINE_SECONDS: Final = 0.5
#: ``range()`` yields at most this many numbers (Jinja's sandbox allows 100000).
MAX_RANGE: Final = 10_000
#: Integers built by ``*``, ``**`` and ``+`` stay below 2**MAX_INT_BITS (about 2466 digits).
MAX_INT_BITS: Final = 8192
#: ``fromyaml`` and ``toyaml`` handle at most this much (YAML is slow: about 1 s per MiB even in C).
MAX_YAML_SIZE: Final = 64 * 1024
#: ``indent`` by at most this many characters.
MAX_INDENT: Final = 64

#: Read-only ``str`` methods a template may call. Not ``format``/``format_map`` (width specifiers allocate),
#: ``center``/``ljust``/``rjust``/``zfill``/``expandtabs`` (width arguments), ``join``/``replace`` (the filters check
#: their sizes first), ``encode``/``translate``.
_STR_METHODS: Final = frozenset({
    "capitalize", "casefold", "count", "endswith", "find", "index", "isalnum", "isalpha", "isascii", "isdecimal",
    "isdigit", "islower", "isnumeric", "isspace", "istitle", "isupper", "lower", "lstrip", "partition",
    "removeprefix", "removesuffix", "rfind", "rindex", "rpartition", "rsplit", "rstrip", "split", "splitlines",
    "startswith", "strip", "swapcase", "title", "upper",
})  # fmt: skip
_MAPPING_METHODS: Final = frozenset({"get", "items", "keys", "values"})
_SEQUENCE_METHODS: Final = frozenset({"count", "index"})
#: Jinja's built-in filters a template may use: none allocates by a width or count argument, draws random numbers or
#: reaches attributes around the sandbox. ``join``, ``replace``, ``string``, ``indent`` and ``tojson`` are ours.
_JINJA_FILTERS: Final = (
    "abs", "capitalize", "count", "d", "default", "dictsort", "first", "float", "int", "items", "last", "length",
    "list", "lower", "map", "max", "min", "reject", "rejectattr", "reverse", "round", "select", "selectattr", "sort",
    "sum", "title", "trim", "unique", "upper", "urlencode",
)  # fmt: skip
#: The template helpers the rewritten syntax tree calls as ``environment.<name>``: exempt from the call hook (they
#: account for themselves).
_HELPERS: Final = frozenset({"sv_iter", "sv_concat", "sv_text"})
_PEM_RE: Final = re.compile(r"-----BEGIN ([A-Z0-9][A-Z0-9 ]{0,62})-----[ \t]*\r?\n(.*?)-----END \1-----", re.DOTALL)
_APR1_ALPHABET: Final = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_MAX_SHOWN_NAME = 64
_MAX_NAMED_KEYS = 20
_MAX_SYNTAX_MESSAGE = 200


class TemplateError(SourceDataError):
    """A template of ``spec.template`` failed: ``message`` names the key, line and name or kind of error, never a
    value. The Secret keeps its last data."""

    def __init__(self, key: str | None, message: str) -> None:
        super().__init__(message)
        self.key = key


@dataclass(frozen=True)
class SourceInput:
    """One named source as a template sees it (``sources.<name>``): its ``path``, the ``version`` read, and its
    ``data`` — base64 values after its ``keys``, as ``manifests.secret_data`` returns them."""

    path: str
    version: int
    data: Mapping[str, str]


# -- the public functions -------------------------------------------------------------------------------------


def apply_template(
    spec: VaultSecretSpec,
    data: Mapping[str, str],
    *,
    version: int | None,
    sources: Mapping[str, SourceInput] | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> dict[str, str]:
    """The Secret's data (base64) for ``spec``: ``data`` (``manifests.secret_data``'s; a composite's union) as it is
    without a template, else ``render``'s. ``sources`` None (a single-path VaultSecret): one source ``main`` —
    ``spec.path`` at ``version`` holding ``data``; a composite's caller passes its named sources (``version`` is
    then not used). Raises ``TemplateError``."""
    if spec.template is None:
        return dict(data)
    if sources is None:
        if spec.path is None or version is None:
            raise ValueError("apply_template: a VaultSecret without spec.path (sources/dataFrom) needs its sources")
        sources = {SOURCE_NAME: SourceInput(path=spec.path, version=version, data=data)}
    return render(spec.template, data, sources=sources, clock=clock)


def render(
    template: Template,
    data: Mapping[str, str],
    *,
    sources: Mapping[str, SourceInput],
    clock: Callable[[], float] = time.monotonic,
) -> dict[str, str]:
    """Render ``template`` over the synced ``data`` (base64 values: the Secret's keys) and the named ``sources``;
    return the Secret's data map (base64). Keys are rendered in sorted order with one budget; the first failure
    raises ``TemplateError`` (nothing partial is returned)."""
    encoded: dict[str, bytes] = {}
    if template.data:
        values = {key: _decode(value) for key, value in data.items()}
        budget = _Budget(deadline=clock() + DEADLINE_SECONDS, clock=clock, data=values)
        budget.sources = _source_views(sources, data, values, budget)
        variables: dict[str, Any] = {"data": values, "sources": budget.sources}
        token = _BUDGET.set(budget)
        try:
            for key in sorted(template.data):
                encoded[key] = _render_key(key, template.data[key], variables, budget)
        finally:
            _BUDGET.reset(token)
    for key, text in template.literals.items():
        encoded[key] = _encode(key, text)
    result: dict[str, str] = dict(data) if template.mergePolicy == "Merge" else {}
    result.update({key: base64.b64encode(raw).decode("ascii") for key, raw in encoded.items()})
    total = sum(len(key.encode("utf-8")) + len(base64.b64decode(value)) for key, value in result.items())
    if total > MAX_OUTPUT_BYTES:
        raise TemplateError(None, f"spec.template: the Secret would hold {total} bytes of data; Kubernetes allows at "
                            f"most {MAX_OUTPUT_BYTES} (1 MiB); the Secret keeps its last data")  # fmt: skip
    return result


def key_origins(spec: VaultSecretSpec, keys: Iterable[str]) -> dict[str, str]:
    """Where each of the Secret's ``keys`` comes from: ``template`` (rendered), ``literal`` or ``source`` (synced).
    Names only: for ``kubectl scaivault render``."""
    template = spec.template
    origins: dict[str, str] = {}
    for key in keys:
        if template is not None and key in template.data:
            origins[key] = "template"
        elif template is not None and key in template.literals:
            origins[key] = "literal"
        else:
            origins[key] = "source"
    return origins


def _decode(value: str) -> str:
    return base64.b64decode(value).decode("utf-8", "surrogateescape")


def _source_views(
    sources: Mapping[str, SourceInput], data: Mapping[str, str], values: dict[str, str], budget: _Budget
) -> dict[str, dict[str, Any]]:
    """``sources`` as a template sees them (decoded like ``values``), each view registered with ``budget`` so that an
    undefined name in it is reported by the source's name. A source whose data is ``data`` itself (the single path)
    shares ``values``; a value equal to ``data``'s is not decoded again."""
    views: dict[str, dict[str, Any]] = {}
    for name in sorted(sources):
        source = sources[name]
        label = f"sources.{name}" if name.isidentifier() else f"sources[{_show(name)}]"
        if source.data is data:
            decoded = values
        else:
            decoded = {
                key: values[key] if key in values and data.get(key) == value else _decode(value)
                for key, value in source.data.items()
            }
            budget.views.append(_View(f"{label}.data", "key", decoded))
        view: dict[str, Any] = {"data": decoded, "path": source.path, "version": source.version}
        budget.views.append(_View(label, "field", view))
        views[name] = view
    return views


def _encode(key: str, text: str) -> bytes:
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        pass
    raise TemplateError(key, f"spec.template key {_show(key)}: the value is not valid text (a lone surrogate); the "
                        "Secret keeps its last data")  # fmt: skip


# -- the budget -----------------------------------------------------------------------------------------------


class _Refused(Exception):
    """A bound or rule of ours refused an operation; ``problem`` is fit for status (no value)."""

    def __init__(self, problem: str) -> None:
        super().__init__(problem)
        self.problem = problem


class _FilterError(_Refused):
    def __init__(self, name: str, problem: str) -> None:
        super().__init__(f"the {name} filter failed: {problem}")


@dataclass(frozen=True)
class _View:
    """A mapping a template sees under a source: ``label`` as a template spells it (``sources.db.data``), ``what``
    its entries are called in a message (``key`` or ``field``)."""

    label: str
    what: str
    mapping: Mapping[str, Any]


@dataclass
class _Budget:
    deadline: float
    clock: Callable[[], float]
    data: Mapping[str, str]
    sources: Mapping[str, Any] = field(default_factory=dict)
    #: Each source's view and its data (``sources.db``, ``sources.db.data``), for messages.
    views: list[_View] = field(default_factory=list)
    steps: int = 0
    work: int = 0

    def step(self) -> None:
        self.steps += 1
        if self.steps > MAX_STEPS:
            raise _Refused(f"the templates take more than {MAX_STEPS} steps (loop iterations, calls, filters, "
                           "lookups): loop over less")  # fmt: skip
        if self.clock() > self.deadline:
            raise _Refused(f"rendering took longer than {DEADLINE_SECONDS}s")

    def charge(self, value: Any) -> None:
        size = _measure(value, MAX_VALUE_SIZE)
        if size > MAX_VALUE_SIZE:
            raise _Refused(f"a value built while rendering is larger than {MAX_VALUE_SIZE // (1024 * 1024)} MiB")
        self.work += size
        if self.work > MAX_WORK_SIZE:
            raise _Refused(f"rendering built more than {MAX_WORK_SIZE // (1024 * 1024)} MiB of values in all")


_BUDGET: contextvars.ContextVar[_Budget | None] = contextvars.ContextVar("scaivault_template_budget", default=None)


def _step() -> None:
    budget = _BUDGET.get()
    if budget is not None:
        budget.step()


def _charge(value: Any) -> None:
    """Charge ``value`` to the budget; outside a render (never at run time) still refuse an oversized value."""
    budget = _BUDGET.get()
    if budget is not None:
        budget.charge(value)
    elif _measure(value, MAX_VALUE_SIZE) > MAX_VALUE_SIZE:
        raise _Refused(f"a value built while rendering is larger than {MAX_VALUE_SIZE // (1024 * 1024)} MiB")


def _measure(value: Any, limit: int) -> int:
    """About the memory ``value`` holds in CPython, containers deeply (shared parts counted each time: an upper
    bound of what stringifying it costs); stops once over ``limit`` (cycles and alias bombs end there too)."""
    total = 0
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str | bytes | bytearray):
            total += 49 + len(item)
        elif isinstance(item, bool) or item is None:
            total += 8
        elif isinstance(item, int):
            total += 28 + item.bit_length() // 8
        elif isinstance(item, Mapping):
            total += 64 + 16 * len(item)
            for key, sub in item.items():
                stack.append(key)
                stack.append(sub)
        elif isinstance(item, list | tuple | set | frozenset | KeysView | ValuesView | ItemsView):
            total += 56 + 8 * len(item)
            stack.extend(item)
        else:
            total += 32
        if total > limit:
            return total
    return total


# -- filters and globals --------------------------------------------------------------------------------------


def _text(name: str, value: Any) -> str:
    """``value`` as the string a filter needs; Undefined raises its own error."""
    if isinstance(value, str):
        return value
    _raise_if_undefined(value)
    raise _FilterError(name, "the input is not a string (convert it with |string first)")


def _raise_if_undefined(value: Any) -> None:
    from jinja2 import Undefined

    if isinstance(value, Undefined):
        str(value)  # StrictUndefined: raises with its name


def _bytes(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


def _str(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")


def b64enc(value: Any) -> str:
    """Base64 (standard alphabet, padded) of the text's UTF-8 bytes."""
    return base64.b64encode(_bytes(_text("b64enc", value))).decode("ascii")


def b64dec(value: Any) -> str:
    """The text whose base64 (standard or URL-safe alphabet, padding optional, whitespace ignored) is the input.
    Bytes that are not UTF-8 pass through to the Secret unchanged (binary values work)."""
    compact = "".join(_text("b64dec", value).split())
    compact += "=" * (-len(compact) % 4)
    try:
        if "-" in compact or "_" in compact:
            raw = base64.b64decode(compact.translate(str.maketrans("-_", "+/")), validate=True)
        else:
            raw = base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError):
        raise _FilterError("b64dec", "the input is not valid base64") from None
    return _str(raw)


def sha256(value: Any) -> str:
    """The hex SHA-256 of the text's UTF-8 bytes."""
    return hashlib.sha256(_bytes(_text("sha256", value))).hexdigest()


def urlquote(value: Any) -> str:
    """Percent-encode every character but letters, digits and ``_.-~`` (for a password inside a URL; Jinja's
    ``urlencode`` keeps ``/``)."""
    return quote(_text("urlquote", value), safe="")


def _plain(name: str, value: Any, depth: int = 0) -> Any:
    """``value`` as JSON-like data (dicts, lists, str, int, float, bool, None), for ``tojson`` and ``toyaml``."""
    if depth > 100:
        raise _FilterError(name, "the value is nested too deeply")
    if value is None or isinstance(value, str | bool | int | float):
        return value
    if isinstance(value, Mapping):
        plain: dict[Any, Any] = {}
        for key, sub in value.items():
            if not isinstance(key, str | int | float | bool) and key is not None:
                raise _FilterError(name, "a mapping key is not a string or number")
            plain[key] = _plain(name, sub, depth + 1)
        return plain
    if isinstance(value, list | tuple):
        return [_plain(name, sub, depth + 1) for sub in value]
    _raise_if_undefined(value)
    raise _FilterError(name, f"the value holds something that is not plain data ({type(value).__name__})")


def _check_size(name: str, value: Any, limit: int = MAX_VALUE_SIZE) -> None:
    if _measure(value, limit) > limit:
        raise _FilterError(name, f"the input is larger than {limit // 1024} KiB")


def tojson(value: Any, indent: int | None = None) -> str:
    """JSON with sorted keys: compact, or indented by ``indent`` (0-16) spaces. Not HTML-escaped (unlike Jinja's)."""
    if indent is not None and (not isinstance(indent, int) or isinstance(indent, bool) or not 0 <= indent <= 16):
        raise _FilterError("tojson", "indent must be a number from 0 to 16")
    _check_size("tojson", value)
    plain = _plain("tojson", value)
    try:
        if indent is None:
            return json.dumps(plain, ensure_ascii=False, sort_keys=True, separators=(",", ":"), allow_nan=False)
        return json.dumps(plain, ensure_ascii=False, sort_keys=True, indent=indent, allow_nan=False)
    except (TypeError, ValueError):
        problem = "the value cannot be written as JSON (NaN, Infinity, or mixed key types)"
    raise _FilterError("tojson", problem)


def fromjson(value: Any) -> Any:
    """The data the JSON text holds."""
    text = _text("fromjson", value)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno}, column {exc.colno}"
    except RecursionError:
        where = "nested too deeply"
    raise _FilterError("fromjson", f"the input is not valid JSON ({where})")


def _yaml() -> Any:
    import yaml  # kopf and lightkube load PyYAML already: no dependency of our own

    return yaml


def toyaml(value: Any) -> str:
    """YAML (block style, sorted keys, Unicode as is) of JSON-like data; at most 64 KiB in."""
    _check_size("toyaml", value, MAX_YAML_SIZE)
    yaml = _yaml()
    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    plain = _plain("toyaml", value)
    return str(yaml.dump(plain, Dumper=dumper, default_flow_style=False, sort_keys=True, allow_unicode=True))


def fromyaml(value: Any) -> Any:
    """The data one YAML document holds (safe types only); at most 64 KiB in."""
    text = _text("fromyaml", value)
    if len(text) > MAX_YAML_SIZE:
        raise _FilterError("fromyaml", f"the input is larger than {MAX_YAML_SIZE // 1024} KiB")
    yaml = _yaml()
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    problem: str | None = None
    try:
        loaded = yaml.load(text, Loader=loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = f"the input is not valid YAML (line {mark.line + 1})" if mark is not None else "not valid YAML"
    except (yaml.YAMLError, RecursionError, ValueError):
        problem = "the input is not valid YAML"
    if problem is not None:
        raise _FilterError("fromyaml", problem)
    if _measure(loaded, MAX_VALUE_SIZE) > MAX_VALUE_SIZE:
        raise _FilterError("fromyaml", "the document expands to more than 4 MiB (anchors and aliases?)")
    return loaded


def _pem_blocks(name: str, value: Any) -> list[tuple[str, str]]:
    """(label, normalized block) of every PEM block in the text, in order."""
    text = _text(name, value).replace("\r\n", "\n")
    blocks: list[tuple[str, str]] = []
    for match in _PEM_RE.finditer(text):
        label, body = match.group(1), match.group(2).strip("\n")
        body = "\n".join(line.rstrip() for line in body.split("\n"))
        blocks.append((label, f"-----BEGIN {label}-----\n{body}\n-----END {label}-----\n"))
    return blocks


def pem_certificates(value: Any) -> list[str]:
    """Every ``CERTIFICATE`` block of a PEM bundle, in order, each ending with a newline."""
    return [block for label, block in _pem_blocks("pem_certificates", value) if label == "CERTIFICATE"]


def pem_first_certificate(value: Any) -> str:
    """The first certificate of a PEM bundle: the leaf, in the usual order (leaf, then its chain)."""
    certificates = [block for label, block in _pem_blocks("pem_first_certificate", value) if label == "CERTIFICATE"]
    if not certificates:
        raise _FilterError("pem_first_certificate", "the input holds no PEM certificate")
    return certificates[0]


def pem_chain(value: Any) -> str:
    """The certificates after the first (the intermediates), joined; empty when there is only one."""
    certificates = [block for label, block in _pem_blocks("pem_chain", value) if label == "CERTIFICATE"]
    if not certificates:
        raise _FilterError("pem_chain", "the input holds no PEM certificate")
    return "".join(certificates[1:])


def pem_private_key(value: Any) -> str:
    """The one private key block (``PRIVATE KEY``, ``RSA PRIVATE KEY``, ``EC PRIVATE KEY``, ``ENCRYPTED PRIVATE
    KEY``, ...) of a PEM bundle."""
    keys = [block for label, block in _pem_blocks("pem_private_key", value) if label.endswith("PRIVATE KEY")]
    if len(keys) != 1:
        problem = "the input holds no PEM private key" if not keys else f"the input holds {len(keys)} private keys"
        raise _FilterError("pem_private_key", problem)
    return keys[0]


def _apr1(password: bytes, salt: bytes) -> str:
    """Apache's MD5-crypt (``$apr1$``), which Apache httpd, nginx and Traefik all accept."""
    magic = b"$apr1$"
    final = hashlib.md5(password + salt + password, usedforsecurity=False).digest()
    ctx = password + magic + salt
    for length in range(len(password), 0, -16):
        ctx += final[: min(16, length)]
    bits = len(password)
    while bits:
        ctx += b"\0" if bits & 1 else password[:1]
        bits >>= 1
    final = hashlib.md5(ctx, usedforsecurity=False).digest()
    for i in range(1000):
        round_ = password if i & 1 else final
        if i % 3:
            round_ += salt
        if i % 7:
            round_ += password
        round_ += final if i & 1 else password
        final = hashlib.md5(round_, usedforsecurity=False).digest()
    encoded = ""
    for a, b, c in ((0, 6, 12), (1, 7, 13), (2, 8, 14), (3, 9, 15), (4, 10, 5)):
        encoded += _to64((final[a] << 16) | (final[b] << 8) | final[c], 4)
    encoded += _to64(final[11], 2)
    return f"$apr1${salt.decode('ascii')}${encoded}"


def _to64(value: int, count: int) -> str:
    out = ""
    for _ in range(count):
        out += _APR1_ALPHABET[value & 0x3F]
        value >>= 6
    return out


def htpasswd(user: Any, password: Any) -> str:
    """``user:$apr1$salt$hash``, one line of an htpasswd file (nginx, Apache, Traefik). The salt is derived from the
    user and the password (by one more apr1 round under a salt from the user), so the same pair always gives the same
    line and the Secret does not change at every sync; guessing a password from the salt costs as much as from the
    hash."""
    name, secret = _text("htpasswd", user), _bytes(_text("htpasswd", password))
    if not name or any(c in name for c in ":\r\n"):
        raise _FilterError("htpasswd", "the user name is empty or holds ':' or a line break")
    user_salt = _to64(int.from_bytes(hashlib.sha256(_bytes(name)).digest()[:6], "big"), 8).encode("ascii")
    salt = _apr1(secret, user_salt).rsplit("$", 1)[1][:8].encode("ascii")
    return f"{name}:{_apr1(secret, salt)}"


def dockerconfigjson(registry: Any, user: Any, password: Any) -> str:
    """The ``.dockerconfigjson`` of one registry: ``{"auths": {registry: {"auth": base64(user:password), "password",
    "username"}}}``, compact with sorted keys, as ``kubectl create secret docker-registry`` writes it."""
    server, name, secret = (_text("dockerconfigjson", v) for v in (registry, user, password))
    if not server:
        raise _FilterError("dockerconfigjson", "the registry is empty")
    if ":" in name:
        raise _FilterError("dockerconfigjson", "the user name holds ':'")
    auth = base64.b64encode(_bytes(f"{name}:{secret}")).decode("ascii")
    entry = {"auth": auth, "password": secret, "username": name}
    return json.dumps({"auths": {server: entry}}, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def _join(value: Any, d: Any = "") -> str:
    separator = _text("join", d)
    _raise_if_undefined(value)
    parts: list[str] = []
    size = 0
    for item in value:
        _step()
        if not isinstance(item, str | int | float | bool):
            _check_size("join", item)
        part = str(item)
        size += len(part) + len(separator)
        if size > MAX_VALUE_SIZE:
            raise _FilterError("join", f"the result would be larger than {MAX_VALUE_SIZE // (1024 * 1024)} MiB")
        parts.append(part)
    return separator.join(parts)


def _replace(value: Any, old: Any, new: Any, count: Any = None) -> str:
    text, before, after = _text("replace", value), _text("replace", old), _text("replace", new)
    if count is not None and (not isinstance(count, int) or isinstance(count, bool)):
        raise _FilterError("replace", "count must be a number")
    found = len(text) + 1 if not before else text.count(before)
    if count is not None and count >= 0:
        found = min(found, count)
    if len(text) + found * max(0, len(after) - len(before)) > MAX_VALUE_SIZE:
        raise _FilterError("replace", f"the result would be larger than {MAX_VALUE_SIZE // (1024 * 1024)} MiB")
    return text.replace(before, after, -1 if count is None else count)


def _string(value: Any) -> str:
    if isinstance(value, str):
        return value
    _raise_if_undefined(value)
    _check_size("string", value)
    return str(value)


def _indent(value: Any, width: Any = 4, first: bool = False, blank: bool = False) -> str:
    from jinja2.filters import do_indent

    text = _text("indent", value)
    if (
        isinstance(width, bool)
        or not isinstance(width, int | str)
        or not 0 <= (width if isinstance(width, int) else len(width)) <= MAX_INDENT
    ):
        raise _FilterError("indent", f"width must be a number or a string of at most {MAX_INDENT} characters")
    step = len(width) if isinstance(width, str) else width
    if len(text) + (text.count("\n") + 1) * step > MAX_VALUE_SIZE:
        raise _FilterError("indent", f"the result would be larger than {MAX_VALUE_SIZE // (1024 * 1024)} MiB")
    return str(do_indent(text, width, first, blank))


#: Our filters (``FILTERS``), beside the subset of Jinja's (``_JINJA_FILTERS``).
FILTERS: Final[Mapping[str, Callable[..., Any]]] = {
    "b64enc": b64enc,
    "b64dec": b64dec,
    "tojson": tojson,
    "fromjson": fromjson,
    "toyaml": toyaml,
    "fromyaml": fromyaml,
    "pem_certificates": pem_certificates,
    "pem_first_certificate": pem_first_certificate,
    "pem_chain": pem_chain,
    "pem_private_key": pem_private_key,
    "htpasswd": htpasswd,
    "dockerconfigjson": dockerconfigjson,
    "sha256": sha256,
    "urlquote": urlquote,
    "join": _join,
    "replace": _replace,
    "string": _string,
    "indent": _indent,
}


def _guarded(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    """``func`` as a filter: one step, errors named after the filter (never their text), the result charged."""

    @functools.wraps(func)  # (keeps Jinja's pass_context / pass_environment marks)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        from jinja2.exceptions import TemplateRuntimeError

        _step()
        try:
            result = func(*args, **kwargs)
        except (_Refused, TemplateRuntimeError, RecursionError, MemoryError):
            raise
        except (TypeError, ValueError, LookupError, ArithmeticError) as exc:
            problem = _kind(exc)
        else:
            _charge(result)
            return result
        raise _FilterError(name, problem)

    return guarded


def _range(*args: Any) -> range:
    numbers = range(*args)
    try:
        count = len(numbers)
    except OverflowError:
        count = MAX_RANGE + 1
    if count > MAX_RANGE:
        raise _Refused(f"range() of more than {MAX_RANGE} numbers")
    return numbers


# -- the environment ------------------------------------------------------------------------------------------


class _Note(str):
    """The text of an UndefinedError or SecurityError raised by our Undefined: carries the name (which may be a value
    when it was computed: shown only when the template spells it) and whose it was."""

    name: Any
    owner: str
    unsafe: bool

    def __new__(cls, name: Any, owner: str, *, unsafe: bool) -> _Note:
        note = super().__new__(cls, "undefined")
        note.name, note.owner, note.unsafe = name, owner, unsafe
        return note


@functools.cache
def _environment() -> jinja2.Environment:
    """The one sandboxed environment, built on first use (this is where jinja2 is imported)."""
    from jinja2 import StrictUndefined, nodes
    from jinja2 import Undefined as JinjaUndefined
    from jinja2.exceptions import SecurityError
    from jinja2.filters import FILTERS as JINJA_FILTERS
    from jinja2.runtime import BlockReference, LoopContext, Macro, TemplateReference
    from jinja2.sandbox import ImmutableSandboxedEnvironment
    from jinja2.utils import Namespace, missing, pass_context
    from jinja2.visitor import NodeTransformer

    jinja_objects = (LoopContext, Macro, Namespace, BlockReference, TemplateReference)

    class Undefined(StrictUndefined):
        __slots__ = ()

        @property
        def _undefined_message(self) -> str:
            budget = _BUDGET.get()
            owner = self._undefined_obj
            if owner is missing:
                whose = "variable"
            elif budget is not None and owner is budget.data:
                whose = "data"
            elif budget is not None and owner is budget.sources:
                whose = "sources"
            else:
                views = budget.views if budget is not None else ()
                whose = next((view.label for view in views if view.mapping is owner), "value")
            return _Note(self._undefined_name, whose, unsafe=self._undefined_exception is SecurityError)

    class Environment(ImmutableSandboxedEnvironment):
        intercepted_binops = frozenset({"+", "*", "**", "%"})

        def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
            return _public(obj, attr) and super().is_safe_attribute(obj, attr, value)

        def getattr(self, obj: Any, attribute: str) -> Any:
            _step()
            if isinstance(obj, Mapping) and attribute in obj:
                return obj[attribute]
            return self._attribute(obj, attribute)

        def getitem(self, obj: Any, argument: Any) -> Any:
            _step()
            if isinstance(argument, slice):
                result = obj[argument]
                _charge(result)
                return result
            try:
                return obj[argument]
            except (TypeError, LookupError):
                pass
            if isinstance(argument, str):
                return self._attribute(obj, argument)
            return self.undefined(obj=obj, name=argument)

        def _attribute(self, obj: Any, attribute: str) -> Any:
            if isinstance(obj, JinjaUndefined):
                obj._fail_with_undefined_error()  # raises, naming the first undefined name
            if not _public(obj, attribute):
                if attribute.startswith("_") or hasattr(type(obj), attribute):
                    return self.unsafe_undefined(obj, attribute)
                return self.undefined(obj=obj, name=attribute)
            try:
                value = getattr(obj, attribute)
            except AttributeError:
                try:
                    return obj[attribute]
                except (TypeError, LookupError):
                    return self.undefined(obj=obj, name=attribute)
            if not self.is_safe_attribute(obj, attribute, value):
                return self.unsafe_undefined(obj, attribute)
            return value

        def call(self, context: Any, obj: Any, /, *args: Any, **kwargs: Any) -> Any:
            if getattr(obj, "__self__", None) is self and getattr(obj, "__name__", "") in _HELPERS:
                return context.call(obj, *args, **kwargs)  # (drops the loop's bookkeeping arguments)
            _step()
            if not self.is_safe_callable(obj):
                raise _Refused("a call the sandbox does not allow")
            result = context.call(obj, *args, **kwargs)
            _charge(result)
            return result

        def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
            _step()
            _check_binop(operator, left, right)
            result = self.binop_table[operator](left, right)
            _charge(result)
            return result

        # The rewritten syntax tree calls these (``_Guard``); a template cannot name them.

        def sv_iter(self, iterable: Any) -> Iterator[Any]:
            for item in iterable:
                _step()
                yield item

        def sv_concat(self, *parts: Any) -> str:
            _step()
            size = 0
            for part in parts:
                size += _measure(part, MAX_VALUE_SIZE)
                if size > MAX_VALUE_SIZE:
                    raise _Refused(f"a text joined with ~ is larger than {MAX_VALUE_SIZE // (1024 * 1024)} MiB")
            joined = "".join(str(part) for part in parts)
            _charge(joined)
            return joined

        def sv_text(self, text: str) -> str:
            return text  # charged by finalize, as every output

    def _public(obj: Any, attr: str) -> bool:
        if attr.startswith("_"):
            return False
        if isinstance(obj, str):
            return attr in _STR_METHODS
        if isinstance(obj, Mapping):
            return attr in _MAPPING_METHODS
        if isinstance(obj, list | tuple):
            return attr in _SEQUENCE_METHODS
        return isinstance(obj, jinja_objects)

    @pass_context
    def finalize(context: Any, value: Any) -> Any:
        _step()
        _charge(value)
        return value

    def helper(name: str, args: Sequence[nodes.Node], lineno: int) -> nodes.Call:
        call = nodes.Call(nodes.EnvironmentAttribute(name), list(args), [], None, None)
        call.set_lineno(lineno)
        return call

    class Guard(NodeTransformer):
        """Refuses what has no place in a Secret template; routes loops, ``~`` and literal text through the
        budget."""

        def _refuse(self, node: nodes.Node) -> nodes.Node:
            what = {"Extends": "extends", "Include": "include", "Import": "import", "FromImport": "from ... import"}
            word = what.get(type(node).__name__, "autoescape")
            raise _Refused(f"line {node.lineno}: {{% {word} %}} is not available in Secret templates")

        visit_Extends = visit_Include = visit_Import = visit_FromImport = _refuse
        visit_EvalContextModifier = visit_ScopedEvalContextModifier = _refuse

        def visit_For(self, node: nodes.For) -> nodes.Node:
            if node.recursive:
                raise _Refused(f"line {node.lineno}: recursive loops are not available in Secret templates")
            self.generic_visit(node)
            node.iter = helper("sv_iter", [node.iter], node.lineno)
            return node

        def visit_Concat(self, node: nodes.Concat) -> nodes.Node:
            self.generic_visit(node)
            return helper("sv_concat", list(node.nodes), node.lineno)

        def visit_Output(self, node: nodes.Output) -> nodes.Node:
            self.generic_visit(node)
            node.nodes = [
                helper("sv_text", [nodes.Const(child.data)], child.lineno)
                if isinstance(child, nodes.TemplateData) else child
                for child in node.nodes
            ]  # fmt: skip
            return node

    env = Environment(
        undefined=Undefined, autoescape=False, optimized=False, finalize=finalize, keep_trailing_newline=True
    )
    env.globals.clear()
    env.globals.update({"range": _range, "namespace": Namespace, "htpasswd": htpasswd,
                        "dockerconfigjson": dockerconfigjson})  # fmt: skip
    env.filters.clear()
    env.filters.update({name: _guarded(name, JINJA_FILTERS[name]) for name in _JINJA_FILTERS})
    env.filters.update({name: _guarded(name, func) for name, func in FILTERS.items()})
    env.sv_guard = Guard()  # type: ignore[attr-defined]
    return env


def _check_binop(operator: str, left: Any, right: Any) -> None:
    """Refuse an intercepted operation whose result would be too large, before it is computed."""
    ints = isinstance(left, int) and isinstance(right, int)
    if operator == "%" and isinstance(left, str):
        raise _Refused("%-formatting of strings is not available: join with ~, or use filters")
    if operator == "**" and ints and right > 0 and abs(left) > 1 and abs(left).bit_length() * right > MAX_INT_BITS:
        raise _Refused(f"a number larger than 2**{MAX_INT_BITS}")
    if operator == "*" and ints and left.bit_length() + right.bit_length() > MAX_INT_BITS:
        raise _Refused(f"a number larger than 2**{MAX_INT_BITS}")
    if operator == "+" and ints and max(left.bit_length(), right.bit_length()) >= MAX_INT_BITS:
        raise _Refused(f"a number larger than 2**{MAX_INT_BITS}")
    if operator == "*" and not ints:
        sequence, times = (left, right) if isinstance(right, int) else (right, left)
        repeated = isinstance(times, int) and isinstance(sequence, str | list | tuple)
        if repeated and max(times, 0) * _measure(sequence, MAX_VALUE_SIZE) > MAX_VALUE_SIZE:
            raise _Refused(f"a repeated value larger than {MAX_VALUE_SIZE // (1024 * 1024)} MiB")
    joined = isinstance(left, str | list | tuple) and isinstance(right, str | list | tuple)
    if joined and _measure(left, MAX_VALUE_SIZE) + _measure(right, MAX_VALUE_SIZE) > MAX_VALUE_SIZE:
        raise _Refused(f"a sum larger than {MAX_VALUE_SIZE // (1024 * 1024)} MiB")


# -- compiling and rendering ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _CompileFailure:
    problem: str


@functools.lru_cache(maxsize=256)
def _compile(source: str) -> jinja2.Template | _CompileFailure:
    """The compiled template for ``source`` (cached by text), or why it does not compile."""
    from jinja2.exceptions import TemplateSyntaxError

    env = _environment()
    problem: str
    try:
        tree = env.parse(source)
        tree = env.sv_guard.visit(tree)  # type: ignore[attr-defined]
        tree.set_environment(env)
        return env.from_string(tree)
    except TemplateSyntaxError as exc:
        message = " ".join(str(exc.message or "").split())
        if len(message) > _MAX_SYNTAX_MESSAGE:
            message = message[: _MAX_SYNTAX_MESSAGE - 1] + "…"
        problem = f"line {exc.lineno}: syntax error: {message}"
    except _Refused as exc:
        problem = exc.problem
    except RecursionError:
        problem = "the template is nested too deeply"
    except Exception as exc:  # e.g. an integer literal with too many digits
        problem = f"the template cannot be compiled ({type(exc).__name__})"
    return _CompileFailure(problem)


def _render_key(key: str, source: str, variables: Mapping[str, Any], budget: _Budget) -> bytes:
    compiled = _compile(source)
    where = f"spec.template.data[{_show(key)}]"
    if isinstance(compiled, _CompileFailure):
        raise TemplateError(key, f"{where}: {compiled.problem}; the Secret keeps its last data")
    problem: str | None = None
    try:
        text = _run(compiled, variables)
    except Exception as exc:
        problem = _describe(exc, source, budget)
        line = _template_line(compiled, exc.__traceback__)
        if line is not None:
            where += f", line {line}"
    if problem is not None:  # raised outside the except block: nothing of the render is chained to it
        raise TemplateError(key, f"{where}: {problem}; the Secret keeps its last data")
    raw = _encode(key, text)
    if len(raw) > MAX_OUTPUT_BYTES:
        raise TemplateError(key, f"{where}: the rendered value is {len(raw)} bytes, more than {MAX_OUTPUT_BYTES} "
                            "(1 MiB); the Secret keeps its last data")  # fmt: skip
    return raw


def _run(compiled: jinja2.Template, variables: Mapping[str, Any]) -> str:
    """Render without Jinja's traceback rewriting (which would compile code per frame of a deep recursion)."""
    context = compiled.new_context(dict(variables))
    chunks: list[str] = []
    size = 0
    for chunk in compiled.root_render_func(context):
        size += len(chunk)
        if size > MAX_OUTPUT_BYTES:
            raise _Refused(f"the rendered value is larger than {MAX_OUTPUT_BYTES} bytes (1 MiB)")
        chunks.append(chunk)
    return "".join(chunks)


def _template_line(compiled: jinja2.Template, tb: TracebackType | None) -> int | None:
    line = None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<template>":
            line = compiled.get_corresponding_lineno(tb.tb_lineno)
        tb = tb.tb_next
    return line


def _describe(exc: BaseException, source: str, budget: _Budget) -> str:
    """What went wrong, in words fit for status: our refusals' own text, the name of an undefined or refused name
    when the template spells it, else the kind of the exception — never its text."""
    from jinja2.exceptions import SecurityError, UndefinedError
    from jinja2.exceptions import TemplateError as JinjaError

    if isinstance(exc, _Refused):
        return exc.problem
    note = exc.args[0] if exc.args else None
    if isinstance(exc, UndefinedError | SecurityError) and isinstance(note, _Note):
        shown = _spelled(note.name, source)
        if note.unsafe:
            return f"access to {shown or 'an attribute'} is not allowed (sandbox: only a few read-only methods)"
        if note.owner == "data":
            return f"data has no key {shown or '(a key computed while rendering)'} (its keys: {_names(budget.data)})"
        if note.owner == "sources":
            return (f"sources has no source {shown or '(a name computed while rendering)'} (sources: "
                    f"{_names(budget.sources)})")  # fmt: skip
        view = next((view for view in budget.views if view.label == note.owner), None)
        if view is not None:
            return (f"{view.label} has no {view.what} {shown or '(a name computed while rendering)'} (its "
                    f"{view.what}s: {_names(view.mapping)})")  # fmt: skip
        if note.owner == "variable":
            return f"{shown or 'a name'} is undefined (the variables are data and sources)"
        return f"a value has no attribute or key {shown or '(a name computed while rendering)'}"
    if isinstance(exc, SecurityError):
        return "an operation the sandbox does not allow"
    if isinstance(exc, JinjaError):
        return f"a template error ({type(exc).__name__})"
    return _kind(exc)


def _kind(exc: BaseException) -> str:
    """A fixed description of an exception's kind."""
    kinds: tuple[tuple[type[BaseException], str], ...] = (
        (RecursionError, "recursion too deep (a macro that calls itself?)"),
        (MemoryError, "out of memory"),
        (ZeroDivisionError, "division by zero"),
        (OverflowError, "a number too large"),
        (UnicodeError, "text that is not valid Unicode"),
        (TypeError, "a type error: a value of the wrong type or wrong arguments for an operation, filter or call"),
        (LookupError, "an index or key that does not exist"),
        (ValueError, "a value error: a conversion or operation refused its input"),
        (ArithmeticError, "an arithmetic error"),
    )
    for cls, text in kinds:
        if isinstance(exc, cls):
            return text
    return f"an unexpected error ({type(exc).__name__})"


def _spelled(name: Any, source: str) -> str | None:
    """``name`` quoted for a message when the template spells it (so it is no secret), else None."""
    text = str(name) if isinstance(name, str | int) and not isinstance(name, bool) else None
    if text is None or not text or text not in source or not text.isprintable():
        return None
    return _show(text)


def _show(name: str) -> str:
    shown = repr(name)
    return shown if len(shown) <= _MAX_SHOWN_NAME else shown[: _MAX_SHOWN_NAME - 1] + "…"


def _names(keys: Iterable[str]) -> str:
    names = sorted(keys)
    if not names:
        return "none"
    shown = ", ".join(_show(name) for name in names[:_MAX_NAMED_KEYS])
    return shown + (f" and {len(names) - _MAX_NAMED_KEYS} more" if len(names) > _MAX_NAMED_KEYS else "")
