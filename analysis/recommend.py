"""Recommendations from a sweep's data, with uncertainties, against the paper's claims.

    python analysis/recommend.py --experiment NAME [--tracking-uri URI] [--out DIR]

The logic lives in lfl_ray.analysis; this script only parses the command line.
"""

import sys

from lfl_ray.analysis.cli import main

if __name__ == "__main__":
    sys.exit(main(["recommend", *sys.argv[1:]]))
