"""``samrs app DATASET``: the FiftyOne App on a dataset with the SAMRS QA panel
open (see :mod:`fiftyone_samrs.tools.app`)."""

from __future__ import annotations

import argparse


def execute(args: argparse.Namespace) -> int:
    from fiftyone_samrs.tools.app import launch_app
    from fiftyone_samrs.tools.commands._common import load_dataset
    from fiftyone_samrs.tools.plugin_install import plugin_status

    if load_dataset(args.dataset) is None:
        return 1
    ok, found, fix = plugin_status()
    if not ok:
        print("[samrs] the App will have no SAMRS operators: %s\n        fix: %s"
              % (found, fix))
    launch_app(args.dataset, port=args.port, address=args.address, remote=args.remote,
               panel=not args.no_panel)
    return 0


def register(subparsers) -> None:
    from fiftyone_samrs.tools.app import DEFAULT_PORT, QA_WORKSPACE

    parser = subparsers.add_parser(
        "app", help="open the FiftyOne App on a dataset with the SAMRS QA panel",
        description="Launches the FiftyOne App (as `fiftyone app launch DATASET`) with the "
                    "samples grid and the SAMRS QA panel side by side: the dataset's saved "
                    "workspace %r, saved first if missing. Ctrl-C stops it." % QA_WORKSPACE)
    parser.add_argument("dataset", help="the FiftyOne dataset name")
    parser.add_argument("--port", "-p", type=int, default=DEFAULT_PORT, help="the App's port")
    parser.add_argument("--address", "-A", default=None,
                        help="the address to bind (default: localhost, even in a container; "
                             "another address is reachable from the network and is warned "
                             "about)")
    parser.add_argument("--remote", "-r", action="store_true",
                        help="do not open a browser tab (remote session)")
    parser.add_argument("--no-panel", action="store_true",
                        help="open the App without the SAMRS QA panel")
    parser.set_defaults(func=execute)
