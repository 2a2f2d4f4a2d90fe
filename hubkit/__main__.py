"""``python -m hubkit``: the ``hubkit`` command."""

import sys

from hubkit.cli import main

sys.exit(main())
