"""The ``samrs`` command line.

Mirrors FiftyOne's own CLI: one verb per capability, each verb a thin call
into the SDK. Verbs live in :mod:`fiftyone_samrs.tools.commands`, one module each;
a module exposes ``register(subparsers)`` which adds its parsers and sets
``func`` on them.
"""

from __future__ import annotations

import argparse
import ast
import errno
import importlib
import sys
from typing import Dict, List, Optional

#: command modules, in the order their verbs appear in ``samrs --help``
COMMAND_MODULES = [
    "doctor",
    "demo",
    "app",
    "importing",
    "segmenting",
    "evaluating",
    "reviewing",
    "exporting",
    "plugin",
]


def parse_kwargs(pairs: Optional[List[str]]) -> Dict[str, object]:
    """Parses ``-k key=value`` extras; values are Python literals or strings."""
    kwargs = {}
    for pair in pairs or []:
        if "=" not in pair:
            raise SystemExit("error: -k expects key=value, got %r" % pair)
        key, value = pair.split("=", 1)
        try:
            kwargs[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            kwargs[key] = value
    return kwargs


def add_kwargs_argument(parser: argparse.ArgumentParser) -> None:
    """Adds FiftyOne-style ``-k key=value`` extras to a parser."""
    parser.add_argument(
        "-k",
        "--kwargs",
        nargs="+",
        metavar="KEY=VAL",
        help="extra keyword arguments for the underlying SDK call",
    )


class HelpFormatter(argparse.HelpFormatter):
    """Shows every option's default ("(default: X)"), except where the help
    already says it or there is nothing to show (None, False, an empty
    list); descriptions are wrapped paragraph by paragraph, and indented
    lines (examples) are kept as written."""

    def _get_help_string(self, action):
        text = action.help or ""
        default = action.default
        if ("default" in text or default is argparse.SUPPRESS or default is None
                or default is False or default == []):
            return text
        return (text + " " if text else "") + "(default: %(default)s)"

    def _fill_text(self, text, width, indent):
        import textwrap

        out = []
        for block in text.split("\n\n"):
            if block.startswith(" "):
                out.append("\n".join(indent + line for line in block.splitlines()))
            else:
                out.append(textwrap.fill(" ".join(block.split()), width,
                                         initial_indent=indent, subsequent_indent=indent))
        return "\n\n".join(out)


class _SubParsersAction(argparse._SubParsersAction):
    """Gives every verb its ``help`` as a description (``samrs VERB --help``
    then says what the verb does) and the defaults-showing formatter."""

    def add_parser(self, name, **kwargs):
        text = kwargs.get("help")
        if text and not kwargs.get("description"):
            kwargs["description"] = text[0].upper() + text[1:] + ("" if text.endswith(".")
                                                                   else ".")
        kwargs.setdefault("formatter_class", HelpFormatter)
        return super().add_parser(name, **kwargs)


class SamrsArgumentParser(argparse.ArgumentParser):
    """The parser of ``samrs`` and of each of its verbs (and their verbs)."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)
        self.register("action", "parsers", _SubParsersAction)


def build_parser() -> argparse.ArgumentParser:
    parser = SamrsArgumentParser(
        prog="samrs",
        description="SAMRS for FiftyOne: detection datasets to segmentation datasets with SAM",
    )
    subparsers = parser.add_subparsers(title="commands", dest="command")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module("fiftyone_samrs.tools.commands." + name)
        except ModuleNotFoundError as e:
            if e.name != "fiftyone_samrs.tools.commands." + name:
                raise
            continue
        module.register(subparsers)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    from fiftyone_samrs.tools.db import quiet_embedded_database_notice

    quiet_embedded_database_notice()
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        result = args.func(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as e:
        message = one_line_error(e)
        if message is None:
            raise  # a bug: its traceback helps
        print("error: %s" % message, file=sys.stderr)
        return 1
    return int(result or 0)


def one_line_error(error: BaseException) -> Optional[str]:
    """What a verb's failure says in one line: a lost database (what was
    written is kept), or an ``OSError`` naming its path (a full disk, a file
    where a folder should be, ...); None for other errors."""
    from fiftyone_samrs.fiftyone_io import is_connection_error

    if is_connection_error(error):
        from fiftyone_samrs.segmenting.leases import database_lost

        return str(database_lost(error))
    if not isinstance(error, OSError):
        return None
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    for name in (error.filename, getattr(error, "filename2", None)):
        if name and str(name) not in text:
            text = "%s: %s" % (name, text)
    if error.errno in (errno.ENOSPC, errno.EDQUOT) and "disk full" not in text:
        text += " (is the disk full?)"
    return text


if __name__ == "__main__":
    sys.exit(main())
