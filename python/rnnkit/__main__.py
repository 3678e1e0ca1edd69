"""Command line: `python -m rnnkit [selfcheck]`."""
from __future__ import annotations

import sys

from ._selfcheck import main as selfcheck


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = argv.pop(0) if argv else "selfcheck"
    if command in ("selfcheck", "check"):
        return selfcheck(argv)
    print(f"unknown command {command!r}; available: selfcheck", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
