"""``python -m posbridge`` is the ``posbridge`` command.

Guarded, and importing nothing else before the guard: a process spawned by multiprocessing
(the QR render pool, :mod:`hardware.qr_pool`) imports the main module again under the name
``__mp_main__`` and must neither run the command nor load the command line's modules.
"""

if __name__ == "__main__":
    import sys

    from posbridge.cli import main

    sys.exit(main())
