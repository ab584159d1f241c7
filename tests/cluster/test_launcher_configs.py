"""The Ray cluster launcher configs in cluster/ parse, pass Ray's validation and our rules."""

from __future__ import annotations

import copy
import tomllib
from pathlib import Path

import pytest
import yaml

from lfl_ray.cluster_config import (
    main,
    pinned_versions,
    placeholders,
    validate_file,
    validate_launcher_config,
)

ROOT = Path(__file__).resolve().parents[2]
CLUSTER = ROOT / "cluster"
LAUNCHER_CONFIGS = sorted(CLUSTER.glob("*.yaml"))
ALL_YAML = sorted(CLUSTER.rglob("*.yaml"))


@pytest.fixture(scope="module")
def version() -> str:
    with open(ROOT / "pyproject.toml", "rb") as f:
        return tomllib.load(f)["project"]["version"]


def _write(tmp_path: Path, config: dict) -> Path:
    path = tmp_path / "broken.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_cluster_folder_has_the_expected_files():
    names = {p.relative_to(CLUSTER).as_posix() for p in ALL_YAML}
    assert {"aws-gpu.yaml", "gcp-gpu.yaml", "kuberay/raycluster.yaml",
            "kuberay/rayjob.yaml"} <= names
    assert (CLUSTER / "README.md").exists() and (CLUSTER / "Dockerfile").exists()


@pytest.mark.parametrize("path", ALL_YAML, ids=lambda p: p.relative_to(CLUSTER).as_posix())
def test_every_yaml_parses(path):
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    assert docs and all(isinstance(d, dict) for d in docs)


@pytest.mark.parametrize("path", LAUNCHER_CONFIGS, ids=lambda p: p.name)
def test_launcher_config_passes_rays_own_validation(path):
    from ray.autoscaler._private.util import prepare_config, validate_config

    config = yaml.safe_load(path.read_text())
    prepared = prepare_config(copy.deepcopy(config))
    validate_config(prepared)  # raises on any problem
    head = prepared["head_node_type"]
    gpu_types = [n for n, t in prepared["available_node_types"].items()
                 if n != head and t["resources"].get("GPU", 0) > 0]
    assert gpu_types, "no GPU worker type"
    for name in gpu_types:
        assert prepared["available_node_types"][name]["min_workers"] == 0
    assert prepared["idle_timeout_minutes"] == config["idle_timeout_minutes"]
    # Our setup commands replaced Ray's defaults (which install a nightly Ray wheel).
    assert not any("ray-wheels" in c for c in prepared["setup_commands"])


@pytest.mark.parametrize("path", LAUNCHER_CONFIGS, ids=lambda p: p.name)
def test_launcher_config_has_no_problem(path, version):
    assert validate_launcher_config(path, version=version, allow_placeholders=True) == []


@pytest.mark.parametrize("path", LAUNCHER_CONFIGS, ids=lambda p: p.name)
def test_launcher_config_pins_the_package_version(path, version):
    text = path.read_text()
    pins = pinned_versions(text)
    assert pins and set(pins) == {version}
    # The pinned line installs the gpu extra (vllm; DeepSpeed is a base dependency).
    assert f'"lfl-ray[gpu] @ git+https://github.com/lfl-ray/lfl-ray@v{version}"' in text


def test_dockerfile_pins_the_package_version(version):
    text = (CLUSTER / "Dockerfile").read_text()
    assert "lfl-ray[gpu] @ git+" in text
    assert set(pinned_versions(text)) == {version}


def test_a_wrong_version_is_named(tmp_path):
    errors = validate_launcher_config(CLUSTER / "aws-gpu.yaml", version="9.9.9",
                                      allow_placeholders=True)
    assert errors and all("pinned 0.1.0 but the package is 9.9.9" in e for e in errors)


def test_placeholders_are_reported_unless_allowed(version):
    path = CLUSTER / "gcp-gpu.yaml"
    assert placeholders(path.read_text()) == ["YOUR-BUCKET", "YOUR-PROJECT"]
    errors = validate_launcher_config(path, version=version)
    assert errors == ["placeholder: replace YOUR-BUCKET before launching",
                      "placeholder: replace YOUR-PROJECT before launching"]


def _aws() -> dict:
    return yaml.safe_load((CLUSTER / "aws-gpu.yaml").read_text())


def _typo(c):
    c["idle_timout_minutes"] = c.pop("idle_timeout_minutes")


def _two_schema_errors(c):
    c["max_workers"] = "four"
    c["available_node_types"]["gpu_h100"]["resources"]["GPU"] = -1


def _head_type(c):
    c["head_node_type"] = "head_gpu"


def _gpu_min_workers(c):
    c["available_node_types"]["gpu_h100"]["min_workers"] = 1


def _open_mlflow(c):
    c["provider"]["security_group"]["IpPermissions"] = [
        {"FromPort": 5000, "ToPort": 5000, "IpProtocol": "tcp",
         "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}]


def _no_worker_auth(c):
    c["worker_start_ray_commands"] = [cmd.replace("RAY_AUTH_MODE=token ", "")
                                      for cmd in c["worker_start_ray_commands"]]


def _auth_disabled(c):
    c["head_start_ray_commands"].insert(0, "export RAY_AUTH_MODE=disabled")


def _no_idle_timeout(c):
    del c["idle_timeout_minutes"]


def _no_mlflow(c):
    c["head_start_ray_commands"] = c["head_start_ray_commands"][:2]


def _unpinned(c):
    c["setup_commands"] = ['pip install "lfl-ray[gpu]"']


BREAKAGES = {
    "typo": (_typo, ["schema: (top level): Additional properties are not allowed "
                     "('idle_timout_minutes' was unexpected)"]),
    "two_schema_errors": (_two_schema_errors, [
        "schema: available_node_types.gpu_h100.resources.GPU: -1 is less than the minimum of 0",
        "schema: max_workers: 'four' is not of type 'integer'"]),
    "head_type": (_head_type, ["ray validate_config: ValueError: `head_node_type` must be one "
                               "of `available_node_types`."]),
    "gpu_min_workers": (_gpu_min_workers, ["available_node_types.gpu_h100.min_workers: got 1"]),
    "open_mlflow": (_open_mlflow, ["opens port 5000 (MLflow) to the internet"]),
    "no_worker_auth": (_no_worker_auth, ["worker_start_ray_commands: `ray start` must run with "
                                         "RAY_AUTH_MODE=token"]),
    "auth_disabled": (_auth_disabled, ["RAY_AUTH_MODE=disabled turns token authentication off"]),
    "no_idle_timeout": (_no_idle_timeout, ["idle_timeout_minutes: missing"]),
    "unpinned": (_unpinned, ["lfl-ray: no pinned install found"]),
    "no_mlflow": (_no_mlflow, ["head_start_ray_commands: no MLflow server started on the head"]),
}


@pytest.mark.parametrize("name", BREAKAGES)
def test_a_broken_copy_fails_with_the_error_named(name, tmp_path, version):
    breakage, expected = BREAKAGES[name]
    config = _aws()
    breakage(config)
    errors = validate_launcher_config(_write(tmp_path, config), version=version,
                                      allow_placeholders=True)
    for fragment in expected:
        assert any(fragment in e for e in errors), (fragment, errors)


def test_unparsable_yaml_is_reported(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("cluster_name: [unclosed\n")
    errors = validate_file(path)
    assert len(errors) == 1 and errors[0].startswith("yaml: ")


def test_command_line_exit_status(tmp_path, capsys, version):
    ok = [str(p) for p in LAUNCHER_CONFIGS]
    flags = ["--allow-placeholders", "--skip-mounts", "--version", version]
    assert main(ok + flags) == 0
    config = _aws()
    _head_type(config)
    broken = _write(tmp_path, config)
    assert main([str(broken)] + flags) == 1
    out = capsys.readouterr().out
    assert "aws-gpu.yaml: ok" in out and "broken.yaml: 1 problem(s)" in out
    assert "`head_node_type` must be one of" in out
    assert main([str(tmp_path / "absent.yaml")] + flags) == 1
    assert "absent.yaml: 1 problem(s)" in capsys.readouterr().out


def test_missing_mount_sources_are_named_when_asked(tmp_path, version, monkeypatch):
    config = _aws()
    present = tmp_path / "auth_token"
    present.write_text("t")
    config["file_mounts"] = {"/home/ray/.ray/auth_token": str(present),
                             "/home/ray/lfl-ray-cluster": "./cluster",
                             "/home/ray/.cache/huggingface/token": str(tmp_path / "absent")}
    path = _write(tmp_path, config)
    monkeypatch.chdir(ROOT)  # relative sources are read from where `ray up` runs
    errors = validate_launcher_config(path, version=version, allow_placeholders=True,
                                      check_mounts=True)
    assert errors == [f"file_mounts['/home/ray/.cache/huggingface/token']: local "
                      f"'{tmp_path / 'absent'}' not found; create it, or run `ray up {path}` "
                      "from the directory it is relative to"]
    assert validate_launcher_config(path, version=version, allow_placeholders=True) == []
