"""The CEL expression tree and its parser.

Owns cel-go's expression shapes (``_Expr`` and its subclasses), ``CelCompileError`` and ``_TreeBuilder``, which turns
cel-python's lark parse tree into those shapes and expands macros as cel-go does (``has``, ``all``, ``exists``,
``exists_one``, ``map``, ``filter``, ``transformList``/``Map``/``MapEntry``), refusing reserved identifiers.
cel-python itself is imported by ``_cel_engine``, not here. Used by ``_cel_check`` and ``_cel_engine``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Final

from ._cel_types import _BOOL, _BYTES, _DOUBLE, _INT, _NULL, _RESERVED_IDS, _STRING, _UINT, _Ty

# -- CEL: the expression tree ----------------------------------------------------------------------------------------


@dataclass(eq=False)
class _Expr:
    id: int
    line: int
    column: int


@dataclass(eq=False)
class _Lit(_Expr):
    type: _Ty
    size: int  # CEL size(): runes of a string, bytes of bytes, 1 for scalars
    value: Any = None


@dataclass(eq=False)
class _Ident(_Expr):
    name: str


@dataclass(eq=False)
class _Select(_Expr):
    operand: _Expr
    field: str
    test_only: bool = False


@dataclass(eq=False)
class _Call(_Expr):
    function: str
    args: list[_Expr]
    target: _Expr | None = None


@dataclass(eq=False)
class _ListLit(_Expr):
    elements: list[_Expr]


@dataclass(eq=False)
class _MapLit(_Expr):
    entries: list[tuple[_Expr, _Expr]]


@dataclass(eq=False)
class _Struct(_Expr):
    name: str
    values: list[_Expr]


@dataclass(eq=False)
class _Comp(_Expr):
    iter_var: str
    iter_var2: str
    iter_range: _Expr
    accu_var: str
    accu_init: _Expr
    loop_condition: _Expr
    loop_step: _Expr
    result: _Expr


class CelCompileError(Exception):
    """A CEL expression that the API server's compiler would refuse."""

    def __init__(self, message: str, line: int = 1, column: int = 1) -> None:
        super().__init__(message)
        self.message, self.line, self.column = message, line, column


_ACCU: Final = "@result"
_BINARY: Final = {
    "relation_lt": "_<_",
    "relation_le": "_<=_",
    "relation_gt": "_>_",
    "relation_ge": "_>=_",
    "relation_eq": "_==_",
    "relation_ne": "_!=_",
    "relation_in": "@in",
    "addition_add": "_+_",
    "addition_sub": "_-_",
    "multiplication_mul": "_*_",
    "multiplication_div": "_/_",
    "multiplication_mod": "_%_",
}
_ESCAPES: Final = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v"}


def _unquote(text: str) -> tuple[str, bool]:
    """A CEL string/bytes literal's content (escapes decoded) and whether it is bytes."""
    is_bytes = text[:1] in "bB"
    if is_bytes:
        text = text[1:]
    raw = text[:1] in "rR"
    if raw:
        text = text[1:]
    quote = text[:3] if text[:3] in ('"""', "'''") else text[:1]
    body = text[len(quote) : len(text) - len(quote)]
    if raw:
        return body, is_bytes

    def replace(match: re.Match[str]) -> str:
        escape = match.group(1)
        if escape[0] in _ESCAPES:
            return _ESCAPES[escape[0]]
        if escape[0] in "xuU":
            return chr(int(escape[1:], 16))
        if escape[0].isdigit():
            return chr(int(escape, 8))
        return escape

    decoded = re.sub(r"\\(x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8}|[0-7]{3}|.)", replace, body, flags=re.S)
    return decoded, is_bytes


def _int_literal(text: str) -> int:
    sign = -1 if text.startswith("-") else 1
    digits = text.lstrip("-")
    return sign * (int(digits[2:], 16) if digits[:2].lower() == "0x" else int(digits, 10))


class _TreeBuilder:
    """Turns cel-python's lark parse tree into cel-go's expression shape, expanding macros as cel-go does."""

    def __init__(self) -> None:
        self.next_id = 0

    def new_id(self) -> int:
        self.next_id += 1
        return self.next_id

    def pos(self, tree: Any) -> tuple[int, int]:
        meta = getattr(tree, "meta", None)
        line = getattr(meta, "line", None) or getattr(tree, "line", None) or 1
        column = getattr(meta, "column", None) or getattr(tree, "column", None) or 1
        return int(line), int(column)

    def call(self, tree: Any, function: str, args: list[_Expr], target: _Expr | None = None) -> _Call:
        line, column = self.pos(tree)
        return _Call(self.new_id(), line, column, function, args, target)

    def ident(self, tree: Any, name: str) -> _Ident:
        line, column = self.pos(tree)
        return _Ident(self.new_id(), line, column, name)

    def build(self, tree: Any) -> _Expr:
        rule = str(tree.data)
        children = list(tree.children)
        if rule == "expr":
            if len(children) == 1:
                return self.build(children[0])
            return self.call(tree, "_?_:_", [self.build(child) for child in children])
        if rule in ("conditionalor", "conditionaland"):
            if len(children) == 1:
                return self.build(children[0])
            op = "_||_" if rule == "conditionalor" else "_&&_"
            return self.call(tree, op, [self.build(children[0]), self.build(children[1])])
        if rule in ("relation", "addition", "multiplication"):
            if len(children) == 1:
                return self.build(children[0])
            operator = children[0]
            return self.call(
                tree, _BINARY[str(operator.data)], [self.build(operator.children[0]), self.build(children[1])]
            )
        if rule == "unary":
            if len(children) == 1:
                return self.build(children[0])
            op = "!_" if str(children[0].data) == "unary_not" else "-_"
            return self.call(tree, op, [self.build(children[1])])
        if rule in ("member", "primary"):
            return self.build(children[0])
        if rule == "member_dot":
            name = str(children[1])
            if name in ("true", "false", "null", "in"):
                line, column = self.pos(children[1])
                raise CelCompileError(f"Syntax error: no viable alternative at input '.{name}'", line, column)
            line, column = self.pos(children[1])
            return _Select(self.new_id(), line, max(column - 1, 1), self.build(children[0]), name)  # at the '.'

        if rule == "member_dot_arg":
            target = self.build(children[0])
            name = str(children[1])
            args = [self.build(child) for child in children[2].children] if len(children) > 2 else []
            return self.method(tree, target, name, args)
        if rule == "member_index":
            return self.call(tree, "_[_]", [self.build(children[0]), self.build(children[1])])
        if rule == "member_object":
            line, column = self.pos(tree)
            values = []
            if len(children) > 1:
                values = [self.build(child) for child in children[1].children if hasattr(child, "data")]
            return _Struct(self.new_id(), line, column, "", values)
        if rule == "ident":
            name = str(children[0])
            if name in _RESERVED_IDS:
                line, column = self.pos(children[0])
                raise CelCompileError(f"reserved identifier: {name}", line, column)
            return self.ident(tree, name)
        if rule == "dot_ident":
            return self.ident(tree, "." + str(children[0]))
        if rule in ("ident_arg", "dot_ident_arg"):
            name = ("." if rule == "dot_ident_arg" else "") + str(children[0])
            if name in _RESERVED_IDS:
                line, column = self.pos(children[0])
                raise CelCompileError(f"reserved identifier: {name}", line, column)
            args = [self.build(child) for child in children[1].children] if len(children) > 1 else []
            if name == "has":
                line, column = self.pos(children[0])
                column += len(name)  # cel-go places the macro at its '('
                if len(args) != 1 or not isinstance(args[0], _Select):
                    raise CelCompileError("invalid argument to has() macro", line, column)
                args[0].test_only = True
                args[0].line, args[0].column = line, column
                return args[0]
            return self.call(tree, name, args)
        if rule == "paren_expr":
            return self.build(children[0])
        if rule == "list_lit":
            line, column = self.pos(tree)
            elements = [self.build(child) for child in children[0].children] if children else []
            return _ListLit(self.new_id(), line, column, elements)
        if rule == "map_lit":
            line, column = self.pos(tree)
            values = [self.build(child) for child in children[0].children] if children else []
            return _MapLit(self.new_id(), line, column, list(zip(values[::2], values[1::2], strict=True)))
        if rule == "literal":
            return self.literal(tree, children[0])
        raise CelCompileError(f"Syntax error: unexpected {rule}", *self.pos(tree))

    def literal(self, tree: Any, token: Any) -> _Lit:
        line, column = self.pos(tree)
        kind, text = str(token.type), str(token)
        if kind in ("STRING_LIT", "MLSTRING_LIT", "BYTES_LIT"):
            value, is_bytes = _unquote(text)
            if is_bytes:
                return _Lit(self.new_id(), line, column, _BYTES, len(value.encode("latin-1", "replace")), value)
            return _Lit(self.new_id(), line, column, _STRING, len(value), value)
        if kind == "BOOL_LIT":
            return _Lit(self.new_id(), line, column, _BOOL, 1, text == "true")
        if kind == "NULL_LIT":
            return _Lit(self.new_id(), line, column, _NULL, 1, None)
        if kind == "UINT_LIT":
            return _Lit(self.new_id(), line, column, _UINT, 1, _int_literal(text[:-1]))
        if kind == "FLOAT_LIT":
            return _Lit(self.new_id(), line, column, _DOUBLE, 1, float(text))
        return _Lit(self.new_id(), line, column, _INT, 1, _int_literal(text))

    def method(self, tree: Any, target: _Expr, name: str, args: list[_Expr]) -> _Expr:
        line, column = self.pos(tree)
        if name in ("all", "exists", "exists_one", "map", "filter") and args:
            if not isinstance(args[0], _Ident):
                raise CelCompileError("argument must be a simple name", line, column)
            var = args[0].name
            if name in ("all", "exists", "exists_one") and len(args) == 2:
                return self.quantifier(tree, name, target, var, "", args[1])
            if name in ("all", "exists", "exists_one") and len(args) == 3 and isinstance(args[1], _Ident):
                return self.quantifier(tree, name, target, var, args[1].name, args[2])
            if name == "map" and len(args) in (2, 3):
                transform = args[-1]
                step: _Expr = self.call(
                    tree, "_+_", [self.accu(tree), _ListLit(self.new_id(), line, column, [transform])]
                )
                if len(args) == 3:
                    step = self.call(tree, "_?_:_", [args[1], step, self.accu(tree)])
                return self.comprehension(tree, target, var, "", _ListLit(self.new_id(), line, column, []), step)
            if name == "filter" and len(args) == 2:
                element = self.ident(tree, var)
                step = self.call(tree, "_+_", [self.accu(tree), _ListLit(self.new_id(), line, column, [element])])
                step = self.call(tree, "_?_:_", [args[1], step, self.accu(tree)])
                return self.comprehension(tree, target, var, "", _ListLit(self.new_id(), line, column, []), step)
        if name in ("transformList", "transformMap", "transformMapEntry") and len(args) in (3, 4):
            if not isinstance(args[0], _Ident) or not isinstance(args[1], _Ident):
                raise CelCompileError("argument must be a simple name", line, column)
            transform = args[-1]
            init: _Expr
            if name == "transformList":
                init = _ListLit(self.new_id(), line, column, [])
                step = self.call(tree, "_+_", [self.accu(tree), _ListLit(self.new_id(), line, column, [transform])])
            else:
                init = _MapLit(self.new_id(), line, column, [])
                step = self.call(tree, "cel.@mapInsert", [self.accu(tree), args[0], transform])
            if len(args) == 4:
                step = self.call(tree, "_?_:_", [args[2], step, self.accu(tree)])
            return self.comprehension(tree, target, args[0].name, args[1].name, init, step)
        if isinstance(target, _Ident) and target.name in _NAMESPACES:
            return self.call(tree, f"{target.name}.{name}", args)
        return self.call(tree, name, args, target)

    def accu(self, tree: Any) -> _Ident:
        return self.ident(tree, _ACCU)

    def comprehension(self, tree: Any, target: _Expr, var: str, var2: str, init: _Expr, step: _Expr) -> _Comp:
        line, column = self.pos(tree)
        true = _Lit(self.new_id(), line, column, _BOOL, 1, True)
        return _Comp(self.new_id(), line, column, var, var2, target, _ACCU, init, true, step, self.accu(tree))

    def quantifier(self, tree: Any, kind: str, target: _Expr, var: str, var2: str, predicate: _Expr) -> _Comp:
        line, column = self.pos(tree)
        init: _Expr
        condition: _Expr
        result: _Expr
        if kind == "all":
            init = _Lit(self.new_id(), line, column, _BOOL, 1, True)
            condition = self.call(tree, "@not_strictly_false", [self.accu(tree)])
            step: _Expr = self.call(tree, "_&&_", [self.accu(tree), predicate])
            result = self.accu(tree)
        elif kind == "exists":
            init = _Lit(self.new_id(), line, column, _BOOL, 1, False)
            condition = self.call(tree, "@not_strictly_false", [self.call(tree, "!_", [self.accu(tree)])])
            step = self.call(tree, "_||_", [self.accu(tree), predicate])
            result = self.accu(tree)
        else:
            init = _Lit(self.new_id(), line, column, _INT, 1, 0)
            condition = _Lit(self.new_id(), line, column, _BOOL, 1, True)
            one = _Lit(self.new_id(), line, column, _INT, 1, 1)
            step = self.call(
                tree, "_?_:_", [predicate, self.call(tree, "_+_", [self.accu(tree), one]), self.accu(tree)]
            )
            result = self.call(tree, "_==_", [self.accu(tree), _Lit(self.new_id(), line, column, _INT, 1, 1)])
        return _Comp(self.new_id(), line, column, var, var2, target, _ACCU, init, condition, step, result)


#: Targets of ``ns.function(...)`` that name a function namespace rather than a variable.
#: (The Kubernetes CEL environment has no ``cel.bind``, ``math`` or ``base64``: those names are undeclared there.)
_NAMESPACES: Final = frozenset({"sets", "strings", "optional", "lists", "format", "ip"})
