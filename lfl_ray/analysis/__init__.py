"""Analysis of a sweep's MLflow experiment: Pareto fronts, recommendations, weight spectra,
intruder dimensions, generation diversity, and one HTML report that holds them all.

Data flows one way: ``runs.load_sweep`` reads MLflow into plain records; every other module
works on those records (or on checkpoints they point to) and never writes back except the
report's artifacts on the sweep's parent run.
"""
