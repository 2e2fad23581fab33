"""The ``pairsearch`` command line.

Every bad input ends in one line on stderr (``pairsearch: error: ...``) and exit
code 2, never a traceback; a library error naming a parameter (``pop``) names the
flag the user typed (``--pop``).
"""

from __future__ import annotations

import os
import sys
import warnings
from typing import Sequence

from pairsearch.cli.commands import COMMANDS, parse_settings
from pairsearch.cli.parser import Parser, build_parser
from pairsearch.errors import BadValue, PairsearchError

EXIT_USAGE = 2

__all__ = ["EXIT_USAGE", "Parser", "build_parser", "main", "parse_settings"]


def _is_storage_error(error: BaseException) -> bool:
    """A database error (read-only file, lost server, ...), as opposed to a bug."""
    import sqlalchemy.exc
    from optuna.exceptions import StorageInternalError

    return isinstance(error, (StorageInternalError, sqlalchemy.exc.SQLAlchemyError))


def _root_cause(error: BaseException) -> str:
    while error.__cause__ is not None or error.__context__ is not None:
        error = error.__cause__ or error.__context__
    text = " ".join(str(error).split())
    return text.split(" [SQL:")[0].split(" (Background on")[0][:300] or type(error).__name__


def _in_flags(error: PairsearchError, parser: Parser, command: str | None) -> PairsearchError:
    """A ``BadValue`` naming a parameter this command has a flag for, told with the flag."""
    if not isinstance(error, BadValue) or command is None:
        return error
    flag = "--" + error.parameter.replace("_", "-")
    return error.for_flag(flag) if flag in parser.commands[command].long_flags else error


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    # Optuna marks several features pairsearch uses as experimental, on every call.
    warnings.filterwarnings("ignore", message=".*is experimental")
    warnings.filterwarnings("ignore", message=".*experimental feature")
    try:
        code = _main(argv)
        sys.stdout.flush()  # a closed pipe shows here, not at exit
        return code
    except KeyboardInterrupt:
        print("pairsearch: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (``pairsearch studies | head``): stop quietly, as cat does.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except Exception as error:  # a bug, not a bad input: still one line unless debugging
        if os.environ.get("PAIRSEARCH_DEBUG"):
            raise
        print(f"pairsearch: internal error: {type(error).__name__}: {error} "
              "(set PAIRSEARCH_DEBUG=1 for the traceback)", file=sys.stderr)
        return 1


def _main(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    command = None
    try:
        argv = list(sys.argv[1:] if argv is None else argv)
        args = parser.parse_args(argv)
        command = args.command
        args.argv = argv
        if getattr(args, "data", "") is None:
            from pairsearch.names import DEFAULT_SOURCE

            args.data = DEFAULT_SOURCE
        return COMMANDS[args.command](args)
    except PairsearchError as error:
        print(f"pairsearch: error: {_in_flags(error, parser, command)}", file=sys.stderr)
        return EXIT_USAGE
    except Exception as error:
        if not _is_storage_error(error) or os.environ.get("PAIRSEARCH_DEBUG"):
            raise
        print(f"pairsearch: error: the storage refused the operation: {_root_cause(error)}",
              file=sys.stderr)
        return EXIT_USAGE
