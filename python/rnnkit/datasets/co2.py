"""Weekly atmospheric CO2 at Mauna Loa, 1958-2001, from ``statsmodels.datasets``.

``statsmodels`` (BSD-3 licence; the series itself is public domain, from the Scripps
Institution of Oceanography via CDIAC) ships it as ``statsmodels/datasets/co2/co2.csv``:
2,284 weekly readings in ppm, 59 of them missing. The CSV is read directly (no pandas).
Missing weeks are filled by linear interpolation between the nearest readings on either
side; the returned ``missing`` mask says which values are interpolated, so a forecast
evaluation can leave them out of its targets.
"""
from __future__ import annotations

import csv
import datetime as _dt
from typing import NamedTuple

import numpy as np

from ._resources import package_file

__all__ = ["co2", "CO2"]


class CO2(NamedTuple):
    """``dates`` (datetime64[D], weekly), ``ppm`` (float64, gaps interpolated) and
    ``missing`` (bool: True where ``ppm`` is interpolated, not measured)."""

    dates: np.ndarray
    ppm: np.ndarray
    missing: np.ndarray


def co2() -> CO2:
    """Load the series (see the module docstring).

    Raises:
        ImportError: statsmodels is not installed (``pip install "rnnkit[examples-forecast]"``).
    """
    path = package_file("statsmodels", "datasets/co2/co2.csv", "co2", extra="examples-forecast")
    dates, values = [], []
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        next(reader)                                   # header: date,co2
        for date, value in reader:
            dates.append(_dt.datetime.strptime(date, "%Y%m%d").date())
            values.append(float(value) if value.strip() else np.nan)
    ppm = np.array(values, np.float64)
    missing = np.isnan(ppm)
    idx = np.arange(len(ppm))
    # np.interp holds the end values flat if a gap touches either end (none does here).
    ppm[missing] = np.interp(idx[missing], idx[~missing], ppm[~missing])
    return CO2(np.array(dates, "datetime64[D]"), ppm, missing)
