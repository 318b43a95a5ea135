"""``posbridge doctor --config PATH [--json]``: everything a first sale needs, on one screen.

Each line is one check (see :mod:`posbridge.doctor` for what each means and
:mod:`posbridge.doctor_probes` for how it is asked) with, for anything not ok, how to fix it.
Exit status 0 when nothing failed (warnings do not fail), 1 otherwise; ``--json`` prints one
object for monitoring instead.
"""

from __future__ import annotations

import argparse
import logging
from typing import Any

from posbridge import aio, logs
from posbridge.checks import exit_code, render_json, render_text
from posbridge.cli_keys import config_option, service_user_option

__all__ = ["register_commands"]


def register_commands(sub: Any) -> None:
    """Add ``doctor`` to the main parser's sub-parsers."""
    p = sub.add_parser(
        "doctor", help="check everything before the first sale, and say how to fix it",
        description="Checks the configuration, the key files, each provider (a signed status "
                    "query), the clock, printers, displays, the notification URL, the journal "
                    "and the systemd unit. Exit 0 when nothing failed, 1 otherwise.")
    config_option(p)
    p.add_argument("--json", action="store_true", help="one JSON object, for monitoring")
    service_user_option(p, "must be able to read the keys and write the journal")
    p.add_argument("--unit", default="posbridge.service", help="the systemd unit")
    p.set_defaults(func=_cmd_doctor)


def _cmd_doctor(args: argparse.Namespace) -> int:
    from posbridge.doctor_probes import run_doctor

    # The adapters' and drivers' own log lines would repeat, less clearly, what the checks say.
    logs.configure("json", level=logging.CRITICAL)
    checks = aio.run(run_doctor(args.config, service_user=args.service_user, unit=args.unit))
    print(render_json(checks) if args.json else render_text(checks))
    return exit_code(checks)
