"""One sweep of a name at a time: the lock files beside the store and the Tune folder."""

from __future__ import annotations

import subprocess
import sys

import pytest

from lfl_ray.errors import ConfigError
from lfl_ray.sweep import name_lock


def test_a_held_name_is_refused_from_another_process_and_free_once_released(tmp_path):
    uri, folder = f"sqlite:///{tmp_path}/mlflow.db", str(tmp_path / "ray_results" / "s1")
    claim = name_lock.claim(uri, "s1", folder)
    script = ("import sys\nfrom lfl_ray.sweep import name_lock\nfrom lfl_ray.errors import ConfigError\n"
              f"try:\n    name_lock.claim({uri!r}, 's1', sys.argv[1])\nexcept ConfigError as e:\n"
              "    print(e)\n    sys.exit(2)\n")
    # Same store, other storage: still the same sweep name in one MLflow store.
    other = subprocess.run([sys.executable, "-c", script, str(tmp_path / "elsewhere" / "s1")],
                           capture_output=True, text=True, timeout=60)
    assert other.returncode == 2 and "--name" in other.stdout and "s1" in other.stdout, other
    with pytest.raises(ConfigError, match="--name"):  # also from this process
        name_lock.claim(f"sqlite:///{tmp_path}/other.db", "s1", folder)  # same Tune folder
    name_lock.claim(uri, "s2", str(tmp_path / "ray_results" / "s2")).release()  # another name is free
    claim.release()
    name_lock.claim(uri, "s1", folder).release()


def test_remote_store_and_storage_have_nothing_to_lock_here():
    assert name_lock.lock_paths("http://127.0.0.1:5000", "s1", "s3://bucket/sweeps/s1") == []
