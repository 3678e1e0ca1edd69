"""Splits by a stable hash: each item goes to train, validation or test by a number that its key
alone fixes (blake2b, the same on every Python version and machine, unlike ``hash()``), so adding
or removing other items never moves it."""
from __future__ import annotations

import hashlib


def check_fractions(validation_fraction: float, test_fraction: float) -> None:
    """Raise ValueError unless both shares are in [0, 1) and together below 1."""
    for name, value in (("validation_fraction", validation_fraction),
                        ("test_fraction", test_fraction)):
        if not 0.0 <= value < 1.0:
            raise ValueError(f"{name} must be in [0, 1), got {value!r}")
    if validation_fraction + test_fraction >= 1.0:
        raise ValueError(f"validation_fraction + test_fraction must be below 1, got "
                         f"{validation_fraction} + {test_fraction}")


def split_of(key: str, validation_fraction: float, test_fraction: float) -> int:
    """0 (train), 1 (validation) or 2 (test) for ``key`` (ASCII text)."""
    digest = hashlib.blake2b(key.encode("ascii"), digest_size=8).digest()
    u = int.from_bytes(digest, "big") / 2.0 ** 64
    return 2 if u < test_fraction else 1 if u < test_fraction + validation_fraction else 0
