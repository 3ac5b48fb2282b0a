"""README "Logs" and "Configuration": ``LOG_CONTEXT`` names the Job's (else the Pod's)
labels and annotations that every line after start-up carries, bounded and escaped
like any other value."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest

from status_reporter.base import logs
from status_reporter.base.logs import CONTEXT_VALUE_LIMIT, carried
from status_reporter.core.config import (
    DEFAULT_LOG_CONTEXT,
    DEFAULT_LOG_CONTEXT_FIELDS,
    LOG_CONTEXT_LIMIT,
    Config,
    ConfigError,
    LogContextField,
    LogFormat,
    MetadataSource,
    load,
    parse_log_context,
)
from status_reporter.core.models import ObjectMeta
from status_reporter.shell.engine import Reporter
from status_reporter.shell.outcome import ExitCode
from tests.unit.fakes import FakeClock, settle
from tests.unit.memcluster import MemoryCluster

BASE = {"JOB_NAME": "job-a", "JOB_NAMESPACE": "ns-a", "POD_NAME": "pod-a"}
LABEL, ANNOTATION = MetadataSource.LABEL, MetadataSource.ANNOTATION


@pytest.fixture(autouse=True)
def _restore_default_logging() -> Iterator[None]:
    yield
    logs.configure()


# --- the setting ---------------------------------------------------------------------


def test_the_default_carries_hyperfleets_cluster_and_generation() -> None:
    assert (
        load(BASE).log_context
        == DEFAULT_LOG_CONTEXT_FIELDS
        == (
            LogContextField("cluster_id", LABEL, "hyperfleet.io/cluster-id"),
            LogContextField("generation", ANNOTATION, "hyperfleet.io/generation"),
        )
    )
    assert load({**BASE, "LOG_CONTEXT": ""}).log_context == DEFAULT_LOG_CONTEXT_FIELDS
    # The fields are written out in the module (no parsing at start-up): they must stay
    # what the documented default string says.
    assert parse_log_context(DEFAULT_LOG_CONTEXT) == DEFAULT_LOG_CONTEXT_FIELDS


@pytest.mark.parametrize("value", ["none", " NONE "])
def test_none_carries_nothing(value: str) -> None:
    assert load({**BASE, "LOG_CONTEXT": value}).log_context == ()


def test_entries_are_read_in_order_with_space_and_case_tolerated() -> None:
    parsed = parse_log_context(
        " team = Label : example.com/team , run=annotation:run-id,app=label:app.kubernetes.io/name"
    )
    assert parsed == (
        LogContextField("team", LABEL, "example.com/team"),
        LogContextField("run", ANNOTATION, "run-id"),
        LogContextField("app", LABEL, "app.kubernetes.io/name"),
    )


def test_sixteen_entries_are_allowed() -> None:
    raw = ",".join(f"f{i}=label:k{i}" for i in range(LOG_CONTEXT_LIMIT))
    assert len(parse_log_context(raw)) == LOG_CONTEXT_LIMIT


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("cluster_id", 'entry "cluster_id" is not name=label:key'),
        ("cluster_id=hyperfleet.io/cluster-id", "is not name=label:key"),
        ("a=label:x,", 'entry "" is not'),
        ("Cluster=label:x", 'field name "Cluster" must be 1-63 lower-case'),
        ("1x=label:x", 'field name "1x"'),
        ("cluster-id=label:x", 'field name "cluster-id"'),
        (f"{'x' * 64}=label:k", "must be 1-63"),
        ("pod=label:x", 'field name "pod" is one every log line already has'),
        ("message=label:x", '"message" is one every log line already has'),
        ("a=label:x,a=annotation:y", 'field name "a" is given twice'),
        ("a=env:X", '"env" in entry "a=env:X" must be label or annotation'),
        ("a=label:", '"" in entry "a=label:" is not a Kubernetes label or annotation key'),
        ("a=label:-x", '"-x" in entry'),
        ("a=label:Example.com/x", "is not a Kubernetes"),
        ("a=label:example.com/", "is not a Kubernetes"),
        ("a=label:a/b/c", "is not a Kubernetes"),
        (f"a=label:{'k' * 64}", "is not a Kubernetes"),
        (f"a=label:{'p' * 254}/k", "is not a Kubernetes"),
        (",".join(f"f{i}=label:k" for i in range(LOG_CONTEXT_LIMIT + 1)), "at most 16 entries"),
    ],
)
def test_a_bad_value_is_a_configuration_error(value: str, why: str) -> None:
    with pytest.raises(ConfigError) as info:
        load({**BASE, "LOG_CONTEXT": value})
    assert info.value.variable == "LOG_CONTEXT"
    assert why in str(info.value)
    assert str(info.value).endswith(
        "must be none or a comma-separated list of name=label:key or name=annotation:key"
    )


@pytest.mark.parametrize(
    "name",
    [
        "timestamp", "level", "message", "component", "version", "hostname", "job",
        "namespace", "pod", "repeated", "log_line_truncated",
    ],
)  # fmt: skip
def test_the_fields_every_line_has_are_reserved(name: str) -> None:
    with pytest.raises(ConfigError, match=f'field name "{name}" is one every log line'):
        parse_log_context(f"{name}=label:x")


def test_the_longest_keys_are_allowed() -> None:
    prefix = ".".join(["a" * 63] * 4)[:253].rstrip(".")
    key = f"{prefix}/{'k' * 63}"
    assert parse_log_context(f"a=annotation:{key}") == (LogContextField("a", ANNOTATION, key),)


# --- the values ----------------------------------------------------------------------


def meta(
    labels: dict[str, str] | None = None, annotations: dict[str, str] | None = None
) -> ObjectMeta:
    return ObjectMeta(name="x", labels=labels or {}, annotations=annotations or {})


def test_the_jobs_value_wins_and_the_pods_fills_in() -> None:
    job = meta({"hyperfleet.io/cluster-id": "C-1"}, {})
    pod = meta({"hyperfleet.io/cluster-id": "pod-says"}, {"hyperfleet.io/generation": "7"})
    assert carried(DEFAULT_LOG_CONTEXT_FIELDS, job, pod) == {
        "cluster_id": "C-1",
        "generation": "7",
    }


def test_labels_and_annotations_are_not_mixed_up() -> None:
    job = meta({"hyperfleet.io/generation": "label"}, {"hyperfleet.io/cluster-id": "annotation"})
    assert carried(DEFAULT_LOG_CONTEXT_FIELDS, job) == {}


def test_an_empty_value_is_carried_and_a_missing_one_left_out() -> None:
    assert carried(DEFAULT_LOG_CONTEXT_FIELDS, meta({"hyperfleet.io/cluster-id": ""})) == {
        "cluster_id": ""
    }


def test_a_long_value_is_cut() -> None:
    long = "g" * (CONTEXT_VALUE_LIMIT + 1000)
    found = carried(
        DEFAULT_LOG_CONTEXT_FIELDS, meta(annotations={"hyperfleet.io/generation": long})
    )
    assert found["generation"] == "g" * CONTEXT_VALUE_LIMIT + "…"
    exact = "g" * CONTEXT_VALUE_LIMIT
    found = carried(
        DEFAULT_LOG_CONTEXT_FIELDS, meta(annotations={"hyperfleet.io/generation": exact})
    )
    assert found["generation"] == exact


def test_metadata_decodes_labels_and_annotations() -> None:
    wire = b'{"name":"p","labels":{"a":"1"},"annotations":{"b":"2"}}'
    decoded = msgspec.json.decode(wire, type=ObjectMeta)
    assert (decoded.labels, decoded.annotations) == ({"a": "1"}, {"b": "2"})


def test_carried_values_are_quoted_and_escaped_in_text_logs() -> None:
    stream = io.BytesIO()
    logs.configure(stream=stream)
    log = logs.get_logger(job="j")
    hostile = 'x" forged=1\nFAKE LINE'
    log.bind(**carried(DEFAULT_LOG_CONTEXT_FIELDS, meta({"hyperfleet.io/cluster-id": hostile})))
    log.info("hello")
    (line,) = stream.getvalue().decode().splitlines()
    assert line.endswith(' job=j cluster_id="x\\" forged=1\\nFAKE LINE"')


# --- bound at start-up ---------------------------------------------------------------


async def test_every_line_after_start_up_carries_the_context(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    logs.configure(fmt=LogFormat.JSON)
    clock = FakeClock()
    cluster = MemoryCluster(clock)
    cluster.job = msgspec.structs.replace(
        cluster.job,
        metadata=msgspec.structs.replace(
            cluster.job.metadata,
            labels={"hyperfleet.io/cluster-id": "C-1"},
            annotations={"hyperfleet.io/generation": "3"},
        ),
    )
    results = tmp_path / "adapter-result.json"
    config = Config(
        job_name="job-a",
        job_namespace="ns-a",
        pod_name="pod-a",
        results_path=str(results),
        termination_message_path=str(tmp_path / "termination-log"),
        log_context=DEFAULT_LOG_CONTEXT_FIELDS,
    )
    reporter = Reporter(config, cluster, clock, logs.get_logger(job="job-a"))
    task = asyncio.create_task(reporter.run())
    await settle()
    results.write_text('{"status": "success", "reason": "Ok", "message": "m"}')
    await clock.advance(2)
    for _ in range(100):
        if task.done():
            break
        await settle()
    assert task.result() is ExitCode.RESULT
    entries = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    written = next(e for e in entries if e["message"] == "condition written")
    assert (written["cluster_id"], written["generation"]) == ("C-1", "3")
    assert all("cluster_id" in e for e in entries[entries.index(written) :])
