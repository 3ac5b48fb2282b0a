"""HyperFleet's CEL expressions, evaluated as hyperfleet-adapter evaluates them.

The expressions are read from the adapter configuration itself (``post.payloads``),
not restated here. They use cel-go's optional syntax (``a.?b.orValue(x)``), which
neither CEL library on PyPI parses (cel-python 0.5.0 and common-expression-language
0.10.0 both refuse ``.?``), so they are evaluated by ``cel-eval``
(``hack/hyperfleet/cel``): cel-go v0.26.1, the version hyperfleet-adapter v0.1 and
v0.2 build with, set up with the adapter's options (optional types, one variable per
top-level key, parse without type check, an evaluation error taken as "no value").
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from harness.controlplane import ROOT

BUILD_SCRIPT = ROOT / "hack" / "hyperfleet" / "build.sh"
FIELDS = ("status", "reason", "message")


class ToolUnavailable(RuntimeError):
    """A tool of ``hack/hyperfleet`` could not be built."""


@cache
def tool(name: str) -> Path:
    """The binary ``hack/hyperfleet/build.sh name`` builds (or finds in its cache)."""
    out = subprocess.run(
        [str(BUILD_SCRIPT), name], capture_output=True, text=True, check=False, timeout=3600
    )
    if out.returncode != 0:
        raise ToolUnavailable(f"hack/hyperfleet/build.sh {name} failed:\n{out.stderr[-3000:]}")
    return Path(out.stdout.strip().splitlines()[-1])


def adapter_spec(config: Mapping[str, Any]) -> Mapping[str, Any]:
    """The part of an adapter configuration that holds params, resources and post.

    Up to hyperfleet-adapter v0.1 it is ``spec`` of a Kubernetes-style envelope;
    from v0.2.0 on (the flat format) it is the document itself.
    """
    spec = config.get("spec", config)
    assert isinstance(spec, Mapping)
    return spec


def condition_expressions(config_path: Path, condition: str) -> dict[str, str]:
    """The CEL expressions for ``status``, ``reason`` and ``message`` of the payload
    condition ``condition`` (for example ``Available``)."""
    spec = adapter_spec(yaml.safe_load(config_path.read_text()))
    for payload in spec["post"]["payloads"]:
        for entry in payload["build"]["conditions"]:
            if entry["type"] == condition:
                return {field: str(entry[field]["expression"]) for field in FIELDS}
    raise LookupError(f"{config_path.name}: no {condition} condition in post.payloads")


def evaluate(
    expressions: Mapping[str, str], activations: Sequence[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """Each expression for each activation: its value, or None where the evaluation
    failed (the adapter then uses the field's default, which these fields lack)."""
    request = json.dumps({"expressions": dict(expressions), "activations": list(activations)})
    out = subprocess.run(
        [str(tool("cel"))], input=request, capture_output=True, text=True, check=False, timeout=60
    )
    if out.returncode != 0:
        raise ValueError(out.stderr.strip())
    answers: list[dict[str, dict[str, Any]]] = json.loads(out.stdout)
    return [{name: result.get("value") for name, result in answer.items()} for answer in answers]
