"""Fixtures the unit tests share."""

from __future__ import annotations

import pytest

from tests.unit.transport_pki import Pki, make_pki


@pytest.fixture
def pki() -> Pki:
    """One set of test certificates (made once per session)."""
    return make_pki()
