"""Command line: ``python -m rnnkit [selfcheck | demo | sample MODEL]``.

* ``selfcheck`` (the default): build information, kernel checks, one timed training step.
* ``demo``: train a character-level LSTM on Shakespeare (needs ``rnnkit[examples]``).
* ``sample MODEL``: generate text from a model the demo saved.
"""
from __future__ import annotations

import sys

from ._selfcheck import main as selfcheck


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = argv.pop(0) if argv else "selfcheck"
    if command in ("selfcheck", "check"):
        return selfcheck(argv)
    if command == "demo":
        from .demo import demo_main     # imported on demand: selfcheck needs none of it
        return demo_main(argv)
    if command == "sample":
        from .demo import sample_main
        return sample_main(argv)
    print(f"unknown command {command!r}; available: selfcheck, demo, sample", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
