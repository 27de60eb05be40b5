"""The CEL parser and cost bound of `if` expressions (processors.celcost)."""

from __future__ import annotations

import json
import math
import os
import re
from typing import Any

import cel
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from waitline.processors.celcost import (
    MAX_DEPTH,
    CostLimits,
    Refused,
    _Estimator,
    _Parser,
    _regex_weight,
    _string,
    analyse,
    index_form,
    prune,
)

LIMITS = CostLimits()
PROPERTY = settings(
    max_examples=int(os.environ.get("WAITLINE_PROPERTY_EXAMPLES", "200")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


# -- the lexer and parser ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "literal",
    [
        "'a\"b'",
        '"a\'b"',
        "r'\\d+'",
        'R"\\n"',
        "'''x\ny'z'''",
        '"""a"b\n"""',
        "r'''a\\n\nb'''",
        "'\\a\\b\\f\\n\\r\\t\\v\\\"\\'\\\\\\?\\`'",
        "'\\x41\\X42\\u0043\\U0001F600\\101\\377'",
        "b'\\377\\x00abc\\n\\t\\\\'",
        "b'é'",
        "B'\\xe9'",
        "br'\\n'",
        "'é'",
        "''",
    ],
)
def test_string_literals_decode_as_cel_does(literal: str) -> None:
    kind, value, end = _string(literal, 0)
    assert end == len(literal)
    assert value == cel.evaluate(literal)
    assert kind == ("bytes" if isinstance(value, bytes) else "string")


@pytest.mark.parametrize(
    ("source", "reason"),
    [
        ("'\\z'", "unknown escape"),
        ("'\\uD800'", "Unicode scalar"),
        ("b'\\u00e9'", "escape in a bytes literal"),
        ("'abc", "unterminated"),
        ("'a\nb'", "line break"),
        ("{'a': 1}.?a", "optional"),
        ("[1][?0]", "optional"),
        ("Foo{a: 1}", "message construction"),
        (".x", "leading"),
        ("{'a': 1}.`a`", "unexpected character"),
        ("max(1, 2)", "unknown function `max()`"),
        ("'a'.lowerAscii()", "unknown function `.lowerAscii()`"),
        ("foo == 1", "unknown name `foo`"),
        ("'a'.matches(async.name)", "string literal"),
        ("'a'.matches('(?x)a')", "flag"),
        ("'a'.matches('(?=a)')", "group"),
        ("'a'.matches('a{2000}')", "repetition over"),
        ("[1].map(x.y, x)", "must be a name"),
        ("has(async)", "field selection"),
        ("size(1, 2)", "takes 1 argument"),
        ("(" * 40 + "1" + ")" * 40, "nested"),
        ("async" + ".a" * (MAX_DEPTH + 1), "nested"),
        ("1 +", "expected a value"),
        ("[,]", "expected a value"),
    ],
)
def test_refused_with_a_reason(source: str, reason: str) -> None:
    with pytest.raises(Refused, match=re.escape(reason)) as info:
        analyse(source)
    assert "\n" not in str(info.value)


def test_comments_and_whitespace_are_not_code() -> None:
    # A text scan took the `)` in the comment for the end of the first `exists`; a parse does not.
    source = "async.data.l.exists(a, // )\n  async.data.l.exists(b, a == b))"
    with pytest.raises(Refused, match="too costly"):
        analyse(source)
    assert analyse("async . data // ) ] }\n . x == 1").reads["async"].key() == (
        ("data", (("x", True),)),
    )


def test_precedence_follows_cel() -> None:
    for source in ["1 + 2 * 3 == 7", "true || false && false", "!false == true", "1 - 2 - 3 == -4"]:
        tree = _Parser(source).parse()
        runs = index_form(source, tree)
        assert cel.evaluate(runs) is True, source


def test_index_form_rewrites_selections_only() -> None:
    source = 'has(async.data.x) && async.data.l.exists(t, t.f == "a.b") && async["c"].d.size() > 1'
    runs = analyse(source).runs
    assert runs == (
        'has(async["data"].x) && async["data"]["l"].exists(t, t["f"] == "a.b") '
        '&& async["c"]["d"].size() > 1'
    )


# -- what an expression reads --------------------------------------------------------------------


def test_reads_and_prune() -> None:
    reads = analyse(
        'has(async.data.flag) && async.data.user.id == event.id && async["data"].l.size() > 0 '
        "&& [1].exists(async, async == 1)"
    ).reads
    candidate = {
        "name": "n",
        "data": {"flag": [1] * 100, "user": {"id": 1, "big": "x" * 100}, "l": [1], "other": 2},
    }
    assert prune(candidate, reads["async"]) == {"data": {"flag": None, "user": {"id": 1}, "l": [1]}}
    assert prune({"id": 3, "x": 4}, reads["event"]) == {"id": 3}
    # A field of something that is not an object stays whole, to fail the same way.
    assert prune({"data": [1, 2]}, reads["async"]) == {"data": [1, 2]}


# -- the bound -----------------------------------------------------------------------------------


def _steps(source: str, limits: CostLimits = LIMITS) -> float:
    return analyse(source, limits).estimate.steps


@pytest.mark.parametrize(
    "source",
    [
        "async.data.userId == event.data.userId && async.data.amount > 100",
        "has(async.data.x)",
        'async.data.tags.exists(t, t == "vip")',
        "size(async.data.items) > 2",
        'async.data.email.endsWith("@example.com")',
        'async.data.s.matches("^a+$")',
        "int(async.data.n) > 3",
        'async.data.n > 3 ? async.data.kind == "a" : async.data.kind in ["b", "c"]',
        '{"a": 1, "b": [1, 2]}["b"].size() == 2',
        'async.data.items.exists(i, i.sku == "x" && i.qty > 2)',
        "async.data.items.all(i, i.qty > 0) && async.data.tags.exists(t, t == event.tag)",
        "[1, 2, 3].map(x, x * 2).filter(y, y > 2).size() == 2",
        'async.data.userId in event.allowed && !(async.data.userId in ["a", "b"])',
    ],
)
def test_ordinary_expressions_fit_the_budget(source: str) -> None:
    estimate = analyse(source).estimate
    assert estimate.steps <= LIMITS.max_steps
    assert estimate.bytes <= LIMITS.max_bytes


@pytest.mark.parametrize(
    "source",
    [
        # Doubling a string 40 times: 2^40 MiB.
        "[async.data.s]" + ".map(x, x + x)" * 40 + ".size() > 0",
        # Quadratic over the context: 32k elements × 32k comparisons.
        "event.xs.exists(a, a in event.xs)",
        "event.xs.filter(a, a in event.xs).size() > 0",
        "event.xs.map(a, event.xs + [a]).size() > 0",
        # map and filter over an event list: the engine copies the result every round.
        "async.data.l.map(x, x * 2).size() > 0",
        # Nesting over input lists.
        "async.data.l.all(a, async.data.l.all(b, async.data.l.all(c, a + b + c >= 0)))",
        # A pattern compiled on every one of 0.5M elements.
        'async.data.tags.exists(t, t.matches("^v"))',
        # O(states × bytes) searching: 2.5 s on 1 MiB.
        'async.data.s.matches("\\\\w{100}b")',
    ],
)
def test_costly_expressions_are_refused(source: str) -> None:
    with pytest.raises(Refused, match=r"too costly .*: up to .* \(budget .*\)"):
        analyse(source)


def test_the_bound_names_the_limits() -> None:
    with pytest.raises(Refused) as info:
        analyse("[async.data.s]" + ".map(x, x + x)" * 40 + ".size() > 0")
    message = str(info.value)
    assert "an event of 4 KiB and a context of 4 KiB" in message
    assert "steps (budget 2.6e+05)" in message and "bytes of values (budget 2 MiB)" in message


def test_the_bound_grows_with_the_caps() -> None:
    scan = 'async.data.tags.exists(t, t == "vip")'
    small = _steps(scan, CostLimits(max_event_bytes=16_384, max_steps=math.inf, max_bytes=math.inf))
    large = _steps(
        scan, CostLimits(max_event_bytes=1 << 20, max_steps=math.inf, max_bytes=math.inf)
    )
    assert small * 50 < large < small * 80  # linear in the event, with a constant part
    quadratic = "event.xs.exists(a, a in event.xs)"
    limits = CostLimits(max_context_bytes=1024, max_steps=math.inf)
    assert analyse(quadratic, limits).estimate.steps < 1e6


def test_two_fields_cost_no_more_than_one_whole_event() -> None:
    limits = CostLimits(max_event_bytes=65_536, max_steps=math.inf, max_bytes=math.inf)
    one = _steps('async.data.a.exists(t, t == "x")', limits)
    two = _steps('async.data.a.exists(t, t == "x") || async.data.b.exists(t, t == "x")', limits)
    same = _steps('async.data.a.exists(t, t == "x") || async.data.a.exists(t, t == "x")', limits)
    assert two < one * 1.01
    assert same > one * 1.8  # the same field twice is two passes


def test_nesting_over_small_literals_is_fine() -> None:
    assert _steps("[1, 2, 3].all(a, [4, 5].exists(b, a < b))") < 1000
    # Over an element of the event's list: linear, the elements summing to the list.
    assert (
        _steps(
            'async.data.items.exists(i, i.tags.exists(t, t == "x"))',
            CostLimits(max_event_bytes=65_536, max_steps=math.inf, max_bytes=math.inf),
        )
        < 2e6
    )


@pytest.mark.parametrize(
    ("pattern", "most"),
    [("^a+$", 100), ("^[a-z0-9._%+-]+@[a-z0-9.-]+\\.[a-z]{2,}$", 200), ("\\w+", 2e4)],
)
def test_regex_weights_of_common_patterns(pattern: str, most: float) -> None:
    assert _regex_weight(pattern).compile <= most


# -- soundness of the size model (hypothesis) ----------------------------------------------------

_BUILDERS = [
    "async.data.l.map(x, [x, x])",
    "async.data.l + async.data.l",
    "[async.data.s, async.data.s + async.data.s]",
    "async.data.l.filter(x, x != 0)",
    '{"a": async.data.l, "b": async.data.s}',
    "async.data.l.map(x, x, async.data.s)",
    '[async.data.s].map(s, s + "-" + s)',
]
_scalars = st.one_of(st.integers(-1000, 1000), st.text(max_size=8), st.booleans(), st.none())


@PROPERTY
@given(
    source=st.sampled_from(_BUILDERS),
    items=st.lists(_scalars, max_size=30),
    text=st.text(max_size=50),
)
def test_values_never_exceed_their_size_bound(source: str, items: list[Any], text: str) -> None:
    candidate = {"name": "n", "data": {"l": items, "s": text}}
    record = len(json.dumps(candidate, ensure_ascii=False).encode())
    estimator = _Estimator(CostLimits(max_event_bytes=record, max_context_bytes=2))
    tree = _Parser(source).parse()
    bound = estimator.top(estimator.est(tree, estimator.roots).v.size)
    try:
        value = cel.evaluate(index_form(source, tree), {"async": candidate, "event": {}})
    except Exception:
        return  # an error builds nothing (a string + a number, say)
    assert len(json.dumps(value, ensure_ascii=False).encode()) <= bound
