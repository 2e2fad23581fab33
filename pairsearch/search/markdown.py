"""Markdown pages of studies with their PNG plots: one builder for every page.

``pairsearch report`` writes one study's page (``write_report``); ``pairsearch run
--out`` writes an experiment's page, one section per stage, with the same
``study_section``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import optuna

from pairsearch.errors import PairsearchError
from pairsearch.search.plots import (
    generations_table,
    plot_best_so_far,
    plot_boxplots,
    plot_generations,
    plot_importance,
)
from pairsearch.search.store.queries import state_counts
from pairsearch.search.store.tables import best_trials_table
from pairsearch.search.store.storage import study_meta

_SEARCHES = ("grid", "tpe", "genetic", "halving")


def make_folder(out: Path) -> Path:
    """``out``, created if needed.

    Raises:
        PairsearchError: If it cannot be created.
    """
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise PairsearchError(f"cannot write report to {out}: {error.strerror}") from None
    return out


def study_section(study: optuna.Study, out: Path, prefix: str = "", top: Optional[int] = 10,
                  level: int = 2, importance: bool = True) -> list[str]:
    """A study's Markdown: protocol, counts, best trials, plots (PNG files into ``out``).

    Args:
        study: The study.
        out: Folder of the PNG files.
        prefix: Prefix of the PNG file names (one page may hold several studies).
        top: Rows of the table and boxes of the box plot (``None``: all).
        level: Heading level of the section's sub-headings.
        importance: Add Optuna's parameter importances.
    """
    meta = study_meta(study)
    strategy = meta.get("strategy", "-")
    counts = state_counts(study)
    metric = study.metric_names[0] if study.metric_names else "value"
    heading = "#" * level
    lines = [f"Study `{study.study_name}`; strategy {strategy}; protocol "
             f"`{json.dumps(meta.get('protocol'), sort_keys=True)}`.", "",
             f"Trials: {counts['complete']} complete, {counts['failed']} failed, "
             f"{counts['pruned']} pruned, {counts['running']} running.", ""]
    table = best_trials_table(study, top)
    if table.empty:
        return lines + ["No complete trial.", ""]
    lines += [f"value = {metric}", "", table.to_markdown(index=False, floatfmt=".4f"), ""]
    chosen = study.user_attrs.get("chosen")
    if chosen:
        lines += [f"Chosen by {metric}: trial {chosen['retest_trial']} "
                  f"(source trial {chosen['source_trial']}); scored once on the test pairs "
                  f"({chosen['test_protocol']}): **{chosen['test_accuracy_mean']:.4f} ± "
                  f"{chosen['test_accuracy_std']:.4f}**.", ""]
    plots = [("accuracy of each run", plot_boxplots(study, out / f"{prefix}accuracy.png",
                                                     top or len(table)))]
    if strategy in _SEARCHES:
        plots.append(("best so far", plot_best_so_far(study, out / f"{prefix}best_so_far.png")))
    generations = plot_generations(study, out / f"{prefix}generations.png")
    if generations is not None:
        plots.append(("genetic algorithm per generation", generations))
    why = ""
    if importance:
        path, why = plot_importance(study, out / f"{prefix}importance.png")
        plots.append(("parameter importance", path))
    for title, path in plots:
        lines += [f"{heading} {title[0].upper()}{title[1:]}", ""]
        lines += [f"![{title}]({path.name})", ""] if path else [why or "not enough trials", ""]
    if generations is not None:
        lines += [f"{heading} Per generation", "",
                  generations_table(study).to_markdown(index=False, floatfmt=".4f"), ""]
    return lines


def write_report(study: optuna.Study, out: Path, top: int = 10) -> Path:
    """Write ``out/report.md`` and its PNG plots; returns the Markdown path.

    Raises:
        PairsearchError: If ``out`` cannot be written or the study has no complete trial.
    """
    if best_trials_table(study, 1).empty:
        raise PairsearchError(f"study {study.study_name!r} has no complete trial to report")
    make_folder(out)
    lines = [f"# Study `{study.study_name}`", "", *study_section(study, out, top=top)]
    report = out / "report.md"
    report.write_text("\n".join(lines))
    return report
