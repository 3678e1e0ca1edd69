"""Command line: ``python -m rnnkit [selfcheck | demo | sample MODEL] [options]``.

* ``selfcheck`` (the default, alias ``check``): build information, kernel checks, one timed
  training step.
* ``demo``: train a character-level LSTM on Shakespeare (needs ``rnnkit[examples]``).
* ``sample MODEL``: generate text from a model the demo saved.

``python -m rnnkit --help`` (or ``-h``) lists the commands and ``python -m rnnkit COMMAND
--help`` a command's options; both exit 0. An unknown command or option prints the usage and
exits 2, as argparse does; neither ever starts the self-check.
"""
from __future__ import annotations

import argparse
import sys
from typing import Callable, Dict, List, Optional, Sequence

_PROG = "python -m rnnkit"

# name -> one-line description, in the order --help lists them.
COMMANDS: Dict[str, str] = {
    "selfcheck": "check the kernels on this machine, time a training step (the default)",
    "demo": "train a character-level LSTM on Shakespeare (needs rnnkit[examples])",
    "sample": "generate text from a model file saved by the demo",
}
_ALIASES = {"check": "selfcheck"}


def _top_parser() -> argparse.ArgumentParser:
    """The top-level parser: only for --help, --version and the usage of errors (each
    command parses its own options, so their --help shows the command's own options)."""
    from ._runtime import __version__
    listing = "\n".join(f"  {name:10s} {text}" for name, text in COMMANDS.items())
    p = argparse.ArgumentParser(
        prog=_PROG, usage=f"{_PROG} [-h] [--version] [{{{','.join(COMMANDS)}}}] [options]",
        description="rnnkit: RNN/LSTM/GRU kernels with a numpy API.",
        epilog=f"commands:\n{listing}\n\nRun '{_PROG} COMMAND --help' for a command's options.",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", action="version", version=f"rnnkit {__version__}")
    return p


def _selfcheck(argv: Sequence[str]) -> int:
    # The self-check takes no options; a parser still gives it --help and rejects typos
    # (`selfcheck --quick` would otherwise run the full check silently).
    from ._selfcheck import main as run_selfcheck
    p = argparse.ArgumentParser(prog=f"{_PROG} selfcheck",
                                description=COMMANDS["selfcheck"] + "; alias: check.")
    p.parse_args(list(argv))
    return run_selfcheck([])


def _demo(argv: Sequence[str]) -> int:
    from .demo import demo_main     # imported on demand: selfcheck needs none of it
    return demo_main(argv)


def _sample(argv: Sequence[str]) -> int:
    from .demo import sample_main
    return sample_main(argv)


_RUNNERS: Dict[str, Callable[[Sequence[str]], int]] = {
    "selfcheck": _selfcheck, "demo": _demo, "sample": _sample}


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run ``python -m rnnkit`` with ``argv`` (default ``sys.argv[1:]``); returns the exit
    status: 0 on success and after ``--help``, 2 for a usage error (as argparse), 1 when a
    command fails."""
    args: List[str] = list(sys.argv[1:] if argv is None else argv)
    try:
        if not args:
            return _selfcheck([])
        command = _ALIASES.get(args[0], args[0])
        if command not in _RUNNERS:
            top = _top_parser()
            if args[0] in ("-h", "--help", "--version"):
                top.parse_args(args[:1])    # prints and exits 0
            if command.startswith("-"):
                top.error(f"unknown option {args[0]!r}: a command's options follow it, e.g. "
                          f"'{_PROG} demo --quick'")
            top.error(f"unknown command {args[0]!r} (choose from {', '.join(COMMANDS)})")
        return _RUNNERS[command](args[1:])
    except SystemExit as exc:               # argparse's exits, as a status for callers of main
        code = exc.code
        if code is None:
            return 0
        if isinstance(code, int):
            return code
        print(code, file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
