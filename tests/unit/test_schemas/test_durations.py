"""Durations on the wire: compact units, combinations, fractions, ISO-8601, and what is refused."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from waitline.schemas.durations import DurationError, format_duration, parse_duration

S = 1000
H = 3_600_000
D = 86_400_000


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("0", 0),
        ("0s", 0),
        ("500ms", 500),
        ("30s", 30 * S),
        ("15m", 15 * 60 * S),
        ("24h", 24 * H),
        ("3d", 3 * D),
        ("1w", 7 * D),
        (" 30s ", 30 * S),  # surrounding blanks are forgiven
    ],
)
def test_compact_units(text: str, ms: int) -> None:
    assert parse_duration(text) == ms


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("1h30m", H + 30 * 60 * S),
        ("1d12h", D + 12 * H),
        ("2m30s250ms", 150 * S + 250),
        ("1w1d", 8 * D),
    ],
)
def test_combined_units(text: str, ms: int) -> None:
    assert parse_duration(text) == ms


@pytest.mark.parametrize(
    ("text", "ms"),
    [("1.5s", 1500), ("0.5h", 30 * 60 * S), ("2.25m", 135 * S), ("1.9ms", 1)],  # rounded down
)
def test_fractional_values(text: str, ms: int) -> None:
    assert parse_duration(text) == ms


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("PT30S", 30 * S),
        ("PT0.5S", 500),
        ("PT15M", 15 * 60 * S),
        ("PT1H30M", H + 30 * 60 * S),
        ("P3D", 3 * D),
        ("P1DT12H", D + 12 * H),
        ("P2W", 14 * D),
        ("P1DT1H1M1S", D + H + 60 * S + S),
    ],
)
def test_iso_8601(text: str, ms: int) -> None:
    assert parse_duration(text) == ms


@pytest.mark.parametrize(
    "text",
    ["", " ", "5x", "s", "ms", "30 s", "-1s", "+1s", "1s2", "1.s", ".5s", "1e3s", "00", "soon"],
)
def test_malformed_compact_durations_are_refused(text: str) -> None:
    with pytest.raises(DurationError, match="bad duration"):
        parse_duration(text)


@pytest.mark.parametrize("text", ["P1Y", "P2M", "P1Y2M3D", "PT", "P", "P1DT", "PT1D", "P1H"])
def test_bad_iso_durations_are_refused(text: str) -> None:
    with pytest.raises(DurationError, match="ISO-8601"):
        parse_duration(text)


def test_years_and_months_are_refused_with_the_reason() -> None:
    with pytest.raises(DurationError, match="years and months are not allowed"):
        parse_duration("P1M")


def test_duration_error_is_a_value_error() -> None:
    # Callers that only know ValueError (pydantic validators, argparse types) still catch it.
    assert issubclass(DurationError, ValueError)


def test_an_absurdly_long_number_is_a_duration_error_not_a_crash() -> None:
    # 400 digits overflow a float to infinity; the contract is DurationError for bad input,
    # and `waitline wait --timeout 999…9s` must not end in a traceback.
    with pytest.raises(DurationError):
        parse_duration("9" * 400 + "s")


@pytest.mark.parametrize(
    ("ms", "text"),
    [(0, "0"), (1, "1ms"), (1000, "1s"), (90_000, "1m30s"), (D + 1, "1d1ms"), (3 * D, "3d")],
)
def test_format_duration(ms: int, text: str) -> None:
    assert format_duration(ms) == text


@given(st.integers(min_value=0, max_value=10**12))
def test_format_then_parse_is_the_identity(ms: int) -> None:
    assert parse_duration(format_duration(ms)) == ms
