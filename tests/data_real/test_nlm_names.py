"""The one parser of the NLM tuberculosis sets' file names (Montgomery and Shenzhen)."""

from __future__ import annotations

import pytest

from benchmarks.data.real.nlm import parse_nlm_name
from benchmarks.data.real.records import UnknownClassError


@pytest.mark.parametrize("stem,prefix,expected", [
    ("MCUCXR_0001_0", "MCUCXR", ("MCUCXR_0001", "normal")),
    ("CHNCXR_0427_1", "CHNCXR", ("CHNCXR_0427", "tuberculosis")),
    ("chncxr_0427_1", "CHNCXR", ("CHNCXR_0427", "tuberculosis")),  # case-insensitive, the id upper-cased
])
def test_patient_and_class_from_the_stem(stem, prefix, expected):
    assert parse_nlm_name(stem, prefix) == expected


@pytest.mark.parametrize("stem,message", [
    ("CHNCXR_0001_0", "does not end in _0 / _1"),  # another set's prefix
    ("MCUCXR_0001", "does not end in _0 / _1"),
    ("MCUCXR_0001_2", "unknown class digit '2'"),
])
def test_a_name_without_a_known_class_is_refused_naming_the_file(stem, message):
    with pytest.raises(UnknownClassError, match=message) as err:
        parse_nlm_name(stem, "MCUCXR", where=f"/data/{stem}.png")
    assert str(err.value).startswith(f"/data/{stem}.png: ")
