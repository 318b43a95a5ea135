"""``python -m posbridge`` is the ``posbridge`` command.

Guarded: a process spawned by multiprocessing (the QR render pool, :mod:`hardware.qr_pool`)
imports the main module again under the name ``__mp_main__`` and must not run the command.
"""

import sys

from posbridge.cli import main

if __name__ == "__main__":
    sys.exit(main())
