"""jemalloc for CPU Ray workers: chosen by LFL_RAY_ALLOCATOR, found in the cache or the system,
preloaded into the local cluster's worker processes only."""

from __future__ import annotations

import pytest

from lfl_ray import allocator
from lfl_ray.errors import ConfigError


def test_unknown_allocator_is_rejected_with_the_field(monkeypatch):
    monkeypatch.setenv(allocator.ALLOCATOR_ENV, "tcmalloc")
    with pytest.raises(ConfigError, match="LFL_RAY_ALLOCATOR.*tcmalloc.*jemalloc.*glibc"):
        allocator.worker_env()


def test_glibc_opts_out_and_a_missing_library_says_so(monkeypatch, tmp_path):
    monkeypatch.setenv(allocator.ALLOCATOR_ENV, "glibc")
    assert allocator.worker_env() == {}
    monkeypatch.setenv(allocator.ALLOCATOR_ENV, "jemalloc")
    monkeypatch.setattr(allocator, "cached_path", lambda: tmp_path / "none" / allocator.LIBRARY)
    monkeypatch.setattr(allocator, "SYSTEM_PATHS", (str(tmp_path),))
    said = []
    assert allocator.worker_env(log=said.append) == {}
    assert said and "glibc" in said[0] and "assets fetch" in said[0]
    fake = tmp_path / allocator.LIBRARY
    fake.write_bytes(b"")
    monkeypatch.setenv("LD_PRELOAD", "/other/lib.so")
    assert allocator.worker_env() == {"LD_PRELOAD": f"{fake} /other/lib.so"}  # the user's is kept


def test_local_cluster_workers_get_the_allocator_and_the_driver_does_not(ray_local):
    import os

    expected = allocator.chosen() == "jemalloc" and allocator.find_jemalloc() is not None

    @ray_local.remote(num_cpus=1)
    def maps() -> bool:
        return "libjemalloc" in open("/proc/self/maps").read()

    assert ray_local.get(maps.remote()) is expected
    assert "libjemalloc" not in open("/proc/self/maps").read()
    assert "jemalloc" not in os.environ.get("LD_PRELOAD", "")


def test_fetch_without_apt_falls_back_instead_of_failing(monkeypatch, tmp_path):
    monkeypatch.setattr(allocator, "cached_path", lambda: tmp_path / "cache" / allocator.LIBRARY)
    monkeypatch.setattr(allocator, "SYSTEM_PATHS", (str(tmp_path),))
    monkeypatch.setattr(allocator.shutil, "which", lambda name: None)
    said = []
    assert allocator.fetch(log=said.append) is None  # no apt, no system copy: glibc
    assert "no apt" in said[0] and "glibc" in said[0]
    (tmp_path / allocator.LIBRARY).write_bytes(b"")
    assert allocator.fetch(log=said.append) == tmp_path / allocator.LIBRARY  # the system copy
