"""The record key of events and wait commands, and the partition it routes to."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from waitline.schemas import keys
from waitline.schemas.keys import KEY_SEPARATOR, make_key, murmur2, partition_for, split_key

names = st.text(min_size=1).filter(lambda s: KEY_SEPARATOR not in s)


def test_key_format() -> None:
    assert make_key("email.verified", "user-42") == b"email.verified|user-42"
    assert make_key("ünïcode", "ключ") == "ünïcode|ключ".encode()


def test_correlation_key_may_contain_the_separator() -> None:
    key = make_key("email.verified", "user:1|x|y")
    assert key == b"email.verified|user:1|x|y"
    assert split_key(key) == ("email.verified", "user:1|x|y")


def test_split_key_refuses_a_key_without_separator() -> None:
    with pytest.raises(ValueError, match="no '\\|'"):
        split_key(b"no-separator")


@given(names, st.text())
def test_make_and_split_round_trip(name: str, correlation_key: str) -> None:
    assert split_key(make_key(name, correlation_key)) == (name, correlation_key)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        # org.apache.kafka.common.utils.UtilsTest#testMurmur2
        (b"21", -973932308),
        (b"foobar", -790332482),
        (b"a-little-bit-long-string", -985981536),
        (b"a-little-bit-longer-string", -1486304829),
        (b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971),
        (b"abc", 479470107),
        (bytes([12, 42, 56, 24, 109, 111]), 274204207),  # sarama's vector: tail of 2 bytes
        (b"", 275646681),
    ],
)
def test_murmur2_matches_the_java_client(data: bytes, expected: int) -> None:
    assert murmur2(data) == expected


def test_partition_is_the_java_default_partitioners() -> None:
    # Utils.toPositive(murmur2(key)) % partitions
    assert partition_for(b"foobar", 10) == (-790332482 & 0x7FFFFFFF) % 10 == 6
    assert partition_for(b"21", 8) == (-973932308 & 0x7FFFFFFF) % 8


@given(st.binary(max_size=200), st.integers(min_value=1, max_value=1000))
def test_partition_for_is_in_range(key: bytes, partitions: int) -> None:
    assert 0 <= partition_for(key, partitions) < partitions


@given(st.binary(max_size=200))
def test_murmur2_is_a_signed_32_bit_int(data: bytes) -> None:
    assert -(2**31) <= murmur2(data) < 2**31


def test_one_partition_takes_everything() -> None:
    assert {partition_for(f"k{i}".encode(), 1) for i in range(50)} == {0}


def test_keys_spread_over_partitions() -> None:
    # Not a distribution test: only that the hash is not degenerate on similar keys.
    assert len({partition_for(make_key("paid", f"order-{i}"), 8) for i in range(200)}) == 8


def test_partition_for_is_librdkafkas_partitioner_here() -> None:
    # confluent-kafka's wheel links a librdkafka that exports it: the fast path is taken.
    assert keys._librdkafka_partition_for() is not None
    assert partition_for is not keys._python_partition_for


@given(st.binary(max_size=300), st.integers(min_value=1, max_value=2**31 - 1))
def test_librdkafkas_partitioner_agrees_with_murmur2(key: bytes, partitions: int) -> None:
    fast = keys._librdkafka_partition_for()
    assert fast is not None
    assert fast(key, partitions) == keys._python_partition_for(key, partitions)


def test_no_partitions_is_an_error_not_a_crash() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        partition_for(b"k", 0)
