"""CEL type check and cost: a port of cel-go ``checker/cost.go`` with Kubernetes' estimator.

Owns ``_Checker``, which types one expression against the schema (``self``/``oldSelf``) and estimates its worst-case
cost (with ``apiserver/pkg/cel/library/cost.go``), the result types of functions, the overloads it resolves
(``_SIGNATURES``) and its refusals (no matching overload, heterogeneous literals). Used by ``_cel_engine``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

from ._cel_parse import _ACCU, CelCompileError, _Call, _Comp, _Expr, _Ident, _ListLit, _Lit, _MapLit, _Select, _Struct
from ._cel_types import (
    _BOOL,
    _BYTES,
    _DOUBLE,
    _DURATION,
    _DYN,
    _INT,
    _RESERVED_SYMBOLS,
    _STRING,
    _TIMESTAMP,
    _TYPE,
    _UINT,
    _UNKNOWN,
    _list_of,
    _map_of,
    _simple,
    _Ty,
)
from ._limits import _MAX_UINT64

#: Result types of functions, by name (member or global); anything else is unknown to this checker.
_RESULTS: Final[dict[str, _Ty]] = {
    **dict.fromkeys(
        ("matches", "startsWith", "endsWith", "contains", "isSorted", "isURL", "isQuantity", "isInteger",
         "isGreaterThan", "isLessThan", "isIP", "isCIDR", "isSemver", "sets.contains", "sets.equivalent",
         "sets.intersects", "isUnspecified", "isLoopback", "isLinkLocalMulticast", "isLinkLocalUnicast",
         "isGlobalUnicast", "containsIP", "containsCIDR", "ip.isCanonical", "hasValue", "bool"),
        _BOOL,
    ),
    **dict.fromkeys(
        ("size", "int", "indexOf", "lastIndexOf", "sign", "asInteger", "compareTo", "family", "prefixLength", "major",
         "minor", "patch", "getDate", "getDayOfMonth", "getDayOfWeek", "getDayOfYear", "getFullYear", "getHours",
         "getMilliseconds", "getMinutes", "getMonth", "getSeconds"),
        _INT,
    ),
    **dict.fromkeys(
        ("string", "lowerAscii", "upperAscii", "trim", "replace", "substring", "join", "charAt", "format", "quote",
         "strings.quote", "reverse", "find", "getScheme", "getHost", "getHostname", "getPort", "getEscapedPath",
         "base64.encode"),
        _STRING,
    ),
    "split": _list_of(_STRING),
    "findAll": _list_of(_STRING),
    "double": _DOUBLE,
    "asApproximateFloat": _DOUBLE,
    "uint": _UINT,
    "bytes": _BYTES,
    "base64.decode": _BYTES,
    "duration": _DURATION,
    "timestamp": _TIMESTAMP,
    "type": _TYPE,
    "dyn": _DYN,
    "url": _simple("opaque", name="kubernetes.URL"),
    "quantity": _simple("opaque", name="kubernetes.Quantity"),
    "ip": _simple("opaque", name="net.IP"),
    "cidr": _simple("opaque", name="net.CIDR"),
    "semver": _simple("opaque", name="kubernetes.Semver"),
}  # fmt: skip
#: Kubernetes library functions with a fixed cost of 1 (``library.CostEstimator``).
_NOMINAL_COST_FUNCTIONS: Final = frozenset(
    {"masked", "prefixLength", "family", "isUnspecified", "isLoopback", "isLinkLocalMulticast", "isLinkLocalUnicast",
     "isGlobalUnicast", "format.named", "sign", "asInteger", "isInteger", "asApproximateFloat", "isGreaterThan",
     "isLessThan", "compareTo", "add", "sub", "major", "minor", "patch", "getScheme", "getHostname", "getHost",
     "getPort", "getEscapedPath", "getQuery"}
)  # fmt: skip


# -- CEL: type check and cost (a port of cel-go checker/cost.go with Kubernetes' estimator) -------------------------


@dataclass(frozen=True)
class _Size:
    min: int
    max: int

    def add(self, other: _Size) -> _Size:
        return _Size(min(self.min + other.min, _MAX_UINT64), min(self.max + other.max, _MAX_UINT64))

    def mul(self, other: _Size) -> _Size:
        return _Size(min(self.min * other.min, _MAX_UINT64), min(self.max * other.max, _MAX_UINT64))

    def union(self, other: _Size) -> _Size:
        return _Size(min(self.min, other.min), max(self.max, other.max))

    def factor(self, per_unit: float) -> _Size:
        return _Size(_mul_factor(self.min, per_unit), _mul_factor(self.max, per_unit))


_UNKNOWN_SIZE: Final = _Size(0, _MAX_UINT64)
_TWO_TO_64: Final = math.ldexp(1.0, 64)


def _mul_factor(x: int, y: float) -> int:
    """cel-go ``multiplyByCostFactor``: ``ceil(x*y)`` in float64, saturating at MaxUint64."""
    fx = float(x)
    if fx > 0 and y > 0 and fx > float(_MAX_UINT64) / y:
        return _MAX_UINT64
    product = math.ceil(fx * y)
    return _MAX_UINT64 if product >= _TWO_TO_64 else int(product)


_STRING_TRAVERSAL: Final = 0.1
_REGEX_LENGTH: Final = 0.25
_ZERO: Final = _Size(0, 0)
_ONE: Final = _Size(1, 1)


@dataclass
class _LocalVar:
    path: list[str]
    size: _Size | None
    entry: tuple[str, _Size, _Size] | None  # (container kind, key/index size, value size)


@dataclass
class _Node:
    """cel-go ``AstNode``: an expression with its field path, type and derived size."""

    path: list[str]
    type: _Ty
    expr: _Expr
    size: _Size | None


class _Checker:
    """Types one expression against the schema (``self``/``oldSelf``) and estimates its worst-case cost."""

    def __init__(self, root: _Ty, server_minor: int, old_self_optional: bool) -> None:
        self.root = root
        self.server_minor = server_minor
        self.old_self_optional = old_self_optional
        self.types: dict[int, _Ty] = {}
        self.overloads: dict[int, list[str]] = {}
        self.uses_old_self = False
        # cost state
        self.paths: dict[int, list[str]] = {}
        self.sizes: dict[int, _Size] = {}
        self.entries: dict[int, tuple[str, _Size, _Size]] = {}
        self.locals: dict[str, list[_LocalVar]] = {}

    # -- types ---------------------------------------------------------------------------------------------------------

    def check(self, expr: _Expr, scope: dict[str, _Ty]) -> _Ty:
        result = self._type(expr, scope)
        self.types[expr.id] = result
        return result

    def _type(self, expr: _Expr, scope: dict[str, _Ty]) -> _Ty:
        if isinstance(expr, _Lit):
            return expr.type
        if isinstance(expr, _Ident):
            if expr.name in scope:
                return scope[expr.name]
            if expr.name == "self":
                return self.root
            if expr.name == "oldSelf":
                self.uses_old_self = True
                return _simple("opaque", name="optional_type") if self.old_self_optional else self.root
            if expr.name in ("int", "uint", "double", "bool", "string", "bytes", "list", "map", "null_type", "type"):
                return _TYPE
            raise CelCompileError(f"undeclared reference to '{expr.name}' (in container '')", expr.line, expr.column)
        if isinstance(expr, _Select):
            operand = self.check(expr.operand, scope)
            return self._select(operand, expr)
        if isinstance(expr, _ListLit):
            elements = [self.check(element, scope) for element in expr.elements]
            _check_homogeneous(expr.elements, elements)
            return _list_of(elements[0] if elements else _DYN)
        if isinstance(expr, _MapLit):
            keys = [self.check(key, scope) for key, _ in expr.entries]
            values = [self.check(value, scope) for _, value in expr.entries]
            _check_homogeneous([key for key, _ in expr.entries], keys)
            _check_homogeneous([value for _, value in expr.entries], values)
            return _map_of(keys[0] if keys else _DYN, values[0] if values else _DYN)
        if isinstance(expr, _Struct):
            for value in expr.values:
                self.check(value, scope)
            return _UNKNOWN
        if isinstance(expr, _Comp):
            range_type = self.check(expr.iter_range, scope)
            inner = dict(scope)
            if expr.iter_var2:
                if range_type.kind == "list":
                    inner[expr.iter_var], inner[expr.iter_var2] = _INT, range_type.elem or _DYN
                elif range_type.kind == "map":
                    inner[expr.iter_var], inner[expr.iter_var2] = range_type.key or _DYN, range_type.elem or _DYN
                else:
                    inner[expr.iter_var] = inner[expr.iter_var2] = _DYN
            elif range_type.kind == "list":
                inner[expr.iter_var] = range_type.elem or _DYN
            elif range_type.kind == "map":
                inner[expr.iter_var] = range_type.key or _DYN
            elif range_type.kind in ("dyn", "unknown"):
                inner[expr.iter_var] = _DYN
            else:
                raise CelCompileError(
                    f"expression of type '{range_type}' cannot be range of a comprehension (must be list, map, or "
                    "dynamic)",
                    expr.iter_range.line,
                    expr.iter_range.column,
                )
            accu_type = self.check(expr.accu_init, scope)
            inner[expr.accu_var] = accu_type
            self.check(expr.loop_condition, inner)
            step_type = self.check(expr.loop_step, inner)
            if accu_type.kind == "list" and step_type.kind == "list":
                inner[expr.accu_var] = step_type
            return self.check(expr.result, inner)
        assert isinstance(expr, _Call)
        return self._call(expr, scope)

    def _select(self, operand: _Ty, expr: _Select) -> _Ty:
        if operand.kind == "object":
            fields = operand.fields or {}
            found = fields.get(expr.field)
            if found is None and self.server_minor >= 32 and expr.field in _RESERVED_SYMBOLS:
                found = fields.get(f"__{expr.field}__")
            if found is None:
                raise CelCompileError(f"undefined field '{expr.field}'", expr.line, expr.column)
            return _BOOL if expr.test_only else found
        if operand.kind == "map":
            return _BOOL if expr.test_only else operand.elem or _DYN
        if operand.kind in ("dyn", "unknown"):
            return _BOOL if expr.test_only else operand
        if operand.kind == "opaque" and operand.name == "optional_type":
            return _UNKNOWN
        raise CelCompileError(f"type '{operand}' does not support field selection", expr.line, expr.column)

    def _call(self, expr: _Call, scope: dict[str, _Ty]) -> _Ty:
        target = self.check(expr.target, scope) if expr.target is not None else None
        args = [self.check(arg, scope) for arg in expr.args]
        _check_overload(expr, target, args)
        function = expr.function
        kinds = [arg.kind for arg in args]
        dynamic = {"dyn", "unknown"}
        overloads: list[str] = []
        result: _Ty = _UNKNOWN
        if function in ("_&&_", "_||_", "!_", "@not_strictly_false"):
            overloads = [{"_&&_": "logical_and", "_||_": "logical_or"}.get(function, "other")]
            result = _BOOL
        elif function == "_?_:_":
            overloads, result = ["conditional"], args[1] if args[1].kind == args[2].kind else _DYN
            if args[1].kind == "list" and args[2].kind == "list":
                result = args[1]
        elif function in ("_==_", "_!=_"):
            overloads, result = ["equals" if function == "_==_" else "not_equals"], _BOOL
        elif function in ("_<_", "_<=_", "_>_", "_>=_"):
            result = _BOOL
            if kinds[0] in ("string", "bytes") or kinds[0] in dynamic:
                overloads.append("compare_string")
            if kinds[0] not in ("string", "bytes") or kinds[0] in dynamic:
                overloads.append("other")
        elif function == "_+_":
            candidates = {"string": "add_string", "bytes": "add_bytes", "list": "add_list"}
            if kinds[0] in candidates:
                overloads = [candidates[kinds[0]]]
                result = args[0] if kinds[0] != "list" else _list_of(args[0].elem or args[1].elem or _DYN)
            elif kinds[0] in dynamic:
                overloads, result = ["add_string", "add_bytes", "add_list", "other"], _DYN
            else:
                overloads = ["other"]
                result = args[0] if kinds[0] in ("int", "uint", "double", "duration") else _TIMESTAMP
                if kinds[0] == "timestamp":
                    result = _TIMESTAMP
        elif function in ("_-_", "_*_", "_/_", "_%_", "-_"):
            overloads, result = ["other"], args[0] if kinds[0] != "timestamp" else _DURATION
            if function == "_-_" and kinds[0] == "timestamp" and kinds[1] == "duration":
                result = _TIMESTAMP
        elif function == "@in":
            result = _BOOL
            overloads = ["in_list"] if kinds[1] == "list" else ["in_map"] if kinds[1] == "map" else ["in_list", "other"]
        elif function == "_[_]":
            if kinds[0] == "list":
                overloads, result = ["index_list"], args[0].elem or _DYN
            elif kinds[0] == "map":
                overloads, result = ["index_map"], args[0].elem or _DYN
            else:
                overloads, result = ["index_list", "index_map"], _DYN
        elif function == "matches":
            overloads, result = ["matches"], _BOOL
        elif function in ("startsWith", "endsWith") and target is not None:
            overloads, result = ["starts_ends_with"], _BOOL
        elif function == "contains" and target is not None and target.kind == "string":
            overloads, result = ["contains_string"], _BOOL
        elif function == "bytes" and kinds == ["string"]:
            overloads, result = ["string_to_bytes"], _BYTES
        elif function == "string" and kinds == ["bytes"]:
            overloads, result = ["bytes_to_string"], _STRING
        elif (function == "quote" and target is None) or function == "strings.quote":
            overloads, result = ["quote_string"], _STRING
        elif function == "format" and target is not None:
            overloads, result = ["format_string"], _STRING
        elif function == "dyn":
            overloads, result = ["dyn"], _DYN
        elif function in ("sum", "min", "max") and target is not None and target.kind == "list":
            overloads, result = ["other"], target.elem or _DYN
        elif function in ("orValue", "value") and target is not None:
            overloads, result = ["other"], _UNKNOWN
        elif function in _RESULTS:
            overloads, result = ["other"], _RESULTS[function]
        else:
            overloads, result = ["other"], _UNKNOWN
        self.overloads[expr.id] = overloads
        return result

    # -- cost ----------------------------------------------------------------------------------------------------------

    def type_of(self, expr: _Expr) -> _Ty:
        return self.types.get(expr.id, _UNKNOWN)

    def cost(self, expr: _Expr) -> _Size:
        if isinstance(expr, _Lit):
            return _ZERO
        if isinstance(expr, _Ident):
            local = self._peek(expr.name)
            self.paths[expr.id] = list(local.path) if local else [expr.name]
            return _ONE
        if isinstance(expr, _Select):
            if expr.test_only:
                return _ZERO.add(self.cost(expr.operand))  # presence tests cost nothing in Kubernetes
            total = self.cost(expr.operand)
            if self.type_of(expr.operand).kind in ("map", "object", "unknown"):
                total = total.add(_ONE)
            self.paths[expr.id] = [*self._path(expr.operand), expr.field]
            return total
        if isinstance(expr, _Call):
            return self._cost_call(expr)
        if isinstance(expr, _ListLit):
            total = _ZERO
            item = _Size(_MAX_UINT64, 0) if expr.elements else _ZERO
            for element in expr.elements:
                total = total.add(self.cost(element))
                item = item.union(self._size_or_unknown(element))
            self.entries[expr.id] = ("list", _ONE, item)
            return total.add(_Size(10, 10))
        if isinstance(expr, _MapLit):
            total = _ZERO
            key_size = val_size = _Size(_MAX_UINT64, 0) if expr.entries else _ZERO
            for key, value in expr.entries:
                total = total.add(self.cost(key)).add(self.cost(value))
                key_size = key_size.union(self._size_or_unknown(key))
                val_size = val_size.union(self._size_or_unknown(value))
            self.entries[expr.id] = ("map", key_size, val_size)
            return total.add(_Size(30, 30))
        if isinstance(expr, _Struct):
            total = _ZERO
            for value in expr.values:
                total = total.add(self.cost(value))
            return total.add(_Size(40, 40))
        assert isinstance(expr, _Comp)
        return self._cost_comprehension(expr)

    def _peek(self, name: str) -> _LocalVar | None:
        stack = self.locals.get(name)
        return stack[-1] if stack else None

    def _push(self, name: str, var: _LocalVar) -> None:
        self.locals.setdefault(name, []).append(var)

    def _pop(self, name: str) -> None:
        self.locals[name].pop()

    def _path(self, expr: _Expr) -> list[str]:
        if isinstance(expr, _Ident):
            local = self._peek(expr.name)
            if local is not None:
                return list(local.path)
        return list(self.paths.get(expr.id, []))

    def _estimate_size(self, path: list[str]) -> _Size | None:
        """The Kubernetes size estimator: walk the schema's declaration along the path (first element: a variable)."""
        if not path:
            return None
        node: _Ty | None = self.root
        for name in path[1:]:
            if node is None:
                return None
            if name in ("@items", "@values"):
                node = node.elem
            elif name == "@keys":
                node = node.key
            else:
                node = (node.fields or {}).get(name)
        if node is None:
            return None
        return _Size(0, node.max_elements)

    def _compute_size(self, expr: _Expr) -> _Size | None:
        if expr.id in self.sizes:
            return self.sizes[expr.id]
        if isinstance(expr, _Lit):
            return _Size(expr.size, expr.size)
        if isinstance(expr, _ListLit):
            return _Size(len(expr.elements), len(expr.elements))
        if isinstance(expr, _MapLit):
            return _Size(len(expr.entries), len(expr.entries))
        estimated = self._estimate_size(self._path(expr))
        if estimated is not None:
            self.sizes[expr.id] = estimated
            return estimated
        if self.type_of(expr).kind in ("bool", "double", "duration", "int", "timestamp", "uint"):
            return _ONE
        if isinstance(expr, _Ident):
            local = self._peek(expr.name)
            if local is not None and local.size is not None:
                return local.size
        return None

    def _size_or_unknown(self, node: _Expr | _Node) -> _Size:
        if isinstance(node, _Node):
            return node.size if node.size is not None else _UNKNOWN_SIZE
        size = self._compute_size(node)
        return size if size is not None else _UNKNOWN_SIZE

    def _entry(self, expr: _Expr) -> tuple[str, _Size, _Size] | None:
        if expr.id in self.entries:
            return self.entries[expr.id]
        if isinstance(expr, _Ident):
            local = self._peek(expr.name)
            if local is not None and local.entry is not None:
                return local.entry
        return None

    def _node(self, expr: _Expr) -> _Node:
        path = self._path(expr)
        if path and path[0] == _ACCU:
            path = []
        return _Node(path, self.type_of(expr), expr, self._compute_size(expr))

    def _cost_comprehension(self, expr: _Comp) -> _Size:
        total = self.cost(expr.iter_range).add(self.cost(expr.accu_init))
        self._push(
            expr.accu_var,
            _LocalVar(self._path(expr.accu_init), self._compute_size(expr.accu_init), self._entry(expr.accu_init)),
        )
        entry = self._entry(expr.iter_range)
        container = entry[0] if entry else self.type_of(expr.iter_range).kind
        range_path = self._path(expr.iter_range)
        if expr.iter_var2:
            key_sub = "@indices" if container == "list" else "@keys"
            val_sub = "@items" if container == "list" else "@values"
            self._push(expr.iter_var, _LocalVar([*range_path, key_sub], entry[1] if entry else None, None))
            self._push(expr.iter_var2, _LocalVar([*range_path, val_sub], entry[2] if entry else None, None))
        elif container == "list":
            self._push(expr.iter_var, _LocalVar([*range_path, "@items"], entry[2] if entry else None, None))
        else:
            self._push(expr.iter_var, _LocalVar([*range_path, "@keys"], entry[1] if entry else None, None))
        loop = self.cost(expr.loop_condition)
        step = self.cost(expr.loop_step)
        self._pop(expr.iter_var)
        if expr.iter_var2:
            self._pop(expr.iter_var2)
        total = total.add(self.cost(expr.result))
        self._pop(expr.accu_var)
        count = self._size_or_unknown(expr.iter_range)
        total = total.add(count.mul(step.add(loop)))
        if isinstance(expr.accu_init, _Lit):
            size = self._compute_size(expr.accu_init)
            if size is not None:
                self.sizes[expr.id] = size
        elif isinstance(expr.accu_init, _ListLit | _MapLit):
            self.sizes[expr.id] = count
            step_entry = self._entry(expr.loop_step)
            if step_entry is not None:
                self.entries[expr.id] = step_entry
        return total

    def _cost_call(self, expr: _Call) -> _Size:
        if expr.function == "dyn" and expr.args:
            arg_cost = self.cost(expr.args[0])
            size = self._compute_size(expr.args[0])
            if size is not None:
                self.sizes[expr.id] = size
            entry = self._entry(expr.args[0])
            if entry is not None:
                self.entries[expr.id] = entry
            return _ONE.add(arg_cost)
        arg_costs = [self.cost(arg) for arg in expr.args]
        arg_nodes = [self._node(arg) for arg in expr.args]
        total = _ZERO
        target: _Node | None = None
        if expr.target is not None:
            total = total.add(self.cost(expr.target))
            target = self._node(expr.target)
        fn_cost = _Size(_MAX_UINT64, 0)
        result_size: _Size | None = None
        for overload in self.overloads.get(expr.id, ["other"]):
            cost, size = self._function_cost(expr, overload, target, arg_nodes, arg_costs)
            fn_cost = fn_cost.union(cost)
            if size is not None:
                result_size = size if result_size is None else result_size.union(size)
            if overload in ("index_list", "index_map") and expr.args:
                entry = self._entry(expr.args[0])
                result_size = entry[2] if entry else None
                suffix = "@items" if overload == "index_list" else "@values"
                self.paths[expr.id] = [*self._path(expr.args[0]), suffix]
            if result_size is None:
                result_size = self._compute_size(expr)
        if result_size is not None:
            self.sizes[expr.id] = result_size
        return total.add(fn_cost)

    def _function_cost(
        self, expr: _Call, overload: str, target: _Node | None, args: list[_Node], arg_costs: list[_Size]
    ) -> tuple[_Size, _Size | None]:
        arg_sum = _ZERO
        for arg_cost in arg_costs:
            arg_sum = arg_sum.add(arg_cost)
        k8s = self._kubernetes_cost(expr.function, target, args)
        if k8s is not None:
            return k8s[0].add(arg_sum), k8s[1]
        if overload == "format_string" and target is not None:
            return self._size_or_unknown(target).factor(_STRING_TRAVERSAL).add(arg_sum), None
        if overload == "string_to_bytes" and len(args) == 1:
            size = self._size_or_unknown(args[0])
            return size.factor(_STRING_TRAVERSAL).add(arg_sum), _Size(size.min, min(size.max * 4, _MAX_UINT64))
        if overload == "bytes_to_string" and len(args) == 1:
            size = self._size_or_unknown(args[0])
            return size.factor(_STRING_TRAVERSAL).add(arg_sum), _Size(size.min // 4, size.max)
        if overload == "quote_string" and len(args) == 1:
            size = self._size_or_unknown(args[0])
            return size.factor(_STRING_TRAVERSAL).add(arg_sum), _Size(size.min + 2, min(size.max * 2 + 2, _MAX_UINT64))
        if overload == "starts_ends_with" and len(args) == 1:
            return self._size_or_unknown(args[0]).factor(_STRING_TRAVERSAL).add(arg_sum), None
        if overload == "in_list" and len(args) == 2:
            return self._size_or_unknown(args[1]).factor(1).add(arg_sum), None
        if overload == "matches" and target is not None and len(args) == 1:  # only the member form (matches_string)
            text = self._size_or_unknown(target).add(_ONE).factor(_STRING_TRAVERSAL)
            regex = self._size_or_unknown(args[0]).factor(_REGEX_LENGTH)
            return text.mul(regex).add(arg_sum), None
        if overload == "contains_string" and target is not None and len(args) == 1:
            text = self._size_or_unknown(target).factor(_STRING_TRAVERSAL)
            sub = self._size_or_unknown(args[0]).factor(_STRING_TRAVERSAL)
            return text.mul(sub).add(arg_sum), None
        if overload in ("logical_and", "logical_or"):
            lhs, rhs = arg_costs[0], arg_costs[1]
            return _Size(lhs.min, lhs.add(rhs).max), None
        if overload == "conditional":
            size = self._size_or_unknown(args[1]).union(self._size_or_unknown(args[2]))
            left, right = self._entry(args[1].expr), self._entry(args[2].expr)
            if left is not None and right is not None:
                self.entries[expr.id] = (left[0], left[1].union(right[1]), left[2].union(right[2]))
            return arg_costs[0].add(arg_costs[1].union(arg_costs[2])), size
        if overload in ("add_string", "add_bytes", "add_list") and len(args) == 2:
            result = self._size_or_unknown(args[0]).add(self._size_or_unknown(args[1]))
            left, right = self._entry(args[0].expr), self._entry(args[1].expr)
            if left is not None and right is not None:
                self.entries[expr.id] = (left[0], left[1].union(right[1]), left[2].union(right[2]))
            if overload == "add_list":
                return _ONE.add(arg_sum), result
            return result.factor(_STRING_TRAVERSAL).add(arg_sum), result
        if overload in ("compare_string", "equals", "not_equals"):
            lhs, rhs = self._size_or_unknown(args[0]), self._size_or_unknown(args[1])
            smallest = min(lhs.max, rhs.max)
            return _Size(1 if smallest > 0 else 0, smallest).factor(_STRING_TRAVERSAL).add(arg_sum), None
        return _ONE.add(arg_sum), None

    def _kubernetes_cost(
        self, function: str, target: _Node | None, args: list[_Node]
    ) -> tuple[_Size, _Size | None] | None:
        """``library.CostEstimator.EstimateCallCost`` (the Kubernetes CEL libraries)."""
        size = self._size_or_unknown
        if function in ("isSorted", "sum", "max", "min", "indexOf", "lastIndexOf", "includes") and target is not None:
            element = _ONE
            if target.type.kind == "list":
                item_type = target.type.elem or _DYN
                if item_type.kind in ("string", "bytes"):
                    item_path = [*target.path, "@items"] if target.path else []
                    item_size = self._estimate_size(item_path) or _UNKNOWN_SIZE
                    element = element.add(item_size.factor(_STRING_TRAVERSAL))
                list_size = size(target)
                return _Size(
                    min(list_size.min * element.min, _MAX_UINT64), min(list_size.max * element.max, _MAX_UINT64)
                ), None
            if function == "includes":
                return size(target).mul(element), None
            return size(target).factor(_STRING_TRAVERSAL), None
        if function in ("url", "jsonpatch.escapeKey") and len(args) == 1:
            text = size(args[0])
            return text.factor(_STRING_TRAVERSAL), text
        if function in ("lowerAscii", "upperAscii", "substring", "trim") and target is not None:
            text = size(target)
            return text.factor(_STRING_TRAVERSAL), text
        if function == "replace" and target is not None and len(args) >= 2:
            text, old, new = size(target), size(args[0]), size(args[1])
            if old.min == 0:
                count_max, retained_max = (text.max + 1 if text.max < _MAX_UINT64 else text.max), text.max
            elif new.max <= old.min:
                count_max, retained_max = 0, text.max
            else:
                count_max, retained_max = math.ceil(text.max / old.min), 0
            if old.max == 0:
                count_min, retained_min = (text.min + 1 if text.min < _MAX_UINT64 else text.min), text.min
            elif old.max <= new.min:
                count_min, retained_min = 0, text.min
            else:
                count_min, retained_min = math.ceil(text.min / old.max), 0
            result = _Size(count_min, count_max).mul(new).add(_Size(retained_min, retained_max))
            return text.factor(2 * _STRING_TRAVERSAL), result
        if function == "split" and target is not None:
            text = size(target)
            limit = text.max
            if len(args) > 1 and isinstance(args[1].expr, _Lit) and isinstance(args[1].expr.value, int):
                limit = args[1].expr.value
            return text.factor(2 * _STRING_TRAVERSAL), _Size(0, limit)
        if function == "join" and target is not None:
            result = _ZERO
            list_size = size(target)
            if target.type.kind == "list":
                item_path = [*target.path, "@items"] if target.path else []
                result = list_size.mul(self._estimate_size(item_path) or _UNKNOWN_SIZE)
            if args:
                separators = _Size(max(list_size.min - 1, 0), max(list_size.max - 1, 0))
                result = result.add(size(args[0]).mul(separators))
            return result.factor(_STRING_TRAVERSAL), result
        if function in ("find", "findAll") and target is not None and args:
            text = size(target)
            cost = text.add(_ONE).factor(_STRING_TRAVERSAL).mul(size(args[0]).factor(_REGEX_LENGTH))
            return cost, _Size(0, text.max)
        if function in ("cidr", "isIP", "isCIDR", "quantity", "isQuantity", "semver", "isSemver") and args:
            return size(args[0]).factor(_STRING_TRAVERSAL), None
        if function == "ip" and args:
            return size(args[0]).factor(_STRING_TRAVERSAL), None
        if function == "ip.isCanonical" and args:
            return size(args[0]).factor(2 * _STRING_TRAVERSAL), None
        if function in _NOMINAL_COST_FUNCTIONS:
            return _ONE, None
        if (
            function == "_==_"
            and len(args) == 2
            and args[0].type.kind == "opaque"
            and args[0].type.name == args[1].type.name
        ):
            return _ONE, None
        return None


#: Overloads of the standard and Kubernetes libraries this checker resolves: function -> (receiver kind or "" for a
#: global call, argument kinds). Kinds: a CEL kind, "any", or "elem" (the receiver list's element type).
_SIGNATURES: Final[dict[str, tuple[tuple[str, tuple[str, ...]], ...]]] = {
    "size": (("", ("string",)), ("", ("bytes",)), ("", ("list",)), ("", ("map",)),
             ("string", ()), ("bytes", ()), ("list", ()), ("map", ())),
    "int": tuple(("", (kind,)) for kind in ("int", "uint", "double", "string", "timestamp")),
    "uint": tuple(("", (kind,)) for kind in ("int", "uint", "double", "string")),
    "double": tuple(("", (kind,)) for kind in ("int", "uint", "double", "string")),
    "string": tuple(("", (kind,)) for kind in ("int", "uint", "double", "bool", "bytes", "string", "timestamp",
                                               "duration")),
    "bytes": (("", ("bytes",)), ("", ("string",))),
    "bool": (("", ("bool",)), ("", ("string",))),
    "duration": (("", ("string",)), ("", ("duration",)), ("", ("int",))),
    "timestamp": (("", ("string",)), ("", ("timestamp",)), ("", ("int",))),
    "matches": (("", ("string", "string")), ("string", ("string",))),
    **dict.fromkeys(("contains", "startsWith", "endsWith"), (("string", ("string",)),)),
    **dict.fromkeys(("lowerAscii", "upperAscii", "trim", "reverse"), (("string", ()),)),
    "replace": (("string", ("string", "string")), ("string", ("string", "string", "int"))),
    "split": (("string", ("string",)), ("string", ("string", "int"))),
    "substring": (("string", ("int",)), ("string", ("int", "int"))),
    "charAt": (("string", ("int",)),),
    **dict.fromkeys(("indexOf", "lastIndexOf"), (("string", ("string",)), ("string", ("string", "int")),
                                                 ("list", ("elem",)))),
    "join": (("list", ()), ("list", ("string",))),
    "find": (("string", ("string",)),),
    "findAll": (("string", ("string",)), ("string", ("string", "int"))),
    **dict.fromkeys(("isSorted", "sum", "min", "max"), (("list", ()),)),
    **dict.fromkeys(("getHours", "getMinutes", "getSeconds", "getMilliseconds"),
                    (("timestamp", ()), ("timestamp", ("string",)), ("duration", ()))),
    **dict.fromkeys(("getDate", "getDayOfMonth", "getDayOfWeek", "getDayOfYear", "getFullYear", "getMonth"),
                    (("timestamp", ()), ("timestamp", ("string",)))),
    "format": (("string", ("list",)),),
    **dict.fromkeys(("url", "isURL", "quantity", "isQuantity", "ip", "isIP", "cidr", "isCIDR", "semver", "isSemver"),
                    (("", ("string",)),)),
}  # fmt: skip
_SCALARS: Final = frozenset({"bool", "int", "uint", "double", "string", "bytes", "duration", "timestamp"})
_NUMBERS: Final = frozenset({"int", "uint", "double"})
_TYPED: Final = _SCALARS | {"list", "map", "object"}
#: Operand kinds each arithmetic operator has same-kind overloads for (plus the timestamp/duration mixes below).
_ARITHMETIC: Final[dict[str, frozenset[str]]] = {
    "_+_": frozenset({"int", "uint", "double", "string", "bytes", "list", "duration"}),
    "_-_": frozenset({"int", "uint", "double", "duration", "timestamp"}),
    "_*_": _NUMBERS,
    "_/_": _NUMBERS,
    "_%_": frozenset({"int", "uint"}),
}
_TIME_MIXES: Final = {
    ("_+_", "timestamp", "duration"),
    ("_+_", "duration", "timestamp"),
    ("_-_", "timestamp", "duration"),
}


def _is_typed(ty: _Ty) -> bool:
    """Whether this checker knows the type well enough to refuse an overload on it."""
    return ty.kind in _TYPED


def _signature_matches(receiver: str, params: tuple[str, ...], target: _Ty | None, args: list[_Ty]) -> bool:
    if bool(receiver) != (target is not None) or len(params) != len(args):
        return False
    if target is not None and _is_typed(target) and target.kind != receiver:
        return False
    for param, arg in zip(params, args, strict=True):
        expected = (target.elem.kind if target and target.elem else "any") if param == "elem" else param
        if expected != "any" and _is_typed(arg) and arg.kind != expected:
            return False
    return True


def _check_overload(expr: _Call, target: _Ty | None, args: list[_Ty]) -> None:
    """The part of cel-go's overload resolution that this checker can decide: a call whose receiver and arguments
    are typed and that no overload accepts (``size`` of an object, ``startsWith`` on a list, ``'a' + 1``,
    ``1 && true``, ``self == 'a'`` on an object, ``x in list`` of another element type)."""
    function = expr.function
    typed = [_is_typed(arg) for arg in args]
    refused = False
    if function in _SIGNATURES and (target is None or target.kind not in ("dyn", "unknown", "opaque")):
        refused = not any(_signature_matches(r, params, target, args) for r, params in _SIGNATURES[function])
        if target is not None and target.kind == "list" and target.elem is not None and _is_typed(target.elem):
            elements = {"join": {"string"}, "sum": _NUMBERS | {"duration"}}.get(function, _SCALARS)
            if function in ("join", "isSorted", "sum", "min", "max"):  # over strings, numbers, comparables
                refused = refused or target.elem.kind not in elements
    elif function in ("_&&_", "_||_", "!_"):
        refused = any(ok and arg.kind != "bool" for ok, arg in zip(typed, args, strict=True))
    elif function == "-_":
        refused = typed[0] and args[0].kind not in ("int", "double", "duration")
    elif function == "_?_:_":
        refused = (typed[0] and args[0].kind != "bool") or (typed[1] and typed[2] and args[1].kind != args[2].kind)
    elif function in _ARITHMETIC and len(args) == 2 and all(typed):
        kinds = (args[0].kind, args[1].kind)
        same = kinds[0] == kinds[1] and kinds[0] in _ARITHMETIC[function]
        refused = not same and (function, *kinds) not in _TIME_MIXES
    elif function in ("_<_", "_<=_", "_>_", "_>=_") and all(typed):
        kinds = (args[0].kind, args[1].kind)
        numeric = kinds[0] in _NUMBERS and kinds[1] in _NUMBERS
        refused = (kinds[0] != kinds[1] and not numeric) or kinds[0] not in _SCALARS
    elif function in ("_==_", "_!=_") and all(typed):
        refused = args[0].kind != args[1].kind
    elif function == "@in" and typed[1]:
        container = args[1]
        element = container.elem if container.kind == "list" else container.key if container.kind == "map" else None
        refused = container.kind not in ("list", "map") or (
            typed[0] and element is not None and _is_typed(element) and element.kind != args[0].kind
        )
    elif function == "_[_]" and typed[0]:
        container, index = args[0], args[1]
        key = container.key.kind if container.kind == "map" and container.key else ""
        refused = (
            container.kind not in ("list", "map")
            or (container.kind == "list" and typed[1] and index.kind not in ("int", "uint"))
            or (container.kind == "map" and typed[1] and key in _SCALARS and index.kind != key)
        )
    if refused:
        applied = ", ".join(str(arg) for arg in args)
        applied = f"{target}.({applied})" if target is not None else f"({applied})"
        raise CelCompileError(
            f"found no matching overload for '{function}' applied to '{applied}'", expr.line, expr.column
        )


def _check_homogeneous(elements: list[_Expr], types: list[_Ty]) -> None:
    """``cel.HomogeneousAggregateLiterals``: a literal list (or map keys/values) holds one type."""
    first = next((ty for ty in types if _is_typed(ty)), None)
    for element, ty in zip(elements, types, strict=True):
        if first is not None and _is_typed(ty) and ty.kind != first.kind:
            raise CelCompileError(f"expected type '{first}' but found '{ty}'", element.line, element.column)
