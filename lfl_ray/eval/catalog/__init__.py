"""The shipped eval suites, one module per family; each registers its suites on import.

``lfl_ray.eval.registry`` imports every module here the first time a suite is looked up,
so a new suite is a new module in this folder (see the registry's docstring).
"""
