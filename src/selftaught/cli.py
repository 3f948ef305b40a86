"""The `selftaught` command line (layer L7).

selftaught list                                   recipes and their presets
selftaught <recipe> [--preset P] [key=value ...]  run a recipe (e.g. `selftaught world-pretrain`)
selftaught world pretrain [key=value ...]         same as `selftaught world-pretrain`
selftaught generate --model M --prompts F --out F sample completions for a prompts file
selftaught eval --model M --data D                accuracy on a world split or a GSM8K-format file
selftaught eval-judge --model M --data D          judge accuracy and position bias on preference pairs
selftaught serve --model M [--port P]             an OpenAI-compatible server on 127.0.0.1
selftaught demo                                   the flywheel on the embedded tiny world
selftaught repro online-rl                        the offline/semi-online/online table over seeds
selftaught report RUN_DIR [RUN_DIR ...]           plots and an HTML/markdown page of runs' metrics

Each command lives in its own module of `selftaught.commands` (repro and report in theirs).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys

from selftaught import __version__, repro
from selftaught.commands import demo, eval_judge, generate, recipes, serve
from selftaught.commands import eval as eval_command
from selftaught.report import add_report_parser


def main(argv: list[str] | None = None) -> int:
    """Parse `argv` and run its command; user errors (a bad config, a missing file) exit 2 with a
    one-line message rather than a traceback."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "func"):
        parser.print_help()
        return 1
    try:
        code = args.func(args) or 0
        if argv is None:  # the `selftaught` command: the work is saved, so a Ctrl-C now must not
            signal.signal(signal.SIGINT, signal.SIG_IGN)  # interrupt the exit (atexit tracebacks)
        return code
    except KeyboardInterrupt:
        print(
            "selftaught: interrupted; rerunning the same command resumes from the last checkpoint",
            file=sys.stderr,
        )
        return 130
    except user_errors() as err:
        if os.environ.get("SELFTAUGHT_TRACEBACK"):
            raise
        print(f"selftaught: error: {one_line(err)}", file=sys.stderr)
        return 2


def one_line(err: BaseException) -> str:
    """The error's message on one line (a library's multi-line message joined with spaces)."""
    return " ".join(line.strip() for line in str(err).splitlines() if line.strip()) or type(err).__name__


def user_errors() -> tuple[type[BaseException], ...]:
    """What a user's input can raise (a bad config, file, model directory, or an unreachable
    server): printed as one line. Anything else is a bug and keeps its traceback
    (`SELFTAUGHT_TRACEBACK=1` shows it for these too)."""
    from safetensors import SafetensorError
    from yaml import YAMLError

    from selftaught.engines.base import ServerError

    return ValueError, OSError, YAMLError, SafetensorError, ServerError


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser: every command's module adds its own subcommand."""
    parser = argparse.ArgumentParser(
        prog="selftaught", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"selftaught {__version__}")
    sub = parser.add_subparsers(metavar="COMMAND")
    recipes.add_parsers(sub)
    for command in (generate, eval_command, eval_judge, serve):
        command.add_parser(sub)
    repro.add_parser(sub)
    add_report_parser(sub)
    demo.add_parser(sub)
    return parser


if __name__ == "__main__":
    sys.exit(main())
