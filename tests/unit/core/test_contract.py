"""README "The adapter contract": parsing, normalisation and safe reading."""

from __future__ import annotations

import asyncio
import errno
import json
import os
import socket
import stat
import sys
import threading
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from status_reporter.core.contract import (
    MAX_RESULT_BYTES,
    AdapterResult,
    ResultInvalid,
    ResultMissing,
    ResultValid,
    nests_deeper_than,
    parse_result,
    read_result,
    render_details,
    resolve_results_path,
    trim,
    truncate_utf8,
)


def parsed(document: object) -> ResultValid | ResultInvalid:
    return parse_result(json.dumps(document).encode())


def valid(document: object) -> AdapterResult:
    state = parsed(document)
    assert isinstance(state, ResultValid), state
    return state.result


def valid_bytes(data: bytes) -> AdapterResult:
    state = parse_result(data)
    assert isinstance(state, ResultValid), state
    return state.result


def invalid(data: bytes) -> str:
    state = parse_result(data)
    assert isinstance(state, ResultInvalid), state
    return state.error


def parse_peak(data: bytes) -> tuple[ResultValid | ResultInvalid, int]:
    """The state, and the peak of what Python allocated for it (``data`` excluded)."""
    tracemalloc.start()
    try:
        state = parse_result(data)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return state, peak


MIB = 1024 * 1024


# --- status -----------------------------------------------------------------


@pytest.mark.parametrize("status", ["success", "failure"])
def test_status_values(status: str) -> None:
    assert valid({"status": status}).status == status


@pytest.mark.parametrize(
    "document",
    [
        {},
        {"status": None},
        {"status": "Success"},
        {"status": "SUCCESS"},
        {"status": " success"},
        {"status": "ok"},
        {"status": ""},
        {"status": 1},
        {"status": True},
        {"status": ["success"]},
        {"Status": "success"},
    ],
)
def test_status_must_be_exactly_success_or_failure(document: object) -> None:
    assert invalid(json.dumps(document).encode()) == "status: must be either 'success' or 'failure'"


# --- reason and message -----------------------------------------------------


@pytest.mark.parametrize(
    ("field", "default"), [("reason", "NoReasonProvided"), ("message", "No message provided")]
)
@pytest.mark.parametrize("value", [None, "", "   ", "\n\t", "\u3000\u00a0\u2028"])
def test_missing_null_or_blank_text_gets_the_default(
    field: str, default: str, value: str | None
) -> None:
    document: dict[str, object] = {"status": "success"}
    if value is not None:
        document[field] = value
    assert getattr(valid(document), field) == default
    assert getattr(valid({"status": "failure", field: None}), field) == default


@pytest.mark.parametrize("field", ["reason", "message"])
@pytest.mark.parametrize("value", [1, 1.5, True, False, [], {}, ["x"], {"a": "b"}])
def test_non_string_text_is_invalid(field: str, value: object) -> None:
    error = invalid(json.dumps({"status": "success", field: value}).encode())
    assert error.startswith(f"{field}: must be a string or null, got ")


def test_text_is_trimmed_of_unicode_whitespace() -> None:
    result = valid(
        {"status": "success", "reason": "\u2003 Ready\t\n", "message": "\u00a0all good \u3000"}
    )
    assert (result.reason, result.message) == ("Ready", "all good")


def test_trim_keeps_separators_that_are_not_whitespace() -> None:
    # U+001C..U+001F are not White_Space (Go's TrimSpace keeps them; str.strip() would not).
    assert trim("\x1cA\x1f") == "\x1cA\x1f"
    assert trim("\u200bA") == "\u200bA"  # zero width space is not White_Space either


@pytest.mark.parametrize(("field", "limit"), [("reason", 128), ("message", 1024)])
def test_text_is_cut_to_the_byte_limit(field: str, limit: int) -> None:
    exact = "a" * limit
    assert getattr(valid({"status": "success", field: exact}), field) == exact
    longer = "b" * (limit + 50)
    assert getattr(valid({"status": "success", field: longer}), field) == "b" * limit


@pytest.mark.parametrize(("field", "limit"), [("reason", 128), ("message", 1024)])
def test_cut_never_splits_a_character(field: str, limit: int) -> None:
    # "é" is 2 bytes, "€" 3, "😀" 4: every alignment against the limit.
    for prefix in range(4):
        for char in ("é", "€", "😀"):
            text = "a" * prefix + char * limit
            value = getattr(valid({"status": "success", field: text}), field)
            encoded = value.encode()
            assert len(encoded) <= limit
            assert len(encoded) > limit - len(char.encode())
            assert text.startswith(value)


def test_truncation_happens_after_trimming() -> None:
    reason = " " * 200 + "R" * 10 + " " * 200
    assert valid({"status": "success", "reason": reason}).reason == "R" * 10


@pytest.mark.parametrize(
    ("escaped", "text"),
    [
        ("\\ud800", "\ufffd"),
        ("\\udc00x", "\ufffdx"),
        ("\\ud800\\ud800\\udc00", "\ufffd\U00010000"),
        ("\\ud83d\\ude00", "\U0001f600"),
        ("\\\\ud800", "\\ud800"),  # an escaped backslash, then the letters "ud800"
        ("\\\\\\ud800", "\\\ufffd"),
    ],
)
def test_unpaired_surrogate_escapes_become_replacement_characters(escaped: str, text: str) -> None:
    # As Go's encoding/json does: the escape is valid JSON, its character is not.
    data = f'{{"status":"success","reason":"{escaped}","details":["{escaped}"]}}'.encode()
    result = valid_bytes(data)
    assert result.reason == text
    assert json.loads(result.details or b"") == [text]
    assert valid_bytes(b"\xef\xbb\xbf" + data) == result


def _unpaired_replaced(text: str) -> str:
    return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")


@settings(max_examples=300)
@given(st.lists(st.sampled_from(["\\", "u", "d", "8", "0", "c", "\ud800", "\udc00", "é"])))
def test_surrogate_escapes_decode_like_a_lenient_json_parser(parts: list[str]) -> None:
    text = "".join(parts)
    result = valid_bytes(json.dumps({"status": "success", "message": text}).encode())
    expected = truncate_utf8(trim(_unpaired_replaced(text)), 1024) or "No message provided"
    assert result.message == expected


# --- details and other keys ---------------------------------------------------


def test_details_any_json_value_kept_as_its_text_and_other_keys_ignored() -> None:
    for details in ({"a": [1, 2]}, [1], "text", 3, None, True):
        result = valid({"status": "failure", "details": details, "extra": {"x": 1}})
        assert result.details == json.dumps(details).encode()
    assert valid({"status": "failure"}).details is None


def test_a_large_result_is_parsed_without_building_its_details() -> None:
    data = b'{"status":"success","details":[' + b",".join([b"[]"] * 340_000) + b"]}"
    assert len(data) <= MAX_RESULT_BYTES
    tracemalloc.start()
    try:
        result = valid_bytes(data)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result.details is not None
    # A full parse builds 340,000 lists (about 20 MiB); this one little beyond a copy.
    assert peak < 3 * MAX_RESULT_BYTES


# --- memory: every shape of a 1 MiB file costs a few MiB ---------------------------------


def filled(key: str, unit: bytes, tail: bytes = b"") -> bytes:
    """A valid result of nearly 1 MiB: the string ``key`` is ``unit`` repeated, then ``tail``."""
    head = b'{"status":"success","' + key.encode() + b'":"'
    count = (MAX_RESULT_BYTES - len(head) - len(tail) - 2) // len(unit)
    return head + unit * count + tail + b'"}'


def filled_array(item: bytes) -> bytes:
    """A valid result of nearly 1 MiB: ``details`` is an array of ``item`` repeated."""
    head, tail = b'{"status":"success","details":[', b"]}"
    count = (MAX_RESULT_BYTES - len(head) - len(tail) + 1) // (len(item) + 1)
    return head + b",".join([item] * count) + tail


def deep(levels: int, *, objects: bool = False) -> bytes:
    """A result whose ``details`` is nested ``levels`` deep, in arrays or in
    ``[{"a":…}]`` (an array and an object: two levels a step)."""
    if objects:
        core = b"[0]" if levels % 2 else b"0"
        nested = b'[{"a":' * (levels // 2) + core + b"}]" * (levels // 2)
    else:
        nested = b"[" * levels + b"]" * levels
    return b'{"status":"success","details":' + nested + b"}"


ONE_MIB_SHAPES = {
    "plain text": lambda: filled("message", b"x"),
    # What json.dump writes for any emoji: a surrogate pair, which needs no rewrite.
    "emoji escapes in message": lambda: filled("message", rb"\ud83d\ude00"),
    "emoji escapes in details": lambda: filled("details", rb"\ud83d\ude00"),
    "lone surrogate escapes in message": lambda: filled("message", rb"\ud800"),
    "lone surrogate escapes in details": lambda: filled("details", rb"\udc00"),
    # One character beyond U+FFFF makes a str of the whole file four bytes a character.
    "one wide character in details": lambda: filled("details", b"x", "\U0001f600".encode()),
    "empty objects in details": lambda: filled_array(b"{}"),
    "deep nesting": lambda: deep(MAX_RESULT_BYTES // 2 - 20),
    # Strings holding brackets, quotes and backslashes: the nesting count's slow path.
    "brackets in strings": lambda: filled_array(rb'{"[":"]\\","\"{":[]}'),
}


@pytest.mark.parametrize("shape", ONE_MIB_SHAPES)
def test_every_shape_of_a_1_mib_file_costs_a_few_mib(shape: str) -> None:
    data = ONE_MIB_SHAPES[shape]()
    assert MAX_RESULT_BYTES - 64 <= len(data) <= MAX_RESULT_BYTES
    state, peak = parse_peak(data)
    if shape == "deep nesting":
        assert isinstance(state, ResultInvalid)
        assert state.error == "invalid JSON: nested too deeply"
    else:
        assert isinstance(state, ResultValid), state
    # A copy of the file, the message and details at most: 3.1 MiB for lone surrogate
    # escapes, which re.sub rewrote in 16 MiB (12 MiB for pairs, which need no rewrite).
    assert peak < 4 * MIB


def test_one_wide_character_widens_only_the_message() -> None:
    # The message is a str four bytes a character (4 MiB); only its head is encoded
    # again to cut it.
    data = filled("message", b"x", "\U0001f600".encode())
    state, peak = parse_peak(data)
    assert isinstance(state, ResultValid)
    assert peak < 6 * MIB


def test_an_oversized_input_costs_nothing_of_its_size() -> None:
    # With white space around it, as a file written by echo has: bytes.strip() copies it.
    state, peak = parse_peak(b"x" * (8 * MAX_RESULT_BYTES) + b"\n")
    assert isinstance(state, ResultInvalid)
    assert state.error == "file is larger than 1 MiB (1048576 bytes)"
    assert peak < MIB


@pytest.mark.parametrize(
    ("encoded", "is_utf8"),
    [
        ("€".encode(), True),
        ("😀".encode(), True),
        (b"\xed\xb0\x80", False),  # an encoded surrogate
        (b"\xff", False),
        (b"\xe2\x82", False),  # cut short
        (b"\xf0\x9f\x98", False),
    ],
)
def test_utf8_is_checked_across_any_slice_boundary(encoded: bytes, *, is_utf8: bool) -> None:
    # The check decodes the file a slice at a time: put the character across every
    # power-of-two boundary (4 KiB to 512 KiB), its own offset being the error's.
    head = b'{"status":"success","message":"'
    for offset in (2**k + shift for k in range(12, 20) for shift in range(-4, 2)):
        data = head + b"a" * (offset - len(head)) + encoded + b'"}'
        if is_utf8:
            assert isinstance(parse_result(data), ResultValid)
        else:
            assert invalid(data) == f"file is not valid UTF-8 (invalid byte at offset {offset})"


# --- nesting: as deep as Go's encoding/json allows --------------------------------------

# The deepest ``details`` a valid result may have (README "The adapter contract"): Go's
# limit of 10,000 levels, the result's object included, on 3.11, the image's interpreter.
# 3.12 and 3.13 count msgspec's levels against a fixed budget of C calls, which stops it
# first: the depth it allows on each interpreter tested (3.12.3 and later raised the budget).
GO_DEEPEST = 9_999
DEEPEST = {(3, 11): GO_DEEPEST, (3, 12, 0): 1_497, (3, 12, 1): 1_497, (3, 13): 9_998}


def expected_deepest() -> int | None:
    """The deepest ``details`` this interpreter takes, or None if no test pinned it."""
    version = sys.version_info
    return DEEPEST.get((version.major, version.minor, version.micro)) or DEEPEST.get(
        (version.major, version.minor)
    )


def deepest_valid() -> int:
    """The deepest array nesting parse_result accepts in ``details``, found by bisection."""
    low, high = 100, 20_000  # valid, invalid
    while high - low > 1:
        middle = (low + high) // 2
        if isinstance(parse_result(deep(middle)), ResultValid):
            low = middle
        else:
            high = middle
    return low


def test_the_nesting_limit_of_this_interpreter_is_pinned() -> None:
    deepest = deepest_valid()
    assert deepest <= GO_DEEPEST
    assert deepest == expected_deepest(), f"{sys.version}: {deepest} levels"


@pytest.mark.parametrize("objects", [False, True], ids=["arrays", "objects-in-arrays"])
def test_nesting_to_the_limit_is_valid_and_one_more_is_not(*, objects: bool) -> None:
    deepest = expected_deepest() or deepest_valid()
    limit = sys.getrecursionlimit()
    data = deep(deepest, objects=objects)
    assert valid_bytes(data).details == data[len(b'{"status":"success","details":') : -1]
    assert invalid(deep(deepest + 1, objects=objects)) == "invalid JSON: nested too deeply"
    assert sys.getrecursionlimit() == limit


@pytest.mark.parametrize("levels", [101, 1_000, 5_000, 9_990, 20_000])
def test_a_deep_decode_restores_the_process_wide_settings(levels: int) -> None:
    limit, stack = sys.getrecursionlimit(), threading.stack_size()
    parse_result(deep(levels))
    assert (sys.getrecursionlimit(), threading.stack_size()) == (limit, stack)


def on_a_deeper_stack(frames: int) -> int:
    return deepest_valid() if frames == 0 else on_a_deeper_stack(frames - 1)


def on_a_thread(function: Callable[[], int]) -> int:
    outcome: list[int] = []
    thread = threading.Thread(target=lambda: outcome.append(function()))
    thread.start()
    thread.join()
    return outcome[0]


async def in_a_task() -> int:
    return deepest_valid()


def test_the_nesting_limit_does_not_depend_on_the_callers_stack() -> None:
    here = deepest_valid()
    # 900 frames: the caller is close to the default recursion limit of 1,000.
    assert on_a_deeper_stack(200) == on_a_deeper_stack(900) == here
    assert asyncio.run(in_a_task()) == here
    assert on_a_thread(lambda: on_a_deeper_stack(100)) == here


def test_a_deep_result_needs_no_large_default_thread_stack() -> None:
    # Threads made with 256 KiB of stack (musl's default is 128 KiB), where msgspec needs
    # 3 MiB at Go's limit: without a stack of its own, the decode would crash the process.
    previous = threading.stack_size(256 * 1024)
    try:
        assert on_a_thread(deepest_valid) == expected_deepest()
    finally:
        threading.stack_size(previous)


def test_a_deep_result_is_decoded_where_no_thread_can_be_started(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def refuse(self: threading.Thread) -> None:
        raise RuntimeError("can't start new thread")

    monkeypatch.setattr(threading.Thread, "start", refuse)
    data = deep(1_000)
    assert valid_bytes(data).details == data[len(b'{"status":"success","details":') : -1]
    assert invalid(deep(10_000)) == "invalid JSON: nested too deeply"


def nesting(value: object) -> int:
    """How deeply a decoded JSON value nests (a container is a level; a scalar none)."""
    if isinstance(value, dict):
        return 1 + max(map(nesting, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(nesting, value), default=0)
    return 0


# Text full of what the count must see through: brackets, quotes and backslashes in strings.
TRICKY_TEXT = st.text(alphabet='[]{}"\\ax\u00e9', max_size=6)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | TRICKY_TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TRICKY_TEXT, inner, max_size=4),
    max_leaves=30,
)


@settings(max_examples=400)
@given(value=JSON_VALUES, ascii_only=st.booleans(), indent=st.booleans())
def test_the_nesting_count_is_exact(value: object, *, ascii_only: bool, indent: bool) -> None:
    text = json.dumps(value, ensure_ascii=ascii_only, indent=1 if indent else None).encode()
    levels = nesting(value)
    assert not nests_deeper_than(text, levels)
    assert nests_deeper_than(text, levels - 1)


@pytest.mark.parametrize("shift", range(-3, 4))
@pytest.mark.parametrize("quotes", [0, 1, 2])
def test_the_nesting_count_follows_strings_across_its_windows(shift: int, quotes: int) -> None:
    # A string holding brackets (and escaped quotes) that crosses the count's 16 KiB
    # windows, then a value 3 levels deep: 4 levels in all.
    held = b"]]" + b'\\"]' * quotes + b"[["
    pad = b"x" * (16 * 1024 - 2 + shift)
    text = b'["' + pad + held + b'",[[[0]]]]'
    assert json.loads(text)
    assert not nests_deeper_than(text, 4)
    assert nests_deeper_than(text, 3)


@pytest.mark.parametrize("levels", [1, 2, 100, 9_999, 10_000, 10_001])
def test_the_nesting_count_of_many_shallow_values_and_one_deep(levels: int) -> None:
    # Flat values first, which the count peels off cheaply, then one deep value.
    text = b"[" + b"[{},[]]," * 50_000 + b"[" * levels + b"]" * levels + b"]"
    depth = max(3, 1 + levels)
    assert not nests_deeper_than(text, depth)
    assert nests_deeper_than(text, depth - 1)


def test_keys_are_case_sensitive() -> None:
    result = valid({"status": "success", "Reason": "X", "MESSAGE": "Y"})
    assert (result.reason, result.message) == ("NoReasonProvided", "No message provided")


def test_render_details_is_bounded() -> None:
    assert render_details(b'{"k": "v"}') == ('{"k": "v"}', False)
    text, cut = render_details(json.dumps({"k": "é" * 100_000}, ensure_ascii=False).encode(), 1000)
    assert cut
    assert len(text.encode()) <= 1000


# --- whole-file rules -----------------------------------------------------------


@pytest.mark.parametrize("data", [b"", b" ", b"\n\t\r\n  ", b"\v\f"])
def test_empty_or_whitespace_file(data: bytes) -> None:
    assert invalid(data) == "file is empty"


def test_size_limit_is_exactly_one_mebibyte() -> None:
    head = b'{"status":"success","pad":"'
    tail = b'"}'
    exact = head + b"x" * (MAX_RESULT_BYTES - len(head) - len(tail)) + tail
    assert len(exact) == MAX_RESULT_BYTES
    assert isinstance(parse_result(exact), ResultValid)
    over = head + b"x" * (MAX_RESULT_BYTES - len(head) - len(tail) + 1) + tail
    assert invalid(over) == "file is larger than 1 MiB (1048576 bytes)"


def test_a_file_of_exactly_the_limit_is_read(tmp_path: Path) -> None:
    head = b'{"status":"success","pad":"'
    tail = b'"}'
    path = tmp_path / "r.json"
    path.write_bytes(head + b"x" * (MAX_RESULT_BYTES - len(head) - len(tail)) + tail)
    assert isinstance(read_result(str(path)), ResultValid)


def test_invalid_content_is_told_apart_up_to_its_last_byte() -> None:
    # A writer that changes only the last byte of a 1 MiB file still makes new content.
    first = parse_result(b"[" * MAX_RESULT_BYTES)
    second = parse_result(b"[" * (MAX_RESULT_BYTES - 1) + b"]")
    assert isinstance(first, ResultInvalid)
    assert isinstance(second, ResultInvalid)
    assert first.fingerprint != second.fingerprint


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b'{"status": "success",}', "invalid JSON: trailing comma in object at line 1 column 22"),
        (b"{'status': 'success'}", "invalid JSON: "),
        (b'{"status": "success"} {}', "invalid JSON: trailing characters at line 1 column "),
        (b'{"status": "success"}\nx', "invalid JSON: trailing characters at line 2 column "),
        (b'{"status": "success", "d": NaN}', "invalid JSON: invalid character at line 1 column 28"),
        (b'{"status": "success", "d": Infinity}', "invalid JSON: invalid character"),
        (b'{"status": "success", "d": -Infinity}', "invalid JSON: invalid character"),
        (b'{"status": "success", "m": "a\x01b"}', "invalid JSON: invalid character"),
        (b"// comment\n{}", "invalid JSON: "),
        (b'{"status": "succ', "invalid JSON: unexpected end of data"),
    ],
)
def test_strict_json(data: bytes, expected: str) -> None:
    assert invalid(data).startswith(expected)


def test_deep_nesting_is_invalid_not_a_crash() -> None:
    deep = b'{"status":"success","d":' + b"[" * 200_000 + b"]" * 200_000 + b"}"
    assert invalid(deep) == "invalid JSON: nested too deeply"
    assert invalid(b'{"status":"success","d":' + b"[" * 100_000).startswith("invalid JSON: ")


def test_huge_integers_are_valid_json() -> None:
    data = b'{"status":"success","details":' + b"9" * 5000 + b"}"
    assert isinstance(parse_result(data), ResultValid)


@pytest.mark.parametrize(
    ("data", "kind"),
    [
        (b"[]", "array"),
        (b'"success"', "string"),
        (b"1", "number"),
        (b"null", "null"),
        (b"true", "boolean"),
    ],
)
def test_top_level_must_be_an_object(data: bytes, kind: str) -> None:
    assert invalid(data) == f"top level must be a JSON object, got {kind}"


@pytest.mark.parametrize(
    "data",
    [
        b'{"status":"success","reason":"\xff"}',
        b'{"status":"success","reason":"\xc3"}',
        b'{"status":"success","reason":"\xed\xa0\x80"}',  # an encoded surrogate
        b'{"status":"success","reason":"\xc0\xaf"}',  # overlong
        b'\xfe\xff{"status":"success"}',
    ],
)
def test_invalid_utf8(data: bytes) -> None:
    assert invalid(data).startswith("file is not valid UTF-8 (invalid byte at offset ")


def test_utf8_byte_order_mark_is_tolerated() -> None:
    assert isinstance(parse_result(b'\xef\xbb\xbf{"status":"success"}'), ResultValid)


def test_fingerprint_tracks_content() -> None:
    one = parse_result(b"{")
    same = parse_result(b"{")
    other = parse_result(b"{ ")
    assert isinstance(one, ResultInvalid)
    assert isinstance(same, ResultInvalid)
    assert isinstance(other, ResultInvalid)
    assert one.fingerprint == same.fingerprint != other.fingerprint


# --- properties ------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)
text_fields = (
    st.none() | st.text() | st.integers() | st.booleans() | st.lists(st.text(), max_size=2)
)


def _check_state(state: ResultValid | ResultInvalid) -> None:
    if isinstance(state, ResultValid):
        result = state.result
        assert result.status in ("success", "failure")
        for text, limit in ((result.reason, 128), (result.message, 1024)):
            assert text
            assert len(text.encode("utf-8")) <= limit
            assert trim(text[:1]) == text[:1]
    else:
        assert state.error
        state.error.encode("utf-8")


@settings(max_examples=400)
@given(st.binary(max_size=2048))
def test_parser_never_raises_on_arbitrary_bytes(data: bytes) -> None:
    _check_state(parse_result(data))


@settings(max_examples=400)
@given(
    status=st.sampled_from(["success", "failure", "Success", "", None]) | st.text(max_size=8),
    reason=text_fields,
    message=text_fields,
    details=json_values,
)
def test_parser_output_is_bounded_valid_utf8(
    status: object, reason: object, message: object, details: object
) -> None:
    document = {"status": status, "reason": reason, "message": message, "details": details}
    data = json.dumps(document, ensure_ascii=False).encode("utf-8", "surrogatepass")
    _check_state(parse_result(data))
    _check_state(parse_result(json.dumps(document).encode()))


@given(st.text(), st.integers(min_value=0, max_value=300))
def test_truncate_utf8_properties(text: str, limit: int) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return
    cut = truncate_utf8(text, limit)
    assert len(cut.encode()) <= limit
    assert text.startswith(cut)
    if len(text.encode()) <= limit:
        assert cut == text
    else:
        # Nothing more of the next character would have fitted.
        assert len(cut.encode()) + len(text[len(cut)].encode()) > limit


# --- safe reading ------------------------------------------------------------------


def test_missing_file_and_missing_directory(tmp_path: Path) -> None:
    assert read_result(str(tmp_path / "none.json")) == ResultMissing()
    assert read_result(str(tmp_path / "no-dir" / "none.json")) == ResultMissing()


def test_reads_a_regular_file(tmp_path: Path) -> None:
    path = tmp_path / "r.json"
    path.write_text('{"status": "failure", "reason": "Denied"}')
    state = read_result(str(path))
    assert isinstance(state, ResultValid)
    assert state.result.reason == "Denied"


def test_directory_is_invalid(tmp_path: Path) -> None:
    path = tmp_path / "r.json"
    path.mkdir()
    state = read_result(str(path))
    assert isinstance(state, ResultInvalid)
    assert state.error == "result path is a directory, not a regular file"


def test_symlink_is_never_followed(tmp_path: Path) -> None:
    target = tmp_path / "target.json"
    target.write_text('{"status": "success"}')
    link = tmp_path / "r.json"
    link.symlink_to(target)
    state = read_result(str(link))
    assert isinstance(state, ResultInvalid)
    assert state.error == "result path is a symbolic link, not a regular file"
    dangling = tmp_path / "dangling.json"
    dangling.symlink_to(tmp_path / "nowhere")
    assert isinstance(read_result(str(dangling)), ResultInvalid)


def test_fifo_is_invalid_and_never_blocks(tmp_path: Path) -> None:
    path = tmp_path / "r.json"
    os.mkfifo(path)
    started = time.monotonic()
    outcome: list[object] = []
    reader = threading.Thread(target=lambda: outcome.append(read_result(str(path))), daemon=True)
    reader.start()
    reader.join(timeout=5)
    assert not reader.is_alive(), "read_result blocked on a FIFO"
    assert time.monotonic() - started < 5
    (state,) = outcome
    assert isinstance(state, ResultInvalid)
    assert state.error == "result path is a FIFO, not a regular file"


def test_socket_and_device_are_invalid(tmp_path: Path) -> None:
    path = tmp_path / "s.sock"
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(path))
        state = read_result(str(path))
    assert isinstance(state, ResultInvalid)
    assert state.error == "result path is a socket, not a regular file"
    state = read_result("/dev/null")
    assert isinstance(state, ResultInvalid)
    assert state.error == "result path is a character device, not a regular file"


def count_reads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The number of bytes of each ``os.read`` of the contract module, from now on."""
    reads: list[int] = []
    real_read = os.read

    def counting_read(fd: int, size: int) -> bytes:
        chunk = real_read(fd, size)
        reads.append(len(chunk))
        return chunk

    monkeypatch.setattr("status_reporter.core.contract.os.read", counting_read)
    return reads


def test_a_file_larger_than_the_limit_is_not_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "r.json"
    path.write_bytes(b'{"status":"success"}')
    os.truncate(path, 100 * MAX_RESULT_BYTES)  # sparse: 100 MiB by stat
    reads = count_reads(monkeypatch)
    first = read_result(str(path))
    assert isinstance(first, ResultInvalid)
    assert first.error == "file is larger than 1 MiB (1048576 bytes)"
    assert read_result(str(path)) == first
    # Whether it is still being written: its size or its modification time changes.
    os.truncate(path, 101 * MAX_RESULT_BYTES)
    grown = read_result(str(path))
    os.utime(path, ns=(0, 1))
    touched = read_result(str(path))
    assert isinstance(grown, ResultInvalid)
    assert isinstance(touched, ResultInvalid)
    assert len({first.fingerprint, grown.fingerprint, touched.fingerprint}) == 3
    assert reads == []


def test_a_file_that_grows_after_fstat_is_read_to_the_limit_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "r.json"
    path.write_bytes(b'{"status":"success"}')
    small = os.stat(path)
    os.truncate(path, 64 * MAX_RESULT_BYTES)  # grows between the fstat and the reads
    monkeypatch.setattr("status_reporter.core.contract.os.fstat", lambda _: small)
    reads = count_reads(monkeypatch)
    state = read_result(str(path))
    assert isinstance(state, ResultInvalid)
    assert state.error == "file is larger than 1 MiB (1048576 bytes)"
    assert sum(reads) == MAX_RESULT_BYTES + 1


def test_parent_that_is_a_file(tmp_path: Path) -> None:
    parent = tmp_path / "results"
    parent.write_text("x")
    state = read_result(str(parent / "r.json"))
    assert isinstance(state, ResultInvalid)
    assert state.error == "cannot read result file: Not a directory"


def test_other_os_errors_are_reported(tmp_path: Path) -> None:
    # Any error but "not found" is reported with its cause (EACCES takes this path too,
    # but root, which CI runs as, can read any file).
    state = read_result(str(tmp_path / ("x" * 300)))
    assert isinstance(state, ResultInvalid)
    assert state.error == "cannot read result file: File name too long"


# --- the directories on the way: resolved once at start-up, then never followed ---------


def _valid_elsewhere(tmp_path: Path) -> Path:
    """A directory outside the results that holds a valid result file."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "r.json").write_text('{"status": "success", "reason": "FromReporterFS"}')
    return elsewhere


def test_a_directory_made_a_symlink_below_the_resolved_ones_is_refused(tmp_path: Path) -> None:
    results = tmp_path / "results"
    results.mkdir()
    path = resolve_results_path(str(results / "sub" / "r.json"))
    assert path == str(results / "sub" / "r.json")  # "sub" does not exist at start-up
    (results / "sub").symlink_to(_valid_elsewhere(tmp_path))
    state = read_result(path)
    assert isinstance(state, ResultInvalid)
    assert state.error == (
        f"result directory {results / 'sub'} is a symbolic link, which is not followed"
    )


def test_a_symlink_anywhere_below_is_refused(tmp_path: Path) -> None:
    results = tmp_path / "results"
    results.mkdir()
    path = resolve_results_path(str(results / "a" / "b" / "r.json"))
    elsewhere = _valid_elsewhere(tmp_path)
    (results / "a").mkdir()
    (results / "a" / "b").symlink_to(elsewhere)
    state = read_result(path)
    assert isinstance(state, ResultInvalid)
    assert state.error.endswith("/results/a/b is a symbolic link, which is not followed")
    (results / "a" / "b").unlink()
    (results / "a").rmdir()
    (results / "a").symlink_to(tmp_path)  # .../results/a/b is now .../b: missing
    state = read_result(path)
    assert isinstance(state, ResultInvalid)
    assert state.error.endswith("/results/a is a symbolic link, which is not followed")


def test_directories_that_exist_at_start_up_are_resolved_once(tmp_path: Path) -> None:
    real = tmp_path / "run"
    real.mkdir()
    (real / "r.json").write_text('{"status": "success", "reason": "Real"}')
    var_run = tmp_path / "var-run"
    var_run.symlink_to(real)  # as Debian's /var/run -> /run
    path = resolve_results_path(str(var_run / "r.json"))
    assert path == str(real / "r.json")
    state = read_result(path)
    assert isinstance(state, ResultValid)
    assert state.result.reason == "Real"
    # Pointing the link elsewhere later changes nothing: it was resolved at start-up.
    var_run.unlink()
    var_run.symlink_to(_valid_elsewhere(tmp_path))
    state = read_result(path)
    assert isinstance(state, ResultValid)
    assert state.result.reason == "Real"
    # A resolved directory replaced by a symlink later is refused like any other.
    real.rename(tmp_path / "moved")
    real.symlink_to(tmp_path / "moved")
    state = read_result(path)
    assert isinstance(state, ResultInvalid)
    assert state.error == f"result directory {real} is a symbolic link, which is not followed"


def test_resolving_never_follows_the_file_itself(tmp_path: Path) -> None:
    link = tmp_path / "r.json"
    link.symlink_to(_valid_elsewhere(tmp_path) / "r.json")
    path = resolve_results_path(str(link))
    assert path == str(link)
    state = read_result(path)
    assert isinstance(state, ResultInvalid)
    assert state.error == "result path is a symbolic link, not a regular file"


def test_resolving_a_relative_path_or_one_whose_directory_is_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert resolve_results_path("r.json") == str(tmp_path / "r.json")
    assert resolve_results_path("/nonexistent/x/../r.json") == "/nonexistent/r.json"
    (tmp_path / "file").write_text("x")  # a file where a directory is expected
    assert resolve_results_path("file/r.json") == str(tmp_path / "file" / "r.json")


def test_a_relative_path_is_read_from_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "r.json").write_text('{"status": "failure"}')
    monkeypatch.chdir(tmp_path)
    assert isinstance(read_result("d/r.json"), ResultValid)
    (tmp_path / "l").symlink_to(tmp_path / "d")
    assert isinstance(read_result("l/r.json"), ResultInvalid)


def test_a_directory_that_cannot_be_searched_is_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_open = os.open

    def refusing_open(
        path: str, flags: int, mode: int = 0o777, *, dir_fd: int | None = None
    ) -> int:
        if path == "locked":
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))
        return real_open(path, flags, mode, dir_fd=dir_fd)

    (tmp_path / "locked").mkdir()
    monkeypatch.setattr("status_reporter.core.contract.os.open", refusing_open)
    state = read_result(str(tmp_path / "locked" / "r.json"))
    assert isinstance(state, ResultInvalid)
    assert state.error == "cannot read result file: Permission denied"


# --- the path swapped between the type check and the open (a race) ---------------------


@pytest.fixture
def swapped_after_stat(monkeypatch: pytest.MonkeyPatch) -> None:
    """``os.stat`` says "regular file" whatever is there, as if the path was swapped."""
    regular = os.stat_result((stat.S_IFREG | 0o644, 0, 0, 1, 0, 0, 2, 0, 0, 0))
    monkeypatch.setattr("status_reporter.core.contract.os.stat", lambda *_, **__: regular)


@pytest.mark.usefixtures("swapped_after_stat")
def test_a_symlink_swapped_in_is_still_not_followed(tmp_path: Path) -> None:
    target = tmp_path / "target.json"
    target.write_text('{"status": "success"}')
    link = tmp_path / "r.json"
    link.symlink_to(target)
    state = read_result(str(link))
    assert isinstance(state, ResultInvalid)
    assert state.error == "result path is a symbolic link, not a regular file"


@pytest.mark.usefixtures("swapped_after_stat")
def test_a_fifo_swapped_in_is_checked_on_the_descriptor_and_never_blocks(tmp_path: Path) -> None:
    path = tmp_path / "r.json"
    os.mkfifo(path)
    outcome: list[object] = []
    reader = threading.Thread(target=lambda: outcome.append(read_result(str(path))), daemon=True)
    reader.start()
    reader.join(timeout=5)
    assert not reader.is_alive(), "read_result blocked on a FIFO"
    (state,) = outcome
    assert isinstance(state, ResultInvalid)
    assert state.error == "result path is a FIFO, not a regular file"


def test_a_read_error_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "r.json"
    path.write_text('{"status": "success"}')

    def failing_read(fd: int, size: int) -> bytes:
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    monkeypatch.setattr("status_reporter.core.contract.os.read", failing_read)
    state = read_result(str(path))
    assert isinstance(state, ResultInvalid)
    assert state.error == "cannot read result file: Input/output error"


def test_a_file_read_in_several_chunks_is_whole(tmp_path: Path) -> None:
    path = tmp_path / "r.json"
    details = json.dumps("x" * 600_000).encode()
    path.write_bytes(b'{"status": "success", "reason": "Big", "details": ' + details + b"}")
    state = read_result(str(path))
    assert isinstance(state, ResultValid)
    assert state.result.reason == "Big"
    assert state.result.details == details


def test_different_problems_have_different_fingerprints(tmp_path: Path) -> None:
    (tmp_path / "dir.json").mkdir()
    (tmp_path / "file").write_text("x")
    states = [
        read_result(str(tmp_path / "dir.json")),
        read_result("/dev/null"),
        read_result(str(tmp_path / "file" / "r.json")),
        read_result(str(tmp_path / ("x" * 300))),
    ]
    fingerprints = {s.fingerprint for s in states if isinstance(s, ResultInvalid)}
    assert len(fingerprints) == 4


# --- where a JSON error is -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b'{\n  "status": NaN}', "invalid JSON: invalid character at line 2 column 13"),
        (
            b'{"status":\n\n"success",\n\n}',
            "invalid JSON: trailing comma in object at line 5 column 1",
        ),
        (b'\n\n  {"a": tru}', "invalid JSON: invalid character at line 3 column 10"),
        (b'{"a": tru}\n\n', "invalid JSON: invalid character at line 1 column 8"),
        (b'\n{"a": tru}', "invalid JSON: invalid character at line 2 column 8"),
        # After a byte order mark, which is not counted.
        (b'\xef\xbb\xbf{"a": tru}', "invalid JSON: invalid character at line 1 column 8"),
        (b'\xef\xbb\xbf\n{"a": tru}', "invalid JSON: invalid character at line 2 column 8"),
    ],
)
def test_json_errors_name_their_line_and_column(data: bytes, expected: str) -> None:
    assert invalid(data) == expected


@pytest.mark.parametrize("space", [b" ", b"\n\t ", b"\r\n", b"\xef\xbb\xbf "])
def test_top_level_type_is_named_after_leading_white_space(space: bytes) -> None:
    assert invalid(space + b"[1]") == "top level must be a JSON object, got array"


@given(st.text(), st.integers(min_value=0, max_value=300))
def test_render_details_cuts_like_truncate_utf8(text: str, limit: int) -> None:
    try:
        encoded = text.encode("utf-8")
    except UnicodeEncodeError:
        return
    cut = truncate_utf8(text, limit)
    assert render_details(encoded, limit) == (cut, cut != text)


@pytest.mark.parametrize(
    ("text", "limit", "cut"),
    [("é", 1, ""), ("é", 2, "é"), ("aé", 2, "a"), ("😀", 3, ""), ("😀x", 4, "😀"), ("abc", 0, "")],
)
def test_truncation_at_character_boundaries(text: str, limit: int, cut: str) -> None:
    assert truncate_utf8(text, limit) == cut
