"""Code instruction finetuning: LoRA vs full FT (paper: Magicoder-Evol-Instruct-110K; offline: CodeI/O + stdlib docstring->function pairs). Learning: HumanEval pass@1 and held-out loss.

Run: python sweeps/code_ift.py --preset {paper,cpu,smoke} [--dry-run] [--resume] [--name NAME]
On a cluster: ray job submit --working-dir . -- python sweeps/code_ift.py --preset paper
"""

import sys

from lfl_ray.sweep.cli import sweep_main
from lfl_ray.sweep.presets import PRESETS, build

if __name__ == "__main__":
    sys.exit(sweep_main("code_ift", __doc__.splitlines()[0], build, PRESETS, default="cpu"))
