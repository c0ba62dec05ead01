"""The ``yolocam`` command: the parser and the dispatch to one module per command.

Every error a user can cause prints one line ``yolocam: error: …`` on stderr and the
command exits non-zero; files that work are still processed. ``yolocam --help`` imports
no TensorFlow: each command imports what it needs when it runs.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from yolocam_core.cli import batch, detect, evaluate, explain, report
from yolocam_core.cli.options import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    UsageError,
    UsageParser,
    error,
)
from yolocam_core.errors import YolocamError

#: The commands in the order ``--help`` lists them; each module has ``add_parser(sub)``
#: and ``run(args) -> exit status``.
COMMANDS = {
    "detect": detect,
    "explain": explain,
    "report": report,
    "evaluate": evaluate,
    "batch": batch,
}


def build_parser() -> UsageParser:
    """The parser of every command."""
    parser = UsageParser(
        prog="yolocam",
        description="Grad-CAM explanations for YOLO object detectors.",
    )
    sub = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", parser_class=UsageParser
    )
    for module in COMMANDS.values():
        module.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``yolocam`` command; returns the exit status."""
    args = build_parser().parse_args(argv)
    from yolocam_core.runtime import start_tensorflow

    try:
        _refuse_a_lone_unreadable_image(args)
        start_tensorflow()
        status = COMMANDS[args.command].run(args)
        sys.stdout.flush()  # a closed pipe shows here, not at exit
        return status
    except BrokenPipeError:
        # The reader went away (`yolocam detect … --json | head -1`): stop quietly, as
        # the Python docs recommend, and keep the interpreter's final flush silent.
        _stdout_to_devnull()
        return EXIT_FAILED
    except UsageError as exc:  # a malformed option, found after parsing: as argparse's
        error(f"{exc} (see `yolocam {args.command} --help`)")
        return EXIT_USAGE
    except YolocamError as exc:
        error(str(exc))
        return EXIT_FAILED
    except KeyboardInterrupt:
        error("interrupted")
        return EXIT_INTERRUPTED


def _refuse_a_lone_unreadable_image(args) -> None:
    """One image path that cannot be read (a typo, most often) is refused at once,
    before TensorFlow starts (about 3 s); the commands' other checks need the library,
    which imports it. With several images the others are still processed, as before.

    Raises:
        ImageError: the one image is missing or not a regular file.
    """
    from yolocam_core.files import check_input_file

    images = getattr(args, "images", None) or [getattr(args, "image", None)]
    if len(images) == 1 and isinstance(images[0], str):
        check_input_file(images[0])


def _stdout_to_devnull() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):  # not a real file (a test's capture)
        pass


if __name__ == "__main__":
    sys.exit(main())
