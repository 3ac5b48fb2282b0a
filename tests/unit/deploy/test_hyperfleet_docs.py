"""README "HyperFleet" says what the cluster tests apply: its Role is the project Role
without the events rule, its chart value is that rule, its exit-code table has every
case; and the harness reads the adapter's CEL from either config format."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from harness.cel import condition_expressions
from harness.cluster import DEPLOY
from harness.consumer import DUMMY_CONFIG, EXIT_CODE_CONFIG, VALIDATION_CONFIG, job_resource
from harness.exit_codes import CASES, README, cases_in
from harness.validation_adapter import EVENTS_VALUE_MARK, ROLE_MARK, readme_yaml

EVENTS_RULE = {"apiGroups": ["events.k8s.io"], "resources": ["events"], "verbs": ["create"]}


def project_rules() -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = yaml.safe_load((DEPLOY / "base" / "role.yaml").read_text())[
        "rules"
    ]
    return rules


def test_the_hyperfleet_role_is_the_project_role_without_events() -> None:
    assert EVENTS_RULE in project_rules()
    assert readme_yaml(ROLE_MARK)["rules"] == [r for r in project_rules() if r != EVENTS_RULE]


def test_the_chart_value_grants_the_events_rule() -> None:
    assert readme_yaml(EVENTS_VALUE_MARK) == {"rbac": {"rules": [EVENTS_RULE]}}


def test_the_exit_code_table_in_the_readme_has_every_case() -> None:
    assert cases_in(README.read_text()) == [case.name for case in CASES]


def test_the_available_expressions_are_read_from_the_adapter_config() -> None:
    for config in (DUMMY_CONFIG, VALIDATION_CONFIG):
        expressions = condition_expressions(config, "Available")
        assert set(expressions) == {"status", "reason", "message"}
        assert all("resources.?gcpValidationJob" in e for e in expressions.values())
        assert job_resource(config) == "gcpValidationJob"


def test_the_flat_format_of_adapter_v0_2_is_read_the_same(tmp_path: Path) -> None:
    enveloped = yaml.safe_load(DUMMY_CONFIG.read_text())
    flat = tmp_path / "adapter-task-config.yaml"
    flat.write_text(yaml.safe_dump(enveloped["spec"]))
    assert condition_expressions(flat, "Available") == condition_expressions(
        DUMMY_CONFIG, "Available"
    )
    assert job_resource(flat) == job_resource(DUMMY_CONFIG)


def test_the_exit_code_example_is_read_from_its_flat_format() -> None:
    expressions = condition_expressions(EXIT_CODE_CONFIG, "Available")
    assert all("resources.?helloWorldJob" in e for e in expressions.values())
    assert job_resource(EXIT_CODE_CONFIG) == "helloWorldJob"
