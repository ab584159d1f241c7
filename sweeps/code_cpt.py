"""Run the study in `sweeps/code_cpt.yaml` (the file says what it asks, its presets and why).

    python sweeps/code_cpt.py --preset cpu [--dry-run] [--resume] [--name NAME] [--set budget.steps=80]
    ray job submit --working-dir . -- python sweeps/code_cpt.py --preset paper

Exactly `lfl-ray sweep sweeps/code_cpt.yaml [flags]`; every flag of that verb works here.
"""

import sys
from pathlib import Path

from lfl_ray.sweep.cli import script_main

if __name__ == "__main__":
    sys.exit(script_main(str(Path(__file__).with_suffix(".yaml"))))
