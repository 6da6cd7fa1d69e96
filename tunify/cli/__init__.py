"""The ``tunify`` command: demo, apply, sweep, convert, bake, export, info, app.

Each command is thin wiring over the library. Errors a user can cause (a missing image, a bad ω, an unknown
model, a malformed checkpoint) print one line ``tunify: error: ...`` and exit with status 2; anything else
is a bug, reported in one line too unless ``--debug`` asks for the traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from collections.abc import Sequence

from huggingface_hub.errors import HfHubHTTPError

from .._version import __version__
from ..zoo import ZooError
from . import app, apply, bake, convert, demo, export, info, sweep
from ._common import UsageError, omega_option_values

USER_ERRORS = (UsageError, ValueError, OSError, ZooError, HfHubHTTPError)
#: Warnings third-party architecture code raises on every run, which a command-line user can do nothing about.
THIRD_PARTY_NOISE = (r"torch\.meshgrid: in an upcoming release", r"'saved_variables' is deprecated")


class _Parser(argparse.ArgumentParser):
    """argparse that raises instead of printing usage and exiting, so every error is one line."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{message} (see '{self.prog} --help')")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="tunify", description="Make trained networks tunable at inference and use them.")
    parser.add_argument("--version", action="version", version=f"tunify {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser, required=True)
    for command in (demo, apply, sweep, convert, bake, export, info, app):
        command.add_parser(sub)
    return parser


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= 500 else text[:497] + "..."


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the exit status."""
    argv = omega_option_values(list(sys.argv[1:] if argv is None else argv))
    debug = "--debug" in argv
    if not debug:
        for message in THIRD_PARTY_NOISE:
            warnings.filterwarnings("ignore", message=message)
    try:
        args = build_parser().parse_args(argv)
        return int(args.run(args))
    except BrokenPipeError:  # the reader left early (`tunify info … | head`): stop quietly, as cat does
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so the exit flush cannot fail
        return 141
    except USER_ERRORS as error:
        if debug:
            raise
        print(f"tunify: error: {_one_line(error)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("tunify: interrupted", file=sys.stderr)
        return 130
    except Exception as error:
        if debug:
            raise
        print(
            f"tunify: error: internal error {type(error).__name__}: {_one_line(error)} (rerun with --debug for the traceback)",
            file=sys.stderr,
        )
        return 1
