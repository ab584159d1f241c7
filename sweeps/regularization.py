"""Does LoRA regularize more than the usual regularizers? LoRA vs full FT vs full FT + weight decay vs full FT + dropout vs LoRA + HiddenKey, at matched budgets.

Run: python sweeps/regularization.py --regime code_ift --preset {paper,cpu,smoke} [--dry-run]
On a cluster: ray job submit --working-dir . -- python sweeps/regularization.py --preset paper
"""

import sys

from lfl_ray.sweep.cli import sweep_main
from lfl_ray.sweep.presets import PRESETS, regularization

if __name__ == "__main__":
    sys.exit(sweep_main(None, __doc__.splitlines()[0], regularization, PRESETS, default="cpu"))
