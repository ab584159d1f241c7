"""Math instruction finetuning: LoRA vs full FT (paper: MetaMathQA; offline: MATH solutions + gsm_symbolic). Learning: GSM8K and held-out loss.

Run: python sweeps/math_ift.py --preset {paper,cpu,smoke} [--dry-run] [--resume] [--name NAME]
On a cluster: ray job submit --working-dir . -- python sweeps/math_ift.py --preset paper
"""

import sys

from lfl_ray.sweep.cli import sweep_main
from lfl_ray.sweep.presets import PRESETS, build

if __name__ == "__main__":
    sys.exit(sweep_main("math_ift", __doc__.splitlines()[0], build, PRESETS, default="cpu"))
