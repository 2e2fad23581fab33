"""An experiment's Markdown page: each stage's section, built as ``pairsearch report``'s."""

from __future__ import annotations

from pathlib import Path

import optuna

from pairsearch.experiments.running import stage_study_name
from pairsearch.experiments.schema import Experiment, reads_trials_of
from pairsearch.search.markdown import make_folder, study_section


def write_experiment_report(experiment: Experiment, storage: optuna.storages.BaseStorage,
                            out: Path) -> Path:
    """``out/EXPERIMENT.md``: each stage's table and plots; returns the Markdown path.

    Raises:
        PairsearchError: If ``out`` cannot be written.
    """
    make_folder(out)
    lines = [f"# Experiment `{experiment.name}`", "", experiment.description, ""]
    names = {s.study_name for s in storage.get_all_studies()}
    for stage in experiment.stages:
        name = stage_study_name(experiment, stage)
        lines += [f"## Stage `{stage.name}` ({stage.kind})", ""]
        if stage.get("description"):
            lines += [str(stage.get("description")), ""]
        if reads_trials_of(stage) is not None:
            lines += [f"Reads stage `{reads_trials_of(stage)}`'s trials (above).", ""]
            continue
        if name not in names:
            lines += ["(not run yet)", ""]
            continue
        study = optuna.load_study(study_name=name, storage=storage)
        top = None if stage.kind in ("test", "retest") else 10
        lines += study_section(study, out, prefix=f"{stage.name}_", top=top, level=3,
                               importance=False)
    path = out / f"{experiment.name}.md"
    path.write_text("\n".join(lines))
    return path
