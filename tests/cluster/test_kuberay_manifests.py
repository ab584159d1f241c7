"""The KubeRay manifests carry what the operator needs; deleting any of it is caught."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
import yaml

from lfl_ray.cluster_config import pinned_versions, validate_file, validate_kuberay_manifest

ROOT = Path(__file__).resolve().parents[2]
KUBERAY = ROOT / "cluster" / "kuberay"
MANIFESTS = sorted(KUBERAY.glob("*.yaml"))


@pytest.fixture(scope="module")
def version() -> str:
    with open(ROOT / "pyproject.toml", "rb") as f:
        return tomllib.load(f)["project"]["version"]


def _docs(name: str) -> list[dict]:
    return [d for d in yaml.safe_load_all((KUBERAY / name).read_text()) if d is not None]


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_manifest_has_no_problem(path, version):
    assert validate_kuberay_manifest(path, version=version, allow_placeholders=True) == []
    # validate_file picks the KubeRay check for these, not the launcher one.
    assert validate_file(path, version=version, allow_placeholders=True) == []


@pytest.mark.parametrize("name", ["raycluster.yaml", "rayjob.yaml"])
def test_manifest_pins_the_package_version(name, version):
    pins = pinned_versions((KUBERAY / name).read_text())
    assert pins and set(pins) == {version}


def test_rayjob_runs_the_paper_code_ift_sweep_on_durable_storage():
    job = _docs("rayjob.yaml")[0]
    entrypoint = job["spec"]["entrypoint"]
    assert entrypoint.startswith("python sweeps/code_ift.py --preset paper")
    assert "--storage-path s3://" in entrypoint or "--storage-path gs://" in entrypoint
    assert "--tracking-uri http://" in entrypoint


def test_gpu_groups_scale_from_zero_with_gpu_limits():
    for name, spec in [("raycluster.yaml", _docs("raycluster.yaml")[0]["spec"]),
                       ("rayjob.yaml", _docs("rayjob.yaml")[0]["spec"]["rayClusterSpec"])]:
        group = spec["workerGroupSpecs"][0]
        limits = group["template"]["spec"]["containers"][0]["resources"]["limits"]
        assert limits["nvidia.com/gpu"] == 8, name
        assert group["minReplicas"] == 0 and spec["enableInTreeAutoscaling"] is True, name
        assert spec["authOptions"] == {"mode": "token"}, name


def _delete(doc: dict, path: tuple) -> None:
    node = doc
    for key in path[:-1]:
        node = node[key]
    del node[path[-1]]


HEAD = ("spec", "headGroupSpec")
WORKER = ("spec", "workerGroupSpecs", 0)
JOB_CLUSTER = ("spec", "rayClusterSpec")
GPU_LIMIT = ("template", "spec", "containers", 0, "resources", "limits", "nvidia.com/gpu")

DELETIONS = [
    ("raycluster.yaml", ("kind",), "kind: got None"),
    ("raycluster.yaml", ("apiVersion",), "apiVersion: got None; must be 'ray.io/v1'"),
    ("raycluster.yaml", ("metadata", "name"), "metadata.name: missing"),
    ("raycluster.yaml", HEAD, "headGroupSpec: missing"),
    ("raycluster.yaml", HEAD + ("rayStartParams",), "headGroupSpec.rayStartParams: missing"),
    ("raycluster.yaml", HEAD + ("template", "spec", "containers"),
     "headGroupSpec.template.spec.containers: missing"),
    ("raycluster.yaml", HEAD + ("template", "spec", "containers", 0, "image"),
     "containers[0].image: missing"),
    ("raycluster.yaml", ("spec", "workerGroupSpecs"), "workerGroupSpecs: missing"),
    ("raycluster.yaml", WORKER + ("rayStartParams",), "workerGroupSpecs[0].rayStartParams: missing"),
    ("raycluster.yaml", WORKER + ("groupName",), "workerGroupSpecs[0].groupName: missing"),
    ("raycluster.yaml", WORKER + ("maxReplicas",), "workerGroupSpecs[0].maxReplicas: missing"),
    ("raycluster.yaml", WORKER + GPU_LIMIT, "no group sets resources.limits['nvidia.com/gpu']"),
    ("raycluster.yaml", ("spec", "rayVersion"), "rayVersion: missing"),
    ("raycluster.yaml", ("spec", "authOptions"), "authOptions: missing; set mode: token"),
    ("raycluster.yaml", ("spec", "enableInTreeAutoscaling"), "enableInTreeAutoscaling: must be true"),
    ("rayjob.yaml", ("spec", "entrypoint"), "RayJob/lfl-code-ift.spec.entrypoint: missing"),
    ("rayjob.yaml", JOB_CLUSTER, "rayClusterSpec: missing"),
    ("rayjob.yaml", JOB_CLUSTER + ("headGroupSpec", "rayStartParams"),
     "rayClusterSpec.headGroupSpec.rayStartParams: missing"),
    ("rayjob.yaml", JOB_CLUSTER + ("workerGroupSpecs", 0) + GPU_LIMIT,
     "no group sets resources.limits['nvidia.com/gpu']"),
    ("rayjob.yaml", ("apiVersion",), "apiVersion: got None; must be 'ray.io/v1'"),
]


@pytest.mark.parametrize("name,path,expected", DELETIONS,
                         ids=[f"{n}:{'.'.join(map(str, p))}" for n, p, _ in DELETIONS])
def test_deleting_a_required_field_is_caught(name, path, expected, tmp_path, version):
    docs = _docs(name)
    _delete(docs[0], path)
    copy_path = tmp_path / name
    copy_path.write_text(yaml.safe_dump_all(docs))
    errors = validate_kuberay_manifest(copy_path, version=version, allow_placeholders=True)
    assert any(expected in e for e in errors), errors


def test_a_public_service_is_refused(tmp_path, version):
    docs = _docs("raycluster.yaml")
    docs[1]["spec"]["type"] = "LoadBalancer"
    docs[0]["spec"]["headGroupSpec"]["serviceType"] = "NodePort"
    path = tmp_path / "public.yaml"
    path.write_text(yaml.safe_dump_all(docs))
    errors = validate_kuberay_manifest(path, version=version, allow_placeholders=True)
    assert any("Service/lfl-ray-mlflow.spec.type: got 'LoadBalancer'" in e for e in errors)
    assert any("headGroupSpec.serviceType: got 'NodePort'" in e for e in errors)


def test_a_gpu_group_that_cannot_reach_zero_is_refused(tmp_path, version):
    docs = _docs("rayjob.yaml")
    docs[0]["spec"]["rayClusterSpec"]["workerGroupSpecs"][0]["minReplicas"] = 2
    path = tmp_path / "warm.yaml"
    path.write_text(yaml.safe_dump_all(docs))
    errors = validate_kuberay_manifest(path, version=version, allow_placeholders=True)
    assert any("workerGroupSpecs[0].minReplicas: got 2; must be 0" in e for e in errors)
