"""Write docs/reproduction.md from the stored studies: each report's figures beside ours.

Usage:
    python benchmarks/reproduction.py [--storage sqlite:///bench/experiments.db]
        [--out docs/reproduction.md] [--prefix-of NAME=PREFIX]... [--only NAME]...

Reads the studies of every shipped experiment (those not run show as "not run"), trains
nothing, and writes an at-a-glance table (each report's faithful rows, how many lie within
2σ of its figures, and what the ablations found for the others) and one section per report:
the faithful rows (``pairsearch run reportNNN --table``) with the improved companion's
figure for the same row beside them, each experiment's time in trials and devices, and the
best configuration found with its selection path. Every figure on the page comes from this command.

``--only NAME`` (a report or ``best``; repeatable) rewrites those sections and keeps the
others as the page has them, so a storage that holds some experiments' studies (a new
machine that has rerun only the cheap ones) refreshes their sections without blanking the
rest. Each section names the command, date and machine that generated it.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import re
import sys
from typing import Any, Optional

import optuna
import torch

from pairsearch.experiments import (
    compares_faithfully,
    evidence_note,
    experiment_times,
    gap_summary,
    list_experiments,
    load_experiment,
    reproduction_rows,
    reproduction_table,
    stage_study_name,
)
from pairsearch.experiments.tables import faithful_key, format_figure
from pairsearch.search.store.storage import open_storage

REPORTS = ["report000", "report001", "report002", "report003", "report004"]
SECTIONS = REPORTS + ["best"]
BEST_TITLE = "## Beyond the reports: the best configuration found"


def markdown_rows(table, floatfmt: Optional[str] = None) -> list[str]:
    """``table`` as compact Markdown rows (``| a | b |``, ``|---|``): the page's one style,
    whatever padding the installed tabulate gives ``DataFrame.to_markdown``."""
    def cell(value: Any) -> str:
        if floatfmt and isinstance(value, float):
            return format(value, floatfmt)
        return str(value)

    header = [str(c) for c in table.columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |"
              for row in table.itertuples(index=False)]
    return lines


def _section(name: str, storage, prefixes: dict[str, str], provenance: str) -> list[str]:
    experiment = load_experiment(name, prefix=prefixes.get(name))
    companions = [c for c in list_experiments()
                  if load_experiment(c).companion_of == name]
    companion_rows = [
        {**row, "experiment": companion} for companion in companions
        for row in reproduction_rows(load_experiment(companion, prefix=prefixes.get(companion)),
                                     storage)]
    improved = {faithful_key(row): row for row in companion_rows}
    title = experiment.report.get("title", name)
    lines = [f"## {name}: {title}", "", provenance, "", experiment.description, "",
             f"Faithful: `pairsearch run {name}`" + (
                 f"; improved: {', '.join(f'`pairsearch run {c}`' for c in companions)}"
                 if companions else "") + ".", ""]
    rows = reproduction_rows(experiment, storage)
    # The one rendering of the table (the CLI's --table prints the same frame as text).
    table = reproduction_table(rows, improved)
    digits = "digit accuracy (ours / report)" in table.columns
    lines += markdown_rows(table)
    for stage in experiment.stages:
        if not stage.get("reported") and stage.get("description"):
            lines.append(f"| {stage.name} | – | – | (see its study "
                         f"`{stage_study_name(experiment, stage)}`) | | | | | |"
                         + (" |" if digits else ""))
    lines += _gaps(gap_summary(rows, companion_rows), sum(map(compares_faithfully, rows)))
    # A retest's chosen configuration is the experiment's answer; the report has no row for it.
    names = {s.study_name for s in storage.get_all_studies()}
    retests = _chosen(experiment, storage, names)
    if retests:
        lines += ["", "The configurations chosen without the test pairs, scored on them once:",
                  ""] + retests[:-1]
    times = experiment_times(experiment, storage)
    spent = ", ".join(
        f"{c}: {experiment_times(load_experiment(c, prefix=prefixes.get(c)), storage)['seconds'] / 60:.0f} min"  # noqa: E501
        for c in companions)
    lines += ["", f"Time in trials: {times['seconds'] / 60:.0f} min"
              + (f" ({spent})" if spent else "")
              + f"; devices: {', '.join(times['devices']) or 'not run'}.", ""]
    return lines


def _gaps(gaps: list[dict], compared: int) -> list[str]:
    """The faithful rows outside 2σ (of ``compared`` run beside a report figure) and what
    their ablations measured; its last line is the one ``_glance`` reads back."""
    if not compared:
        return ["", "No faithful row has been run yet."]
    if not gaps:
        return ["", f"0 of {compared} faithful rows outside 2σ: every one is within 2σ of "
                "its report."]
    lines = ["", "Faithful rows outside 2σ and their ablations (status from the measured "
             "verdicts: *within*, an ablation lands within 2σ of the report; *bracketed*, one "
             "lands on the other side of it, so the report lies between two readings (not where "
             "the choice has two values and nothing between them, as which pairs a column "
             "scores); "
             "*contradicted*, the report's own retest of the configuration moved from the row's "
             "figure towards ours by more than its 2σ band, and ours reproduces the retest; "
             "*unexplained*, none of these; an "
             "ablation whose 2σ band is as wide as the gap does not count):", "",
             "| row | report | ours, as written | status | ablations: ours (verdict) |",
             "|---|---|---|---|---|"]
    for gap in gaps:
        tried = "; ".join(f"{e['source']}/{e['row']}: {format_figure(e['mean'], e['std'])} "
                          f"({e['verdict']}{evidence_note(e)})"
                          for e in gap["evidence"]) or "none run"
        lines.append(f"| {gap['stage']}/{gap['row']} | {format_figure(gap['report_mean'], None)} | "
                     f"{format_figure(gap['mean'], None)} ({gap['verdict']}) | {gap['status']} | "
                     f"{tried} |")
    counts = {s: sum(g["status"] == s for g in gaps) for s in ("within", "bracketed",
                                                                "contradicted", "unexplained")}
    contradicted = (f"{counts['contradicted']} contradicted by the report's own retest, "
                    if counts["contradicted"] else "")
    return lines + ["", f"{len(gaps)} of {compared} faithful row{'' if compared == 1 else 's'} "
                    "outside 2σ: "
                    f"{counts['within']} within under an ablation, "
                    f"{counts['bracketed']} bracketed, {contradicted}"
                    f"{counts['unexplained']} unexplained."]


_SUMMARY = re.compile(r"(\d+) of (\d+) faithful rows? outside 2σ: (?:(\d+) within under an "
                      r"ablation, (\d+) bracketed, (?:(\d+) contradicted by the report's own "
                      r"retest, )?(\d+) unexplained)?")


_GENERATED = re.compile(r"Generated by .* on (\d{4}-\d{2}-\d{2})")


def _glance(sections: dict[str, list[str]]) -> list[str]:
    """One row per report, read back from each section's summary line and date (kept
    sections included), and the totals."""
    lines = ["## At a glance", "",
             "Faithful rows run beside a report figure; those outside 2σ, by what their "
             "ablations found (each report's section lists them). A kept section's counts "
             "follow the status rule of the day it was generated (`--only` rewrites one).", "",
             "| report | faithful rows | within 2σ as written | outside 2σ | within under an "
             "ablation | bracketed | contradicted | unexplained | generated |",
             "|---|---|---|---|---|---|---|---|---|"]
    totals = [0] * 7
    for name in REPORTS:
        found = [m for m in map(_SUMMARY.match, sections[name]) if m]
        dates = [m.group(1) for m in map(_GENERATED.match, sections[name]) if m]
        generated = dates[0] if dates else "–"
        if not found:  # not run, or a kept section written before this summary existed
            lines.append(f"| {name} | – | | | | | | | {generated} |")
            continue
        outside, compared, within, bracketed, contradicted, unexplained = (
            int(value or 0) for value in found[-1].groups())
        counts = [compared, compared - outside, outside, within, bracketed, contradicted,
                  unexplained]
        totals = [a + b for a, b in zip(totals, counts)]
        lines.append(f"| {name} | " + " | ".join(map(str, counts)) + f" | {generated} |")
    return lines + ["| all | " + " | ".join(f"**{value}**" for value in totals) + " | |", ""]


def _retests(experiment, storage, names: set[str]) -> list[tuple[Any, Optional[dict]]]:
    """Each retest stage of an experiment with what it chose (None until it has chosen)."""
    found = []
    for stage in experiment.stages:
        if stage.kind != "retest":
            continue
        name = stage_study_name(experiment, stage)
        found.append((stage, optuna.load_study(study_name=name, storage=storage)
                      .user_attrs.get("chosen") if name in names else None))
    return found


def _chosen(experiment, storage, names: set[str]) -> list[str]:
    """One line per retest stage: the configuration CV chose and its test score."""
    lines = []
    for stage, chosen in _retests(experiment, storage, names):
        if not chosen:
            lines += [f"`{stage.name}`: not chosen yet.", ""]
            continue
        params = ", ".join(f"{k} {v}" for k, v in chosen["params"].items())
        mean, std = 100 * chosen["test_accuracy_mean"], 100 * chosen["test_accuracy_std"]
        protocol = chosen["test_protocol"]
        repeats = stage.get("cv_repeats", 1)
        cv = f"{stage.get('folds', 10)}-fold CV" + (f" x {repeats}" if repeats > 1 else "")
        among = (f"the best configuration of each of the {stage.get('top')} best "
                 "architectures" if stage.get("per_architecture") == 1
                 else f"the {stage.get('top')} best")
        lines += [f"`{stage.name}`: chosen by {cv} "
                  f"({chosen['cv_accuracy']:.4f}) among {among} of stage "
                  f"`{stage.get('of')}`: {params}. Its test accuracy, measured once: "
                  f"**{mean:.2f} ± {std:.2f}%** ({protocol['repeats']} trainings on each of "
                  f"{protocol['draws']} draws; draw means "
                  f"{', '.join(f'{100 * m:.2f}' for m in chosen['test_draw_means'])}).", ""]
    return lines


def _across_experiments(storage, prefixes: dict[str, str], names: set[str]) -> list[str]:
    """Every experiment's CV-chosen configuration, ranked by that CV (never by test)."""
    ranked = []
    for name in list_experiments():
        experiment = load_experiment(name, prefix=prefixes.get(name))
        ranked += [(chosen["cv_accuracy"], f"{name}/{stage.name}", chosen)
                   for stage, chosen in _retests(experiment, storage, names) if chosen]
    if len(ranked) < 2:
        return []
    ranked.sort(key=lambda item: -item[0])
    listed = "; ".join(f"`{label}` {cv:.4f} (test {100 * c['test_accuracy_mean']:.2f}%)"
                       for cv, label, c in ranked)
    (top_cv, top_label, _), (next_cv, _, _) = ranked[0], ranked[1]
    return [f"Every configuration the experiments chose this way, by its 10-fold CV on the "
            f"training pairs: {listed}. The highest CV, `{top_label}` (by "
            f"{100 * (top_cv - next_cv):.2f} points), is the best found; the test scores "
            f"beside the others do not choose between them.", ""]


def _best(storage, prefixes: dict[str, str], provenance: str) -> list[str]:
    experiment = load_experiment("best", prefix=prefixes.get("best"))
    names = {s.study_name for s in storage.get_all_studies()}
    lines = [BEST_TITLE, "", provenance, "", experiment.description, "",
             "`pairsearch run best`", ""]
    if not any(stage_study_name(experiment, stage) in names for stage in experiment.stages):
        return lines + ["Not run yet.", ""]
    lines += _chosen(experiment, storage, names) + _selection(experiment, storage, names)
    lines += _across_experiments(storage, prefixes, names)
    times = experiment_times(experiment, storage)
    tested = sum(c.get("train_seconds") or 0 for _, c in _retests(experiment, storage, names)
                 if c)
    return lines + [f"Time in trials: {times['seconds'] / 60:.0f} min, and "
                    f"{tested / 60:.0f} min training the chosen configuration for its test; "
                    f"from the first trial's start to the last one's end: "
                    f"{_wall_minutes(experiment, storage, names):.0f} min; devices: "
                    f"{', '.join(times['devices'])}.", ""]


def _selection(experiment, storage, names: set[str]) -> list[str]:
    """The selection path: how many trials and families the search ran, and each retest's
    candidates with their repeated-CV scores and the paired test against the best."""
    from pairsearch.search.strategies.retest import retest_table
    from pairsearch.search.space import FAMILY

    lines = []
    for stage in experiment.stages:
        name = stage_study_name(experiment, stage)
        if name not in names:
            continue
        study = optuna.load_study(study_name=name, storage=storage)
        if stage.kind == "retest":
            table = retest_table(study)
            if table.empty:
                continue
            lines += [f"`{stage.name}`'s candidates, by their {table['folds'].iloc[0]} paired "
                      "fold scores (diff: below the best, in points; p: the corrected "
                      "resampled t-test; tied: p >= 0.05, which CV cannot tell from the best):",
                      ""]
            shown = table.drop(columns=["chosen", "test_acc", "test_std"])
            shown["diff"] = 100 * shown["diff"]
            lines += [*markdown_rows(shown, ".4f"), ""]
            continue
        finished = study.get_trials(deepcopy=False, states=(
            optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED))
        families = {t.params.get(FAMILY, t.params.get("model")) for t in finished}
        complete = [t for t in finished if t.state == optuna.trial.TrialState.COMPLETE]
        lines += [f"`{stage.name}`: {len(finished)} trials over {len(families)} families "
                  f"({len(complete)} trained to the end, the others stopped by the pruner); "
                  f"best 3-fold CV {max(t.value for t in complete):.4f}.", ""]
    return lines


def _wall_minutes(experiment, storage, names: set[str]) -> float:
    starts, ends = [], []
    for stage in experiment.stages:
        name = stage_study_name(experiment, stage)
        if name not in names:
            continue
        for trial in optuna.load_study(study_name=name, storage=storage).get_trials(
                deepcopy=False):
            if trial.datetime_start and trial.datetime_complete:
                starts.append(trial.datetime_start)
                ends.append(trial.datetime_complete)
    return (max(ends) - min(starts)).total_seconds() / 60 if starts else 0.0


def _kept_sections(path: str) -> dict[str, list[str]]:
    """The page's sections by name (``reportNNN`` or ``best``), as lines, to keep as they are."""
    if not os.path.exists(path):
        return {}
    sections: dict[str, list[str]] = {}
    current: Optional[list[str]] = None
    with open(path) as handle:
        for line in handle.read().split("\n"):
            if line.startswith("## "):
                match = re.match(r"## (report\d{3}):", line)
                name = match.group(1) if match else "best" if line == BEST_TITLE else None
                current = sections.setdefault(name, []) if name else None
            if current is not None:
                current.append(line)
    return sections


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--storage", default="sqlite:///bench/experiments.db")
    parser.add_argument("--out", default="docs/reproduction.md")
    parser.add_argument("--prefix-of", action="append", default=[], metavar="NAME=PREFIX",
                        help="an experiment stored under another prefix")
    parser.add_argument("--only", action="append", default=[], choices=SECTIONS,
                        metavar="NAME", help="rewrite only this section (a report or best); "
                        "the others stay as the page has them")
    args = parser.parse_args()
    prefixes = dict(item.split("=", 1) for item in args.prefix_of)
    kept = _kept_sections(args.out) if args.only else {}
    missing = [name for name in SECTIONS if name not in args.only and name not in kept]
    if args.only and missing:
        sys.exit(f"error: {args.out} has no section for {', '.join(missing)} to keep; "
                 "generate the whole page (without --only) from a storage that holds them")
    storage = open_storage(args.storage, create=False)
    command = " ".join(["python benchmarks/reproduction.py", "--storage", args.storage]
                       + [f"--only {name}" for name in args.only])
    provenance = (f"Generated by `{command}` on {datetime.date.today()} "
                  f"({platform.machine()}, torch {torch.__version__}).")
    lines = ["# The five reports beside our runs", "",
             "Every figure on this page comes from the stored studies, by "
             "`python benchmarks/reproduction.py`; each section names the command, date and "
             "machine that generated it (`--only NAME` rewrites one section and keeps the "
             "others). Report rows "
             "are the reports' own networks as written (`pairsearch run reportNNN`); the "
             "improved column is the companion experiment's figure for the same row (our "
             "probability head, or CV selection for report 003). Accuracies in %, mean ± std "
             "over all trainings (runs × draws of the pairs). Verdict: within when the "
             "difference is at most twice the larger run-to-run std.", ""]
    sections = {}
    for name in SECTIONS:
        if args.only and name not in args.only:
            sections[name] = kept[name]
        elif name == "best":
            sections[name] = _best(storage, prefixes, provenance)
        else:
            sections[name] = _section(name, storage, prefixes, provenance)
    lines += _glance(sections)
    for name in SECTIONS:
        lines += sections[name]
    with open(args.out, "w") as handle:
        handle.write("\n".join(lines))
    print(f"written: {args.out}")


if __name__ == "__main__":
    main()
