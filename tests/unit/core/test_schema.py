"""The shipped JSON Schema agrees with the parser on the same sample files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from status_reporter.core.contract import ResultInvalid, ResultValid, parse_result, read_result

ROOT = Path(__file__).parents[3]
SCHEMA = json.loads((ROOT / "schema" / "adapter-result.schema.json").read_text())
SAMPLES = ROOT / "tests" / "samples"
VALID = sorted((SAMPLES / "valid").glob("*.json"))
INVALID = sorted((SAMPLES / "invalid").glob("*.json"))


def test_schema_is_a_valid_draft_2020_12_schema() -> None:
    Draft202012Validator.check_schema(SCHEMA)


def test_there_are_samples_of_both_kinds() -> None:
    assert len(VALID) >= 5
    assert len(INVALID) >= 5


@pytest.mark.parametrize("sample", VALID, ids=lambda p: p.name)
def test_valid_samples(sample: Path) -> None:
    assert isinstance(read_result(str(sample)), ResultValid)
    assert Draft202012Validator(SCHEMA).is_valid(json.loads(sample.read_text()))


@pytest.mark.parametrize("sample", INVALID, ids=lambda p: p.name)
def test_invalid_samples(sample: Path) -> None:
    assert isinstance(read_result(str(sample)), ResultInvalid)
    assert not Draft202012Validator(SCHEMA).is_valid(json.loads(sample.read_text()))


@pytest.mark.parametrize("example", SCHEMA["examples"])
def test_schema_examples_parse(example: object) -> None:
    assert isinstance(parse_result(json.dumps(example).encode()), ResultValid)
