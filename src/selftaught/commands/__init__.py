"""The `selftaught` subcommands (layer L7), one module each; `selftaught.cli` puts them together.

Each module has `add_parser(sub)`, which adds its command to an argparse subparsers object, and the
command's function (set as the parser's `func`). Modules import torch-heavy code only inside the
command functions, so building the parser (and `selftaught list`) stays fast.
"""
