"""Study files: one YAML (or JSON) file declares a whole LoRA-vs-full study.

A study file is either a plain ``SweepSpec`` mapping (what a user writes for their own study,
and what a sweep logs to MLflow as ``sweep_spec.json``, so a sweep replays from its record),
or a file of named presets::

    description: what the study asks
    default_preset: cpu
    extends: code_ift        # optional: start each preset from that study's preset of the same name
    presets:
      paper: {...}           # a complete SweepSpec (or, with `extends`, the keys it replaces)
      cpu: {...}

On top of the chosen preset come, in order, a ``--spec-file`` of overrides (nested mapping)
and ``--set path=value`` items (``budget.steps=80``, ``lora[0].lrs=[1e-3,2e-3]``; values are
YAML). Mappings merge key by key; lists and scalars replace. Everything then goes through
the one typed loader (``SweepSpec.from_dict``), so a typo or a wrong type anywhere is a
``ConfigError`` naming the field, before Ray or MLflow starts.

A relative ``data.path`` (your own data, ``lfl_ray.data.custom``) is read from the folder of
the file that gives it (the study file, a ``--spec-file``; ``--set``: the working directory)
and stored absolute, so the spec means the same files wherever it runs or is replayed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from lfl_ray import config_io
from lfl_ray.errors import ConfigError
from lfl_ray.sweep.spec import SweepSpec

STUDY_KEYS = ("description", "default_preset", "extends", "presets")
STUDIES_DIR = Path(__file__).resolve().parent.parent / "studies"
"""Where the shipped study files live inside the package (``sweeps/*.yaml`` link to them)."""


def shipped_studies() -> list[str]:
    """Names of the studies that ship with lfl-ray (``lfl-ray sweep NAME``)."""
    return sorted(p.stem for p in STUDIES_DIR.glob("*.yaml"))


def find_study(ref: str) -> Path:
    """A study file by path, or a shipped study by name."""
    path = Path(ref).expanduser()
    if path.is_file():
        return path
    if path.exists():
        raise ConfigError("STUDY", ref, "must be a YAML or JSON file (this is a folder)")
    if "/" not in ref and (STUDIES_DIR / f"{ref}.yaml").is_file():
        return STUDIES_DIR / f"{ref}.yaml"
    raise ConfigError("STUDY", ref, f"must be a study file or a shipped study {shipped_studies()}",
                      hint=config_io.closest(ref, shipped_studies()) or None)


def read_mapping(path: Path, what: str) -> dict:
    """The mapping in a YAML or JSON file (JSON by its suffix)."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(what, str(path), f"must be a readable file ({exc.strerror})") from exc
    data = config_io.load_json(text, what) if path.suffix == ".json" else config_io.load_yaml(text, what)
    if not isinstance(data, dict):
        raise ConfigError(what, str(path), "must hold a mapping of SweepSpec fields (or presets)")
    return data


def anchor_data_path(data: dict, folder: Path) -> dict:
    """``data`` with a relative ``data.path`` made absolute against ``folder``."""
    section = data.get("data")
    if not isinstance(section, dict) or not isinstance(section.get("path"), str):
        return data
    path = Path(section["path"]).expanduser()
    if path.is_absolute():
        return data
    return {**data, "data": {**section, "path": str((folder / path).resolve())}}


def merge(base: dict, override: dict, path: str = "") -> dict:
    """``base`` with ``override`` applied: mappings merge, lists and scalars replace; an int key
    (from ``--set lora[0].lrs=...``) changes one element of a list."""
    out = dict(base)
    for key, value in override.items():
        where = f"{path}.{key}" if path else str(key)
        current = out.get(key)
        if isinstance(value, dict) and isinstance(current, dict):
            out[key] = merge(current, value, where)
        elif isinstance(value, dict) and isinstance(current, list) and all(isinstance(k, int) for k in value):
            items = list(current)
            for index, item in value.items():
                if not 0 <= index < len(items):
                    raise ConfigError(f"{where}[{index}]", item, f"index must be in 0..{len(items) - 1}")
                items[index] = merge(items[index], item, f"{where}[{index}]") \
                    if isinstance(item, dict) and isinstance(items[index], dict) else item
            out[key] = items
        else:
            out[key] = value
    return out


_SEGMENT = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)((?:\[\d+\])*)")


def parse_set(item: str) -> dict:
    """``budget.steps=80`` -> ``{"budget": {"steps": 80}}`` (the value read as YAML 1.2)."""
    path, sep, text = item.partition("=")
    if not sep or not path.strip():
        raise ConfigError("--set", item, "must be PATH=VALUE, e.g. budget.steps=80 or lora[0].lrs=[1e-3]")
    keys: list = []
    for segment in path.strip().split("."):
        match = _SEGMENT.fullmatch(segment)
        if not match:
            raise ConfigError("--set", item, f"path segment {segment!r} must be a field name, optionally "
                              "with [index]")
        keys.append(match.group(1))
        keys.extend(int(i) for i in re.findall(r"\[(\d+)\]", match.group(2)))
    value = config_io.load_yaml(text, f"--set {path.strip()}") if text.strip() else ""
    for key in reversed(keys):
        value = {key: value}
    return value


@dataclass(frozen=True)
class Study:
    """A loaded study: its file, the preset chosen, and the spec's plain data."""

    path: Path
    preset: str | None
    data: dict
    description: str = ""

    def spec(self) -> SweepSpec:
        return SweepSpec.from_dict(self.data)


def _preset_data(path: Path, preset: str | None, regime: str | None, seen: tuple[Path, ...] = ()) -> tuple:
    """(spec data, chosen preset, description) of one study file, following ``extends``."""
    raw = read_mapping(path, "STUDY")
    if "presets" not in raw:
        if preset is not None:
            raise ConfigError("--preset", preset, f"must not be given: {path} has no presets (it is one spec)")
        unknown = [k for k in ("default_preset", "extends") if k in raw]
        if unknown:
            raise ConfigError(unknown[0], raw[unknown[0]], "needs a `presets:` mapping beside it")
        data = anchor_data_path({k: v for k, v in raw.items() if k != "description"}, path.parent)
        data.setdefault("name", path.stem)
        return data, None, str(raw.get("description", ""))
    bad = [k for k in raw if k not in STUDY_KEYS]
    if bad:
        raise config_io.unknown_key_error("", bad[0], raw[bad[0]], STUDY_KEYS)
    presets = raw["presets"]
    if not isinstance(presets, dict) or not presets:
        raise ConfigError("presets", presets, "must be a mapping of preset name -> spec")
    chosen = preset or raw.get("default_preset") or next(iter(presets))
    if chosen not in presets:
        raise ConfigError("--preset", chosen, f"must be one of {list(presets)} (presets of {path.name})",
                          hint=config_io.closest(chosen, presets) or None)
    own = presets[chosen]
    if not isinstance(own, dict):
        raise ConfigError(f"presets.{chosen}", own, "must be a mapping of SweepSpec fields")
    own = anchor_data_path(own, path.parent)
    extends = regime if (regime and "extends" in raw) else raw.get("extends")
    if extends:
        if not isinstance(extends, str):
            raise ConfigError("extends", extends, "must name a study (a file or a shipped study)")
        base_path = find_study(extends) if "/" in extends or Path(extends).is_file() \
            else (path.parent / f"{extends}.yaml" if (path.parent / f"{extends}.yaml").is_file()
                  else find_study(extends))
        if base_path.resolve() in seen:
            raise ConfigError("extends", extends, "must not extend itself (a loop of extends)")
        base, _, _ = _preset_data(base_path, chosen, None, seen + (path.resolve(),))
        data = merge(base, own)
        if "name" not in own:
            data["name"] = f"{chosen}-{path.stem}-{base_path.stem}"
    else:
        data = dict(own)
        data.setdefault("name", f"{chosen}-{path.stem}")
    return data, chosen, str(raw.get("description", ""))


def load_study(ref: str, *, preset: str | None = None, spec_file: str | None = None,
               sets: tuple[str, ...] = (), regime: str | None = None, name: str | None = None) -> Study:
    """The study ``ref`` (a path or a shipped name) with the preset, overrides and flags applied."""
    path = find_study(ref)
    data, chosen, description = _preset_data(path, preset, regime)
    if regime and "regime" in data and not _extends(path):
        data["regime"] = regime
    if spec_file:
        overrides = Path(spec_file).expanduser()
        data = merge(data, anchor_data_path(read_mapping(overrides, "--spec-file"), overrides.parent))
    for item in sets:
        data = merge(data, anchor_data_path(parse_set(item), Path.cwd()))
    if name is not None:
        data["name"] = name
    return Study(path, chosen, data, description)


def _extends(path: Path) -> bool:
    raw = read_mapping(path, "STUDY")
    return "extends" in raw
