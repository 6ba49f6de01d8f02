"""``samrs plugin install|status|path|uninstall``: the FiftyOne App plugin ``@samrs/samrs``."""

from __future__ import annotations

import argparse
import sys


def _install(args: argparse.Namespace) -> int:
    from fiftyone_samrs.tools.plugin_install import install_plugin, plugin_status

    try:
        install_plugin(link=not args.copy, plugins_dir=args.plugins_dir,
                       overwrite=args.overwrite)
    except (FileExistsError, FileNotFoundError, OSError) as e:
        print("[samrs] error: %s" % e, file=sys.stderr)
        return 1
    ok, found, fix = plugin_status(args.plugins_dir)
    print("[samrs] %s %s" % ("ok:" if ok else "FAIL:", found))
    if not ok:
        print("[samrs] fix: %s" % fix, file=sys.stderr)
    return 0 if ok else 1


def _status(args: argparse.Namespace) -> int:
    from fiftyone_samrs.tools.plugin_install import plugin_status

    ok, found, fix = plugin_status(args.plugins_dir)
    print("%s %s" % ("ok  " if ok else "FAIL", found))
    if not ok:
        print("     fix: %s" % fix)
    return 0 if ok else 1


def _path(args: argparse.Namespace) -> int:
    from fiftyone_samrs.tools.plugin_install import plugin_dir

    try:
        print(plugin_dir())
    except FileNotFoundError as e:
        print("[samrs] error: %s" % e, file=sys.stderr)
        return 1
    return 0


def _uninstall(args: argparse.Namespace) -> int:
    from fiftyone_samrs.tools.plugin_install import install_target, uninstall_plugin

    if not uninstall_plugin(plugins_dir=args.plugins_dir):
        print("[samrs] nothing to remove at %s" % install_target(args.plugins_dir))
    return 0


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "plugin", help="install or check the FiftyOne App plugin @samrs/samrs"
    )
    verbs = parser.add_subparsers(title="plugin commands", dest="plugin_command")
    parser.set_defaults(func=lambda args: (parser.print_help(), 2)[1])

    install = verbs.add_parser(
        "install", help="link the plugin into FiftyOne's plugins dir (fiftyone config plugins_dir)"
    )
    install.add_argument("--copy", action="store_true",
                         help="copy the plugin files instead of linking them")
    install.add_argument("--plugins-dir", metavar="DIR",
                         help="install into DIR instead of fo.config.plugins_dir")
    install.add_argument("--overwrite", action="store_true",
                         help="replace an existing <plugins_dir>/@samrs/samrs")
    install.set_defaults(func=_install)

    status = verbs.add_parser("status", help="whether FiftyOne finds and loads the plugin")
    status.add_argument("--plugins-dir", metavar="DIR",
                        help="check DIR instead of fo.config.plugins_dir")
    status.set_defaults(func=_status)

    path = verbs.add_parser("path", help="print the plugin directory of this installation")
    path.set_defaults(func=_path)

    uninstall = verbs.add_parser("uninstall", help="remove <plugins_dir>/@samrs/samrs")
    uninstall.add_argument("--plugins-dir", metavar="DIR",
                           help="uninstall from DIR instead of fo.config.plugins_dir")
    uninstall.set_defaults(func=_uninstall)
