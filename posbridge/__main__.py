"""``python -m posbridge`` is the ``posbridge`` command."""

import sys

from posbridge.cli import main

sys.exit(main())
