"""Generation diversity of a sweep per configuration and method.

    python analysis/diversity.py --experiment NAME [--tracking-uri URI] [--out DIR]

The logic lives in lfl_ray.analysis; this script only parses the command line.
"""

import sys

from lfl_ray.analysis.cli import main

if __name__ == "__main__":
    sys.exit(main(["diversity", *sys.argv[1:]]))
