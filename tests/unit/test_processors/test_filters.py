"""CEL `if` expressions: compiled once, evaluated in a sandbox, errors are no match."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import cel
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from waitline.processors import filters
from waitline.processors.filters import MAX_SOURCE, FilterCache, FilterCompileError

REPO = Path(__file__).resolve().parents[3]
CANDIDATE = {"eventId": "e", "name": "paid", "correlationKey": "o", "data": {"amount": 150}}


def test_true_and_false() -> None:
    cache = FilterCache()
    assert cache.matches("async.data.amount > 100", CANDIDATE, None) is True
    assert cache.matches("async.data.amount > 200", CANDIDATE, None) is False
    assert cache.errors == 0


def test_event_is_the_registration_context() -> None:
    cache = FilterCache()
    expr = "async.data.amount == event.data.amount"
    assert cache.matches(expr, CANDIDATE, {"data": {"amount": 150}}) is True
    assert cache.matches(expr, CANDIDATE, {"data": {"amount": 1}}) is False


@pytest.mark.parametrize(
    ("expr", "context"),
    [
        ("async.data.missing > 1", None),  # no such field
        ("async.data.amount", None),  # not a bool
        ("async.data.amount > 'x'", None),  # type mismatch
        ("1 / (async.data.amount - 150) == 0", None),  # division by zero
        ("event.data.x == 1", None),  # no context: `event` is {}
        ("async.data.amount * 9223372036854775807 > 0", None),  # overflow
    ],
)
def test_evaluation_errors_are_no_match_and_counted(expr: str, context: Any) -> None:
    cache = FilterCache()
    assert cache.matches(expr, CANDIDATE, context) is False
    assert cache.errors == 1


@pytest.mark.parametrize(
    "expr",
    ["async.data.amount >", "async.", "(", "a ? b", "async.data.amount > 1 &&"],
)
def test_bad_expressions_do_not_compile(expr: str) -> None:
    with pytest.raises(FilterCompileError) as info:
        FilterCache().compile(expr)
    assert str(info.value) and "\n" not in str(info.value)  # one line, for headers and the CLI


def test_python_is_not_evaluated(tmp_path: Path) -> None:
    # CEL has no access to Python: names it does not know are evaluation errors, not builtins.
    cache = FilterCache()
    marker = tmp_path / "pwned"
    for expr in (
        f"__import__('os').system('touch {marker}') == 0",
        "open('/etc/passwd') != null",
        "len([1]) == 1",
    ):
        try:
            result = cache.matches(expr, CANDIDATE, None)
        except Exception as exc:  # pragma: no cover - matches never raises
            raise AssertionError(f"{expr!r} raised {exc!r}") from exc
        assert result is False
    assert cache.errors == 3
    assert not marker.exists()


def test_source_length_is_bounded() -> None:
    with pytest.raises(FilterCompileError, match=f"longer than {MAX_SOURCE}"):
        FilterCache().compile("true && " * (MAX_SOURCE // 8) + "true")


def test_compiled_programs_are_cached_and_evicted_lru() -> None:
    cache = FilterCache(capacity=2)
    first = cache.compile("true")
    assert cache.compile("true") is first
    cache.compile("false")
    cache.compile("true")  # touch: now "false" is the least recently used
    cache.compile("1 == 1")
    assert cache.compile("true") is first
    assert len(cache._programs) == 2 and "false" not in cache._programs


def test_nested_macros_over_event_lists_have_bounded_cost() -> None:
    """§3: evaluated in a sandbox with bounded cost.

    Three nested comprehensions over a 1,000-element list in a ~5 kB event are 10^9 steps:
    minutes of CPU inside one `matches` call, during which the partition matches nothing.
    Run in a child process so that the suite fails after 5 s instead of hanging; a cost
    budget (or a refusal to compile such nesting) makes it return at once.
    """
    code = textwrap.dedent(
        """
        from waitline.processors.filters import FilterCache, FilterCompileError
        expr = "async.data.l.all(a, async.data.l.all(b, async.data.l.all(c, a + b + c >= 0)))"
        candidate = {"data": {"l": list(range(1000))}}
        cache = FilterCache()
        try:
            print(cache.matches(expr, candidate, None))
        except FilterCompileError as exc:
            print("refused:", exc)
        """
    )
    try:
        subprocess.run(
            [sys.executable, "-c", code], cwd=REPO, capture_output=True, timeout=5, check=True
        )
    except subprocess.TimeoutExpired:
        pytest.fail("one filter evaluation ran for more than 5 s: cost is not bounded")


# -- bounded cost: refused at compile time -------------------------------------------------------

DOUBLING = "[async.data.s]" + ".map(x, x + x)" * 40 + ".size() >= 100"


@pytest.mark.parametrize(
    "expr",
    [
        # Doubled 40 times inside `map`: a 1 GiB allocation aborted the process.
        DOUBLING,
        # Quadratic over a 5,000-element context list: 5-10 s per evaluation.
        "event.xs.exists(a, a in event.xs)",
        "event.xs.filter(a, a in event.xs).size() > 0",
        "event.xs.exists(a, (event.xs + [a]).size() > 0)",
        # A `)` in a comment fooled the text scan that refused nested comprehensions.
        "async.data.l.exists(a, // )\n async.data.l.exists(b, a == b))",
    ],
)
def test_costly_expressions_do_not_compile(expr: str) -> None:
    with pytest.raises(FilterCompileError, match="too costly") as info:
        FilterCache().compile(expr)
    assert "budget" in str(info.value) and "\n" not in str(info.value)


def test_doubling_is_refused_for_its_memory_too() -> None:
    assert len(DOUBLING) == 588
    with pytest.raises(FilterCompileError, match=r"bytes of values \(budget 2 MiB\)"):
        FilterCache().compile(DOUBLING)


def test_a_refused_filter_of_a_restored_wait_matches_nothing() -> None:
    # A wait registered before the bound existed is evaluated without compiling it first.
    cache = FilterCache()
    assert cache.matches(DOUBLING, {"data": {"s": "x"}}, None) is False
    assert cache.errors == 1


ORDINARY: list[tuple[str, dict[str, Any], Any, bool]] = [
    (
        "async.data.userId == event.data.userId && async.data.amount > 100",
        {"userId": "u", "amount": 150},
        {"data": {"userId": "u"}},
        True,
    ),
    ("has(async.data.x)", {"x": None}, None, True),
    ("has(async.data.x)", {"y": 1}, None, False),
    ('async.data.tags.exists(t, t == "vip")', {"tags": ["a", "vip"]}, None, True),
    ('async.data.tags.exists(t, t == "vip")', {"tags": ["a"]}, None, False),
    ("size(async.data.items) > 2", {"items": [1, 2, 3]}, None, True),
    ('async.data.email.endsWith("@example.com")', {"email": "a@example.com"}, None, True),
    ('async.data.s.matches("^a+$")', {"s": "aaa"}, None, True),
    ('async.data.s.matches("^a+$")', {"s": "aab"}, None, False),
    ("int(async.data.n) > 3", {"n": "4"}, None, True),
    (
        'async.data.n > 3 ? async.data.k == "a" : async.data.k == "b"',
        {"n": 1, "k": "b"},
        None,
        True,
    ),
    ('{"a": [1, 2], "b": []}[async.data.k].size() == 2', {"k": "a"}, None, True),
    ('async.data.k in ["x", "y"] && !(async.data.k in event.deny)', {"k": "x"}, {"deny": []}, True),
    (
        'async.data.items.exists(i, i.sku == "x" && i.qty > 2)',
        {"items": [{"sku": "x", "qty": 3}]},
        None,
        True,
    ),
    ("[1, 2, 3].map(x, x * 2).filter(y, y > 2) == [4, 6]", {}, None, True),
    ('async.name == "paid" && async.correlationKey == "o"', {}, None, True),
]


@pytest.mark.parametrize(("expr", "data", "context", "expected"), ORDINARY)
def test_ordinary_filters_compile_and_evaluate(
    expr: str, data: dict[str, Any], context: Any, expected: bool
) -> None:
    cache = FilterCache()
    cache.compile(expr)
    candidate = {**CANDIDATE, "data": data}
    assert cache.matches(expr, candidate, context) is expected
    assert cache.errors == 0
    reference = cel.compile(expr).execute({"async": candidate, "event": context or {}})
    assert reference is expected


def test_the_fields_read_of_one_event_are_converted_once(monkeypatch: pytest.MonkeyPatch) -> None:
    pruned: list[Any] = []
    real_prune = filters.prune

    def counting_prune(value: Any, reads: Any) -> Any:
        pruned.append(value)
        return real_prune(value, reads)

    monkeypatch.setattr(filters, "prune", counting_prune)
    cache = FilterCache()
    event = {**CANDIDATE, "data": {"amount": 150, "big": list(range(1000))}}
    for limit in (100, 120, 140):  # the waits of one event: the same dict
        assert cache.matches(f"async.data.amount > {limit}", event, {"v": limit}) is True
    converted_event = [value for value in pruned if value is event]
    assert len(converted_event) == 1  # the context's are converted for each wait
    other = dict(event)
    assert cache.matches("async.data.amount > 100", other, None) is True
    assert len([value for value in pruned if value is other]) == 1


_json = st.recursive(
    st.one_of(st.integers(-3, 3), st.sampled_from(["a", "vip", ""]), st.booleans(), st.none()),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(st.sampled_from(["a", "b", "tags", "n"]), inner, max_size=3),
    ),
    max_leaves=8,
)
_paths = st.lists(st.sampled_from([".a", ".b", ".tags", ".n", '["a"]', '["n"]']), max_size=3)
_FORMS = [
    "has({p}.a)",
    "size({p}) > 1",
    "{p}.exists(t, t == 'vip' || has(t.a))",
    "{p} in {q}",
    "'a' in {p}",
    "{p} == {q}",
    "[1, {p}].exists(async, async == 1)",
    "{p}.all(k, k != 'x')",
    "type({p}) == list",
    "{p} == 1 || {p} == 'a'",
]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    forms=st.lists(st.sampled_from(_FORMS), min_size=1, max_size=3),
    roots=st.lists(st.sampled_from(["async", "event", "async.data"]), min_size=2, max_size=2),
    paths=st.lists(_paths, min_size=2, max_size=2),
    ops=st.lists(st.sampled_from([" && ", " || "]), min_size=2, max_size=2),
    data=_json,
    extra=_json,
    context=st.dictionaries(st.sampled_from(["a", "b", "tags", "n"]), _json, max_size=3),
)
def test_pruned_evaluation_is_full_evaluation(
    forms: list[str],
    roots: list[str],
    paths: list[list[str]],
    ops: list[str],
    data: Any,
    extra: Any,
    context: dict[str, Any],
) -> None:
    p, q = (root + "".join(path) for root, path in zip(roots, paths, strict=True))
    parts = [form.format(p=p, q=q) for form in forms]
    expr = parts[0] + "".join(op + part for op, part in zip(ops, parts[1:], strict=False))
    candidate = {**CANDIDATE, "data": data, "a": extra}
    cache = FilterCache()
    try:
        cache.compile(expr)
    except FilterCompileError:
        return
    try:
        want = cel.compile(expr).execute({"async": candidate, "event": context})
    except Exception:
        want = None
    assert cache.matches(expr, candidate, context) is (want if isinstance(want, bool) else False)
