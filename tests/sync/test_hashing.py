from __future__ import annotations

import math
import random
import unicodedata
from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import Decimal
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crm_sync.sync.hashing import UnserialisableValue, canonical, encode, normalise, row_hash

# Hard-coded so that an accidental change of the canonical form (which would make every
# record look changed on the next run) fails loudly.
GOLDEN = [
    (
        {"Id": "P000000001", "FirstName": "Ann", "LastName": "Smith", "Email": "ann@example.org"},
        '{"Email":"ann@example.org","FirstName":"Ann","Id":"P000000001","LastName":"Smith"}',
        "95fc0b61664c5a659b0688536bb6fc8e83816fcfcd1bf12f02563d7147f0cdb2",
    ),
    (
        {
            "Email": " chloé@example.org ",
            "Active": True,
            "Score": Decimal("1.50"),
            "Count": 3.0,
            "Skip": None,
        },
        '{"Active":true,"Count":3,"Email":"chloé@example.org","Score":1.5}',
        "4c92611cadd7a23a2ef910c65045029368c50383c5dec3baf101f73eed5425e4",
    ),
    (
        {
            "Birthdate": date(1980, 2, 29),
            "Seen": datetime(2024, 5, 1, 12, 30, tzinfo=timezone(timedelta(hours=2))),
            "At": time(9, 5),
        },
        '{"At":"09:05:00","Birthdate":"1980-02-29","Seen":"2024-05-01T10:30:00.000000Z"}',
        "0a88974339b0cb48a720b3e2c6432952d995f339218099413e5994264f04cc3c",
    ),
    (
        {"address": {"lines": ["1 Main St", "", None], "zip": 10001}, "tags": []},
        '{"address":{"lines":["1 Main St","",null],"zip":10001},"tags":[]}',
        "c59c0b77e5c65f664a8bf3761c875c3df514157914c92182c7ec81ec9cfb55ab",
    ),
]


@pytest.mark.parametrize(("payload", "text", "digest"), GOLDEN)
def test_golden_canonical_form_and_digest(payload, text, digest):
    assert canonical(payload) == text
    assert row_hash(payload) == digest
    assert encode(payload) == (text, digest)


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**60), max_value=2**60),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
    st.dates(),
)
payloads = st.dictionaries(st.text(min_size=1, max_size=10), scalars, max_size=8)


@settings(max_examples=200, deadline=None)
@given(payloads, st.randoms(use_true_random=False))
def test_key_order_does_not_matter(payload, rnd: random.Random):
    items = list(payload.items())
    rnd.shuffle(items)
    assert row_hash(dict(items)) == row_hash(payload)


@settings(max_examples=200, deadline=None)
@given(payloads, st.lists(st.text(min_size=1, max_size=10), max_size=4))
def test_none_is_the_same_as_missing(payload, extra_keys):
    with_nones = dict(payload)
    for key in extra_keys:
        with_nones.setdefault(key, None)
    without = {key: value for key, value in payload.items() if value is not None}
    assert row_hash(with_nones) == row_hash(without)


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=-(2**53), max_value=2**53))
def test_numerically_equal_values_hash_equal(number):
    expected = row_hash({"n": number})
    assert row_hash({"n": float(number)}) == expected
    assert row_hash({"n": Decimal(number).quantize(Decimal("0.01"))}) == expected
    assert row_hash({"n": np.int64(number)}) == expected


@settings(max_examples=200, deadline=None)
@given(st.floats(min_value=-(2.0**53), max_value=2.0**53, allow_nan=False))
def test_floats_and_their_decimal_text_hash_equal(number):
    # Within the exactly representable range a Decimal written from a float means that float.
    assert row_hash({"n": number}) == row_hash({"n": Decimal(repr(number))})


def test_distinct_values_hash_differently():
    assert row_hash({"a": True}) != row_hash({"a": 1})
    assert row_hash({"a": ""}) != row_hash({})
    assert row_hash({"a": "1"}) != row_hash({"a": 1})
    assert row_hash({"a": "x y"}) != row_hash({"a": "xy"})
    assert row_hash({"a": [1, 2]}) != row_hash({"a": [2, 1]})
    assert row_hash({"a": 0.1}) != row_hash({"a": 0.2})


def test_strings_are_nfc_and_stripped():
    composed = unicodedata.normalize("NFC", "José")
    decomposed = unicodedata.normalize("NFD", "José")
    assert composed != decomposed
    assert row_hash({"name": decomposed}) == row_hash({"name": composed})
    assert row_hash({"name": "  Ann \t\n"}) == row_hash({"name": "Ann"})
    assert normalise({"name": " Ann  Lee "}) == {"name": "Ann  Lee"}


def test_missing_numbers_become_none():
    assert row_hash({"a": 1, "b": math.nan}) == row_hash({"a": 1})
    assert row_hash({"a": 1, "b": Decimal("NaN")}) == row_hash({"a": 1})
    assert row_hash({"a": 1, "b": pd.NA, "c": pd.NaT}) == row_hash({"a": 1})
    assert normalise({"a": [math.nan, 1.5]}) == {"a": [None, 1.5]}


def test_datetimes_are_compared_as_utc_instants():
    instant = datetime(2024, 3, 10, 7, 0, tzinfo=UTC_ZONE)
    in_chicago = instant.astimezone(ZoneInfo("America/Chicago"))
    assert row_hash({"at": instant}) == row_hash({"at": in_chicago})
    assert row_hash({"at": pd.Timestamp(instant)}) == row_hash({"at": instant})
    assert normalise({"at": in_chicago}) == {"at": "2024-03-10T07:00:00.000000Z"}


UTC_ZONE = UTC


def test_naive_datetime_is_rejected_naming_the_field():
    with pytest.raises(UnserialisableValue) as caught:
        row_hash({"contact": {"LastModified": datetime(2024, 1, 1, 12, 0)}})
    assert caught.value.path == "contact.LastModified"
    assert "naive" in str(caught.value)
    assert isinstance(caught.value, TypeError)


@pytest.mark.parametrize(
    ("payload", "path"),
    [
        ({"blob": b"\x00\x01"}, "blob"),
        ({"address": {"lines": ["a", "b", {1, 2}]}}, "address.lines[2]"),
        ({"tags": [object()]}, "tags[0]"),
        ({"n": math.inf}, "n"),
        ({"n": {1: "a"}}, "n.1"),
    ],
)
def test_unsupported_values_name_their_path(payload, path):
    with pytest.raises(UnserialisableValue) as caught:
        canonical(payload)
    assert caught.value.path == path
    assert path in str(caught.value)


def test_error_message_carries_no_value():
    secret = b"555-0100 private"
    with pytest.raises(UnserialisableValue) as caught:
        canonical({"phone": secret})
    assert "555" not in str(caught.value)


def test_numpy_and_tuples_are_plain_json():
    assert normalise({"f": np.float64(2.5), "b": np.bool_(True), "t": (1, "a ")}) == {
        "f": 2.5,
        "b": True,
        "t": [1, "a"],
    }
