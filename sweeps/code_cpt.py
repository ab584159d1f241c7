"""Code continued pretraining: LoRA vs full FT (paper: StarCoder-Python; offline: Python stdlib sources). Learning: HumanEval pass@1 and held-out code loss.

Run: python sweeps/code_cpt.py --preset {paper,cpu,smoke} [--dry-run] [--resume] [--name NAME]
On a cluster: ray job submit --working-dir . -- python sweeps/code_cpt.py --preset paper
"""

import sys

from lfl_ray.sweep.cli import sweep_main
from lfl_ray.sweep.presets import PRESETS, build

if __name__ == "__main__":
    sys.exit(sweep_main("code_cpt", __doc__.splitlines()[0], build, PRESETS, default="cpu"))
