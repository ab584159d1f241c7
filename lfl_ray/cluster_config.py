"""Checks cluster files before they cost money: Ray launcher configs and KubeRay manifests.

Run it before ``ray up`` or ``kubectl apply``; it lists every problem at once::

    python -m lfl_ray.cluster_config cluster/*.yaml cluster/kuberay/*.yaml

A Ray cluster launcher config is checked by Ray's own schema (``ray-schema.json``, every
error listed), then by Ray's ``prepare_config`` + ``validate_config`` (what ``ray up`` runs
first), then against this project's rules: GPU groups scale from zero, idle nodes time out,
token authentication stays on, the dashboard (8265) and MLflow (5000) ports are never opened
to the internet, and the pinned lfl-ray install matches the package version. A KubeRay
manifest is checked for the fields the KubeRay operator needs (there is no offline CRD
schema), plus the same project rules. Both work offline: no cloud SDK, no cluster.
"""

from __future__ import annotations

import argparse
import copy
import ipaddress
import json
import logging
import re
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

import yaml

# Ports that must only be reached through SSH / `ray dashboard` / `kubectl port-forward`.
PRIVATE_PORTS = {8265: "Ray dashboard", 5000: "MLflow"}

# How a shipped file pins lfl-ray: a git tag, a PyPI pin, an image tag, a release archive.
_PIN_PATTERNS = (
    re.compile(r"lfl-ray(?:\[[^\]]*\])?\s*@\s*git\+\S+?@v(?P<version>\d+\.\d+\.\d+\S*?)[\"'\s]"),
    re.compile(r"lfl-ray(?:\[[^\]]*\])?==(?P<version>\d+\.\d+\.\d+[^\"'\s]*)"),
    re.compile(r"/lfl-ray:(?P<version>\d+\.\d+\.\d+)"),
    re.compile(r"lfl-ray/archive/refs/tags/v(?P<version>\d+\.\d+\.\d+)\.zip"),
)
# Values a user must replace before launching (bucket, project).
_PLACEHOLDER = re.compile(r"YOUR-[A-Z0-9-]+")

RAY_API_VERSION = "ray.io/v1"
RAY_KINDS = ("RayCluster", "RayJob")
# Kinds a KubeRay manifest file may carry beside its Ray resources.
COMPANION_KINDS = ("Service", "PersistentVolumeClaim", "ServiceAccount", "ConfigMap", "Secret")


def load_documents(path: str | Path) -> list[Any]:
    """All YAML documents in ``path`` (empty ones dropped); raises yaml.YAMLError if unparsable."""
    text = Path(path).read_text()
    return [doc for doc in yaml.safe_load_all(text) if doc is not None]


def expected_version() -> str:
    """The lfl-ray version installed here: what the cluster should install too."""
    return metadata.version("lfl-ray")


def pinned_versions(text: str) -> list[str]:
    """Every lfl-ray version pinned in ``text`` (install lines and image tags), in order."""
    found: list[tuple[int, str]] = []
    for pattern in _PIN_PATTERNS:
        found += [(m.start(), m.group("version")) for m in pattern.finditer(text + "\n")]
    return [version for _, version in sorted(found)]


def placeholders(text: str) -> list[str]:
    """The ``YOUR-...`` values still to be replaced in ``text`` (sorted, unique)."""
    return sorted(set(_PLACEHOLDER.findall(text)))


def schema_errors(config: Any) -> list[str]:
    """Every violation of Ray's launcher schema (``ray/autoscaler/ray-schema.json``)."""
    import jsonschema
    import ray.autoscaler

    schema_path = Path(ray.autoscaler.__file__).parent / "ray-schema.json"
    schema = json.loads(schema_path.read_text())
    validator = jsonschema.Draft7Validator(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: list(map(str, e.absolute_path)))
    return [f"schema: {_where(e.absolute_path)}: {e.message}" for e in errors]


def ray_validation_errors(config: dict) -> list[str]:
    """What ``ray up`` itself rejects: ``prepare_config`` (defaults merged) + ``validate_config``."""
    from ray.autoscaler._private.util import prepare_config, validate_config

    # Ray logs each default it fills in and warns about single-file docker mounts (a
    # documented choice here); keep the report to errors.
    loggers = [logging.getLogger(f"ray.autoscaler._private.{name}") for name in ("util", "docker")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        validate_config(prepare_config(copy.deepcopy(config)))
    except Exception as exc:  # Ray raises ValueError, KeyError, jsonschema errors, ...
        message = getattr(exc, "message", None) or str(exc)
        return [f"ray validate_config: {type(exc).__name__}: {message}"]
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)
    return []


def validate_launcher_config(
    path: str | Path,
    *,
    version: str | None = None,
    allow_placeholders: bool = False,
    check_mounts: bool = False,
) -> list[str]:
    """All problems of a Ray cluster launcher config (``ray up FILE``); [] when it is fine.

    ``version`` is the lfl-ray version the setup commands must pin (default: the installed
    one). With ``allow_placeholders`` the ``YOUR-...`` values are not reported. With
    ``check_mounts`` every local ``file_mounts`` source must exist on this machine
    (relative paths from the current directory, as ``ray up`` reads them).
    """
    path = Path(path)
    try:
        docs = load_documents(path)
    except yaml.YAMLError as exc:
        return [f"yaml: {exc}"]
    if len(docs) != 1 or not isinstance(docs[0], dict):
        return [f"yaml: a launcher config is one mapping; got {len(docs)} document(s)"]
    config = docs[0]
    text = path.read_text()

    errors = schema_errors(config)
    if not errors:  # Ray's checks would only repeat the first schema error
        errors += ray_validation_errors(config)
    errors += _launcher_policy_errors(config)
    if check_mounts:
        errors += _missing_mounts(config, path)
    errors += _version_errors(text, version)
    if not allow_placeholders:
        errors += [f"placeholder: replace {p} before launching" for p in placeholders(text)]
    return errors


def _launcher_policy_errors(config: dict) -> list[str]:
    errors = []
    if "idle_timeout_minutes" not in config:
        errors.append("idle_timeout_minutes: missing; idle GPU nodes would use Ray's default")
    node_types = config.get("available_node_types") or {}
    head = config.get("head_node_type")
    workers = {name: spec for name, spec in node_types.items() if name != head}
    gpu_groups = [name for name, spec in workers.items()
                  if (spec.get("resources") or {}).get("GPU", 0) > 0]
    if not gpu_groups:
        errors.append("available_node_types: no worker type declares resources.GPU > 0")
    for name in gpu_groups:
        min_workers = node_types[name].get("min_workers", 0)
        if min_workers != 0:
            errors.append(f"available_node_types.{name}.min_workers: got {min_workers}; "
                          "must be 0 so idle GPUs cost nothing")
    if (node_types.get(head, {}).get("resources") or {}).get("GPU", 0) > 0:
        errors.append(f"available_node_types.{head}: the head must be a CPU node (GPU > 0)")

    for field in ("head_start_ray_commands", "worker_start_ray_commands"):
        commands = " ".join(config.get(field) or [])
        if "RAY_AUTH_MODE=token" not in commands:
            errors.append(f"{field}: `ray start` must run with RAY_AUTH_MODE=token")
    head_commands = " ".join(config.get("head_start_ray_commands") or [])
    if "mlflow-server.sh start" not in head_commands and "mlflow server" not in head_commands:
        errors.append("head_start_ray_commands: no MLflow server started on the head")
    all_commands = json.dumps(config)
    if re.search(r"RAY_AUTH_MODE=disabled", all_commands, re.IGNORECASE):
        errors.append("commands: RAY_AUTH_MODE=disabled turns token authentication off")
    if "mlflow server" in all_commands and "MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false" not in all_commands:
        errors.append("head commands: start `mlflow server` with "
                      "MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false (it leaves huey workers behind)")

    rules = ((config.get("provider") or {}).get("security_group") or {}).get("IpPermissions") or []
    for index, rule in enumerate(rules):
        for port, what in PRIVATE_PORTS.items():
            if _rule_opens_to_internet(rule, port):
                errors.append(f"provider.security_group.IpPermissions[{index}]: opens port {port} "
                              f"({what}) to the internet; use `ray dashboard` / SSH forwarding")
    return errors


def _missing_mounts(config: dict, path: Path) -> list[str]:
    errors = []
    for remote, local in (config.get("file_mounts") or {}).items():
        if not Path(local).expanduser().exists():
            errors.append(f"file_mounts[{remote!r}]: local {local!r} not found; create it, or "
                          f"run `ray up {path}` from the directory it is relative to")
    return errors


def _rule_opens_to_internet(rule: dict, port: int) -> bool:
    low, high = rule.get("FromPort", -1), rule.get("ToPort", -1)
    covers = low == -1 or rule.get("IpProtocol") == "-1" or low <= port <= high
    cidrs = [r.get("CidrIp", "") for r in rule.get("IpRanges", [])]
    cidrs += [r.get("CidrIpv6", "") for r in rule.get("Ipv6Ranges", [])]
    return covers and any(_is_public(cidr) for cidr in cidrs)


def _is_public(cidr: str) -> bool:
    try:
        network = ipaddress.ip_network(cidr, strict=False)
    except ValueError:
        return True  # unreadable: treat as open
    return not network.is_private


def _version_errors(text: str, version: str | None) -> list[str]:
    wanted = version or expected_version()
    pins = pinned_versions(text)
    if not pins:
        return [f"lfl-ray: no pinned install found (want lfl-ray {wanted}, e.g. "
                f"`lfl-ray[gpu] @ git+...@v{wanted}` or image tag `lfl-ray:{wanted}`)"]
    return [f"lfl-ray: pinned {pin} but the package is {wanted}" for pin in pins if pin != wanted]


def validate_kuberay_manifest(
    path: str | Path, *, version: str | None = None, allow_placeholders: bool = False
) -> list[str]:
    """All problems of a KubeRay manifest file (RayCluster / RayJob + companions); [] if fine."""
    path = Path(path)
    try:
        docs = load_documents(path)
    except yaml.YAMLError as exc:
        return [f"yaml: {exc}"]
    errors: list[str] = []
    ray_docs = 0
    for index, doc in enumerate(docs):
        where = f"document {index}"
        if not isinstance(doc, dict):
            errors.append(f"{where}: not a mapping")
            continue
        kind = doc.get("kind")
        name = (doc.get("metadata") or {}).get("name")
        if not name:
            errors.append(f"{where}.metadata.name: missing")
        where = f"{kind or where}/{name}"
        if kind in RAY_KINDS:
            ray_docs += 1
            if doc.get("apiVersion") != RAY_API_VERSION:
                errors.append(f"{where}.apiVersion: got {doc.get('apiVersion')!r}; "
                              f"must be {RAY_API_VERSION!r}")
            spec = doc.get("spec")
            if not isinstance(spec, dict):
                errors.append(f"{where}.spec: missing")
            elif kind == "RayCluster":
                errors += _ray_cluster_spec_errors(spec, f"{where}.spec")
            else:
                errors += _ray_job_spec_errors(spec, f"{where}.spec")
        elif kind in COMPANION_KINDS:
            if not doc.get("apiVersion"):
                errors.append(f"{where}.apiVersion: missing")
            if kind == "Service":
                errors += _service_type_errors((doc.get("spec") or {}).get("type"), f"{where}.spec.type")
        else:
            errors.append(f"{where}.kind: got {kind!r}; must be one of {list(RAY_KINDS + COMPANION_KINDS)}")
    if ray_docs == 0 and not errors:
        # A companion-only file (storage, accounts) carries no Ray resource and no version.
        return errors
    if ray_docs == 0:
        errors.append(f"{path.name}: no RayCluster or RayJob document")
    text = path.read_text()
    errors += _version_errors(text, version)
    if not allow_placeholders:
        errors += [f"placeholder: replace {p} before applying" for p in placeholders(text)]
    return errors


def _ray_job_spec_errors(spec: dict, where: str) -> list[str]:
    errors = []
    entrypoint = spec.get("entrypoint")
    if not isinstance(entrypoint, str) or not entrypoint.strip():
        errors.append(f"{where}.entrypoint: missing; the command the job runs")
    cluster = spec.get("rayClusterSpec")
    if cluster is None and spec.get("clusterSelector") is None:
        errors.append(f"{where}.rayClusterSpec: missing (or a clusterSelector)")
    elif cluster is not None:
        if not isinstance(cluster, dict):
            errors.append(f"{where}.rayClusterSpec: must be a mapping")
        else:
            errors += _ray_cluster_spec_errors(cluster, f"{where}.rayClusterSpec")
    return errors


def _ray_cluster_spec_errors(spec: dict, where: str) -> list[str]:
    errors = []
    if not spec.get("rayVersion"):
        errors.append(f"{where}.rayVersion: missing; token auth needs KubeRay to know it")
    head = spec.get("headGroupSpec")
    if not isinstance(head, dict):
        errors.append(f"{where}.headGroupSpec: missing")
    else:
        errors += _group_errors(head, f"{where}.headGroupSpec", worker=False)
        errors += _service_type_errors(head.get("serviceType"), f"{where}.headGroupSpec.serviceType")
    groups = spec.get("workerGroupSpecs")
    if not isinstance(groups, list) or not groups:
        errors.append(f"{where}.workerGroupSpecs: missing; needs at least one GPU worker group")
        groups = []
    gpu_groups = 0
    for index, group in enumerate(groups):
        at = f"{where}.workerGroupSpecs[{index}]"
        if not isinstance(group, dict):
            errors.append(f"{at}: not a mapping")
            continue
        errors += _group_errors(group, at, worker=True)
        if _gpu_limit(group) > 0:
            gpu_groups += 1
            if group.get("minReplicas") != 0:
                errors.append(f"{at}.minReplicas: got {group.get('minReplicas')!r}; must be 0 "
                              "so idle GPUs cost nothing")
    if groups and not gpu_groups:
        errors.append(f"{where}.workerGroupSpecs: no group sets resources.limits['nvidia.com/gpu']")
    if gpu_groups and spec.get("enableInTreeAutoscaling") is not True:
        errors.append(f"{where}.enableInTreeAutoscaling: must be true for GPU groups to scale from 0")
    errors += _auth_errors(spec, where)
    return errors


def _group_errors(group: dict, where: str, *, worker: bool) -> list[str]:
    errors = []
    if not isinstance(group.get("rayStartParams"), dict):
        errors.append(f"{where}.rayStartParams: missing (an empty mapping {{}} is allowed)")
    containers = ((group.get("template") or {}).get("spec") or {}).get("containers")
    if not isinstance(containers, list) or not containers:
        errors.append(f"{where}.template.spec.containers: missing; the Ray container comes first")
    else:
        for index, container in enumerate(containers):
            for field in ("name", "image"):
                if not (isinstance(container, dict) and container.get(field)):
                    errors.append(f"{where}.template.spec.containers[{index}].{field}: missing")
    if worker:
        if not group.get("groupName"):
            errors.append(f"{where}.groupName: missing")
        for field in ("minReplicas", "maxReplicas"):
            if not isinstance(group.get(field), int):
                errors.append(f"{where}.{field}: missing; an integer")
        low, high = group.get("minReplicas"), group.get("maxReplicas")
        if isinstance(low, int) and isinstance(high, int) and low > high:
            errors.append(f"{where}: minReplicas {low} > maxReplicas {high}")
    return errors


def _gpu_limit(group: dict) -> int:
    containers = ((group.get("template") or {}).get("spec") or {}).get("containers") or []
    if not containers or not isinstance(containers[0], dict):
        return 0
    limits = (containers[0].get("resources") or {}).get("limits") or {}
    try:
        return int(limits.get("nvidia.com/gpu", 0))
    except (TypeError, ValueError):
        return 0


def _auth_errors(spec: dict, where: str) -> list[str]:
    mode = (spec.get("authOptions") or {}).get("mode")
    if mode == "token":
        return []
    if mode is not None:
        return [f"{where}.authOptions.mode: got {mode!r}; must be 'token'"]
    # Without authOptions every Ray container must set RAY_AUTH_MODE=token itself.
    groups = [spec.get("headGroupSpec") or {}] + list(spec.get("workerGroupSpecs") or [])
    for group in groups:
        containers = ((group.get("template") or {}).get("spec") or {}).get("containers") or [{}]
        env = {e.get("name"): e.get("value") for e in containers[0].get("env") or []}
        if env.get("RAY_AUTH_MODE") != "token":
            return [f"{where}.authOptions: missing; set mode: token (or RAY_AUTH_MODE=token "
                    "and RAY_AUTH_TOKEN in every Ray container)"]
    return []


def _service_type_errors(service_type: Any, where: str) -> list[str]:
    if service_type in (None, "ClusterIP"):
        return []
    return [f"{where}: got {service_type!r}; must be ClusterIP (reach it with kubectl port-forward)"]


def _where(path) -> str:
    return ".".join(str(p) for p in path) or "(top level)"


def validate_file(path: str | Path, *, check_mounts: bool = False, **options) -> list[str]:
    """Validate one cluster file, picking the check by its content (launcher or KubeRay).

    ``options`` are ``version`` and ``allow_placeholders``; ``check_mounts`` applies to
    launcher configs only.
    """
    try:
        docs = load_documents(path)
    except yaml.YAMLError as exc:
        return [f"yaml: {exc}"]
    if len(docs) == 1 and isinstance(docs[0], dict) and "provider" in docs[0]:
        return validate_launcher_config(path, check_mounts=check_mounts, **options)
    return validate_kuberay_manifest(path, **options)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lfl_ray.cluster_config",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="+", help="cluster YAML files")
    parser.add_argument("--allow-placeholders", action="store_true",
                        help="do not report YOUR-... values still to be replaced")
    parser.add_argument("--skip-mounts", action="store_true",
                        help="do not require the local file_mounts sources (token files, "
                        "scripts) to exist here")
    parser.add_argument("--version", help="lfl-ray version the files must pin "
                        "(default: the installed package's)")
    args = parser.parse_args(argv)
    failed = 0
    for path in args.paths:
        try:
            errors = validate_file(path, version=args.version, check_mounts=not args.skip_mounts,
                                   allow_placeholders=args.allow_placeholders)
        except OSError as exc:
            errors = [f"file: {exc}"]
        print(f"{path}: {'ok' if not errors else f'{len(errors)} problem(s)'}")
        for error in errors:
            print(f"  - {error}")
        failed += bool(errors)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
