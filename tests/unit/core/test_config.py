"""README "Configuration": every variable, default and validation rule."""

from __future__ import annotations

import pytest

from status_reporter.core.config import (
    DEFAULT_LOG_CONTEXT_FIELDS,
    Config,
    ConfigError,
    LogFormat,
    LogLevel,
    MonitorMode,
    error_report,
    load,
)

BASE = {"JOB_NAME": "job-a", "JOB_NAMESPACE": "ns-a", "POD_NAME": "pod-a"}


def env(**overrides: str) -> dict[str, str]:
    return {**BASE, **overrides}


def error_for(**overrides: str) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load(env(**overrides))
    return info.value


def test_defaults_match_the_reference() -> None:
    assert load(BASE) == Config(
        job_name="job-a",
        job_namespace="ns-a",
        pod_name="pod-a",
        results_path="/results/adapter-result.json",
        poll_interval_seconds=2,
        max_wait_time_seconds=300,
        condition_type="Available",
        log_level=LogLevel.INFO,
        adapter_container_name="",
        log_format=LogFormat.TEXT,
        reporter_container_name="status-reporter",
        monitor_mode=MonitorMode.AUTO,
        container_status_interval_seconds=10,
        termination_message_path="/dev/termination-log",
        log_context=DEFAULT_LOG_CONTEXT_FIELDS,
    )


def test_every_variable_is_read() -> None:
    config = load(
        env(
            RESULTS_PATH="/data/out.json",
            POLL_INTERVAL_SECONDS="5",
            MAX_WAIT_TIME_SECONDS="60",
            CONDITION_TYPE="Validated",
            LOG_LEVEL="DEBUG",
            ADAPTER_CONTAINER_NAME="adapter",
            LOG_FORMAT="JSON",
            REPORTER_CONTAINER_NAME="reporter",
            MONITOR_MODE="Poll",
            CONTAINER_STATUS_INTERVAL_SECONDS="3",
            TERMINATION_MESSAGE_PATH="/tmp/last-word",
        )
    )
    assert config.results_path == "/data/out.json"
    assert config.poll_interval_seconds == 5
    assert config.max_wait_time_seconds == 60
    assert config.condition_type == "Validated"
    assert config.log_level is LogLevel.DEBUG
    assert config.adapter_container_name == "adapter"
    assert config.log_format is LogFormat.JSON
    assert config.reporter_container_name == "reporter"
    assert config.monitor_mode is MonitorMode.POLL
    assert config.container_status_interval_seconds == 3
    assert config.termination_message_path == "/tmp/last-word"


@pytest.mark.parametrize("name", ["JOB_NAMESPACE", "POD_NAME"])
@pytest.mark.parametrize("value", [None, "", "   ", "\t"])
def test_required_variables(name: str, value: str | None) -> None:
    environment = dict(BASE)
    if value is None:
        del environment[name]
    else:
        environment[name] = value
    with pytest.raises(ConfigError) as info:
        load(environment)
    assert info.value.variable == name
    assert name in str(info.value)
    assert "required" in str(info.value)


@pytest.mark.parametrize("value", [None, ""])
def test_an_unset_job_name_means_the_pods_owner(value: str | None) -> None:
    environment = dict(BASE)
    if value is None:
        del environment["JOB_NAME"]
    else:
        environment["JOB_NAME"] = value
    assert load(environment).job_name == ""


@pytest.mark.parametrize("value", ["   ", "\t"])
def test_a_blank_job_name_is_refused(value: str) -> None:
    error = error_for(JOB_NAME=value)
    assert (error.variable, error.value) == ("JOB_NAME", value)
    assert error.allowed == "must not be blank (leave it unset to use the Pod's owning Job)"


def test_required_values_are_trimmed() -> None:
    config = load({"JOB_NAME": " job ", "JOB_NAMESPACE": "ns\n", "POD_NAME": "\tpod"})
    assert (config.job_name, config.job_namespace, config.pod_name) == ("job", "ns", "pod")


@pytest.mark.parametrize("value", ["results.json", "./r.json", "/results/", "/", "relative/"])
@pytest.mark.parametrize("name", ["RESULTS_PATH", "TERMINATION_MESSAGE_PATH"])
def test_file_paths_must_be_absolute(name: str, value: str) -> None:
    error = error_for(**{name: value})
    assert error.variable == name
    assert f'"{value}"' in str(error)


def test_empty_values_count_as_unset() -> None:
    config = load(
        env(
            RESULTS_PATH="",
            POLL_INTERVAL_SECONDS="",
            MAX_WAIT_TIME_SECONDS="",
            CONDITION_TYPE="",
            LOG_LEVEL="",
            LOG_FORMAT="",
            MONITOR_MODE="",
            REPORTER_CONTAINER_NAME="",
            CONTAINER_STATUS_INTERVAL_SECONDS="",
            TERMINATION_MESSAGE_PATH="",
        )
    )
    assert config == load(BASE)


@pytest.mark.parametrize(
    "value", ["0", "-1", "abc", "1.5", "1e3", "0x10", "1_000", "٣", "2 0", "+"]
)
@pytest.mark.parametrize(
    "name",
    ["POLL_INTERVAL_SECONDS", "MAX_WAIT_TIME_SECONDS", "CONTAINER_STATUS_INTERVAL_SECONDS"],
)
def test_integers_must_be_positive_decimal(name: str, value: str) -> None:
    error = error_for(**{name: value})
    assert error.variable == name
    assert error.value == value
    assert "integer greater than 0" in str(error)


@pytest.mark.parametrize(
    ("name", "limit"),
    [("MAX_WAIT_TIME_SECONDS", 604_800), ("CONTAINER_STATUS_INTERVAL_SECONDS", 3600)],
)
def test_integers_have_an_upper_bound(name: str, limit: int) -> None:
    assert getattr(load(env(**{name: str(limit)})), name.lower()) == limit
    for value in (str(limit + 1), "9223372036854775807", "9" * 5000):
        error = error_for(**{name: value})
        assert error.variable == name
        assert f"at most {limit}" in str(error)


def test_integers_accept_surrounding_space_and_plus_sign() -> None:
    config = load(env(POLL_INTERVAL_SECONDS=" +3 ", MAX_WAIT_TIME_SECONDS="010"))
    assert (config.poll_interval_seconds, config.max_wait_time_seconds) == (3, 10)


@pytest.mark.parametrize(
    ("poll", "wait"), [("300", "300"), ("301", "300"), ("2", "2"), ("300", "")]
)
def test_poll_interval_must_be_less_than_max_wait(poll: str, wait: str) -> None:
    # An empty MAX_WAIT_TIME_SECONDS is the default, 300.
    error = error_for(POLL_INTERVAL_SECONDS=poll, MAX_WAIT_TIME_SECONDS=wait)
    assert error.variable == "POLL_INTERVAL_SECONDS"
    assert "less than MAX_WAIT_TIME_SECONDS" in str(error)


def test_poll_interval_just_below_max_wait_is_allowed() -> None:
    assert load(env(POLL_INTERVAL_SECONDS="299")).poll_interval_seconds == 299


def test_condition_type_must_not_be_blank() -> None:
    assert error_for(CONDITION_TYPE="  ").variable == "CONDITION_TYPE"


@pytest.mark.parametrize("value", ["trace", "warning", "fatal", "1"])
def test_log_level_values(value: str) -> None:
    error = error_for(LOG_LEVEL=value)
    assert error.variable == "LOG_LEVEL"
    assert "debug, info, warn, error" in str(error)


@pytest.mark.parametrize(
    ("value", "expected"), [("WARN", LogLevel.WARN), ("Error", LogLevel.ERROR)]
)
def test_log_level_is_case_insensitive(value: str, expected: LogLevel) -> None:
    assert load(env(LOG_LEVEL=value)).log_level is expected


@pytest.mark.parametrize(
    ("name", "value"),
    [("LOG_FORMAT", "yaml"), ("MONITOR_MODE", "watch"), ("MONITOR_MODE", "inotify")],
)
def test_enumerations(name: str, value: str) -> None:
    error = error_for(**{name: value})
    assert error.variable == name
    assert "must be one of" in str(error)


def test_adapter_may_not_be_the_reporter() -> None:
    error = error_for(ADAPTER_CONTAINER_NAME="status-reporter")
    assert error.variable == "ADAPTER_CONTAINER_NAME"
    assert "REPORTER_CONTAINER_NAME" in str(error)


def test_error_is_one_line_naming_variable_value_and_rule() -> None:
    error = error_for(MAX_WAIT_TIME_SECONDS="soon")
    text = str(error)
    assert "\n" not in text
    assert text == (
        'invalid configuration: MAX_WAIT_TIME_SECONDS="soon": '
        "must be an integer greater than 0 and at most 604800 (7 days)"
    )


def test_error_shows_undecodable_bytes_as_escapes() -> None:
    # os.environ carries bytes that are not UTF-8 as lone surrogates.
    error = error_for(LOG_LEVEL="info\udcff")
    assert 'LOG_LEVEL="info\\udcff"' in str(error)
    str(error).encode("utf-8")


def test_where_a_configuration_error_is_reported() -> None:
    report = error_report(env(POD_NAME="", CONDITION_TYPE=" ", TERMINATION_MESSAGE_PATH="rel"))
    assert (report.job, report.namespace, report.condition_type, report.termination_path) == (
        "job-a",
        "ns-a",
        "Available",
        "/dev/termination-log",
    )
    assert error_report(env(CONDITION_TYPE="Ready")).condition_type == "Ready"
    assert error_report(env(TERMINATION_MESSAGE_PATH="/tmp/t")).termination_path == "/tmp/t"
    assert error_report(env()).termination_path == "/dev/termination-log"
    # No Job to name: only the termination message is left.
    assert error_report({"JOB_NAME": "x"}).job == ""
    assert error_report({"JOB_NAMESPACE": "x", "JOB_NAME": " "}).job == ""
    assert error_report({"JOB_NAMESPACE": "x"}).job == ""


def test_error_fields() -> None:
    error = error_for(POLL_INTERVAL_SECONDS=" 300 ", MAX_WAIT_TIME_SECONDS="300")
    assert (error.variable, error.value) == ("POLL_INTERVAL_SECONDS", " 300 ")
    assert error.allowed == (
        "must be an integer greater than 0 and less than MAX_WAIT_TIME_SECONDS (300)"
    )


def test_an_unset_value_is_shown_as_unset() -> None:
    error = error_for(POD_NAME="")
    assert (error.variable, error.value) == ("POD_NAME", None)
    assert str(error) == "invalid configuration: POD_NAME=(unset): required, must not be empty"
    assert error_for(POD_NAME="  ").value == "  "


def test_the_smallest_integer_is_one() -> None:
    config = load(env(POLL_INTERVAL_SECONDS="1", MAX_WAIT_TIME_SECONDS="2"))
    assert (config.poll_interval_seconds, config.max_wait_time_seconds) == (1, 2)
    assert load(env(CONTAINER_STATUS_INTERVAL_SECONDS="1")).container_status_interval_seconds == 1


def test_the_default_poll_interval_must_fit_a_short_max_wait() -> None:
    # MAX_WAIT_TIME_SECONDS=2 leaves no room for the default interval of 2 s.
    error = error_for(MAX_WAIT_TIME_SECONDS="2")
    assert (error.variable, error.value) == ("POLL_INTERVAL_SECONDS", "2")
    assert "less than MAX_WAIT_TIME_SECONDS (2)" in str(error)
    assert load(env(MAX_WAIT_TIME_SECONDS="3")).poll_interval_seconds == 2


def test_texts_of_the_path_and_type_rules() -> None:
    assert str(error_for(RESULTS_PATH="r.json")) == (
        'invalid configuration: RESULTS_PATH="r.json": '
        "must be an absolute file path (start with /, not end with /)"
    )
    error = error_for(CONDITION_TYPE=" \t")
    assert (error.variable, error.value, error.allowed) == (
        "CONDITION_TYPE",
        " \t",
        "must not be blank",
    )


def test_the_adapter_named_like_the_reporter_names_the_value() -> None:
    error = error_for(ADAPTER_CONTAINER_NAME="sidecar", REPORTER_CONTAINER_NAME="sidecar")
    assert error.value == "sidecar"
    assert "REPORTER_CONTAINER_NAME=sidecar" in str(error)
