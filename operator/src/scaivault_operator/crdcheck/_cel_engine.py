"""Compiling CEL rules and evaluating them on defaults (``schema/cel/compilation.go``, ``cel_validation.go``).

Owns ``_CelEngine``: it parses with cel-python's grammar (imported on first use, so the package imports without the
``dev`` extra), types and costs with ``_cel_check``, and reports the server's problems for a node's rules (compile
errors, result types, cost limits, ``oldSelf``/``optionalOldSelf``); on defaults it evaluates the rules with
cel-python plus the string-extension functions cel-python lacks. Also owns the optional-syntax guard and cel-go's
issue format. Created by ``_api`` when ``cel=True``; called by ``_validator`` (``compile_rules``), ``_defaults``
(``default_problems``) and ``_api.estimate_rule_cost``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Final

from ._cel_check import _Checker
from ._cel_context import _CONSTRUCT_ERROR, _CelContext, _cost_message, _mul
from ._cel_parse import CelCompileError, _Call, _Comp, _Expr, _ListLit, _MapLit, _Select, _Struct, _TreeBuilder
from ._cel_types import _decl, _Ty
from ._helpers import _child, _index, _key, _list, _map, _render, _render_rule
from ._limits import _MAX_REQUEST_SIZE, STATIC_ESTIMATED_COST_LIMIT
from ._openapi import _Ssv
from ._problems import Problem


class _CelEngine:
    """Compiles and costs CEL rules with cel-python's parser (imported here, on first use)."""

    def __init__(self, server_minor: int) -> None:
        self.server_minor = server_minor
        try:
            from celpy.celparser import CELParseError, CELParser
        except ImportError as exc:  # the dev extra is missing
            raise ImportError("CEL checks need cel-python: pip install -e '.[dev]'") from exc
        self._parser = CELParser()
        self._parse_error: type[Exception] = CELParseError
        self._programs: dict[str, Any] = {}

    def parse(self, text: str) -> _Expr:
        try:
            tree = self._parser.parse(text)
        except self._parse_error as exc:
            first = str(exc.args[0]).splitlines()[0] if exc.args else "syntax error"
            line = getattr(exc, "line", None) or 1
            column = getattr(exc, "column", None) or 1
            raise CelCompileError(f"Syntax error: {first.strip()}", int(line), int(column)) from None
        return _TreeBuilder().build(tree)

    def analyse(self, text: str, root: _Ty, optional_old_self: bool) -> tuple[_Checker, _Ty, int]:
        """Parse, type and cost one expression: (checker, result type, worst-case cost)."""
        expr = self.parse(text)
        checker = _Checker(root, self.server_minor, optional_old_self)
        result = checker.check(expr, {})
        return checker, result, checker.cost(expr).max

    def compile_rules(
        self,
        schema: Mapping[str, Any],
        rules: list[Mapping[str, Any]],
        path: str,
        ssv: _Ssv,
        context: _CelContext,
    ) -> list[Problem]:
        """``cel.Compile`` and the cost and oldSelf checks for the rules of one node."""
        problems: list[Problem] = []
        root, missing = context.type_info()
        if root is None:
            return [Problem(f"{path}.x-kubernetes-validations", "InternalError", missing or _CONSTRUCT_ERROR)]
        unbounded_cardinality = _MAX_REQUEST_SIZE // (root.min_size + 1)
        for index, rule in enumerate(rules):
            at = f"{path}.x-kubernetes-validations[{index}]"
            text = str(rule.get("rule") or "")
            if not text.strip() or _uses_optional_syntax(text, str(rule.get("messageExpression") or "")):
                continue  # nothing to compile, or syntax this checker cannot parse (not checked, not refused)
            optional = rule.get("optionalOldSelf") is True
            cost = 0
            error: str | None = None
            checker: _Checker | None = None
            try:
                checker, result, cost = self.analyse(text, root, optional)
                if result.kind not in ("bool", "unknown"):
                    error, cost = "cel expression must evaluate to a bool", 0
            except CelCompileError as exc:
                error = "compilation failed: " + _cel_issue(text, exc)
            cardinality = context.cardinality if context.cardinality is not None else unbounded_cardinality
            expression_cost = _mul(cost, cardinality)
            if expression_cost > STATIC_ESTIMATED_COST_LIMIT:
                problems.append(
                    Problem(
                        f"{at}.rule",
                        "Forbidden",
                        _cost_message("estimated rule cost", expression_cost, STATIC_ESTIMATED_COST_LIMIT),
                    )
                )
            context.total.observe(f"{at}.rule", expression_cost)
            if error is not None:
                problems.append(Problem(f"{at}.rule", "Invalid", error, _render_rule(rule)))
                continue
            expression = str(rule.get("messageExpression") or "")
            if expression:
                try:
                    _, message_type, message_cost = self.analyse(expression, root, optional)
                    if message_type.kind not in ("string", "unknown"):
                        raise CelCompileError("messageExpression must evaluate to a string")
                except CelCompileError as exc:
                    detail = exc.message
                    if detail != "messageExpression must evaluate to a string":
                        detail = "messageExpression compilation failed: " + _cel_issue(expression, exc)
                    problems.append(Problem(f"{at}.messageExpression", "Invalid", detail, _render_rule(rule)))
                else:
                    if message_cost > STATIC_ESTIMATED_COST_LIMIT:
                        problems.append(
                            Problem(
                                f"{at}.messageExpression",
                                "Forbidden",
                                _cost_message(
                                    "estimated messageExpression cost", message_cost, STATIC_ESTIMATED_COST_LIMIT
                                ),
                            )
                        )
                    context.total.observe(f"{at}.messageExpression", message_cost)
            assert checker is not None
            if checker.uses_old_self:
                if ssv.uncorrelatable is not None:
                    problems.append(
                        Problem(
                            f"{at}.rule",
                            "Invalid",
                            f"oldSelf cannot be used on the uncorrelatable portion of the schema within "
                            f"{ssv.uncorrelatable}",
                            _render(text),
                        )
                    )
            elif rule.get("optionalOldSelf") is not None:
                problems.append(
                    Problem(
                        f"{at}.optionalOldSelf",
                        "Invalid",
                        "may not be set if oldSelf is not used in rule",
                        _render(rule.get("optionalOldSelf")),
                    )
                )
        return problems

    # -- defaults against CEL rules ------------------------------------------------------------------------------------

    def default_problems(self, schema: Mapping[str, Any], value: Any, path: str, is_root: bool) -> list[Problem]:
        """The CEL rules of ``schema``'s subtree on a default (``oldSelf`` is the default too): a rule that does not
        compile is reported here (the server reports it while validating the default), else a rule that fails."""
        problems: list[Problem] = []
        for at, node, item in _rule_sites(schema, value, path):
            decl = _decl(node, (is_root and node is schema) or node.get("x-kubernetes-embedded-resource") is True)
            for rule in _list(node.get("x-kubernetes-validations")):
                rule = _map(rule)
                text = str(rule.get("rule") or "")
                if _uses_optional_syntax(text):
                    continue
                if decl is not None and text.strip():
                    try:
                        _, result, _ = self.analyse(text, decl, rule.get("optionalOldSelf") is True)
                    except CelCompileError as exc:
                        detail = "rule compile error: compilation failed: " + _cel_issue(text, exc)
                        problems.append(Problem(at, "Invalid", detail, _render(node.get("type") or "")))
                        continue
                    if result.kind not in ("bool", "unknown"):
                        detail = "rule compile error: cel expression must evaluate to a bool"
                        problems.append(Problem(at, "Invalid", detail, _render(node.get("type") or "")))
                        continue
                verdict = self._holds(text, item)
                if verdict is False:
                    message = str(rule.get("message") or "") or f"failed rule: {text.strip()}"
                    problems.append(Problem(at, "Invalid", message, _render(item)))
                elif isinstance(verdict, str):
                    problems.append(Problem(at, "Invalid", verdict, _render(node.get("type") or "")))
        return problems

    def _holds(self, rule: str, value: Any) -> bool | str | None:
        """True/False when cel-python evaluates the rule, an error text when the evaluation fails (the server reports
        that too), None when cel-python cannot say (the rule calls a function it lacks)."""
        import celpy
        from celpy import celtypes
        from celpy.adapter import json_to_cel
        from celpy.evaluation import CELEvalError

        try:
            if not _called_functions(self.parse(rule)) <= _CELPY_FUNCTIONS:
                return None
            program = self._programs.get(rule)
            if program is None:
                environment = celpy.Environment()
                program = environment.program(environment.compile(rule), functions=_celpy_functions())
                self._programs[rule] = program
            bound = json_to_cel(value)
            result = program.evaluate({"self": bound, "oldSelf": bound})
        except CELEvalError as exc:
            return f"{exc.args[0] if exc.args else exc} evaluating rule: {rule}"
        except Exception:  # cel-python raises many kinds; any other means "cannot tell"
            return None
        if isinstance(result, celtypes.BoolType):
            return bool(result)
        return None


#: Functions cel-python evaluates like the API server (with ``_celpy_functions``); rules calling others are not
#: evaluated on defaults.
_CELPY_FUNCTIONS: Final = frozenset(
    {"_&&_", "_||_", "!_", "@not_strictly_false", "_?_:_", "_==_", "_!=_", "_<_", "_<=_", "_>_", "_>=_", "_+_", "_-_",
     "_*_", "_/_", "_%_", "-_", "@in", "_[_]", "size", "contains", "startsWith", "endsWith", "matches", "int", "uint",
     "double", "string", "bytes", "bool", "duration", "timestamp", "type", "split", "lowerAscii", "upperAscii",
     "trim", "indexOf", "lastIndexOf", "substring", "join",
     "getDate", "getDayOfMonth", "getDayOfWeek", "getDayOfYear", "getFullYear", "getMonth", "getHours",
     "getMilliseconds", "getMinutes", "getSeconds"}
)  # fmt: skip


def _called_functions(expr: _Expr) -> set[str]:
    if isinstance(expr, _Call):
        found = {expr.function}
        for child in [*expr.args, *([expr.target] if expr.target else [])]:
            found |= _called_functions(child)
        return found
    if isinstance(expr, _Select):
        return _called_functions(expr.operand)
    if isinstance(expr, _ListLit):
        return set().union(*(_called_functions(element) for element in expr.elements))
    if isinstance(expr, _MapLit):
        return set().union(*(_called_functions(part) for entry in expr.entries for part in entry))
    if isinstance(expr, _Comp):
        parts = (expr.iter_range, expr.accu_init, expr.loop_condition, expr.loop_step, expr.result)
        return set().union(*(_called_functions(part) for part in parts))
    if isinstance(expr, _Struct):
        return {"<struct>"}
    return set()


class _CannotTell(Exception):
    """Raised by the cel-python helpers below for a use they do not model: the rule is then not evaluated."""


def _celpy_functions() -> dict[str, Callable[..., Any]]:
    """The Kubernetes string-extension functions cel-python lacks, for strings only (anything else: cannot tell)."""
    from celpy import celtypes

    def text(value: Any) -> str:
        if not isinstance(value, str):
            raise _CannotTell
        return str(value)

    def integer(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _CannotTell
        return int(value)

    def string(value: str) -> Any:
        return celtypes.StringType(value)

    def split(target: Any, separator: Any, *limit: Any) -> Any:
        if limit or not text(separator):
            raise _CannotTell
        return celtypes.ListType([string(part) for part in text(target).split(text(separator))])

    def index_of(target: Any, sub: Any, *offset: Any) -> Any:
        if offset:
            raise _CannotTell
        return celtypes.IntType(text(target).find(text(sub)))

    def last_index_of(target: Any, sub: Any, *offset: Any) -> Any:
        if offset:
            raise _CannotTell
        return celtypes.IntType(text(target).rfind(text(sub)))

    def substring(target: Any, start: Any, *end: Any) -> Any:
        value, first = text(target), integer(start)
        last = integer(end[0]) if end else len(value)
        if len(end) > 1 or not 0 <= first <= last <= len(value):
            raise _CannotTell
        return string(value[first:last])

    def join(target: Any, *separator: Any) -> Any:
        if not isinstance(target, list) or len(separator) > 1:
            raise _CannotTell
        return string((text(separator[0]) if separator else "").join(text(item) for item in target))

    return {
        "split": split,
        "lowerAscii": lambda target: string(text(target).lower()),
        "upperAscii": lambda target: string(text(target).upper()),
        "trim": lambda target: string(text(target).strip()),
        "indexOf": index_of,
        "lastIndexOf": last_index_of,
        "substring": substring,
        "join": join,
    }


def _rule_sites(schema: Mapping[str, Any], value: Any, path: str) -> Iterator[tuple[str, Mapping[str, Any], Any]]:
    """(field path, schema node, value) for every node of a value that a schema node with rules applies to."""
    if value is None:
        return
    if schema.get("x-kubernetes-validations"):
        yield path, schema, value
    if isinstance(value, Mapping):
        properties = _map(schema.get("properties"))
        additional = schema.get("additionalProperties")
        for key, item in value.items():
            if key in properties:
                yield from _rule_sites(_map(properties[key]), item, _child(path, str(key)))
            elif isinstance(additional, Mapping):
                yield from _rule_sites(additional, item, _key(path, str(key)))
    elif isinstance(value, list | tuple) and isinstance(schema.get("items"), Mapping):
        for index, item in enumerate(value):
            yield from _rule_sites(schema["items"], item, _index(path, index))


#: CEL string literals (raw, bytes, triple-quoted), blanked before looking for syntax outside them.
_STRING_LITERALS: Final = re.compile(
    r"[rRbB]*(?:'''[\s\S]*?'''|\"\"\"[\s\S]*?\"\"\"|'(?:\\.|[^'\\])*'|\"(?:\\.|[^\"\\])*\")"
)


def _uses_optional_syntax(*expressions: str) -> bool:
    """Whether an expression uses CEL's optional field/index syntax (``a.?b``, ``a[?k]``), which cel-python's
    grammar lacks: such rules are neither compiled nor costed here rather than refused."""
    return any(re.search(r"\.\s*\?|\[\s*\?", _STRING_LITERALS.sub("''", text)) for text in expressions)


def _cel_issue(text: str, error: CelCompileError) -> str:
    """cel-go's issue format: ``ERROR: <input>:L:C: message`` and the source line with a caret."""
    lines = text.splitlines() or [""]
    source = lines[min(max(error.line, 1), len(lines)) - 1]
    caret = "." * max(error.column - 1, 0) + "^"
    return f"ERROR: <input>:{error.line}:{error.column}: {error.message}\n | {source}\n | {caret}"
