"""The argument parser, without running anything: flags, abbreviations, worker command lines."""

from __future__ import annotations

import pytest

from pairsearch.cli import build_parser
from pairsearch.errors import PairsearchError
from pairsearch.names import ENGINES, PRECISIONS, PRUNERS
from pairsearch.search.workers import worker_argv


def test_an_abbreviated_flag_is_refused():
    """argparse would take ``--work`` for ``--workers``; the worker processes then copied
    it and each started workers of its own (a process chain)."""
    with pytest.raises(PairsearchError, match="unrecognized arguments: --work"):
        build_parser().parse_args(["grid", "--space", "quick", "--work", "2"])


def test_no_flag_of_any_command_can_be_abbreviated():
    parser = build_parser()
    for name, command in parser.commands.items():
        for flag in command.long_flags - {"--help"}:
            prefix = flag[:-1]
            if any(other.startswith(prefix) and other != flag for other in command.long_flags):
                continue  # the prefix is ambiguous anyway
            with pytest.raises(PairsearchError):
                parser.parse_args([name, prefix, "1"])


@pytest.mark.parametrize("argv", [
    ["grid", "--workers", "3", "--space", "quick"],
    ["grid", "--workers=3", "--space", "quick"],
    ["tpe", "--trials", "4", "--workers", "4"],
])
def test_a_worker_is_always_told_it_is_a_single_worker(argv):
    child = build_parser().parse_args(worker_argv(argv))
    assert child.workers == 1 and child.no_progress
    assert child.command == argv[0]


def test_choices_come_from_the_library_names():
    parser = build_parser()
    assert parser.parse_args(["tpe", "--trials", "1", "--pruner", PRUNERS[1]]).pruner == PRUNERS[1]
    for engine in ENGINES:
        args = parser.parse_args(["evaluate", "--model", "mlp", "--engine", engine])
        assert args.engine == engine
    for precision in PRECISIONS:
        assert parser.parse_args(["grid", "--precision", precision]).precision == precision
