"""``python -m lfl_ray VERB ...``: the ``lfl-ray`` command where the console script is not on PATH."""

import sys

from lfl_ray.cli import main

sys.exit(main())
