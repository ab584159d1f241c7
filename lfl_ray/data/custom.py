"""Your own data as a study's regime: an instruction set or a text corpus, declared in the study.

    data:                                  # a study file's `data:` section (SweepSpec.data)
      kind: instructions                   # prompt -> response pairs, or chat `messages`
      path: ./train.jsonl                  # relative to the study file; or a folder of files
      prompt_field: question               # left out: prompt/response, instruction/output,
      response_field: answer               #   question/answer... or `messages` are looked for

    data: {kind: text, path: ./corpus/}    # every text or code file in the folder, one document each
    data: {kind: text, hub: org/name, text_field: content}

``kind: instructions`` becomes chat IFT rows (the model's chat template, loss on the
response only: ``lfl_ray.data.formatting``); ``kind: text`` becomes packed CPT rows (loss on
every token). The build (``lfl_ray.data.build``) then splits by document exactly as it does
for the built-in regimes: held-out documents first, at most ``heldout_doc_cap`` rows each,
training rows from every other document.

Reading rules:
- Table files (``TABLE_SUFFIXES``): ``.jsonl`` (one object a line), ``.json`` (a list of
  objects, or one key holding such a list), ``.parquet``, ``.csv``. A folder is read
  recursively, in name order, hidden files and folders left out; every file must have the
  mapped fields. ``kind: text`` also reads plain text and code files (``TEXT_SUFFIXES``),
  each one document; empty, binary (not UTF-8) or larger than ``max_file_bytes`` files are
  skipped and counted in the stats.
- A row whose mapped prompt, response or text is empty is an error naming the file and row
  (``skip_empty: true`` drops such rows instead); numbers are read as text, anything else
  in a text field is an error.
- Chat ``messages``: a list of ``{role, content}`` (or ShareGPT's ``{from, value}``) ending
  with an assistant turn; that last turn carries the loss, everything before it is prompt.
- The split unit is a row (instructions, table text) or a file (text files), or the value of
  ``document_field`` when given (rows sharing it land on the same side of the split).

Every mistake is a ``ConfigError`` naming the ``data.<field>`` and the file (with its row),
raised before Ray starts (``lfl_ray.sweep.preflight.check_data``).
"""

from __future__ import annotations

import csv
import hashlib
import json
import random
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from lfl_ray.data.records import Document, Example
from lfl_ray.errors import AssetMissingError, ConfigError

CUSTOM = "custom"
"""The regime name of a study's own data (``regime: custom``; no ``register_regime`` entry)."""
KINDS = {"instructions": "ift", "text": "cpt"}
"""``CustomData.kind`` -> the build's regime kind."""
TABLE_SUFFIXES = (".jsonl", ".json", ".parquet", ".csv")
TEXT_SUFFIXES = (".txt", ".md", ".rst", ".tex", ".py", ".pyi", ".ipynb", ".js", ".ts", ".jsx", ".tsx",
                 ".java", ".kt", ".scala", ".c", ".h", ".cc", ".cpp", ".hpp", ".cs", ".go", ".rs",
                 ".rb", ".php", ".swift", ".m", ".r", ".jl", ".lua", ".pl", ".hs", ".ml", ".ex",
                 ".sh", ".sql", ".html", ".css", ".xml", ".toml", ".yaml", ".yml", ".ini", ".cfg")
"""Plain text and code files a ``kind: text`` folder is read from (one document each)."""
PAIR_GUESSES = (("prompt", "response"), ("prompt", "completion"), ("instruction", "response"),
                ("instruction", "output"), ("question", "answer"), ("query", "response"),
                ("input", "output"))
"""Prompt/response field pairs looked for when the mapping is left out (first present wins)."""
MESSAGES_GUESSES = ("messages", "conversations")
TEXT_GUESSES = ("text", "content")
ROLES = {"system": "system", "user": "user", "human": "user", "assistant": "assistant", "gpt": "assistant"}
HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")
MAX_LISTED = 5  # row numbers quoted in an error


@dataclass(frozen=True)
class CustomData:
    """A study's own training data: an instruction set or a text corpus (``SweepSpec.data``)."""

    kind: str
    """'instructions' (prompt -> response pairs or chat messages; loss on the responses only)
    or 'text' (a corpus for continued pretraining, packed; loss on every token)."""
    path: str | None = None
    """A local file (.jsonl, .json, .parquet, .csv; for text also .txt, .md, .py and other
    text or code files) or a folder of them; relative paths are read from the study file's
    folder. Give ``path`` or ``hub``, not both."""
    hub: str | None = None
    """A Hugging Face dataset id ('org/name'), read with ``datasets.load_dataset``."""
    split: str = "train"
    """Hub only: the split to read."""
    name: str | None = None
    """Short name in doc ids, stats and MLflow; default: the file's or folder's stem, or the
    hub id's last part."""
    prompt_field: str | None = None
    """instructions: the field of the user turn (with ``response_field``)."""
    response_field: str | None = None
    """instructions: the field of the assistant turn (it carries the loss)."""
    messages_field: str | None = None
    """instructions: a field holding a chat, a list of {role, content} ending with the
    assistant turn (instead of prompt_field/response_field)."""
    text_field: str | None = None
    """text: the field of the text in table files and hub datasets (default 'text' or
    'content'); plain text files are read whole."""
    document_field: str | None = None
    """Field naming the split unit: rows sharing its value land on the same side of the
    train/held-out split (default: each row, or each text file, is its own document)."""
    max_rows: int | None = None
    """Read at most this many records (a seeded sample when there are more; None: all)."""
    heldout_doc_cap: int = 2
    """At most this many held-out rows from one document, so held-out spans many documents."""
    skip_empty: bool = False
    """Drop rows whose prompt, response or text is empty (default: such rows are an error)."""
    max_file_bytes: int = 2_000_000
    """text: plain files larger than this are skipped (and counted), e.g. minified or data files."""
    decontaminate: bool = True
    """Drop records sharing a 13-word run with an item of the study's eval suites
    (``lfl_ray.data.eval_overlap``)."""

    def validate(self, where: str = "data") -> "CustomData":
        """Return self, or raise ConfigError naming the first bad field (the files are read
        later, by ``read_records``)."""
        if self.kind not in KINDS:
            raise ConfigError(f"{where}.kind", self.kind, f"must be one of {list(KINDS)}")
        if (self.path is None) == (self.hub is None):
            raise ConfigError(f"{where}.path", self.path, "give exactly one of path (a local file or folder) "
                              f"and hub (a Hugging Face dataset id); got hub={self.hub!r}")
        for name in ("path", "hub", "split", "name", "prompt_field", "response_field", "messages_field",
                     "text_field", "document_field"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or not value.strip()):
                raise ConfigError(f"{where}.{name}", value, "must be a non-empty string (or left out)")
        if self.hub is not None and not HUB_ID.fullmatch(self.hub):
            raise ConfigError(f"{where}.hub", self.hub, "must be a Hugging Face dataset id like 'org/name' "
                              "(a local file or folder goes in data.path)")
        if self.path is not None:
            suffix = Path(self.path).suffix.lower()
            if suffix and not Path(self.path).expanduser().is_dir() and suffix not in self.suffixes:
                raise ConfigError(f"{where}.path", self.path, f"must be a folder or a file ending in one of "
                                  f"{list(self.suffixes)} (kind {self.kind!r})")
            if self.split != "train":
                raise ConfigError(f"{where}.split", self.split, "is only read from a hub dataset (data.hub)")
        if self.kind == "instructions":
            if self.text_field is not None:
                raise ConfigError(f"{where}.text_field", self.text_field, "is for kind 'text'; an instruction "
                                  "set maps prompt_field and response_field, or messages_field")
            if (self.prompt_field is None) != (self.response_field is None):
                missing = "response_field" if self.response_field is None else "prompt_field"
                raise ConfigError(f"{where}.{missing}", None, "must be given together with "
                                  f"{'prompt_field' if missing == 'response_field' else 'response_field'}")
            if self.messages_field is not None and self.prompt_field is not None:
                raise ConfigError(f"{where}.messages_field", self.messages_field,
                                  "must not be given with prompt_field/response_field (one mapping or the other)")
        else:
            for name in ("prompt_field", "response_field", "messages_field"):
                if getattr(self, name) is not None:
                    raise ConfigError(f"{where}.{name}", getattr(self, name), "is for kind 'instructions'; "
                                      "a text corpus maps text_field (or is read from plain text files)")
        if self.max_rows is not None:
            _require_count(f"{where}.max_rows", self.max_rows)
        _require_count(f"{where}.heldout_doc_cap", self.heldout_doc_cap)
        _require_count(f"{where}.max_file_bytes", self.max_file_bytes)
        for name in ("skip_empty", "decontaminate"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"{where}.{name}", getattr(self, name), "must be true or false")
        if self.name is not None and not re.fullmatch(r"[A-Za-z0-9][\w.-]{0,59}", self.name):
            raise ConfigError(f"{where}.name", self.name, "must be 1-60 letters, digits, '.', '_' or '-'")
        return self

    @property
    def regime_kind(self) -> str:
        """The build's kind: 'ift' or 'cpt'."""
        return KINDS[self.kind]

    @property
    def suffixes(self) -> tuple[str, ...]:
        """The file suffixes this kind reads."""
        return TABLE_SUFFIXES + (TEXT_SUFFIXES if self.kind == "text" else ())

    @property
    def label(self) -> str:
        """Short name of the data (doc id prefix, source name in the stats, cache folder)."""
        if self.name:
            return self.name
        if self.hub:
            raw = self.hub.rsplit("/", 1)[-1]
        else:
            local = Path(self.path).expanduser()
            raw = local.name if local.is_dir() else local.stem
        return re.sub(r"[^\w.-]", "_", raw).strip("._-")[:60] or "data"

    @property
    def source(self) -> str:
        """Where the data is read from: the absolute path or the hub id (and split)."""
        if self.hub:
            return f"hf://datasets/{self.hub}" + (f" (split {self.split})" if self.split != "train" else "")
        return str(Path(self.path).expanduser().resolve())


def _require_count(field: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(field, value, "must be an integer >= 1")


# --- Local files ----------------------------------------------------------------------


def local_files(custom: CustomData) -> tuple[Path, list[Path]]:
    """The root folder and the files to read (a file is its own root's only file)."""
    given = Path(custom.path).expanduser()
    if not given.exists():
        raise ConfigError("data.path", custom.path, "must be an existing file or folder: nothing is there",
                          hint=f"looked for {given.resolve()}; relative paths are read from the study "
                          "file's folder")
    if given.is_file():
        if given.suffix.lower() not in custom.suffixes:
            raise ConfigError("data.path", custom.path, f"must end in one of {list(custom.suffixes)} "
                              f"(kind {custom.kind!r})")
        return given.parent, [given]
    files, seen = [], Counter()
    for path in sorted(given.rglob("*")):
        relative = path.relative_to(given)
        if not path.is_file() or any(part.startswith(".") for part in relative.parts):
            continue
        seen[path.suffix.lower() or "(no suffix)"] += 1
        if path.suffix.lower() in custom.suffixes:
            files.append(path)
    if not files:
        found = f"it holds {dict(seen.most_common(8))}" if seen else "it is empty"
        raise ConfigError("data.path", custom.path, f"must hold at least one file ending in "
                          f"{list(TABLE_SUFFIXES) if custom.kind == 'instructions' else 'a table or text suffix'}"
                          f"; {found}", hint=f"kind {custom.kind!r} reads {', '.join(custom.suffixes[:12])}...")
    return given, files


def table_rows(path: Path) -> tuple[list[dict], list[str]]:
    """The rows of one table file (.jsonl, .json, .parquet, .csv) and the fields seen, in order."""
    suffix = path.suffix.lower()
    try:
        if suffix == ".jsonl":
            rows = []
            with open(path, encoding="utf-8") as handle:
                for number, line in enumerate(handle, 1):
                    if not line.strip():
                        continue
                    try:
                        row = json.loads(line)
                    except json.JSONDecodeError as exc:
                        raise ConfigError("data.path", f"{path}:{number}", f"must hold one JSON object per line "
                                          f"({exc.msg} at column {exc.colno})") from exc
                    if not isinstance(row, dict):
                        raise ConfigError("data.path", f"{path}:{number}", "must hold one JSON object per line "
                                          f"(this line is a {type(row).__name__})")
                    rows.append(row)
        elif suffix == ".json":
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
            except json.JSONDecodeError as exc:
                raise ConfigError("data.path", str(path), f"must be valid JSON ({exc.msg} at line {exc.lineno})") \
                    from exc
            if isinstance(data, dict):
                lists = [v for v in data.values() if isinstance(v, list)]
                data = lists[0] if len(lists) == 1 else data
            if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
                raise ConfigError("data.path", str(path), "must hold a list of objects (or one key holding "
                                  "such a list)")
            rows = data
        elif suffix == ".csv":
            with open(path, encoding="utf-8", newline="") as handle:
                reader = csv.DictReader(handle)
                rows = list(reader)
                if reader.fieldnames is None:
                    rows = []
        elif suffix == ".parquet":
            import pyarrow.parquet as pq

            try:
                rows = pq.read_table(path).to_pylist()
            except Exception as exc:  # pyarrow's errors for a file that is not parquet vary
                raise ConfigError("data.path", str(path), f"must be a Parquet file ({type(exc).__name__}: "
                                  f"{str(exc)[:200]})") from exc
        else:
            raise ConfigError("data.path", str(path), f"must end in one of {list(TABLE_SUFFIXES)}")
    except UnicodeDecodeError as exc:
        raise ConfigError("data.path", str(path), f"must be UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    if not rows:
        raise ConfigError("data.path", str(path), "must hold at least one row (the file has none)")
    fields = list(dict.fromkeys(key for row in rows for key in row))
    return rows, fields


# --- Field mapping ----------------------------------------------------------------------


@dataclass(frozen=True)
class Mapping:
    """Which fields of a row make the record (after defaults were looked up)."""

    prompt: str | None = None
    response: str | None = None
    messages: str | None = None
    text: str | None = None
    document: str | None = None
    detected: bool = False
    """True when the fields were found by name, not given."""

    def describe(self) -> dict:
        given = {k: v for k, v in (("prompt_field", self.prompt), ("response_field", self.response),
                                   ("messages_field", self.messages), ("text_field", self.text),
                                   ("document_field", self.document)) if v}
        return {**given, "detected": self.detected}


def resolve_mapping(custom: CustomData, fields: list[str], where: str) -> Mapping:
    """The mapping of ``custom`` against the fields seen in ``where`` (a file or hub id);
    a field that is not there is a ConfigError listing the fields seen."""
    def need(name: str, value: str) -> str:
        if value not in fields:
            raise ConfigError(f"data.{name}", value, f"must be a field of {where}; fields seen: {fields}",
                              hint=_closest(value, fields))
        return value

    document = need("document_field", custom.document_field) if custom.document_field else None
    if custom.kind == "text":
        if custom.text_field:
            return Mapping(text=need("text_field", custom.text_field), document=document)
        for guess in TEXT_GUESSES:
            if guess in fields:
                return Mapping(text=guess, document=document, detected=True)
        raise ConfigError("data.text_field", None, f"must name the text field of {where}: none of "
                          f"{list(TEXT_GUESSES)} is there; fields seen: {fields}")
    if custom.messages_field:
        return Mapping(messages=need("messages_field", custom.messages_field), document=document)
    if custom.prompt_field:
        return Mapping(prompt=need("prompt_field", custom.prompt_field),
                       response=need("response_field", custom.response_field), document=document)
    for guess in MESSAGES_GUESSES:
        if guess in fields:
            return Mapping(messages=guess, document=document, detected=True)
    for prompt, response in PAIR_GUESSES:
        if prompt in fields and response in fields:
            return Mapping(prompt=prompt, response=response, document=document, detected=True)
    raise ConfigError("data.prompt_field", None, f"must be given (with response_field, or give messages_field): "
                      f"no known prompt/response or messages fields in {where}; fields seen: {fields}",
                      hint="e.g. data: {prompt_field: question, response_field: answer}")


def _closest(value: str, fields: list[str]) -> str | None:
    from lfl_ray.config_io import closest

    return closest(value, fields) or None


def _text(value, field: str, where: str) -> str:
    """A field's value as text ('' for null); numbers are text, anything else is an error."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    raise ConfigError(f"data.{field}", where, f"must hold text; this row has a {type(value).__name__}")


def _chat(value, field: str, where: str) -> tuple[tuple[tuple[str, str], ...], str, str] | None:
    """(earlier turns, last user turn, last assistant turn) of a chat; None when a turn is empty."""
    shape = ("must hold a list of {role, content} messages ending with an assistant turn after a user turn")
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            raise ConfigError(f"data.{field}", where, shape + "; this row has a plain string") from None
    if not isinstance(value, (list, tuple)) or len(value) < 2 or not all(isinstance(m, dict) for m in value):
        raise ConfigError(f"data.{field}", where, shape)
    turns = []
    for message in value:
        role = message.get("role", message.get("from"))
        content = message.get("content", message.get("value"))
        if role not in ROLES:
            raise ConfigError(f"data.{field}", where, f"{shape}; roles must be one of {sorted(ROLES)}, "
                              f"got {role!r}")
        turns.append((ROLES[role], _text(content, field, where)))
    if turns[-1][0] != "assistant" or turns[-2][0] != "user":
        raise ConfigError(f"data.{field}", where, shape + f"; this one ends with {[r for r, _ in turns[-2:]]}")
    if any(not text for role, text in turns if role != "system"):
        return None
    return tuple(turns[:-2]), turns[-2][1], turns[-1][1]


def _doc_id(label: str, mapping: Mapping, row: dict, fallback: str) -> str:
    value = row.get(mapping.document) if mapping.document else None
    if value is None or value == "":
        return f"{label}/{fallback}"
    return f"{label}/{hashlib.sha1(str(value).encode()).hexdigest()[:12]}"


class _Empty:
    """Rows with an empty mapped field: an error naming them, unless ``skip_empty``."""

    def __init__(self, custom: CustomData):
        self.custom = custom
        self.rows: list[str] = []
        self.total = 0

    def add(self, where: str) -> None:
        self.rows.append(where)

    def check(self, where: str, mapping: Mapping, n_rows: int) -> None:
        fields = [f for f in (mapping.prompt, mapping.response, mapping.messages, mapping.text) if f]
        names = ", ".join(fields)
        if self.rows and len(self.rows) == n_rows:
            field = next(n for n in ("messages_field", "response_field", "text_field", "prompt_field")
                         if getattr(mapping, n.removesuffix("_field"), None))
            raise ConfigError(f"data.{field}", getattr(mapping, field.removesuffix("_field")),
                              f"matches nothing: every one of the {n_rows} rows of {where} has an empty "
                              f"{names}", hint=f"fields mapped: {mapping.describe()}")
        if self.rows and not self.custom.skip_empty:
            listed = ", ".join(self.rows[:MAX_LISTED]) + (" ..." if len(self.rows) > MAX_LISTED else "")
            raise ConfigError("data.path", where, f"has {len(self.rows)} rows with an empty {names} "
                              f"({listed})", hint="fix them, or set data.skip_empty: true to drop such rows")
        self.total += len(self.rows)
        self.rows = []


def rows_to_records(custom: CustomData, rows, mapping: Mapping, where: str, label: str, prefix: str,
                    empty: _Empty) -> list[Example | Document]:
    """Records of one table's rows (``where`` names the file or hub id in errors)."""
    records: list[Example | Document] = []
    n = 0
    for n, row in enumerate(rows, 1):
        at = f"{where} row {n}"
        doc_id = _doc_id(label, mapping, row, f"{prefix}{n}")
        if mapping.text:
            text = _text(row.get(mapping.text), "text_field", at)
            if text:
                records.append(Document(doc_id, label, text))
            else:
                empty.add(f"row {n}")
            continue
        if mapping.messages:
            chat = _chat(row.get(mapping.messages), "messages_field", at)
            if chat is None:
                empty.add(f"row {n}")
            else:
                records.append(Example(doc_id, label, chat[1], chat[2], context=chat[0]))
            continue
        prompt = _text(row.get(mapping.prompt), "prompt_field", at)
        response = _text(row.get(mapping.response), "response_field", at)
        if prompt and response:
            records.append(Example(doc_id, label, prompt, response))
        else:
            empty.add(f"row {n}")
    empty.check(where, mapping, n)
    return records


def _text_file(path: Path, custom: CustomData, skipped: Counter) -> str | None:
    if path.stat().st_size > custom.max_file_bytes:
        skipped[f"larger than max_file_bytes ({custom.max_file_bytes})"] += 1
        return None
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        skipped["not UTF-8 text"] += 1
        return None
    if not text.strip():
        skipped["empty"] += 1
        return None
    return text


def _local_records(custom: CustomData, log) -> tuple[list, dict]:
    root, files = local_files(custom)
    label = custom.label
    records: list[Example | Document] = []
    empty = _Empty(custom)
    skipped: Counter = Counter()
    mappings: dict[str, dict] = {}
    for path in files:
        relative = str(path.relative_to(root))
        prefix = "" if len(files) == 1 else f"{relative}:"
        if path.suffix.lower() in TABLE_SUFFIXES:
            rows, fields = table_rows(path)
            mapping = resolve_mapping(custom, fields, str(path))
            mappings.setdefault(json.dumps(mapping.describe(), sort_keys=True), mapping.describe())
            records += rows_to_records(custom, rows, mapping, str(path), label, prefix, empty)
        else:
            text = _text_file(path, custom, skipped)
            if text is not None:
                records.append(Document(f"{label}/{relative}", label, text))
    facts = {"files": len(files), "fields": list(mappings.values())}
    if skipped:
        facts["skipped_files"] = dict(skipped)
    if empty.total:
        facts["skipped_empty_rows"] = empty.total
    if not records:
        raise ConfigError("data.path", custom.path, f"must give at least one record; {len(files)} files gave none",
                          hint=f"skipped files: {dict(skipped)}" if skipped else None)
    return records, facts


# --- The hub ----------------------------------------------------------------------------


def _hub_records(custom: CustomData, seed: int, cache_dir: Path, log) -> tuple[list, dict]:
    import datasets

    log(f"[data] reading {custom.hub} (split {custom.split})")
    try:
        data = datasets.load_dataset(custom.hub, split=custom.split, cache_dir=str(cache_dir))
    except Exception as exc:  # network, auth, no such repo or split: all say how to get it
        raise AssetMissingError(f"hub dataset {custom.hub!r} (split {custom.split!r})",
                                f"datasets.load_dataset: {type(exc).__name__}: {str(exc)[:300]}",
                                fix="check the id and split, run where the Hugging Face hub is reachable "
                                "(set HF_TOKEN for a gated dataset), or download it and give data.path") from exc
    if len(data) == 0:
        raise ConfigError("data.hub", custom.hub, f"must hold at least one row (split {custom.split!r} is empty)")
    if custom.max_rows is not None and len(data) > custom.max_rows:
        data = data.shuffle(seed=seed).select(range(custom.max_rows))
    mapping = resolve_mapping(custom, list(data.column_names), custom.hub)
    records = rows_to_records(custom, iter(data), mapping, custom.hub, custom.label, "", _Empty(custom))
    return records, {"fields": [mapping.describe()]}


# --- What the build calls ---------------------------------------------------------------


def read_records(custom: CustomData, *, seed: int, cache_dir: Path, log=print) -> tuple[list, dict]:
    """The records of ``custom`` (Examples or Documents) and facts for the stats."""
    custom.validate()
    if custom.hub:
        records, facts = _hub_records(custom, seed, cache_dir, log)
    else:
        records, facts = _local_records(custom, log)
    read = len(records)
    if custom.max_rows is not None and len(records) > custom.max_rows:
        keep = sorted(random.Random(seed * 31 + 5).sample(range(len(records)), custom.max_rows))
        records = [records[i] for i in keep]
    facts = {"data": {"kind": custom.kind, "name": custom.label, "source": custom.source, "read": read,
                      "kept": len(records), **facts}}
    return records, facts


def source_fingerprint(custom: CustomData) -> dict:
    """What of the inputs changes the build, cheaply: each local file's size and mtime (the
    hub dataset is named by its id and split)."""
    if custom.hub:
        return {"hub": [custom.hub, custom.split]}
    given = Path(custom.path).expanduser()
    if not given.exists():
        return {"missing": str(given)}  # read_records will say so
    root, files = (given.parent, [given]) if given.is_file() else (given, sorted(p for p in given.rglob("*")
                                                                                  if p.is_file()))
    return {"files": [(str(p.relative_to(root)), p.stat().st_size, p.stat().st_mtime_ns) for p in files]}


def content_digest(custom: CustomData) -> str:
    """sha256 of the local files' bytes in name order (or of the hub id and split): a
    dataset's identity for MLflow, independent of where it lies."""
    digest = hashlib.sha256()
    if custom.hub:
        digest.update(f"{custom.hub}:{custom.split}".encode())
        return digest.hexdigest()[:16]
    given = Path(custom.path).expanduser()
    files = [given] if given.is_file() else sorted(p for p in given.rglob("*") if p.is_file() and not any(
        part.startswith(".") for part in p.relative_to(given).parts) and p.suffix.lower() in custom.suffixes)
    for path in files:
        digest.update(path.name.encode())
        with open(path, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()[:16]
