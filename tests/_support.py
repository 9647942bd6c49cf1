"""Fixtures shared by several test modules (not in a conftest: a conftest ``bus`` would
shadow the pytest plugin's own ``bus`` fixture, which test_plugin.py tests)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from inbus import Bus


@pytest.fixture(name="bus")
def checked_bus() -> Iterator[Bus]:
    """A fresh Bus whose internal invariants (``Bus._check``) hold after the test."""
    b = Bus()
    yield b
    b._check()
    b.close()
