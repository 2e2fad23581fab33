"""benchmarks/reproduction.py: ``--only`` rewrites one section and keeps the others."""

from __future__ import annotations

import datetime
import pathlib
import subprocess
import sys

import pytest

from pairsearch.search.store.storage import open_storage

pytestmark = pytest.mark.process  # each test runs the script in a subprocess

SCRIPT = pathlib.Path(__file__).resolve().parents[2] / "benchmarks" / "reproduction.py"
NAMES = ["report000", "report001", "report002", "report003", "report004"]


def _page(path: pathlib.Path, names: list[str]) -> dict[str, str]:
    sections = {name: f"## {name}: kept\n\nGenerated elsewhere.\n\n| a kept figure | 12.34 |\n"
                for name in names}
    sections["best"] = ("## Beyond the reports: the best configuration found\n\n"
                        "kept best\n")
    path.write_text("# old title\n\nold header\n\n" + "\n".join(sections.values()))
    return sections


def _run(tmp_path: pathlib.Path, page: pathlib.Path, *only: str) -> subprocess.CompletedProcess:
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    open_storage(url)  # a storage that holds no experiment: every rewritten row is "not run"
    flags = [arg for name in only for arg in ("--only", name)]
    return subprocess.run([sys.executable, str(SCRIPT), "--storage", url, "--out", str(page),
                           *flags], capture_output=True, text=True, cwd=tmp_path)


def test_only_rewrites_the_named_section_and_keeps_the_others_verbatim(tmp_path):
    page = tmp_path / "reproduction.md"
    sections = _page(page, NAMES)
    result = _run(tmp_path, page, "report001")
    assert result.returncode == 0, result.stderr
    text = page.read_text()
    for name in ("report000", "report002", "report003", "report004", "best"):
        assert sections[name].rstrip("\n") in text
    assert "## report001: kept" not in text and "## report001: Mini Project 1" in text
    rewritten = text.split("## report001:")[1].split("## report002:")[0]
    assert "--only report001` on " in rewritten and "not run" in rewritten
    assert text.startswith("# The five reports beside our runs")


def test_only_refuses_a_page_that_lacks_a_section_to_keep(tmp_path):
    page = tmp_path / "reproduction.md"
    _page(page, ["report000", "report001"])
    before = page.read_text()
    result = _run(tmp_path, page, "report001")
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert result.stderr.strip().count("\n") == 0 and "report002" in result.stderr
    assert page.read_text() == before  # nothing already written is lost


def _chosen(cv: float, test: float) -> dict:
    return {"params": {"model": "siamese_aux"}, "cv_accuracy": cv, "test_accuracy_mean": test,
            "test_accuracy_std": 0.01, "test_draw_means": [test] * 3,
            "test_protocol": {"kind": "test", "folds": 10, "repeats": 10, "draws": 3}}


def test_best_found_is_the_highest_cv_among_every_experiments_choice_never_the_test(tmp_path):
    import optuna

    url = f"sqlite:///{tmp_path / 'chosen.db'}"
    storage = open_storage(url)
    # report002's grid retest scores higher on the test pairs but lower by CV than best's.
    for name, chosen in (("best-tpe-retest", _chosen(0.95, 0.90)),
                         ("report002-grid-retest", _chosen(0.94, 0.99))):
        optuna.create_study(study_name=name, storage=storage).set_user_attr("chosen", chosen)
    page = tmp_path / "reproduction.md"
    result = subprocess.run([sys.executable, str(SCRIPT), "--storage", url, "--out", str(page)],
                            capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    best = page.read_text().split("## Beyond the reports")[1]
    assert "**90.00 ± 1.00%**" in best
    assert "`best/tpe-retest` 0.9500 (test 90.00%); `report002/grid-retest` 0.9400" in best
    assert "The highest CV, `best/tpe-retest` (by 1.00 points), is the best found" in best
    report002 = page.read_text().split("## report002:")[1].split("## report003:")[0]
    assert "`grid-retest`: chosen by 10-fold CV (0.9400)" in report002
    assert "**99.00 ± 1.00%**" in report002 and "`genetic-retest`: not chosen yet." in report002


def test_at_a_glance_reads_every_sections_summary_kept_or_rewritten(tmp_path):
    page = tmp_path / "reproduction.md"
    sections = _page(page, NAMES)
    summaries = {
        "report000": "2 of 10 faithful rows outside 2σ: 1 within under an ablation, "
                     "0 bracketed, 1 unexplained.",
        "report002": "0 of 4 faithful rows outside 2σ: every one is within 2σ of its report.",
        "report003": "3 of 3 faithful rows outside 2σ: 0 within under an ablation, "
                     "1 bracketed, 2 contradicted by the report's own retest, 0 unexplained.",
        "report004": "1 of 1 faithful row outside 2σ: 0 within under an ablation, "
                     "1 bracketed, 0 unexplained.",
    }
    page.write_text("\n".join(section + (f"\n{summaries[name]}\n" if name in summaries else "")
                              for name, section in sections.items()))
    result = _run(tmp_path, page, "report001")  # rewritten from a storage that ran nothing
    assert result.returncode == 0, result.stderr
    glance = page.read_text().split("## At a glance")[1].split("## report000")[0]
    assert "| report000 | 10 | 8 | 2 | 1 | 0 | 0 | 1 |" in glance
    assert "| report001 | – |" in glance  # not run
    assert "| report002 | 4 | 4 | 0 | 0 | 0 | 0 | 0 |" in glance
    assert "| report003 | 3 | 0 | 3 | 0 | 1 | 2 | 0 |" in glance
    assert "| report004 | 1 | 0 | 1 | 0 | 1 | 0 | 0 |" in glance
    assert ("| all | **18** | **12** | **6** | **1** | **2** | **2** | **1** |") in glance
    # Each row says when its section was generated: kept ones keep their rule's day.
    today = datetime.date.today().isoformat()
    assert f"| report001 | – | | | | | | | {today} |" in glance
    assert "| report000 | 10 | 8 | 2 | 1 | 0 | 0 | 1 | – |" in glance  # no date in it
    assert page.read_text().count("## At a glance") == 1
