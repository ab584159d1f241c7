"""The report renders from an MLflow store in the sweep layout, with real tiny checkpoints."""

import base64
import re
import subprocess
import sys
from pathlib import Path

import pytest

from lfl_ray.analysis.cli import main
from synthetic_sweep import make_full_checkpoint, make_lora_checkpoint, paper_like, write_sweep

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def sweep_store(tmp_path_factory):
    root = tmp_path_factory.mktemp("report")
    uri = f"sqlite:///{root}/mlflow.db"
    trials = paper_like(False)
    for trial in trials:
        if trial.trial_id == "full-a":
            # The trainer's Ray checkpoint layout: the HF folder sits in model/.
            make_full_checkpoint(root / "ckpt" / "full" / "model")
            trial.checkpoint = str(root / "ckpt" / "full")
        if trial.trial_id == "lora-r16-all":
            trial.params["rank"] = 4
            trial.checkpoint = make_lora_checkpoint(root / "ckpt" / "lora", rank=4)
        if trial.trial_id == "lora-r64-all":
            trial.checkpoint = str(root / "elsewhere")  # a path from another machine
    parent = write_sweep(uri, "report-sweep", trials)
    return uri, parent, root


def test_report_renders_with_every_image(sweep_store, capsys):
    uri, parent, root = sweep_store
    out = root / "out"
    assert main(["report", "--experiment", "report-sweep", "--tracking-uri", uri,
                 "--out", str(out)]) == 0
    printed = capsys.readouterr().out.strip().splitlines()[-1]
    path = Path(printed)
    assert path == (out / "report.html").resolve() and path.is_file()
    page = path.read_text()
    assert "Every eval's paired change from the base model" in page
    assert re.search(r"<td>heldout_loss</td><td>[+-]\d\.\d{4}</td><td>\d\.\d{4}</td>", page)
    sources = re.findall(r'<img [^>]*src="([^"]+)"', page)
    assert len(sources) == 7  # 3 learning/forgetting plots + 4 weight plots
    for src in sources:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    for name in re.findall(r"<figcaption class=note>([^<]+)</figcaption>", page):
        assert (out / name).is_file()
    assert "This sweep: agrees." in page
    assert "Rank of dW per matrix type" in page and "lora r=4" in page
    assert "checkpoint folder not on this machine" in page  # the missing one is listed
    cell = r"<tr><td>[^<]*</td><td>{}</td><td>\w+_proj</td><td>([\d.]+)</td>"
    full_ranks = [float(x) for x in re.findall(cell.format("full"), page)]
    lora_ranks = [float(x) for x in re.findall(cell.format("lora r=4"), page)]
    assert len(full_ranks) == len(lora_ranks) == 7  # one row per matrix type
    assert min(full_ranks) > 4 * max(lora_ranks) and max(lora_ranks) <= 4
    # Logged under analysis/ of the parent run.
    import mlflow

    logged = {f.path for f in mlflow.MlflowClient(uri).list_artifacts(parent, "analysis")}
    assert {"analysis/report.html", "analysis/recommendations.md", "analysis/tradeoff.png",
            "analysis/intruders.png", "analysis/findings.json"} <= logged
    # Findings: the file beside the report, its section in the page, the parent run's note.
    import json

    doc = json.loads((out / "findings.json").read_text())
    by_id = {f["id"]: f for f in doc["findings"]}
    assert by_id["d"]["verdict"] in ("agrees", "not distinguishable")  # real full-FT checkpoint
    assert "Forgetting at matched learning" in page and "<h2>Capacity</h2>" in page
    note = mlflow.MlflowClient(uri).get_run(parent).data.tags["mlflow.note.content"]
    assert "- **(b) LoRA forgets less at matched learning**: " in note


def test_intruder_table_separates_full_from_lora(sweep_store):
    from lfl_ray.analysis.runs import load_sweep
    from lfl_ray.analysis.weight_changes import analyse_sweep, intruder_rows

    sweep = load_sweep("report-sweep", sweep_store[0])
    results, skipped = analyse_sweep(sweep)
    assert {r.trial.trial_id for r in results} == {"full-a", "lora-r16-all"}
    assert [t.trial_id for t, _ in skipped if t.checkpoint] == ["lora-r64-all"]
    counts = {row[1]: row[3] for row in intruder_rows(results)}
    assert counts["full"] == 0 and counts["lora r=4"] > 0


def test_lfl_ray_analyse_runs_from_the_command_line(sweep_store, tmp_path):
    uri, _, _ = sweep_store
    done = subprocess.run([str(Path(sys.executable).parent / "lfl-ray"), "analyse", "recommend", "--experiment", "report-sweep",
                           "--tracking-uri", uri, "--out", str(tmp_path), "--no-log"],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "# Recommendations for `report-sweep`" in done.stdout
    assert (tmp_path / "recommendations.md").read_text().startswith("# Recommendations")


def test_unknown_experiment_exits_2_naming_it(sweep_store, tmp_path, capsys):
    assert main(["pareto", "--experiment", "nope", "--tracking-uri", sweep_store[0],
                 "--out", str(tmp_path)]) == 2
    assert "experiment: got 'nope'" in capsys.readouterr().err


def test_intruders_verb_with_peft_mitigation(sweep_store, tmp_path):
    uri, _, _ = sweep_store
    assert main(["intruders", "--experiment", "report-sweep", "--tracking-uri", uri,
                 "--out", str(tmp_path), "--mitigate", "0.5", "--no-log"]) == 0
    text = (tmp_path / "intruders.md").read_text()
    rows = re.findall(r"\| lora-r16-all \| (\d+) \| (\d+) \|", text)
    assert "peft mitigation (lambda 0.5)" in text and rows and int(rows[0][0]) > 0
    assert (tmp_path / "intruders.png").is_file()
