"""The shipped study files (``lfl-ray sweep NAME`` finds them by name; see ``lfl_ray.sweep.study``)."""
