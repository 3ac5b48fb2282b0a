"""Configuration from environment variables (README "Configuration").

Every rule lives in :func:`load`, which turns a mapping of environment variables
into a validated, immutable :class:`Config` or raises :class:`ConfigError` naming
the variable, the offending value and what is allowed.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from typing import TypeVar

import msgspec

DEFAULT_RESULTS_PATH = "/results/adapter-result.json"
DEFAULT_POLL_INTERVAL_SECONDS = 2
DEFAULT_MAX_WAIT_TIME_SECONDS = 300
DEFAULT_CONDITION_TYPE = "Available"
DEFAULT_REPORTER_CONTAINER_NAME = "status-reporter"
DEFAULT_CONTAINER_STATUS_INTERVAL_SECONDS = 10
DEFAULT_TERMINATION_MESSAGE_PATH = "/dev/termination-log"
# Upper bounds keep every derived time (watch timeouts, retry budgets, TCP keepalive
# settings) within what the kernel and the API server accept.
MAX_WAIT_TIME_LIMIT_SECONDS = 7 * 24 * 3600
INTERVAL_LIMIT_SECONDS = 3600
# HyperFleet's correlation: the cluster the Job validates, and the generation it is for.
DEFAULT_LOG_CONTEXT = (
    "cluster_id=label:hyperfleet.io/cluster-id,generation=annotation:hyperfleet.io/generation"
)
LOG_CONTEXT_LIMIT = 16
# Fields every line has already, and the ones the logger adds itself.
RESERVED_LOG_FIELDS = frozenset(
    {
        "timestamp",
        "level",
        "message",
        "component",
        "version",
        "hostname",
        "job",
        "namespace",
        "pod",
        "repeated",
        "log_line_truncated",
    }
)

# The length cap keeps int() away from its own limit on huge inputs (thousands of digits).
_INTEGER_DIGITS = 18

# A log field name; a Kubernetes label or annotation key: an optional DNS subdomain
# prefix and "/", then a name of at most 63 characters. Patterns, not compiled ones:
# only a LOG_CONTEXT needs them, and re compiles (and caches) a pattern on its first
# use; compiling them at import cost every start-up about 2 M instructions (0.6 ms).
_FIELD_NAME = r"[a-z][a-z0-9_]{0,62}"
_KEY_PREFIX = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*"
_KEY_NAME = r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?"

_Choice = TypeVar("_Choice", bound=enum.StrEnum)


class LogLevel(enum.StrEnum):
    """Accepted values of ``LOG_LEVEL``."""

    DEBUG = "debug"
    INFO = "info"
    WARN = "warn"
    ERROR = "error"


class LogFormat(enum.StrEnum):
    """Accepted values of ``LOG_FORMAT``."""

    TEXT = "text"
    JSON = "json"


class MonitorMode(enum.StrEnum):
    """Accepted values of ``MONITOR_MODE``."""

    AUTO = "auto"
    POLL = "poll"


class MetadataSource(enum.StrEnum):
    """Where a ``LOG_CONTEXT`` field's value is read: the Job's (else the Pod's)
    labels or annotations."""

    LABEL = "label"
    ANNOTATION = "annotation"


class LogContextField(msgspec.Struct, frozen=True):
    """One entry of ``LOG_CONTEXT``: log field ``name`` carries the value of ``key``."""

    name: str
    source: MetadataSource
    key: str


def _printable(value: str) -> str:
    return value.encode("utf-8", "backslashreplace").decode("utf-8")


class ConfigError(Exception):
    """An environment variable holds a value that is not allowed."""

    def __init__(self, variable: str, value: str | None, allowed: str) -> None:
        self.variable = variable
        self.value = value
        self.allowed = allowed
        # Bytes that are not UTF-8 reach os.environ as lone surrogates: show them escaped.
        shown = "(unset)" if value is None else f'"{_printable(value)}"'
        super().__init__(f"invalid configuration: {variable}={shown}: {allowed}")


class Config(msgspec.Struct, frozen=True):
    """The validated configuration of one reporter run.

    ``job_name`` is empty when ``JOB_NAME`` is unset: the Job is then the Pod's owner.
    """

    job_name: str
    job_namespace: str
    pod_name: str
    results_path: str = DEFAULT_RESULTS_PATH
    poll_interval_seconds: int = DEFAULT_POLL_INTERVAL_SECONDS
    max_wait_time_seconds: int = DEFAULT_MAX_WAIT_TIME_SECONDS
    condition_type: str = DEFAULT_CONDITION_TYPE
    log_level: LogLevel = LogLevel.INFO
    adapter_container_name: str = ""
    log_format: LogFormat = LogFormat.TEXT
    reporter_container_name: str = DEFAULT_REPORTER_CONTAINER_NAME
    monitor_mode: MonitorMode = MonitorMode.AUTO
    container_status_interval_seconds: int = DEFAULT_CONTAINER_STATUS_INTERVAL_SECONDS
    termination_message_path: str = DEFAULT_TERMINATION_MESSAGE_PATH
    log_context: tuple[LogContextField, ...] = ()


class ErrorReport(msgspec.Struct, frozen=True):
    """Where a configuration error can still be reported: on the Job when ``job`` (and its
    namespace) could be named, ``""`` otherwise; and in the termination message."""

    job: str
    namespace: str
    condition_type: str
    termination_path: str


def _get(env: Mapping[str, str], name: str) -> str | None:
    """Return the variable's value, or None when unset; empty counts as unset."""
    value = env.get(name)
    return value if value else None


def _required(env: Mapping[str, str], name: str) -> str:
    value = _get(env, name)
    if value is None or not value.strip():
        raise ConfigError(name, value, "required, must not be empty")
    return value.strip()


def _job_name(env: Mapping[str, str]) -> str:
    value = _get(env, "JOB_NAME")
    if value is None:
        return ""
    if not value.strip():
        raise ConfigError(
            "JOB_NAME", value, "must not be blank (leave it unset to use the Pod's owning Job)"
        )
    return value.strip()


def _positive_int(env: Mapping[str, str], name: str, default: int, limit: int, allowed: str) -> int:
    raw = _get(env, name)
    if raw is None:
        return default
    text = raw.strip()
    digits = text.removeprefix("+")
    # Plain decimal digits only: int() would also take "1_000", "٣" or "0x10" (and an
    # ASCII string's only digits are 0-9). No regular expression: compiling one at
    # start-up would cost more than all of the configuration's parsing.
    plain = digits.isascii() and digits.isdigit() and len(digits) <= _INTEGER_DIGITS
    if not plain or not 0 < int(digits) <= limit:
        raise ConfigError(name, raw, allowed)
    return int(digits)


def _choice(env: Mapping[str, str], name: str, kind: type[_Choice], default: _Choice) -> _Choice:
    raw = _get(env, name)
    if raw is None:
        return default
    try:
        return kind(raw.strip().lower())
    except ValueError:
        choices = ", ".join(member.value for member in kind)
        raise ConfigError(name, raw, f"must be one of {choices} (case-insensitive)") from None


def _file_path(env: Mapping[str, str], name: str, default: str) -> str:
    raw = _get(env, name)
    if raw is None:
        return default
    if not raw.startswith("/") or raw.endswith("/"):
        raise ConfigError(name, raw, "must be an absolute file path (start with /, not end with /)")
    return raw


def _condition_type(env: Mapping[str, str]) -> str:
    raw = _get(env, "CONDITION_TYPE")
    if raw is None:
        return DEFAULT_CONDITION_TYPE
    if not raw.strip():
        raise ConfigError("CONDITION_TYPE", raw, "must not be blank")
    return raw.strip()


def _is_metadata_key(key: str) -> bool:
    prefix, slash, name = key.rpartition("/")
    if slash and (len(prefix) > 253 or not re.fullmatch(_KEY_PREFIX, prefix)):
        return False
    return bool(re.fullmatch(_KEY_NAME, name))


def parse_log_context(raw: str) -> tuple[LogContextField, ...]:
    """Parse a ``LOG_CONTEXT`` value: ``none``, or comma-separated
    ``name=label:key`` / ``name=annotation:key`` entries.

    Raises:
        ConfigError: naming the first entry that is not allowed, and why.
    """

    def refuse(why: str) -> ConfigError:
        return ConfigError(
            "LOG_CONTEXT",
            raw,
            f"{why}; must be none or a comma-separated list of name=label:key or "
            "name=annotation:key",
        )

    if raw.strip().lower() == "none":
        return ()
    entries = raw.split(",")
    if len(entries) > LOG_CONTEXT_LIMIT:
        raise refuse(f"at most {LOG_CONTEXT_LIMIT} entries")
    fields: list[LogContextField] = []
    for entry in entries:
        name, equals, spec = (part.strip() for part in entry.partition("="))
        kind, colon, key = (part.strip() for part in spec.partition(":"))
        shown = entry.strip()
        if not equals or not colon:
            raise refuse(f'entry "{shown}" is not name=label:key or name=annotation:key')
        if not re.fullmatch(_FIELD_NAME, name):
            raise refuse(
                f'field name "{name}" must be 1-63 lower-case letters, digits or _, '
                "starting with a letter"
            )
        if name in RESERVED_LOG_FIELDS:
            raise refuse(f'field name "{name}" is one every log line already has')
        if any(field.name == name for field in fields):
            raise refuse(f'field name "{name}" is given twice')
        try:
            source = MetadataSource(kind.lower())
        except ValueError:
            raise refuse(f'"{kind}" in entry "{shown}" must be label or annotation') from None
        if not _is_metadata_key(key):
            raise refuse(f'"{key}" in entry "{shown}" is not a Kubernetes label or annotation key')
        fields.append(LogContextField(name, source, key))
    return tuple(fields)


# DEFAULT_LOG_CONTEXT parsed (a unit test keeps the two in step): written out, so that
# neither the import nor a start-up without LOG_CONTEXT compiles the patterns.
DEFAULT_LOG_CONTEXT_FIELDS = (
    LogContextField("cluster_id", MetadataSource.LABEL, "hyperfleet.io/cluster-id"),
    LogContextField("generation", MetadataSource.ANNOTATION, "hyperfleet.io/generation"),
)


def error_report(env: Mapping[str, str]) -> ErrorReport:
    """Where to report a configuration error, as far as the environment can tell.

    Used only after :func:`load` failed, so every lookup here tolerates bad values: an
    invalid ``CONDITION_TYPE`` or ``TERMINATION_MESSAGE_PATH`` falls back to its
    default, and a Job that cannot be named (or whose namespace cannot) is ``""``.
    """
    try:
        job = _required(env, "JOB_NAME")
        namespace = _required(env, "JOB_NAMESPACE")
    except ConfigError:
        job = namespace = ""
    try:
        condition_type = _condition_type(env)
    except ConfigError:
        condition_type = DEFAULT_CONDITION_TYPE
    try:
        path = _file_path(env, "TERMINATION_MESSAGE_PATH", DEFAULT_TERMINATION_MESSAGE_PATH)
    except ConfigError:
        path = DEFAULT_TERMINATION_MESSAGE_PATH
    return ErrorReport(job, namespace, condition_type, path)


def load(env: Mapping[str, str]) -> Config:
    """Validate the environment and build the configuration.

    Raises:
        ConfigError: for the first variable (in the README's table order) whose value is
            invalid.
    """
    job_name = _job_name(env)
    job_namespace = _required(env, "JOB_NAMESPACE")
    pod_name = _required(env, "POD_NAME")
    results_path = _file_path(env, "RESULTS_PATH", DEFAULT_RESULTS_PATH)
    max_wait = _positive_int(
        env,
        "MAX_WAIT_TIME_SECONDS",
        DEFAULT_MAX_WAIT_TIME_SECONDS,
        MAX_WAIT_TIME_LIMIT_SECONDS,
        f"must be an integer greater than 0 and at most {MAX_WAIT_TIME_LIMIT_SECONDS} (7 days)",
    )
    # The default interval only has to fit when MAX_WAIT_TIME_SECONDS is tiny.
    poll_allowed = (
        f"must be an integer greater than 0 and less than MAX_WAIT_TIME_SECONDS ({max_wait})"
    )
    poll_interval = _positive_int(
        env, "POLL_INTERVAL_SECONDS", DEFAULT_POLL_INTERVAL_SECONDS, max_wait - 1, poll_allowed
    )
    if poll_interval >= max_wait:
        raise ConfigError("POLL_INTERVAL_SECONDS", str(poll_interval), poll_allowed)
    condition_type = _condition_type(env)
    log_level = _choice(env, "LOG_LEVEL", LogLevel, LogLevel.INFO)
    adapter = (_get(env, "ADAPTER_CONTAINER_NAME") or "").strip()
    log_format = _choice(env, "LOG_FORMAT", LogFormat, LogFormat.TEXT)
    reporter = (_get(env, "REPORTER_CONTAINER_NAME") or "").strip() or (
        DEFAULT_REPORTER_CONTAINER_NAME
    )
    if adapter and adapter == reporter:
        raise ConfigError(
            "ADAPTER_CONTAINER_NAME",
            adapter,
            f"must not name the reporter's own container (REPORTER_CONTAINER_NAME={reporter})",
        )
    monitor_mode = _choice(env, "MONITOR_MODE", MonitorMode, MonitorMode.AUTO)
    status_interval = _positive_int(
        env,
        "CONTAINER_STATUS_INTERVAL_SECONDS",
        DEFAULT_CONTAINER_STATUS_INTERVAL_SECONDS,
        INTERVAL_LIMIT_SECONDS,
        f"must be an integer greater than 0 and at most {INTERVAL_LIMIT_SECONDS}",
    )
    termination_path = _file_path(env, "TERMINATION_MESSAGE_PATH", DEFAULT_TERMINATION_MESSAGE_PATH)
    raw_log_context = _get(env, "LOG_CONTEXT")
    log_context = (
        parse_log_context(raw_log_context) if raw_log_context else DEFAULT_LOG_CONTEXT_FIELDS
    )
    return Config(
        job_name=job_name,
        job_namespace=job_namespace,
        pod_name=pod_name,
        results_path=results_path,
        poll_interval_seconds=poll_interval,
        max_wait_time_seconds=max_wait,
        condition_type=condition_type,
        log_level=log_level,
        adapter_container_name=adapter,
        log_format=log_format,
        reporter_container_name=reporter,
        monitor_mode=monitor_mode,
        container_status_interval_seconds=status_interval,
        termination_message_path=termination_path,
        log_context=log_context,
    )
