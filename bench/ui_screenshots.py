"""Screenshots of a sweep in the MLflow UI, to check by eye what an MLflow user sees.

    lfl-ray ui --tracking-uri sqlite:////tmp/figs/mlflow.db --port 5055 &
    python bench/ui_screenshots.py --experiment figs --url http://127.0.0.1:5055 --out /tmp/ui-shots

Writes, under --out: the experiment's description (expanded), its runs table (children
expanded, then with the learning/forgetting columns), its chart view (and learning/forgetting
with ``tokens`` as the x-axis); for one trial per method
and the sweep's parent run: the overview (the parent's note unfolded), metrics, system metrics
and artifacts tabs (folders open, a file previewed); and the compare view of up to three
trials. Needs Playwright
(``pip install playwright``, into any Python: it is not a dependency of lfl-ray) and a
Chromium (Debian's ``chromium``; --chromium names another). Only reads the server: the runs
are found through MLflow's REST API, and nothing is clicked that writes.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import urllib.request
from pathlib import Path


def _post(url: str, path: str, body: dict) -> dict:
    request = urllib.request.Request(f"{url}/api/2.0/mlflow/{path}", json.dumps(body).encode(),
                                     {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)


def sweep_runs(url: str, experiment: str) -> tuple[str, list[dict]]:
    """The experiment's id and its runs (the REST ``runs/search`` answer, parents first)."""
    with urllib.request.urlopen(f"{url}/api/2.0/mlflow/experiments/get-by-name?experiment_name="
                                f"{urllib.request.quote(experiment)}", timeout=30) as response:
        experiment_id = json.load(response)["experiment"]["experiment_id"]
    runs = _post(url, "runs/search", {"experiment_ids": [experiment_id], "max_results": 1000}).get("runs", [])
    parent = lambda run: any(t["key"] == "mlflow.parentRunId" for t in run["data"].get("tags", []))  # noqa: E731
    return experiment_id, sorted(runs, key=parent)


def _settle(page, ms: int = 2500) -> None:
    """Wait for the page to draw: the UI polls, so the network is never idle for long."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        page.wait_for_load_state("networkidle", timeout=5000)
    except PlaywrightTimeout:
        pass
    page.wait_for_timeout(ms)


def _close_assistant(page) -> None:
    """MLflow 3's assistant side panel takes a third of the page; close it where it is open."""
    for name in ("Close", "close"):
        button = page.locator(f"button[aria-label='{name}']").first
        if button.count() and button.is_visible():
            button.click()
            page.wait_for_timeout(500)
            return


def _open_artifacts(page, folders, preview) -> None:
    """Unfold the artifact tree's ``folders`` and preview the first file named in ``preview``."""
    for name in folders:
        node = page.locator(f"[data-testid=artifact-tree-node][artifact-name='{name}']").first
        if node.count():
            node.click()
            page.wait_for_timeout(800)
    for name in preview:
        node = page.locator(f"[data-testid=artifact-tree-node][artifact-name='{name}']").first
        if node.count():
            node.click()
            _settle(page, 2500)
            return


def _x_axis_metric(page, metric: str) -> bool:
    """Plot the chart view's line charts against ``metric`` (its gear menu: X-axis, Metric)."""
    gear = page.locator("button[data-component-id='mlflow.charts.controls.global_chart_setup_dropdown']").first
    if not gear.count():
        return False
    gear.click()
    page.wait_for_timeout(800)
    page.get_by_text("Metric", exact=True).last.hover()
    page.wait_for_timeout(800)
    item = page.get_by_role("menuitemcheckbox", name=metric, exact=True)
    if not item.count():
        page.keyboard.press("Escape")
        return False
    item.first.evaluate("el => el.click()")  # the submenu scrolls: a pointer click misses it
    page.wait_for_timeout(1500)
    page.keyboard.press("Escape")
    return True


def _click_text(page, text: str) -> bool:
    target = page.get_by_text(text, exact=True).first
    if target.count() and target.is_visible():
        target.click()
        _settle(page, 1500)
        return True
    return False


def _show_columns(page, names) -> None:
    """Tick columns by name in the runs table's Columns menu (MLflow 3 shows no metric or
    param column until asked); a name the menu lacks is skipped."""
    search = page.get_by_placeholder("Search columns").first
    for _ in range(3):  # the menu may not open while the table is still loading
        page.get_by_role("button", name="Columns", exact=True).first.click()
        try:
            search.wait_for(state="visible", timeout=5000)
            break
        except Exception:  # noqa: BLE001 - playwright's TimeoutError: click again
            page.keyboard.press("Escape")
            _settle(page, 1500)
    menu = page.locator("[role=dialog][data-component-id$='column_selector']").first
    for name in names:
        search.fill(name)
        page.wait_for_timeout(600)
        # Only the menu's own entries: the experiment's description names the same metrics.
        entry = menu.locator(".du-bois-light-tree-title").filter(has_text=re.compile(f"^{re.escape(name)}$"))
        if entry.count():
            entry.first.click()
            page.wait_for_timeout(400)
    page.keyboard.press("Escape")
    page.wait_for_timeout(800)


COLUMNS = ("Headline/learning", "Headline/forgetting", "tokens", "method", "lr", "rank", "targets", "lfl.status")
"""The columns a reader of a sweep looks for first (metrics and params alike)."""


def _param(run: dict, key: str) -> str | None:
    return next((x["value"] for x in run["data"].get("params", []) if x["key"] == key), None)


def _pick(trials: list[dict]) -> list[dict]:
    """One trial per method (full FT first), in the sweep's order."""
    picked: dict[str, dict] = {}
    for run in trials:
        picked.setdefault(_param(run, "method") or "?", run)
    return sorted(picked.values(), key=lambda run: _param(run, "method") != "full")


def shoot(url: str, experiment: str, out: Path, chromium: str, width: int, height: int,
          columns=COLUMNS) -> list[Path]:
    from playwright.sync_api import sync_playwright

    experiment_id, runs = sweep_runs(url, experiment)
    is_trial = lambda run: any(t["key"] == "mlflow.parentRunId" for t in run["data"].get("tags", []))  # noqa: E731
    trials = [r for r in runs if is_trial(r)]
    parents = [r for r in runs if not is_trial(r)]
    if not trials:
        raise SystemExit(f"experiment {experiment!r} has no trial runs")
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": width, "height": height})

        def snap(name: str, tall: int | None = None) -> None:
            # The UI scrolls inside its own panes, so a full-page shot shows only the first
            # screen: a tall viewport shows the rest.
            page.set_viewport_size({"width": width, "height": tall or height})
            page.wait_for_timeout(1500 if tall else 0)
            path = out / f"{name}.png"
            page.screenshot(path=str(path))
            written.append(path)
            page.set_viewport_size({"width": width, "height": height})

        base = f"{url}/#/experiments/{experiment_id}"
        page.goto(f"{base}/runs")
        _settle(page)
        _close_assistant(page)
        _click_text(page, "Model training")  # MLflow 3 opens in its GenAI mode
        snap("01_runs_table_collapsed")
        # The experiment's description shows its first line until expanded.
        more = page.locator("button[data-component-id$='metadata_editor.expand_button']").first
        if more.count():
            more.click(force=True, timeout=5000)
            page.wait_for_timeout(1000)
            snap("00_experiment_description", tall=1400)
            page.reload()  # folded again
            _settle(page)
        # The sweep's parent run holds the trials folded under it.
        expander = page.locator("button[data-component-id*='runnamecellrenderer']").first
        if expander.count():
            expander.click()
            _settle(page, 1500)
        snap("02_runs_table_expanded")
        _show_columns(page, columns)
        grid = page.locator(".ag-center-cols-viewport, .ag-body-horizontal-scroll-viewport")
        snap("03_runs_table_with_columns")
        for i in range(grid.count()):
            grid.nth(i).evaluate("el => { el.scrollLeft = el.scrollWidth; }")
        page.wait_for_timeout(800)
        snap("04_runs_table_scrolled_right")
        page.goto(f"{base}/runs?compareRunsMode=CHART")
        _settle(page, 4000)
        snap("05_experiment_charts", tall=2400)
        # The primary pair plotted by training tokens (the x-axis metric `tokens`).
        if _x_axis_metric(page, "tokens"):
            for n, name in enumerate(("learning", "forgetting")):
                page.get_by_placeholder("Search metric charts").fill(name)
                _settle(page, 2500)
                snap(f"0{6 + n}_charts_{name}_by_tokens")
            page.get_by_placeholder("Search metric charts").fill("")

        for n, run in enumerate(_pick(trials) + parents[:1]):
            run_id = run["info"]["run_id"]
            who = "parent" if run in parents else f"trial_{_param(run, 'method')}"
            for tab, name, tall in (("", "overview", 2200), ("/model-metrics", "metrics", 2000),
                                    ("/system-metrics", "system_metrics", None),
                                    ("/artifacts", "artifacts", None)):
                page.goto(f"{base}/runs/{run_id}{tab}")
                _settle(page, 3000)
                if tab == "" and _click_text(page, "Show more"):  # the parent's note (findings)
                    page.wait_for_timeout(1000)
                if tab == "/artifacts":
                    _open_artifacts(page, ("adapter", "analysis", "evals"),
                                    ("adapter_config.json", "findings.md", "report.html"))
                snap(f"{10 + n}_{who}_{name}", tall)

        chosen = [r["info"]["run_id"] for r in trials[:3]]
        page.goto(f"{url}/#/compare-runs?runs={json.dumps(chosen)}&experiments={json.dumps([experiment_id])}")
        _settle(page, 4000)
        snap("20_compare_runs", tall=3000)
        browser.close()
    return written


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiment", required=True, help="MLflow experiment = sweep name")
    parser.add_argument("--url", default="http://127.0.0.1:5000", help="the running MLflow UI")
    parser.add_argument("--out", default="ui-shots", help="folder for the PNGs")
    parser.add_argument("--chromium", default="/usr/bin/chromium", help="Chromium executable")
    parser.add_argument("--size", default="1600x1000", help="viewport WIDTHxHEIGHT")
    args = parser.parse_args(argv)
    width, height = (int(v) for v in args.size.split("x"))
    for path in shoot(args.url.rstrip("/"), args.experiment, Path(args.out), args.chromium, width, height):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
