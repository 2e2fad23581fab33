"""The five reports' experiments as data: a TOML file per report, run stage by stage.

- ``schema``: what an experiment file may hold, checked before anything runs;
- ``chaining``: how a stage's space follows from earlier stages (``best_of``, ``base``);
- ``running``: each stage in order, each into its own resumable study;
- ``tables``: the report's published figures beside ours (``run --table``);
- ``report``: the experiment's Markdown page with plots (``run --out``).
"""

from pairsearch.experiments.chaining import stage_space, study_name
from pairsearch.experiments.report import write_experiment_report
from pairsearch.experiments.running import RunOptions, run_experiment, stage_study_name
from pairsearch.experiments.schema import (
    KINDS,
    Experiment,
    Stage,
    describe,
    experiment_from_dict,
    list_experiments,
    load_experiment,
)
from pairsearch.experiments.tables import (
    compares_faithfully,
    evidence_note,
    experiment_times,
    gap_summary,
    reproduction_rows,
    reproduction_table,
)

__all__ = ["KINDS", "Experiment", "RunOptions", "Stage", "compares_faithfully", "describe",
           "evidence_note", "experiment_from_dict", "experiment_times", "gap_summary",
           "list_experiments", "load_experiment", "reproduction_rows", "reproduction_table",
           "run_experiment", "stage_space", "stage_study_name", "study_name",
           "write_experiment_report"]
