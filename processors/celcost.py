"""A strict CEL parser and a static bound on what evaluating an expression can cost.

The ``cel`` package compiles and runs CEL (cel-rust 0.14) but exposes no syntax tree and no
cost estimate, so this module parses the expression itself (the grammar of cel-spec's CEL.g4,
less the optional ``.?``/``[?`` syntax, message construction, leading-dot and backquoted names),
refuses functions and syntax it does not know, and computes from the tree upper bounds on

- evaluation steps: a node, a unit of a value copied or compared, a comprehension round, a
  kilobyte of string work, a pattern compiled, each weighted by measurement (a step is at most
  ~100 ns of any single operation on the development VM; the worst accepted expressions ran at
  20-30 ns a step, see ``benchmarks/filter_worst.py``);
- the memory of the values alive at once (~28 bytes a unit of a list or map, 1 a string byte);

for the fields of an event it reads of at most ``max_event_bytes`` of JSON and a context of
``max_context_bytes``.
Sizes are in JSON bytes, so a list of N bytes has at most N/2 elements. The model follows what
cel-rust and its Python binding do: ``[x]`` and ``{k: v}`` copy their elements, a comprehension
copies each element it binds, ``map`` and ``filter`` copy their whole result on every round
(quadratic), ``matches`` compiles its pattern on every call and searches in O(states × bytes)
at worst, and every evaluation copies its variables (the binding rebuilds its environment
whenever the context changes). Each field path read has a size variable: a field is at most
its object and the fields of an object together at most the object, so two scans of two
fields cost no more than one over the whole event. A comprehension's cost is summed over its
elements as an affine function of the element's size, the sizes summing to the list's.

A field selection ``x.f`` deep-copies the field in cel-rust, an index ``x["f"]`` does not and
is otherwise the same, so the program that runs is the expression's ``index_form``. The tree
also gives the fields of ``async`` and ``event`` an expression reads (``Analysis.reads``), so
that only those are converted to CEL values (``prune``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from waitline.processors.limits import MAX_FILTER_INPUT_BYTES

__all__ = [
    "MAX_DEPTH",
    "Analysis",
    "CostLimits",
    "Estimate",
    "Reads",
    "Refused",
    "analyse",
    "index_form",
    "prune",
]

MAX_DEPTH = 100  # tree depth: the estimator recurses over it, cel-rust refuses far less


class Refused(ValueError):
    """The expression is not accepted: unknown syntax or function, or a bound over the budget."""


@dataclass(frozen=True)
class CostLimits:
    """What the inputs may weigh, and the budget an expression's worst case must fit in.

    The step budget admits one pass over a maximal event's list with a small body
    (``async.data.items.exists(i, i.sku == "x" && i.qty > 2)`` over 1 MiB: 1.45e7 steps, at
    most ~110 ms measured) and refuses whatever grows with the product of two input sizes or
    doubles a value again and again. The worst expressions it accepts took 0.35-0.45 s on
    maximal inputs (a scan's time is proportional to its list's size).
    """

    max_event_bytes: int = MAX_FILTER_INPUT_BYTES  # of the event's fields it reads
    max_context_bytes: int = MAX_FILTER_INPUT_BYTES  # of the context's fields it reads
    max_steps: float = 2.0**18
    max_bytes: float = 2.0**21  # of memory, estimated


@dataclass(frozen=True)
class Estimate:
    """Upper bounds for one evaluation: steps, and bytes of values alive at once."""

    steps: float
    bytes: float


# --- weights, in steps of ~100 ns (see the module docstring) ---------------------------------
_NODE = 1.0  # evaluating one node: measured 70-140 ns
_ITER = 9.0  # one comprehension round (condition, step, binding): 580-880 ns
_COPY = 1.2  # deep-copying one unit of a list/map/unknown value: up to 111 ns (maps)
_CMP = 0.8  # comparing one unit of a list/map/unknown value: up to 70 ns (maps)
_IN = 0.2  # `in` on a list, per element: 6-9 ns plus the comparison
_BYTE = 1 / 2048  # copying or comparing one byte of a string: 0.02-0.04 ns
_SCAN = 1 / 32  # `contains`, per byte: two-way search, up to 3.2 ns
_PARSE = 1 / 256  # int(), double(), timestamp()... per byte of the string
_CONVERT = 17.0  # converting a unit of the context from Python to CEL, per evaluation: 1.6 us
_REBUILD = 1.1  # the binding's copy of a unit of the variables, made and dropped: up to 0.1 us
_EVAL = 20.0  # fixed cost of one evaluation (binding, execute): ~2 us
_RE_COMPILE = 160.0  # compiling the empty pattern: 16 us; more by pattern weight
# Compiling a pattern takes about its weight × 100 ns where the rest of the model overestimates
# ~4x (the worst scans accepted run at ~25 ns a step): weighed 4x, no kind of expression can
# run much longer than the others under the budget.
_RE_COMPILE_RATE = 4.0
_RE_BYTE = 0.05  # matching, per byte of text: `^a+$` 2.5 ns
# And per byte and automaton state: cel-rust compiles the pattern on every call, so the lazy
# DFA starts cold each time and builds its states as the text goes; on texts of a few KiB that
# is 1-4 ns a state and byte (`a{1000}b` over 3.9 KB of `a`: 16 ms), far above the 0.042 ns it
# amortises to over a MiB (see _regex_weight).
_RE_STATE = 0.1
_MEM_UNIT = 28.0  # bytes of memory a unit of a list or map takes in cel-rust: up to 27.6

_ANY, _STR, _NUM, _LIST, _MAP = "any", "str", "num", "list", "map"
_ROOTS = ("async", "event")
_TYPE_NAMES = frozenset(
    {"int", "uint", "double", "bool", "string", "bytes", "list", "map", "null_type", "type"}
)
_COMPREHENSIONS = {"all": 2, "exists": 2, "exists_one": 2, "existsOne": 2, "filter": 2}
_TIME_GETTERS = frozenset(
    {
        "getFullYear",
        "getMonth",
        "getDate",
        "getDayOfMonth",
        "getDayOfWeek",
        "getDayOfYear",
        "getHours",
        "getMinutes",
        "getSeconds",
        "getMilliseconds",
    }
)
_GLOBALS = frozenset(
    {"size", "int", "uint", "double", "string", "bytes", "dyn", "type", "timestamp", "duration"}
)
_METHODS = frozenset({"size", "contains", "startsWith", "endsWith", "matches"}) | _TIME_GETTERS


# --- lexer -----------------------------------------------------------------------------------
class _Tok(NamedTuple):
    kind: str  # int uint double string bytes ident kw punct eof
    text: str
    value: Any
    pos: int


_SPACE = re.compile(r"(?:[ \t\r\n\f]+|//[^\n]*)+")
_NUMBER = re.compile(
    r"(?P<double>\d+\.\d+(?:[eE][+-]?\d+)?|\d+[eE][+-]?\d+|\.\d+(?:[eE][+-]?\d+)?)"
    r"|(?P<uint>(?:0x[0-9a-fA-F]+|\d+)[uU])"
    r"|(?P<int>0x[0-9a-fA-F]+|\d+)"
)
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_PUNCT = ("==", "!=", "<=", ">=", "&&", "||", *"<>!?:,.()[]{}+-*/%")
_KEYWORDS = frozenset({"in", "true", "false", "null"})
_ESCAPES = {
    "a": 7,
    "b": 8,
    "f": 12,
    "n": 10,
    "r": 13,
    "t": 9,
    "v": 11,
    '"': 34,
    "'": 39,
    "\\": 92,
    "?": 63,
    "`": 96,
}
_HEX = frozenset("0123456789abcdefABCDEF")


def _tokens(src: str) -> list[_Tok]:
    out: list[_Tok] = []
    i, n = 0, len(src)
    while True:
        space = _SPACE.match(src, i)
        if space:
            i = space.end()
        if i >= n:
            out.append(_Tok("eof", "", None, i))
            return out
        c = src[i]
        if c in "'\"" or (c in "bBrR" and _string_start(src, i)):
            kind, value, end = _string(src, i)
            out.append(_Tok(kind, src[i:end], value, i))
            i = end
            continue
        number = _NUMBER.match(src, i)
        if number and (c.isdigit() or c == "."):
            kind = number.lastgroup or "int"
            out.append(_Tok(kind, number.group(), None, i))
            i = number.end()
            continue
        ident = _IDENT.match(src, i)
        if ident:
            word = ident.group()
            out.append(_Tok("kw" if word in _KEYWORDS else "ident", word, None, i))
            i = ident.end()
            continue
        for p in _PUNCT:
            if src.startswith(p, i):
                out.append(_Tok("punct", p, None, i))
                i += len(p)
                break
        else:
            raise Refused(f"unexpected character {c!r} at {i + 1}")


def _string_start(src: str, i: int) -> bool:
    j = i + 1 if src[i] in "bB" else i
    if j < len(src) and src[j] in "rR":
        j += 1
    return j > i and j < len(src) and src[j] in "'\""


def _string(src: str, i: int) -> tuple[str, str | bytes, int]:
    """Lex one string or bytes literal at ``i``: its kind, decoded value and end."""
    start, n = i, len(src)
    is_bytes = src[i] in "bB"
    i += is_bytes
    raw = i < n and src[i] in "rR"
    i += raw
    quote = src[i] * 3 if src.startswith(src[i] * 3, i) else src[i]
    i += len(quote)
    points: list[int] = []  # code points (strings) or byte values (bytes)
    while True:
        if i >= n:
            raise Refused(f"unterminated string at {start + 1}")
        if src.startswith(quote, i):
            i += len(quote)
            break
        c = src[i]
        if len(quote) == 1 and c in "\r\n":
            raise Refused(f"line break in a single-quoted string at {i + 1}")
        if c != "\\" or raw:
            if is_bytes:
                points.extend(c.encode())
            else:
                points.append(ord(c))
            i += 1
            continue
        e = src[i + 1] if i + 1 < n else ""
        if e in _ESCAPES:
            point, width, is_byte = _ESCAPES[e], 2, True
        elif e in "0123" and len(src) >= i + 4 and all(d in "01234567" for d in src[i + 1 : i + 4]):
            point, width, is_byte = int(src[i + 1 : i + 4], 8), 4, True
        elif e in "xX" and all(d in _HEX for d in src[i + 2 : i + 4]) and i + 4 <= n:
            point, width, is_byte = int(src[i + 2 : i + 4], 16), 4, True
        elif e in "uU":
            digits = 4 if e == "u" else 8
            hexits = src[i + 2 : i + 2 + digits]
            if len(hexits) != digits or not all(d in _HEX for d in hexits):
                raise Refused(f"bad \\{e} escape at {i + 1}")
            point, width, is_byte = int(hexits, 16), 2 + digits, False  # a code point
        else:
            raise Refused(f"unknown escape \\{e} at {i + 1}")
        if is_bytes and is_byte:
            points.append(point)
        elif is_bytes:
            raise Refused(f"\\{e} escape in a bytes literal at {i + 1}")  # as cel-rust
        elif 0xD800 <= point <= 0xDFFF or point > 0x10FFFF:
            raise Refused(f"escape at {i + 1} is not a Unicode scalar value")
        else:
            points.append(point)
        i += width
    if is_bytes:
        return "bytes", bytes(points), i
    return "string", "".join(map(chr, points)), i


# --- syntax tree -----------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class _Node:
    pos: int
    depth: int = field(init=False, default=1)

    def children(self) -> Iterator[_Node]:
        return iter(())

    def __post_init__(self) -> None:
        depth = 1 + max((c.depth for c in self.children()), default=0)
        if depth > MAX_DEPTH:
            raise Refused(f"expression nested more than {MAX_DEPTH} levels deep")
        object.__setattr__(self, "depth", depth)


@dataclass(frozen=True, eq=False)
class _Lit(_Node):
    kind: str  # int uint double string bytes bool null
    value: Any = None


@dataclass(frozen=True, eq=False)
class _Ident(_Node):
    name: str


@dataclass(frozen=True, eq=False)
class _Select(_Node):
    target: _Node
    name: str
    span: tuple[int, int] = (0, 0)  # of `.name` in the source

    def children(self) -> Iterator[_Node]:
        yield self.target


@dataclass(frozen=True, eq=False)
class _Has(_Node):
    target: _Node
    name: str

    def children(self) -> Iterator[_Node]:
        yield self.target


@dataclass(frozen=True, eq=False)
class _Index(_Node):
    target: _Node
    index: _Node

    def children(self) -> Iterator[_Node]:
        yield self.target
        yield self.index


@dataclass(frozen=True, eq=False)
class _Call(_Node):
    name: str
    target: _Node | None
    args: tuple[_Node, ...]

    def children(self) -> Iterator[_Node]:
        if self.target is not None:
            yield self.target
        yield from self.args


@dataclass(frozen=True, eq=False)
class _Comp(_Node):
    macro: str  # all exists exists_one map filter
    range: _Node
    var: str
    args: tuple[_Node, ...]  # (predicate) or (transform) or (filter, transform)

    def children(self) -> Iterator[_Node]:
        yield self.range
        yield from self.args


@dataclass(frozen=True, eq=False)
class _List(_Node):
    elems: tuple[_Node, ...]

    def children(self) -> Iterator[_Node]:
        yield from self.elems


@dataclass(frozen=True, eq=False)
class _Map(_Node):
    entries: tuple[tuple[_Node, _Node], ...]

    def children(self) -> Iterator[_Node]:
        for key, value in self.entries:
            yield key
            yield value


@dataclass(frozen=True, eq=False)
class _Unary(_Node):
    op: str  # ! or -
    count: int
    operand: _Node

    def children(self) -> Iterator[_Node]:
        yield self.operand


@dataclass(frozen=True, eq=False)
class _Chain(_Node):
    """Left-associative binary operators of one precedence level: ``a op1 b op2 c ...``."""

    ops: tuple[str, ...]
    operands: tuple[_Node, ...]

    def children(self) -> Iterator[_Node]:
        yield from self.operands


@dataclass(frozen=True, eq=False)
class _Cond(_Node):
    cond: _Node
    then: _Node
    other: _Node

    def children(self) -> Iterator[_Node]:
        yield self.cond
        yield self.then
        yield self.other


# --- parser ----------------------------------------------------------------------------------
_RELATIONS = ("<", "<=", ">=", ">", "==", "!=", "in")
_NESTING = 32  # parenthesised levels; each is ~9 Python frames of the parser


class _Parser:
    def __init__(self, src: str) -> None:
        self.toks = _tokens(src)
        self.i = 0
        self.nesting = 0

    @property
    def tok(self) -> _Tok:
        return self.toks[self.i]

    def at(self, *texts: str) -> bool:
        return self.tok.kind in ("punct", "kw") and self.tok.text in texts

    def take(self) -> _Tok:
        tok = self.tok
        self.i += 1
        return tok

    def expect(self, text: str) -> _Tok:
        if not self.at(text):
            raise self.error(f"expected {text!r}")
        return self.take()

    def error(self, what: str) -> Refused:
        tok = self.tok
        found = "the end" if tok.kind == "eof" else repr(tok.text)
        return Refused(f"{what} at {tok.pos + 1}, found {found}")

    def parse(self) -> _Node:
        node = self.expr()
        if self.tok.kind != "eof":
            raise self.error("expected the end of the expression")
        return node

    def expr(self) -> _Node:
        self.nesting += 1
        if self.nesting > _NESTING:
            raise self.error(f"expression nested more than {_NESTING} levels deep")
        cond = self.chain(0)
        if self.at("?"):
            self.take()
            then = self.chain(0)
            self.expect(":")
            other = self.expr()
            cond = _Cond(cond.pos, cond, then, other)
        self.nesting -= 1
        return cond

    _LEVELS: tuple[tuple[str, ...], ...] = (
        ("||",),
        ("&&",),
        _RELATIONS,
        ("+", "-"),
        ("*", "/", "%"),
    )

    def chain(self, level: int) -> _Node:
        if level == len(self._LEVELS):
            return self.unary()
        operands = [self.chain(level + 1)]
        ops: list[str] = []
        while self.at(*self._LEVELS[level]):
            ops.append(self.take().text)
            operands.append(self.chain(level + 1))
        if not ops:
            return operands[0]
        return _Chain(operands[0].pos, tuple(ops), tuple(operands))

    def unary(self) -> _Node:
        pos = self.tok.pos
        if self.at("!", "-"):
            op = self.tok.text
            count = 0
            while self.at(op):
                self.take()
                count += 1
            if op == "-" and self.tok.kind in ("int", "double"):
                count -= 1  # the last minus is the literal's sign (CEL.g4 `literal`)
                literal = self.take()
                operand = self.member(_Lit(literal.pos, literal.kind))
            else:
                operand = self.member(self.primary())
            return _Unary(pos, op, count, operand) if count else operand
        return self.member(self.primary())

    def member(self, node: _Node) -> _Node:
        while True:
            if self.at("."):
                dot = self.take().pos
                if self.at("?"):
                    raise self.error("optional field selection `.?` is not supported")
                if self.tok.kind != "ident":
                    raise self.error("expected a field name")
                ident = self.take()
                name = ident.text
                if self.at("("):
                    node = self.method(node, name)
                else:
                    node = _Select(node.pos, node, name, (dot, ident.pos + len(name)))
            elif self.at("["):
                self.take()
                if self.at("?"):
                    raise self.error("optional index `[?` is not supported")
                index = self.expr()
                self.expect("]")
                node = _Index(node.pos, node, index)
            else:
                return node

    def arguments(self) -> list[_Node]:
        self.expect("(")
        args: list[_Node] = []
        if not self.at(")"):
            args.append(self.expr())
            while self.at(","):
                self.take()
                args.append(self.expr())
        self.expect(")")
        return args

    def method(self, target: _Node, name: str) -> _Node:
        pos = self.tok.pos
        args = self.arguments()
        arity = _COMPREHENSIONS.get(name)
        if arity is not None or name == "map":
            if not (len(args) == arity or (name == "map" and len(args) in (2, 3))):
                raise Refused(f"`{name}` takes {arity or '2 or 3'} arguments, at {pos + 1}")
            var = args[0]
            if not isinstance(var, _Ident):
                raise Refused(f"the first argument of `{name}` must be a name, at {pos + 1}")
            macro = "exists_one" if name == "existsOne" else name
            return _Comp(target.pos, macro, target, var.name, tuple(args[1:]))
        if name not in _METHODS:
            raise Refused(f"unknown function `.{name}()` at {pos + 1}")
        arity = 0 if name in _TIME_GETTERS or name == "size" else 1
        if len(args) != arity:
            raise Refused(f"`.{name}()` takes {arity} argument{'s' * (arity != 1)}, at {pos + 1}")
        return _Call(target.pos, name, target, tuple(args))

    def primary(self) -> _Node:
        tok = self.tok
        if tok.kind == "ident":
            self.take()
            if self.at("("):
                args = self.arguments()
                if tok.text == "has":
                    if len(args) != 1 or not isinstance(args[0], _Select):
                        raise Refused(f"has() takes one field selection, at {tok.pos + 1}")
                    return _Has(tok.pos, args[0].target, args[0].name)
                if tok.text not in _GLOBALS:
                    raise Refused(f"unknown function `{tok.text}()` at {tok.pos + 1}")
                if len(args) != 1:
                    raise Refused(f"`{tok.text}()` takes 1 argument, at {tok.pos + 1}")
                return _Call(tok.pos, tok.text, None, tuple(args))
            if self.at("{"):
                raise self.error("message construction is not supported")
            return _Ident(tok.pos, tok.text)
        if tok.kind in ("int", "uint", "double"):
            self.take()
            return _Lit(tok.pos, tok.kind)
        if tok.kind in ("string", "bytes"):
            self.take()
            return _Lit(tok.pos, tok.kind, tok.value)
        if tok.kind == "kw" and tok.text != "in":
            self.take()
            return _Lit(tok.pos, "null" if tok.text == "null" else "bool")
        if self.at("("):
            self.take()
            node = self.expr()
            self.expect(")")
            return node
        if self.at("["):
            self.take()
            elems: list[_Node] = []
            while not self.at("]"):
                if self.at("?"):
                    raise self.error("optional list elements are not supported")
                elems.append(self.expr())
                if not self.at("]"):
                    self.expect(",")
            self.take()
            return _List(tok.pos, tuple(elems))
        if self.at("{"):
            self.take()
            entries: list[tuple[_Node, _Node]] = []
            while not self.at("}"):
                if self.at("?"):
                    raise self.error("optional map entries are not supported")
                key = self.expr()
                self.expect(":")
                entries.append((key, self.expr()))
                if not self.at("}"):
                    self.expect(",")
            self.take()
            return _Map(tok.pos, tuple(entries))
        if self.at("."):
            raise self.error("a leading `.` is not supported")
        raise self.error("expected a value")


# --- affine bounds ---------------------------------------------------------------------------
class _Aff:
    """``c + Σ t[v]·|v|``: a bound in the sizes |v| of the enclosing comprehension variables.

    Every coefficient is non-negative, so a componentwise maximum is an upper bound of both.
    """

    __slots__ = ("c", "t")

    def __init__(self, c: float = 0.0, t: Mapping[int, float] | None = None) -> None:
        self.c = c
        self.t: dict[int, float] = {v: k for v, k in (t or {}).items() if k}

    @staticmethod
    def var(v: int) -> _Aff:
        return _Aff(0.0, {v: 1.0})

    def __add__(self, other: _Aff | float) -> _Aff:
        if not isinstance(other, _Aff):
            return _Aff(self.c + other, self.t)
        t = dict(self.t)
        for v, k in other.t.items():
            t[v] = t.get(v, 0.0) + k
        return _Aff(self.c + other.c, t)

    __radd__ = __add__

    def __mul__(self, k: float) -> _Aff:
        return _Aff(_times(self.c, k), {v: _times(c, k) for v, c in self.t.items()})

    __rmul__ = __mul__

    def max(self, other: _Aff) -> _Aff:
        t = dict(self.t)
        for v, k in other.t.items():
            t[v] = max(t.get(v, 0.0), k)
        return _Aff(max(self.c, other.c), t)

    def top(self, maxes: Mapping[int, float]) -> float:
        """The bound with every variable at its largest size."""
        return self.c + sum(_times(k, maxes[v]) for v, k in self.t.items())

    def without(self, v: int, maxes: Mapping[int, float]) -> _Aff:
        """The bound with variable ``v`` at its largest size."""
        if v not in self.t:
            return self
        t = dict(self.t)
        k = t.pop(v)
        return _Aff(self.c + _times(k, maxes[v]), t)


def _times(a: float, b: float) -> float:
    return 0.0 if a == 0 or b == 0 else a * b


def _product(a: _Aff, b: _Aff, maxes: Mapping[int, float]) -> _Aff:
    """An affine upper bound of a·b: one factor is taken at its largest when both vary."""
    if not a.t:
        return b * a.c
    if not b.t:
        return a * b.c
    return a * b.top(maxes)


def _sum_over(f: _Aff, v: int, count: _Aff, total: _Aff, maxes: Mapping[int, float]) -> _Aff:
    """Σ f(x_i) over at most ``count`` elements whose sizes |x_i| sum to at most ``total``."""
    k = f.t.get(v, 0.0)
    rest = _Aff(f.c, {u: c for u, c in f.t.items() if u != v})
    return _product(count, rest, maxes) + total * k


@dataclass(frozen=True)
class _V:
    """What is known of a value: size, element count, kind, element bound (None: like itself)."""

    size: _Aff
    items: _Aff
    kind: str = _ANY
    elem: _V | None = None
    alloc: bool = True  # a value the evaluation made (False: borrowed from the inputs)

    def element(self) -> _V:
        if self.elem is not None:
            return self.elem
        return _V(self.size, self.items, _ANY, None, False)

    def without(self, v: int, maxes: Mapping[int, float]) -> _V:
        elem = None if self.elem is None else self.elem.without(v, maxes)
        return _V(
            self.size.without(v, maxes), self.items.without(v, maxes), self.kind, elem, self.alloc
        )


def _join(a: _V, b: _V) -> _V:
    elem = None if a.elem is None and b.elem is None else _join(a.element(), b.element())
    kind = a.kind if a.kind == b.kind else _ANY
    return _V(a.size.max(b.size), a.items.max(b.items), kind, elem, a.alloc or b.alloc)


_SCALAR = _V(_Aff(1.0), _Aff(), _NUM)


def _copy(v: _V) -> _Aff:
    if v.kind == _NUM:
        return _Aff(1.0)
    if v.kind == _STR:
        return v.size * _BYTE + 1.0
    return v.size * _COPY + 1.0


def _compare(v: _V) -> _Aff:
    if v.kind == _NUM:
        return _Aff(1.0)
    if v.kind == _STR:
        return v.size * _BYTE + 1.0
    return v.size * _CMP + 1.0


def _memory(v: _V) -> _Aff:
    """Bytes of memory a value takes: a string its bytes, anything else ~28 a unit (measured)."""
    return v.size * (1.0 if v.kind == _STR else _MEM_UNIT)


class _R(NamedTuple):
    v: _V
    steps: _Aff
    peak: _Aff  # bytes of memory alive at once while evaluating, the result included


def _seq(parts: list[_R], result: _V, own: _Aff) -> _R:
    """A node that evaluates ``parts`` in order, keeps their results, then makes ``result``."""
    steps = own
    peak = _Aff()
    held = _Aff()
    for part in parts:
        steps = steps + part.steps
        peak = peak.max(held + part.peak)
        if part.v.alloc:
            held = held + _memory(part.v)
    if result.alloc:
        held = held + _memory(result)
    return _R(result, steps, peak.max(held))


class _Estimator:
    def __init__(self, limits: CostLimits) -> None:
        # A dumped event may carry a little more than its record (a stamped timestamp, nulls).
        record = float(limits.max_event_bytes + 1024)
        context = float(limits.max_context_bytes)
        self.roots = {
            "async": _V(_Aff(record), _Aff(record / 2), _ANY, None, False),
            "event": _V(_Aff(context), _Aff(context / 2), _ANY, None, False),
        }
        self.caps = {"async": record, "event": context}
        self.maxes: dict[int, float] = {}  # the largest size of each variable
        self.paths: dict[tuple[str, ...], int] = {}  # the variable of each input path read

    def est(self, node: _Node, scope: Mapping[str, _V]) -> _R:
        path = _path(node, frozenset(r for r in _ROOTS if scope.get(r) is not self.roots[r]))
        if path is not None:
            return self._input(path)
        method = getattr(self, "_" + type(node).__name__.strip("_").lower())
        result: _R = method(node, scope)
        return result

    def _input(self, path: tuple[str, ...]) -> _R:
        """A field of an input, sized by a variable of its own (see ``top``)."""
        var = self.paths.get(path)
        if var is None:
            var = self.paths[path] = len(self.maxes)
            self.maxes[var] = self.caps[path[0]]
        size = _Aff.var(var)
        steps = 2 * _NODE * len(path) + sum(map(len, path[1:])) * _BYTE
        return _R(_V(size, size * 0.5, _ANY, None, False), _Aff(steps), _Aff())

    def top(self, bound: _Aff) -> float:
        """The largest value of ``bound`` over what the inputs may hold.

        Each input path has a size variable. A field is at most its object, and the fields of
        an object together at most the object, so Σ c·|path| is largest with every path of one
        chain (a path, its parent, its parent's parent...) at the input's cap: the bound is the
        cap times the largest sum of coefficients down a chain.
        """
        children: dict[tuple[str, ...], set[tuple[str, ...]]] = {}
        for path in self.paths:
            for cut in range(2, len(path) + 1):
                children.setdefault(path[: cut - 1], set()).add(path[:cut])

        def chain(path: tuple[str, ...]) -> float:
            own = bound.t.get(self.paths[path], 0.0) if path in self.paths else 0.0
            return own + max(map(chain, children.get(path, ())), default=0.0)

        leftover = set(bound.t) - set(self.paths.values())
        assert not leftover, f"comprehension variables left in a bound: {leftover}"
        return bound.c + sum(_times(chain((r,)), cap) for r, cap in self.caps.items())

    def _lit(self, node: _Lit, scope: Mapping[str, _V]) -> _R:
        if node.kind in ("string", "bytes"):
            raw = node.value.encode() if isinstance(node.value, str) else node.value
            v = _V(_Aff(len(raw) + 2.0), _Aff(), _STR)
            return _R(v, _Aff(_NODE), _memory(v))
        return _R(_SCALAR, _Aff(_NODE), _memory(_SCALAR))

    def _ident(self, node: _Ident, scope: Mapping[str, _V]) -> _R:
        v = scope.get(node.name)
        if v is None:
            if node.name not in _TYPE_NAMES:
                raise Refused(f"unknown name `{node.name}` at {node.pos + 1}")
            v = _SCALAR
        return _R(v, _Aff(_NODE), _memory(v) if v.alloc else _Aff())

    def _select(self, node: _Select, scope: Mapping[str, _V]) -> _R:
        # Evaluated as an index (see `index_form`): the field is borrowed, not copied.
        target = self.est(node.target, scope)
        elem = target.v.element()
        own = _Aff(2 * _NODE + len(node.name) * _BYTE)
        if target.v.alloc:  # out of a value made here: copied before that value goes
            elem = _V(elem.size, elem.items, elem.kind, elem.elem, True)
            own = own + _copy(elem)
        return _seq([target], elem, own)

    def _has(self, node: _Has, scope: Mapping[str, _V]) -> _R:
        return _seq([self.est(node.target, scope)], _SCALAR, _Aff(_NODE))

    def _index(self, node: _Index, scope: Mapping[str, _V]) -> _R:
        target = self.est(node.target, scope)
        index = self.est(node.index, scope)
        elem = target.v.element()
        own = _compare(index.v) + _NODE
        if target.v.alloc:  # out of a value made here: copied before that value goes
            elem = _V(elem.size, elem.items, elem.kind, elem.elem, True)
            own = own + _copy(elem)
        return _seq([target, index], elem, own)

    def _unary(self, node: _Unary, scope: Mapping[str, _V]) -> _R:
        return _seq([self.est(node.operand, scope)], _SCALAR, _Aff(_NODE * node.count))

    def _cond(self, node: _Cond, scope: Mapping[str, _V]) -> _R:
        cond = self.est(node.cond, scope)
        then = self.est(node.then, scope)
        other = self.est(node.other, scope)
        v = _join(then.v, other.v)
        held = _memory(cond.v) if cond.v.alloc else _Aff()
        return _R(
            v,
            cond.steps + then.steps.max(other.steps) + _NODE,
            cond.peak.max(held + then.peak.max(other.peak)),
        )

    def _list(self, node: _List, scope: Mapping[str, _V]) -> _R:
        parts = [self.est(e, scope) for e in node.elems]
        size = _Aff(1.0)
        own = _Aff(_NODE)
        elem: _V | None = None
        for part in parts:
            size = size + part.v.size + 1.0
            own = own + _copy(part.v)
            elem = part.v if elem is None else _join(elem, part.v)
        v = _V(size, _Aff(float(len(parts))), _LIST, elem)
        return _seq(parts, v, own)

    def _map(self, node: _Map, scope: Mapping[str, _V]) -> _R:
        parts: list[_R] = []
        size = _Aff(1.0)
        own = _Aff(_NODE)
        elem: _V | None = None
        for key, value in node.entries:
            for part in (self.est(key, scope), self.est(value, scope)):
                parts.append(part)
                size = size + part.v.size + 1.0
                own = own + _copy(part.v) + _compare(part.v)
                elem = part.v if elem is None else _join(elem, part.v)
        v = _V(size, _Aff(float(len(node.entries))), _MAP, elem)
        return _seq(parts, v, own)

    def _chain(self, node: _Chain, scope: Mapping[str, _V]) -> _R:
        acc = self.est(node.operands[0], scope)
        for op, operand in zip(node.ops, node.operands[1:], strict=True):
            rhs = self.est(operand, scope)
            v, own = self._binary(op, acc.v, rhs.v)
            acc = _seq([acc, rhs], v, own + _NODE)
        return acc

    def _binary(self, op: str, a: _V, b: _V) -> tuple[_V, _Aff]:
        maxes = self.maxes
        if op in ("&&", "||", "-", "*", "/", "%"):
            return _SCALAR, _Aff()
        if op in ("==", "!=", "<", "<=", ">", ">="):
            # A comparison stops at the shorter operand's end, so either operand bounds it:
            # a fixed one if smaller, else preferably one sized by the innermost comprehension
            # variable (its sum over the elements is at most the list, not elements × list).
            ca, cb = _compare(a), _compare(b)
            if ca.t and cb.t:
                inner_a, inner_b = self._innermost(ca), self._innermost(cb)
                if inner_a != inner_b:
                    return _SCALAR, ca if inner_a > inner_b else cb
            return _SCALAR, ca if ca.top(maxes) <= cb.top(maxes) else cb
        if op == "in":
            if b.kind == _MAP:
                return _SCALAR, _compare(a)
            # Each comparison stops at the element's end: together at most the list's size.
            per_unit = (
                _BYTE if b.element().kind in (_STR, _NUM) and a.kind in (_STR, _NUM) else _CMP
            )
            return _SCALAR, b.items * _IN + b.size * per_unit + 1.0
        # `+`: numbers, strings and bytes, lists (or an unknown mix, which must be one of them).
        if _NUM in (a.kind, b.kind):  # then both are numbers, or times, or it fails
            return _SCALAR, _Aff()
        kinds = {a.kind, b.kind}
        kind = _STR if _STR in kinds else _LIST if _LIST in kinds else _ANY
        v = _V(a.size + b.size, a.items + b.items, kind, _join(a.element(), b.element()))
        if kind == _STR:
            return v, (a.size + b.size) * _BYTE
        return v, _copy(_V(a.size, a.items, kind)) + _copy(_V(b.size, b.items, kind))

    def _innermost(self, bound: _Aff) -> int:
        """The innermost comprehension variable ``bound`` depends on (-1: none)."""
        inputs = set(self.paths.values())
        return max((v for v in bound.t if v not in inputs), default=-1)

    def _call(self, node: _Call, scope: Mapping[str, _V]) -> _R:
        parts = [
            self.est(a, scope) for a in ((node.target, *node.args) if node.target else node.args)
        ]
        x = parts[0].v
        name = node.name
        own = _Aff(_NODE)
        result = _SCALAR
        if name == "contains":
            own = own + (x.size + parts[1].v.size) * _SCAN
        elif name in ("startsWith", "endsWith"):
            own = own + parts[1].v.size * _SCAN
        elif name == "matches":
            pattern = node.args[0]
            if not (isinstance(pattern, _Lit) and isinstance(pattern.value, str)):
                raise Refused(
                    f"the pattern of matches() must be a string literal, at {node.pos + 1}"
                )
            weight = _regex_weight(pattern.value)
            compiling = (_RE_COMPILE + weight.compile) * _RE_COMPILE_RATE
            own = own + compiling + x.size * (_RE_BYTE + _RE_STATE * weight.states)
        elif name in ("int", "uint", "double", "timestamp", "duration"):
            own = own + x.size * _PARSE
        elif name == "string":
            own = own + x.size * (2 * _BYTE)
            result = _V(x.size + 40.0, _Aff(), _STR)  # a number prints in under 40 bytes
        elif name == "bytes":
            own = own + x.size * _BYTE
            result = _V(x.size, _Aff(), _STR)
        elif name == "dyn":
            result = x
        return _seq(parts, result, own)

    def _comp(self, node: _Comp, scope: Mapping[str, _V]) -> _R:
        rng = self.est(node.range, scope)
        elem = rng.v.element()
        var = len(self.maxes)
        self.maxes[var] = elem.size.top(self.maxes)
        x = _V(_Aff.var(var), _Aff.var(var) * 0.5, elem.kind, None, False)
        bodies = [self.est(arg, {**scope, node.var: x}) for arg in node.args]
        count, total, maxes = rng.v.items, rng.v.size, self.maxes
        per_round = _copy(x) + _ITER  # cel-rust copies each element into the variable
        peak = _memory(x)
        for body in bodies:
            per_round = per_round + body.steps
            peak = peak + body.peak
        out = _SCALAR
        held = _Aff()
        if node.macro in ("map", "filter"):
            # `@result + [item]`: copies the item, then the whole result so far, every round.
            item = bodies[-1].v if node.macro == "map" else x
            per_round = per_round + _copy(item) + 3 * _NODE
            size = _Aff(1.0) + _sum_over(item.size + 1.0, var, count, total, maxes)
            out_elem = item.without(var, maxes) if node.macro == "map" else elem
            out = _V(size, count, _LIST, out_elem)
            held = _memory(out) * 2.0
        steps = _sum_over(per_round, var, count, total, maxes)
        if node.macro in ("map", "filter"):
            steps = steps + _product(count, _copy(_V(out.size, count, _LIST)), maxes)
        range_held = _memory(rng.v) if rng.v.alloc else _Aff()
        return _R(
            out,
            rng.steps + steps + _NODE,
            rng.peak.max(range_held + held + peak.without(var, maxes)),
        )


# --- regular expressions ---------------------------------------------------------------------
# Rust's regex compiles a pattern into automata; cel-rust compiles it on every call. A pattern
# is weighed as (compile steps, states). Compiling costs the first: a literal ~0.1 us, `.` up
# to 53 us, \d 90, \w 490, \p{L} 430. Matching costs per text byte _RE_BYTE plus _RE_STATE a
# state: a lazy DFA is fast, but where it gives up (large Unicode classes repeated) the search
# is O(states × bytes): `\w{100}b` on 1 MiB of `a` takes 2.5 s, `a{1000}b` 42 ns a byte.
class _W(NamedTuple):
    compile: float
    states: float

    def __add__(self, other: tuple[Any, ...]) -> _W:
        assert isinstance(other, _W)
        return _W(self.compile + other.compile, self.states + other.states)

    def times(self, k: float) -> _W:
        return _W(self.compile * k, self.states * k)


_RE_CLASSES = {
    "d": _W(900.0, 60.0),
    "D": _W(1000.0, 60.0),
    "w": _W(5000.0, 600.0),
    "W": _W(5000.0, 600.0),
    "s": _W(600.0, 20.0),
    "S": _W(600.0, 20.0),
}
_RE_PROPERTY = _W(6000.0, 600.0)  # \pL, \p{Greek}...
_RE_DOT = _W(600.0, 4.0)
_RE_NEGATED = _W(600.0, 20.0)  # [^...]
_RE_LITERAL = _W(1.0, 1.0)
_RE_CASELESS = _W(50.0, 3.0)  # a literal under (?i): up to 4.4 us (`k` folds to three)
_RE_ANCHOR = _W(1.0, 10.0)  # ^ $ \A \z \b \B
_RE_MAX_REPEAT = 1000
_RE_META = frozenset("\\.+*?()|[]{}^$#&-~")
_ZERO = _W(0.0, 0.0)


class _Regex:
    """Rust regex syntax, the subset filters use; anything else is refused."""

    def __init__(self, pattern: str) -> None:
        self.p = pattern
        self.i = 0
        self.caseless = [False]

    def refuse(self, what: str) -> Refused:
        return Refused(f"regular expression {self.p!r}: {what} at {self.i + 1}")

    def peek(self) -> str:
        return self.p[self.i] if self.i < len(self.p) else ""

    def alternation(self) -> _W:
        weight = self.sequence()
        while self.peek() == "|":
            self.i += 1
            weight = weight + self.sequence()
        return weight

    def sequence(self) -> _W:
        weight = _ZERO
        while self.peek() not in ("", "|", ")"):
            weight = weight + self.repeat(self.atom())
        return weight

    def repeat(self, weight: _W) -> _W:
        c = self.peek()
        if c in ("*", "+", "?"):
            self.i += 1
            weight = weight.times(2) + _RE_LITERAL
        elif c == "{":
            m = re.compile(r"\{(\d+)(,(\d*))?\}").match(self.p, self.i)
            if not m:
                raise self.refuse("a `{` that is not a repetition")
            low, high = int(m.group(1)), m.group(3)
            most = low + 1 if m.group(2) and not high else int(high or low)
            if most > _RE_MAX_REPEAT:
                raise self.refuse(f"a repetition over {_RE_MAX_REPEAT}")
            self.i = m.end()
            weight = weight.times(max(most, 1)) + _RE_LITERAL
        else:
            return weight
        if self.peek() == "?":
            self.i += 1  # lazy
        if self.peek() in ("*", "+", "?", "{"):
            raise self.refuse("a repeated repetition")
        return weight

    def atom(self) -> _W:
        c = self.peek()
        self.i += 1
        if c == "(":
            return self.group()
        if c == "[":
            return self.klass()
        if c == ".":
            return _RE_DOT
        if c in ("^", "$"):
            return _RE_ANCHOR
        if c == "\\":
            return self.escape(in_class=False)
        if c in "*+?{)]}":
            self.i -= 1
            raise self.refuse(f"a misplaced {c!r}")
        return self.literal()

    def literal(self) -> _W:
        return _RE_CASELESS if self.caseless[-1] else _RE_LITERAL

    def flags(self, text: str) -> None:
        on = True
        for f in text:
            if f == "-":
                on = False
            elif f == "i":
                self.caseless[-1] = on
            elif f not in "msUu":
                raise self.refuse(f"the flag {f!r}")

    def group(self) -> _W:
        self.caseless.append(self.caseless[-1])
        if self.peek() == "?":
            m = re.compile(r"\?(?:P?<[A-Za-z_][A-Za-z0-9_]*>|([A-Za-z-]*)(:|\)))").match(
                self.p, self.i
            )
            if not m:
                raise self.refuse("an unknown group syntax")
            self.i = m.end()
            if m.group(2) == ")":  # (?flags) applies to the rest of the enclosing group
                self.caseless.pop()
                self.flags(m.group(1))
                return _RE_LITERAL
            if m.group(1):
                self.flags(m.group(1))
        weight = self.alternation()
        if self.peek() != ")":
            raise self.refuse("an unclosed group")
        self.i += 1
        self.caseless.pop()
        return weight + _RE_LITERAL

    def escape(self, in_class: bool) -> _W:
        c = self.peek()
        self.i += 1
        if c in _RE_META or c in "ntrfva":
            return self.literal()
        if c == "x":
            m = re.compile(r"[0-9a-fA-F]{2}|\{[0-9a-fA-F]{1,6}\}").match(self.p, self.i)
            if not m:
                raise self.refuse("a bad \\x escape")
            self.i = m.end()
            return self.literal()
        if c in _RE_CLASSES:
            return _RE_CLASSES[c].times(3 if self.caseless[-1] else 1)
        if c in "pP":
            m = re.compile(r"[A-Za-z]|\{[A-Za-z_ =!:-]+\}").match(self.p, self.i)
            if not m:
                raise self.refuse("a bad Unicode class")
            self.i = m.end()
            return _RE_PROPERTY
        if c in "bBAz" and not in_class:
            return _RE_ANCHOR
        self.i -= 1
        raise self.refuse(f"the escape \\{c}")

    def klass(self) -> _W:
        weight = _W(5.0, 1.0)
        if self.peek() == "^":
            self.i += 1
            weight = weight + _RE_NEGATED
        first = True
        while True:
            c = self.peek()
            if c == "":
                raise self.refuse("an unclosed class")
            if c == "]" and not first:
                self.i += 1
                break
            first = False
            if self.p.startswith("[:", self.i):
                m = re.compile(r"\[:\^?[a-z]+:\]").match(self.p, self.i)
                if not m:
                    raise self.refuse("a bad ASCII class")
                self.i = m.end()
                weight = weight + _W(4.0, 1.0)
                continue
            if c == "[" or self.p.startswith(("&&", "--", "~~"), self.i):
                raise self.refuse("a nested class or class operation")
            self.i += 1
            weight = weight + (self.escape(in_class=True) if c == "\\" else _RE_LITERAL)
            if self.peek() == "-" and self.p[self.i + 1 : self.i + 2] not in ("]", ""):
                self.i += 2  # a range: its end costs what its start did
                if self.p[self.i - 1] == "\\":
                    weight = weight + self.escape(in_class=True)
        return weight.times(3) if self.caseless[-1] else weight


def _regex_weight(pattern: str) -> _W:
    """What compiling ``pattern`` costs in steps, and its automaton's states."""
    parser = _Regex(pattern)
    weight = parser.alternation()
    if parser.i != len(pattern):
        raise parser.refuse("an unmatched `)`")
    return weight


# --- what an expression reads ----------------------------------------------------------------
@dataclass
class Reads:
    """The part of one input an expression reads: all of it, or some fields (a trie)."""

    whole: bool = False
    present: bool = False  # only whether it exists (`has`)
    fields: dict[str, Reads] = field(default_factory=dict)

    def add(self, path: tuple[str, ...], whole: bool) -> None:
        node = self
        for key in path:
            node = node.fields.setdefault(key, Reads())
        if whole:
            node.whole = True
        else:
            node.present = True

    def key(self) -> object:
        """A hashable form, equal for equal read sets."""
        if self.whole:
            return True
        return tuple(sorted((k, v.key()) for k, v in self.fields.items()))


def _path(node: _Node, scope: frozenset[str]) -> tuple[str, ...] | None:
    """``(root, field, ...)`` when ``node`` is a root input followed by field selections."""
    keys: list[str] = []
    while True:
        if isinstance(node, _Select):
            keys.append(node.name)
            node = node.target
        elif (
            isinstance(node, _Index)
            and isinstance(node.index, _Lit)
            and node.index.kind == "string"
        ):
            keys.append(node.index.value)
            node = node.target
        elif isinstance(node, _Ident) and node.name in _ROOTS and node.name not in scope:
            return (node.name, *reversed(keys))
        else:
            return None


def _collect(node: _Node, scope: frozenset[str], out: dict[str, Reads]) -> None:
    path = _path(node, scope)
    if path is not None:
        out[path[0]].add(path[1:], whole=True)
        return
    if isinstance(node, _Has):
        target = _path(node.target, scope)
        if target is not None:
            out[target[0]].add((*target[1:], node.name), whole=False)
            return
    if isinstance(node, _Comp):
        _collect(node.range, scope, out)
        for arg in node.args:
            _collect(arg, scope | {node.var}, out)
        return
    for child in node.children():
        _collect(child, scope, out)


def prune(value: Any, reads: Reads) -> Any:
    """The part of ``value`` an expression reads; it evaluates the same on it as on ``value``.

    A field read only by ``has()`` keeps its key with a null value. A value that is not an
    object is kept whole, so that reading a field of it fails as it would have.
    """
    if reads.whole or not isinstance(value, dict):
        return value
    out: dict[str, Any] = {}
    for key, sub in reads.fields.items():
        if key in value:
            out[key] = prune(value[key], sub) if sub.whole or sub.fields else None
    return out


# --- what runs ------------------------------------------------------------------------------
def _selects(node: _Node) -> Iterator[_Select]:
    if isinstance(node, _Select):
        yield node
    for child in node.children():
        yield from _selects(child)


def index_form(source: str, tree: _Node) -> str:
    """``source`` with every field selection ``x.f`` written ``x["f"]`` (``has()`` aside).

    On a map the two read the same key and both fail when it is missing; on anything else both
    fail. cel-rust 0.14 deep-copies a selected field (a 1 MiB list: 40-110 ms) but lends an
    indexed one, so the index form does the same in less time and memory.
    """
    out: list[str] = []
    at = 0
    for select in sorted(_selects(tree), key=lambda s: s.span):
        start, end = select.span
        out.append(source[at:start])
        out.append(f'["{select.name}"]')
        at = end
    out.append(source[at:])
    return "".join(out)


def _whole_reads(reads: Mapping[str, Reads]) -> Iterator[tuple[str, ...]]:
    """The outermost paths read whole: ``prune`` keeps them, and little else."""
    stack: list[tuple[tuple[str, ...], Reads]] = [((root,), node) for root, node in reads.items()]
    while stack:
        path, node = stack.pop()
        if node.whole:
            yield path
        else:
            stack.extend(((*path, key), sub) for key, sub in node.fields.items())


# --- entry point -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Analysis:
    estimate: Estimate
    reads: dict[str, Reads]  # by root: "async", "event"
    runs: str  # the source to compile and run: `index_form`


def analyse(source: str, limits: CostLimits | None = None) -> Analysis:
    """Parse ``source``, bound its cost and find what it reads; raise Refused over the budget."""
    limits = limits or CostLimits()
    tree = _Parser(source).parse()
    reads = {root: Reads() for root in _ROOTS}
    _collect(tree, frozenset(), reads)
    estimator = _Estimator(limits)
    result = estimator.est(tree, estimator.roots)
    # Every evaluation converts the context's fields it reads to CEL values, and the binding
    # copies what it was given (those and the event's fields) into a new environment.
    fixed = _Aff(_EVAL)
    held = _Aff()
    for path in _whole_reads(reads):
        var = estimator.paths.get(path)
        size = _Aff(estimator.caps[path[0]]) if var is None else _Aff.var(var)
        fixed = fixed + size * (_REBUILD + (_CONVERT if path[0] == "event" else 0.0))
        held = held + size * _MEM_UNIT
    steps = estimator.top(result.steps + fixed)
    memory = estimator.top(result.peak + held)
    over = []
    if not steps <= limits.max_steps:
        over.append(f"{_figure(steps)} steps (budget {_figure(limits.max_steps)})")
    if not memory <= limits.max_bytes:
        over.append(f"{_figure(memory)} bytes of values (budget {_kib(limits.max_bytes)})")
    if over:
        raise Refused(
            f"too costly with an event of {_kib(limits.max_event_bytes)} and a context of "
            f"{_kib(limits.max_context_bytes)}: up to {' and '.join(over)}"
        )
    return Analysis(Estimate(steps, memory), reads, index_form(source, tree))


def _figure(x: float) -> str:
    return "more than 1e300" if not math.isfinite(x) or x > 1e300 else f"{x:.2g}"


def _kib(n: float) -> str:
    return f"{n / 1048576:g} MiB" if n >= 1048576 else f"{n / 1024:g} KiB"
