"""Rank of a sweep's weight changes dW per matrix, full FT vs LoRA.

    python analysis/spectrum.py --experiment NAME [--tracking-uri URI] [--out DIR]

The logic lives in lfl_ray.analysis; this script only parses the command line.
"""

import sys

from lfl_ray.analysis.cli import main

if __name__ == "__main__":
    sys.exit(main(["spectrum", *sys.argv[1:]]))
