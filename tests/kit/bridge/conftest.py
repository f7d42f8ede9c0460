"""Fixtures of the bridge's tests: the two adapters files of tests/kit/, loaded through the bridge."""

import pytest

from spec.adapters import load_adapters
from tests.kit.bridge.common import PARTIAL_ADAPTERS, REFERENCE_ADAPTERS


@pytest.fixture(scope="module")
def bridged():
    return load_adapters(REFERENCE_ADAPTERS)


@pytest.fixture(scope="module")
def partial():
    return load_adapters(PARTIAL_ADAPTERS)
