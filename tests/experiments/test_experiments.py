"""Experiments: the shipped files load, stages chain, and a small one runs end to end."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import optuna
from optuna.trial import TrialState
import pytest

from pairsearch.errors import PairsearchError
from pairsearch.experiments.chaining import stage_space
from pairsearch.experiments.schema import reads_trials_of
from pairsearch.experiments import (
    RunOptions,
    evidence_note,
    experiment_from_dict,
    gap_summary,
    list_experiments,
    load_experiment,
    run_experiment,
    write_experiment_report,
)
from pairsearch.search.space import load_space, space_from_dict
from pairsearch.search.store.storage import open_storage


def test_every_shipped_experiment_loads_full_and_quick():
    names = list_experiments()
    assert {"report000", "report001", "report002", "report003", "report004", "best"} <= set(names)
    for name in names:
        full, quick = load_experiment(name), load_experiment(name, quick=True)
        assert full.name == name and quick.name == f"{name}-quick"
        assert [s.name for s in full.stages] == [s.name for s in quick.stages]


@pytest.mark.parametrize("document, message", [
    ({"stages": []}, r"has no \[\[stages\]\]"),
    ({"stages": [{"name": "a", "kind": "walk", "params": {"model": ["mlp"]}}]}, "bad kind"),
    ({"stages": [{"name": "a", "kind": "grid", "colour": 1, "params": {}}]}, "unknown key 'colour'"),
    ({"stages": [{"name": "a", "kind": "test", "best_of": "b"}]}, "not an earlier stage"),
    ({"stages": [{"name": "a", "kind": "retest"}]}, "needs of ="),
    ({"stages": [{"name": "a", "kind": "grid"}]}, "no space"),
    ({"stages": [{"name": "a", "kind": "grid", "space": "quick",
                  "params": {"model": ["mlp"]}}]},
     r"space = 'quick' and params together; a stage's space is a shipped space or its own"),
    ({"stage": []}, "unknown key 'stage'"),
    ({"stages": [{"name": "a", "kind": "test", "params": {"lr": [0.01]},
                  "variants": {"adam": {"model": "mlp"}},
                  "reported": {"adam/0.1": {"mean": 90}}}]},
     r"reported row 'adam/0.1' is none of the stage's rows \(valid: adam/0.01\)"),
    ({"stages": [{"name": "a", "kind": "test", "variants": {"m": {"model": "mlp"}},
                  "reported": {"m": {"mean": 90}}},
                 {"name": "b", "kind": "test", "variants": {"m": {"model": "mlp"}},
                  "reported": {"m": {"mean": 90, "ablates": "a/n"}}}]},
     r"ablates = 'a/n' is no stage's reported row"),
    ({"stages": [{"name": "a", "kind": "test", "variants": {"m": {"model": "mlp"}},
                  "reported": {"m": {"mean": 90, "retests": "b/m"}}}]},
     r"retests = 'b/m' is no stage's reported row"),
    ({"stages": [{"name": "a", "kind": "test", "variants": {"m": {"model": "mlp"}},
                  "reported": {"m": {"mean": 90, "metric": "train"}}}]},
     r"reported row 'm': metric = 'train' \(valid: accuracy, train_accuracy, best_replica\)"),
    ({"stages": [{"name": "a", "kind": "test", "variants": {"m": {"model": "mlp"}},
                  "reported": {"m": {"mean": 90, "brackets": False}}}]},
     r"reported row 'm': brackets = False must be true or false, on a row that ablates one"),
    ({"stages": [{"name": "a", "kind": "test", "variants": {"m": {"model": "mlp"}},
                  "reported": {"m": {"mean": 90}}},
                 {"name": "b", "kind": "test", "variants": {"m": {"model": "mlp"}},
                  "reported": {"m": {"mean": 90, "ablates": "a/m", "brackets": "no"}}}]},
     r"reported row 'm': brackets = 'no' must be true or false"),
    ({"stages": [{"name": "a", "kind": "grid", "variants": {"m": {"model": "mlp"}},
                  "reported": {"best": {"mean": 90}, "model=mlp": {"mean": 90},
                               "n": {"mean": 90}}}]},
     r"reported row 'n' is none of the stage's rows \(valid: m\)"),
    ({"stages": [{"name": "a", "kind": "grid", "variants": {"m": {"model": "mlp"}},
                  "train_accuracy": True}]},
     r"stage 'a': train_accuracy = true\|false, on a test stage only"),
    ({"stages": [{"name": "a", "kind": "test", "variants": {"m": {"model": "mlp"}},
                  "train_accuracy": "yes"}]},
     r"stage 'a': train_accuracy = true\|false, on a test stage only"),
    ({"stages": [{"name": "a", "kind": "grid", "variants": {"m": {"model": "mlp"}}},
                 {"name": "b", "kind": "test", "of": "a"}]},
     r"stage 'b': of = 'a' is not an earlier test stage with trainings of its own"),
    ({"stages": [{"name": "a", "kind": "test", "variants": {"m": {"model": "mlp"}}},
                 {"name": "b", "kind": "test", "of": "a", "repeats": 3}]},
     r"stage 'b': a stage that reads stage 'a''s trials takes no 'repeats'"),
    ({"stages": [{"name": "a", "kind": "test", "variants": {"m": {"model": "mlp"}}},
                 {"name": "b", "kind": "test", "of": "a",
                  "reported": {"m": {"mean": 90, "metric": "train_accuracy"}}}]},
     r"stage 'b': its train_accuracy rows need train_accuracy = true on stage 'a'"),
    ({"stages": [{"name": "a", "kind": "test", "variants": {"m": {"model": "mlp"}},
                  "train_accuracy": True},
                 {"name": "b", "kind": "test", "of": "a",
                  "reported": {"n": {"mean": 90, "metric": "train_accuracy"}}}]},
     r"stage 'b': reported row 'n' is none of the stage's rows \(valid: m\)"),
    ({"stages": [{"name": "a", "kind": "test", "variants": {"m": {"model": "mlp"}}},
                 {"name": "b", "kind": "test", "of": "a"},
                 {"name": "c", "kind": "test", "best_of": "b", "select": "test"}]},
     r"stage 'c': best_of = 'b' is read from stage 'a', which has no space of its own"),
])
def test_bad_experiments_are_clear_errors(document, message):
    with pytest.raises(PairsearchError, match=message):
        experiment_from_dict("x", document)


def test_a_variants_own_epochs_beat_the_defaults_epochs():
    document = {"defaults": {"epochs": 25}, "quick": {"epochs": 2}, "stages": [
        {"name": "a", "kind": "test", "fixed": {"model": "mlp"},
         "variants": {"long": {"epochs": 100}, "plain": {}}},
        {"name": "b", "kind": "test", "variants": {"m": {"model": "mlp"}}}]}
    long_stage, plain_stage = experiment_from_dict("x", document).stages
    space = stage_space(experiment_from_dict("x", document), long_stage, None, {})
    assert {c["variant"]: space.settings(c)["epochs"] for c in space.cells()} == {
        "long": 100, "plain": 25}  # a variant without its own keeps the defaults' number
    assert long_stage.get("epochs") is None and plain_stage.get("epochs") == 25
    assert experiment_from_dict("x", document, quick=True).stages[0].get("epochs") == 2


def _row(stage, row, verdict, ablates=(), std=1.0, **extra):
    return {"stage": stage, "row": row, "verdict": verdict, "report_mean": 80.0,
            "report_std": 1.0, "mean": 90.0, "std": std, "ablates": list(ablates),
            "beside": None, "retests": None, **extra}


def test_gap_summary_reads_each_gap_from_its_ablations_verdicts():
    rows = [_row("models", "a", "above"), _row("models", "b", "below"),
            _row("models", "c", "above"), _row("models", "d", "within"),
            _row("raw", "a", "within", ["models/a"]), _row("raw", "b", "below", ["models/b"]),
            _row("raw", "c2", "not run", ["models/c"]),
            _row("noisy", "c", "within", ["models/c"], std=6.0)]
    gaps = {g["row"]: g for g in gap_summary(rows)}
    assert set(gaps) == {"a", "b", "c"}  # d is within; ablation rows are not gaps
    assert gaps["a"]["status"] == "within"
    assert gaps["b"]["status"] == "unexplained"  # its one ablation is below too
    assert [e["source"] for e in gaps["b"]["evidence"]] == ["raw"]
    # Not run: no evidence; a 2σ band (12 points) wider than the gap (10): does not count.
    assert gaps["c"]["status"] == "unexplained"
    assert [(e["source"], e["counts"]) for e in gaps["c"]["evidence"]] == [("noisy", False)]


def test_companion_rows_never_change_a_faithful_rows_status():
    # Only readings of the report explain a gap. A faithful row below the report whose only
    # landing row is a companion's (our improved variant) stays unexplained; a companion on
    # the other side brackets nothing; the companions stay in their own column.
    rows = [_row("test", "below", "below", mean=70.0), _row("test", "above", "above"),
            _row("test", "read", "below", mean=70.0),
            _row("head", "read", "within", ["test/read"], report_mean=70.0, mean=70.5)]
    companion = [_row("test", "below", "within", experiment="x-improved", mean=80.5),
                 _row("improved", "a2", "below", experiment="x-improved", mean=70.0,
                      beside="test/above"),
                 _row("test", "read", "above", experiment="x-improved")]
    alone = {g["row"]: g for g in gap_summary(rows)}
    gaps = {g["row"]: g for g in gap_summary(rows, companion)}
    for row in ("below", "above", "read"):  # the same statuses with or without companions
        assert gaps[row]["status"] == alone[row]["status"]
        assert gaps[row]["evidence"] == alone[row]["evidence"]
    assert gaps["below"]["status"] == "unexplained" and gaps["below"]["evidence"] == []
    assert gaps["above"]["status"] == "unexplained"
    assert gaps["read"]["status"] == "within"  # a reading of the report lands: it explains
    assert [(c["source"], c["row"], c["verdict"]) for c in gaps["below"]["companions"]] == [
        ("x-improved", "below", "within")]
    assert [(c["source"], c["row"]) for c in gaps["above"]["companions"]] == [
        ("x-improved", "a2")]
    assert all("counts" not in c for g in gaps.values() for c in g["companions"])


def test_a_two_way_reading_explains_by_landing_and_brackets_nothing():
    # Report 000's table I: test pairs (the faithful rows) or training pairs (its header).
    # Nothing lies between the two readings, so one on the report's other side brackets
    # nothing; the same reading landing within 2σ still explains the gap.
    rows = [_row("test", "m", "below", mean=70.0), _row("test", "n", "below", mean=70.0),
            _row("test", "o", "below", mean=70.0),
            _row("train", "m", "above", ["test/m"], mean=99.0, brackets=False),
            _row("train", "n", "within", ["test/n"], mean=80.5, brackets=False),
            _row("train", "o", "above", ["test/o"], mean=99.0)]  # a setting: it brackets
    gaps = {g["row"]: g for g in gap_summary(rows)}
    assert gaps["m"]["status"] == "unexplained"
    assert evidence_note(gaps["m"]["evidence"][0]) == ", a two-way choice: brackets nothing"
    assert gaps["n"]["status"] == "within" and evidence_note(gaps["n"]["evidence"][0]) == ""
    assert gaps["o"]["status"] == "bracketed"


def test_report000_train_accuracy_rows_bracket_nothing():
    experiment = load_experiment("report000")
    stage = next(s for s in experiment.stages if s.name == "train-accuracy")
    assert all(figures["brackets"] is False and figures["metric"] == "train_accuracy"
               for figures in stage.get("reported").values())


def test_a_gap_the_reports_own_retest_contradicts():
    # The report: 80 by 3-fold CV, then 89 ± 2 for the same configuration by 10-fold;
    # ours 90 by both. A retest that moved away from ours, or by less than its own 2σ
    # band (85 ± 5: both report figures are one spread apart), does not count.
    rows = [_row("grid", "m", "above"), _row("grid", "n", "above"), _row("grid", "o", "above"),
            _row("grid10", "m", "within", report_mean=89.0, report_std=2.0, retests="grid/m"),
            _row("grid10", "n", "within", report_mean=75.0, report_std=9.0, retests="grid/n"),
            _row("grid10", "o", "within", report_mean=85.0, report_std=5.0, retests="grid/o")]
    gaps = {g["row"]: g for g in gap_summary(rows)}
    assert gaps["m"]["status"] == "contradicted"
    assert [(e["source"], e["retest"], e["counts"]) for e in gaps["m"]["evidence"]] == [
        ("grid10", True, True)]
    assert gaps["n"]["status"] == gaps["o"]["status"] == "unexplained"
    assert [e["counts"] for e in gaps["o"]["evidence"]] == [False]


def test_a_training_accuracy_row_reads_each_runs_score_on_its_training_pairs(tmp_path):
    from pairsearch.experiments import reproduction_rows

    fit = {"model": "mlp", "hidden": "256"}
    document = {"defaults": {"epochs": 30, "train_pairs": 200, "test_pairs": 100}, "stages": [
        {"name": "a", "kind": "test", "repeats": 2, "variants": {"m": fit},
         "reported": {"m": {"mean": 80.0}}},
        {"name": "b", "kind": "test", "repeats": 2, "variants": {"m": fit},
         "reported": {"m": {"error": 0.5, "std": 1.0, "metric": "train_accuracy",
                            "ablates": "a/m"}}}]}
    experiment = experiment_from_dict("fit", document)
    storage = open_storage(f"sqlite:///{tmp_path / 'f.db'}")
    run_experiment(experiment, storage, RunOptions(device="cpu", progress=False),
                   report=lambda line: None)
    held_out, fitted = reproduction_rows(experiment, storage)
    trial = optuna.load_study(study_name="fit-b", storage=storage).trials[0]
    assert fitted["mean"] == pytest.approx(100 * np.mean(trial.user_attrs["train_accuracies"]))
    assert fitted["mean"] == 100.0 and fitted["verdict"] == "within"  # 99.5 ± 2·1
    assert held_out["mean"] < 95 and held_out["metric"] == "accuracy"
    assert fitted["metric"] == "train_accuracy" and fitted["note"].startswith("train accuracy")
    # Only the stage whose table reports a training accuracy pays for its forward pass.
    other = optuna.load_study(study_name="fit-a", storage=storage).trials[0]
    assert other.user_attrs["train_accuracies"] == [None, None]


def test_a_stage_reading_another_stages_trials_trains_nothing(tmp_path):
    """Report 000's train-accuracy rows: the test stage's own trainings scored on their
    training pairs (``of = "a"``), not the same networks trained a second time."""
    from pairsearch.experiments import experiment_times, reproduction_rows, stage_study_name

    fit = {"model": "mlp", "hidden": "32"}
    document = {"defaults": {"epochs": 2, "train_pairs": 100, "test_pairs": 100}, "stages": [
        {"name": "a", "kind": "test", "repeats": 2, "variants": {"m": fit},
         "train_accuracy": True, "reported": {"m": {"mean": 80.0}}},
        {"name": "b", "kind": "test", "of": "a",
         "reported": {"m": {"mean": 80.0, "metric": "train_accuracy", "ablates": "a/m"}}}]}
    experiment = experiment_from_dict("read", document)
    assert stage_study_name(experiment, experiment.stages[1]) == "read-a"
    storage = open_storage(f"sqlite:///{tmp_path / 'r.db'}")
    lines: list[str] = []
    written = run_experiment(experiment, storage, RunOptions(device="cpu", progress=False),
                             report=lines.append)
    assert written == ["read-a"] and "read-b" not in {s.study_name for s in
                                                     storage.get_all_studies()}
    assert any("stage b reads stage a's trials (study read-a): nothing to train" in line
               for line in lines)
    (trial,) = optuna.load_study(study_name="read-a", storage=storage).trials
    held_out, fitted = reproduction_rows(experiment, storage)
    assert fitted["stage"] == "b" and fitted["runs"] == 2
    assert fitted["mean"] == pytest.approx(100 * np.mean(trial.user_attrs["train_accuracies"]))
    assert held_out["mean"] == pytest.approx(100 * np.mean(trial.user_attrs["accuracies"]))
    # The shared study's time is counted once.
    assert experiment_times(experiment, storage)["seconds"] == pytest.approx(
        (trial.datetime_complete - trial.datetime_start).total_seconds(), rel=1e-6)


def test_copies_of_each_models_best_cell_and_the_best_copy(tmp_path):
    from pairsearch.experiments import reproduction_rows

    document = {"defaults": {"epochs": 1, "train_pairs": 120, "test_pairs": 60}, "stages": [
        {"name": "grid", "kind": "grid", "folds": 2,
         "params": {"model": ["mlp", "siamese"], "lr": [0.001, 0.1]},
         "reported": {"model=mlp": {"mean": 70.0}}},
        {"name": "copies", "kind": "grid", "base": "grid", "folds": 2, "repeats": 3,
         "variants": {"mlp": {}, "siamese": {}},
         "reported": {"siamese": {"mean": 70.0, "metric": "best_replica",
                                 "ablates": "grid/model=mlp"}}}]}
    experiment = experiment_from_dict("copies", document)
    storage = open_storage(f"sqlite:///{tmp_path / 'c.db'}")
    run_experiment(experiment, storage, RunOptions(device="cpu", progress=False),
                   report=lambda line: None)
    grid = optuna.load_study(study_name="copies-grid", storage=storage)
    copies = {t.params["variant"]: t for t in
              optuna.load_study(study_name="copies-copies", storage=storage).trials}
    for model in ("mlp", "siamese"):  # base groups a variant-less space by its model
        best = max((t for t in grid.trials if t.params["model"] == model),
                   key=lambda t: (t.value, -t.number))
        assert f'"lr": {best.params["lr"]}' in copies[model].user_attrs["config_key"]
    accuracies = 100 * np.asarray(copies["siamese"].user_attrs["accuracies"]).reshape(3, 2)
    best_copy = accuracies[np.argmax(accuracies.mean(axis=1))]  # repeat-major, 2 folds each
    row = reproduction_rows(experiment, storage)[1]
    assert row["mean"] == pytest.approx(best_copy.mean()) and row["runs"] == 6
    assert row["std"] == pytest.approx(np.std(best_copy, ddof=1))
    assert row["mean"] >= 100 * copies["siamese"].value  # the best copy, not the mean


def test_a_best_replica_row_is_the_best_copy_of_any_cell_not_of_the_best_mean(tmp_path):
    from pairsearch.experiments import reproduction_rows

    experiment = experiment_from_dict("every", {"stages": [
        {"name": "grid", "kind": "grid", "folds": 2, "repeats": 2,
         "params": {"model": ["mlp"], "lr": [0.001, 0.1]},
         "reported": {"model=mlp": {"mean": 90.0, "metric": "best_replica"}}}]})
    storage = open_storage(f"sqlite:///{tmp_path / 'e.db'}")
    study = optuna.create_study(study_name="every-grid", storage=storage, direction="maximize")
    distributions = {"model": optuna.distributions.CategoricalDistribution(["mlp"]),
                     "lr": optuna.distributions.CategoricalDistribution([0.001, 0.1])}
    # lr 0.001: the better mean (0.80), copies 80 and 80; lr 0.1: mean 0.75, copies 60 and 90.
    for lr, accuracies in ((0.001, [0.8, 0.8, 0.8, 0.8]), (0.1, [0.6, 0.6, 0.9, 0.9])):
        study.add_trial(optuna.trial.create_trial(
            params={"model": "mlp", "lr": lr}, distributions=distributions,
            value=float(np.mean(accuracies)),
            user_attrs={"accuracies": accuracies, "protocol": {"folds": 2},
                        "config_key": f"lr={lr}"}))
    row = reproduction_rows(experiment, storage)[0]
    assert row["mean"] == pytest.approx(90.0) and row["verdict"] == "within"


def test_report002_every_copy_stage_is_the_report002_space_for_model_1():
    experiment = load_experiment("report002")
    stage = next(s for s in experiment.stages if s.name == "grid-every-copy")
    space = stage_space(experiment, stage, None, {})
    shipped = load_space("report002")
    assert space.params == {**shipped.params, "model": ("siamese",)}
    assert space.fixed == shipped.fixed and space.size == shipped.size // 5
    assert stage.get("repeats") == 16  # 4 class losses x 4 lambdas Model 1 does not read


def test_space_variants_choose_and_budget():
    space = space_from_dict("v", {
        "variants": {"small": {"model": "mlp", "hidden": "16"},
                     "ws": {"model": "siamese", "branch": "mlp"}},
        "params": {"lr": [0.001, 0.01]}})
    cells = list(space.cells())
    assert space.size == 4 and cells[0] == {"variant": "small", "lr": 0.001}
    assert space.config(cells[0]).model_options["hidden"] == (16,)
    assert space.config(cells[3]).model == "siamese"
    budget = space_from_dict("b", {"params": {"hidden": {"choose": [16, 512], "length": 2}},
                                   "fixed": {"model": "mlp"},
                                   "budget": {"params": [0, 20000]}})
    # 392·h1 + h1·h2 + 2·h2 (+ biases): only 16,16 and 16,512 stay under 20,000.
    assert sorted(c["hidden"] for c in budget.cells()) == ["16,16", "16,512"]
    assert budget.size == 2
    with pytest.raises(PairsearchError, match="variant 'bad'"):
        space_from_dict("e", {"variants": {"bad": {"model": "mlp", "colour": "red"}}})
    with pytest.raises(PairsearchError, match="choose"):
        space_from_dict("e", {"params": {"hidden": {"choose": [16]}}, "fixed": {"model": "mlp"}})


TINY = {
    "description": "tiny",
    "defaults": {"epochs": 1, "train_pairs": 120, "test_pairs": 60},
    "stages": [
        {"name": "grid", "kind": "grid", "folds": 2,
         "variants": {"flat": {"model": "mlp", "hidden": "32"},
                      "pairs": {"model": "siamese", "branch": "mlp", "hidden": "32"}},
         "params": {"lr": [0.001, 0.1]}},
        {"name": "test", "kind": "test", "best_of": "grid", "repeats": 2},
        {"name": "dropout", "kind": "test", "base": "grid", "repeats": 1,
         "variants": {"flat": {}}, "params": {"dropout": [0.0, 0.5]}},
    ],
}


def test_stages_chain_through_their_studies(tmp_path):
    storage = open_storage(f"sqlite:///{tmp_path / 'e.db'}")
    experiment = experiment_from_dict("tiny", TINY)
    lines = []
    studies = run_experiment(experiment, storage, RunOptions(device="cpu", progress=False),
                             report=lines.append)
    assert studies == ["tiny-grid", "tiny-test", "tiny-dropout"]
    grid = optuna.load_study(study_name="tiny-grid", storage=storage)
    best_lr = {}
    for trial in grid.trials:
        variant = trial.params["variant"]
        if variant not in best_lr or trial.value > best_lr[variant][0]:
            best_lr[variant] = (trial.value, trial.params["lr"])
    test = optuna.load_study(study_name="tiny-test", storage=storage)
    assert {t.params["variant"] for t in test.trials} == {"flat", "pairs"}
    for trial in test.trials:  # best_of: each variant with its grid's best settings
        config = trial.user_attrs["config_key"]
        assert f'"lr": {best_lr[trial.params["variant"]][1]}' in config
        assert len(trial.user_attrs["accuracies"]) == 2
        assert trial.user_attrs["protocol"]["kind"] == "test"
    dropout = optuna.load_study(study_name="tiny-dropout", storage=storage)
    assert sorted(t.params["dropout"] for t in dropout.trials) == [0.0, 0.5]
    for trial in dropout.trials:  # base: the flat variant's best settings, dropout varied
        assert f'"lr": {best_lr["flat"][1]}' in trial.user_attrs["config_key"]
        assert '"model": "mlp"' in trial.user_attrs["config_key"]
    # Running again resumes: nothing is trained twice.
    again = []
    run_experiment(experiment, storage, RunOptions(device="cpu", progress=False),
                   report=again.append)
    summaries = [line for line in again if line.startswith(("==", "Stage"))
                 or "trials; trained" in line]
    assert len([line for line in summaries if "trials; trained" in line]) == 3, again
    assert all("trained 0," in line for line in summaries if "trials; trained" in line), again
    report = write_experiment_report(experiment, storage, tmp_path / "out")
    text = report.read_text()
    assert "## Stage `test` (test)" in text and (tmp_path / "out" / "test_accuracy.png").exists()


@pytest.mark.process
def test_run_command_quick_and_list(tmp_path):
    listed = subprocess.run([sys.executable, "-m", "pairsearch", "run", "--list"],
                            capture_output=True, text=True, cwd=tmp_path)
    assert listed.returncode == 0 and "report004" in listed.stdout
    done = subprocess.run([sys.executable, "-m", "pairsearch", "run", "report004", "--quick",
                           "--no-progress", "--device", "cpu", "--out", "rep"],
                          capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    study = optuna.load_study(study_name="report004-quick-models",
                              storage=f"sqlite:///{tmp_path / 'studies.db'}")
    assert len(study.trials) == 9
    assert all("3 draws" in t.user_attrs["data"] for t in study.trials)
    assert all(len(t.user_attrs["draw_means"]) == 3 for t in study.trials)
    assert (tmp_path / "rep" / "report004-quick.md").exists()
    bad = subprocess.run([sys.executable, "-m", "pairsearch", "run", "report999"],
                         capture_output=True, text=True, cwd=tmp_path)
    assert bad.returncode == 2 and "experiment 'report999' not found" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1
    stage = subprocess.run([sys.executable, "-m", "pairsearch", "run", "report004", "--quick",
                            "--stage", "nosuch", "--storage", "sqlite:///other.db"],
                           capture_output=True, text=True, cwd=tmp_path)
    assert stage.returncode == 2 and "--stage 'nosuch'" in stage.stderr
    assert "its stages: models, sgd-batch" in stage.stderr
    assert len(stage.stderr.strip().splitlines()) == 1 and not (tmp_path / "other.db").exists()


def test_command_line_overrides_reach_every_stage():
    for quick in (False, True):
        experiment = load_experiment("report002", quick, {"epochs": 6, "train_pairs": 400},
                                     prefix="bench")
        assert experiment.name == "bench"
        for stage in experiment.stages:
            assert stage.get("epochs") == 6 and stage.get("train_pairs") == 400


@pytest.mark.parametrize("stage_name, head", [
    ("logits-head", "logits_linear"), ("logits-mlp-head", "logits_mlp"),
    ("probs-linear-head", "probs_linear")])
def test_report002_head_readings_start_from_each_models_best_grid_cell(tmp_path, stage_name,
                                                                       head):
    # The ablation's cells are read from the stored grid, not typed from an earlier run;
    # only the head differs from the grid's (probs_mlp) cell.
    storage = open_storage(f"sqlite:///{tmp_path / 'e.db'}")
    experiment = load_experiment("report002")
    grid_stage, logits_stage = (next(s for s in experiment.stages if s.name == name)
                                for name in ("grid", stage_name))
    grid_space = stage_space(experiment, grid_stage, storage, {})
    study = optuna.create_study(study_name="report002-grid", storage=storage,
                                direction="maximize")
    distributions = {key: optuna.distributions.CategoricalDistribution(values)
                     for key, values in grid_space.params.items()}
    rng = np.random.default_rng(0)
    best: dict = {}
    for value in rng.permutation(40) / 40:
        cell = {key: values[rng.integers(len(values))]
                for key, values in grid_space.params.items()}
        study.add_trial(optuna.trial.create_trial(params=cell, distributions=distributions,
                                                  value=float(value)))
        if value > best.get(cell["model"], ({}, -1.0))[1]:
            best[cell["model"]] = (cell, value)
    space = stage_space(experiment, logits_stage, storage, {"grid": grid_space})
    assert set(space.variants) == {"twin_aux", "siamese_aux", "twin", "siamese"}
    for variant in space.variants:
        assert space.settings({"variant": variant}) == {
            **grid_space.settings(best[variant][0]), "head": head}
        assert logits_stage.get("reported")[variant]["ablates"] == f"grid/model={variant}"


def test_report002_table8_head_readings_differ_only_in_the_head():
    # Table 8's own GA best, "WS-AL, L1 / CrossEnt, AdamW, lr 0.001, lambda 0.7", under
    # the two logits readings of its "Linear/ReLU output layers".
    experiment = load_experiment("report002")
    stages = {s.name: s for s in experiment.stages}
    configs = {}
    for name, head in (("logits-head-table8", "logits_linear"),
                       ("logits-mlp-head-table8", "logits_mlp")):
        space = stage_space(experiment, stages[name], None, {})
        assert list(space.variants) == ["table8_best"]
        config = space.config({"variant": "table8_best"})
        assert config.model == "siamese_aux" and config.model_options["head"] == head
        assert stages[name].get("reported")["table8_best"]["ablates"] == [
            "genetic/best", "genetic-retest/chosen"]
        configs[name] = config
    linear, mlp = configs.values()
    assert linear.train == mlp.train
    assert {**linear.model_options, "head": "logits_mlp"} == mlp.model_options


def test_only_named_stages_run_and_chain_from_stored_ones(tmp_path):
    storage = open_storage(f"sqlite:///{tmp_path / 'e.db'}")
    experiment = experiment_from_dict("tiny", TINY)
    options = RunOptions(device="cpu", progress=False)
    # A chained stage whose source has no stored results is refused, nothing written.
    with pytest.raises(PairsearchError, match="stage 'grid' has not run yet"):
        run_experiment(experiment, storage, options, report=lambda line: None,
                       only=["dropout"])
    assert optuna.get_all_study_names(storage) == []
    assert run_experiment(experiment, storage, options, report=lambda line: None,
                          only=["grid"]) == ["tiny-grid"]
    assert optuna.get_all_study_names(storage) == ["tiny-grid"]
    # The grid now stored, a stage chained from it runs alone, from the grid's best.
    assert run_experiment(experiment, storage, options, report=lambda line: None,
                          only=["dropout"]) == ["tiny-dropout"]
    assert sorted(optuna.get_all_study_names(storage)) == ["tiny-dropout", "tiny-grid"]
    # A stage whose source lent no space (its own source unstored) is refused by name.
    test_stage = experiment.stages[1]
    with pytest.raises(PairsearchError, match="chains from stage 'grid'.*run that stage first"):
        stage_space(experiment, test_stage, storage, {})


POISONABLE = {
    "description": "chains that must never read the test pairs",
    "defaults": {"epochs": 1, "train_pairs": 120, "test_pairs": 60},
    "stages": [
        {"name": "grid", "kind": "grid", "folds": 2,
         "variants": {"flat": {"model": "mlp", "hidden": "32"},
                      "pairs": {"model": "siamese", "branch": "mlp", "hidden": "32"}},
         "params": {"lr": [0.001, 0.03, 0.3]}},
        {"name": "test", "kind": "test", "best_of": "grid", "repeats": 2},
        {"name": "dropout", "kind": "test", "base": "grid", "repeats": 1,
         "variants": {"flat": {}}, "params": {"dropout": [0.0, 0.5]}},
        {"name": "tpe", "kind": "tpe", "folds": 2, "trials": 5,
         "params": {"model": ["mlp", "siamese"], "lr": [0.001, 0.01, 0.1]}},
        {"name": "tpe-retest", "kind": "retest", "of": "tpe", "top": 3, "folds": 2,
         "repeats": 2},
    ],
}


def _choices(storage) -> dict:
    """What each stage chose: the configurations its tests ran, the retest's choice."""
    choices = {}
    for name in ("poison-test", "poison-dropout"):
        study = optuna.load_study(study_name=name, storage=storage)
        choices[name] = sorted(t.user_attrs["config_key"] for t in study.trials)
    retest = optuna.load_study(study_name="poison-tpe-retest", storage=storage)
    choices["retest"] = {k: v for k, v in retest.user_attrs["chosen"].items()
                         if k in ("params", "retest_trial", "source_trial", "cv_accuracy")}
    return choices


def test_poisoned_test_labels_change_no_choice(tmp_path, monkeypatch):
    """Searches and chains choose by CV on the training pairs: flipping every test label
    changes the test scores, and no choice."""
    from pairsearch.data import PairData, PairSet
    from pairsearch.search import trial_evaluator as runner_module

    experiment = experiment_from_dict("poison", POISONABLE)
    clean = open_storage(f"sqlite:///{tmp_path / 'clean.db'}")
    run_experiment(experiment, clean, RunOptions(device="cpu", progress=False),
                   report=lambda line: None)
    real = runner_module.generate_draws

    def poisoned(*args, **kwargs):
        return [PairData(d.train, PairSet(d.test.inputs, 1 - d.test.targets, d.test.classes),
                         d.source, d.mean, d.std, d.inputs) for d in real(*args, **kwargs)]

    monkeypatch.setattr(runner_module, "generate_draws", poisoned)
    dirty = open_storage(f"sqlite:///{tmp_path / 'dirty.db'}")
    run_experiment(experiment, dirty, RunOptions(device="cpu", progress=False),
                   report=lambda line: None)
    assert _choices(clean) == _choices(dirty)
    scores = [[t.value for t in optuna.load_study(study_name="poison-test", storage=s).trials]
              for s in (clean, dirty)]
    assert all(abs(a + b - 1) < 1e-6 for a, b in zip(*scores)), scores  # the poison reached


@pytest.mark.process
def test_table_command_on_a_quick_run(tmp_path):
    run = [sys.executable, "-m", "pairsearch", "run", "report004", "--quick", "--no-progress",
           "--device", "cpu"]
    done = subprocess.run(run, capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    table = subprocess.run([*run, "--table", "--json"], capture_output=True, text=True,
                           cwd=tmp_path)
    assert table.returncode == 0, table.stderr
    result = json.loads(table.stdout)
    rows = {row["row"]: row for row in result["rows"] if row["stage"] == "models"}
    assert set(rows) == {"baseline", "linear_siamese_1", "linear_siamese_2", "siamese_cnn_1",
                         "siamese_cnn_2", "siamese_cnn_3", "siamese_rnn_1", "siamese_rnn_2",
                         "deep_siamese_cnn"}
    ablations = [row for row in result["rows"] if row["stage"] != "models"]
    assert {row["stage"] for row in ablations} == {"sgd-batch", "sgd-batch-unshared",
                                                   "adam-batch", "softmax-outputs",
                                                   "softmax-final-logits",
                                                   "rnn-hidden-weights", "softmax-activations",
                                                   "rnn-three-layers", "raw-inputs",
                                                   "deep-widths-half", "deep-widths-double",
                                                   "train-mode-scoring", "softmax-hidden",
                                                   "softmax-hidden-batch10", "deep-readings",
                                                   "rnn2-caption-epochs"}
    for row in result["rows"]:
        assert {"row", "report_mean", "report_std", "mean", "std", "runs", "draws", "params",
                "report_params", "verdict"} <= set(row)
        draws = 3 if row["stage"] == "models" else 2  # the ablations' quick draws
        assert row["runs"] == draws and row["draws"] == draws and row["mean"] is not None
        # 2-epoch runs on 200 pairs are smoke runs: never judged against the report.
        assert row["verdict"] == "quick"
        assert "train_pairs 200 < 1000" in row["reduced"] and f"draws {draws} < 10" in row[
            "reduced"]
        assert row["stage"] == "models" or row["ablates"][0].startswith("models/")
    assert result["gaps"] == []  # no status without a verdict
    assert rows["siamese_cnn_3"]["report_mean"] == 81.03
    assert result["seconds"] > 0 and result["devices"]
    text = subprocess.run([*run, "--table"], capture_output=True, text=True, cwd=tmp_path)
    assert text.returncode == 0 and "siamese_cnn_3" in text.stdout and "81.03" in text.stdout
    assert " below" not in text.stdout and " above" not in text.stdout
    assert "outside 2σ" not in text.stdout and "smoke runs" in text.stdout
    one = json.loads(subprocess.run([*run, "--table", "--json", "--stage", "raw-inputs"],
                                    capture_output=True, text=True, cwd=tmp_path).stdout)
    assert one["rows"] and {row["stage"] for row in one["rows"]} == {"raw-inputs"}
    assert one["gaps"] == []  # the gaps are the models stage's rows
    none = subprocess.run([sys.executable, "-m", "pairsearch", "run", "report001", "--quick",
                           "--table", "--json"], capture_output=True, text=True, cwd=tmp_path)
    assert none.returncode == 0 and all(r["verdict"] == "not run"
                                        for r in json.loads(none.stdout)["rows"])


SHARED = '''description = "every kind of stage, run by two workers"
[defaults]
epochs = 1
train_pairs = 120
test_pairs = 60
[[stages]]
name = "grid"
kind = "grid"
folds = 2
epochs = 20                     # so the second worker usually joins (torch import)
params = { model = ["mlp", "siamese", "siamese_aux"], lr = [0.001, 0.003, 0.01, 0.1] }
[[stages]]
name = "grid-retest"
kind = "retest"
of = "grid"
top = 2
folds = 2
repeats = 1
[[stages]]
name = "test"
kind = "test"
best_of = "grid"
repeats = 2
[[stages]]
name = "genetic"
kind = "genetic"
folds = 2
pop = 4
gens = 2
params = { model = ["mlp", "siamese"], lr = [0.001, 0.01, 0.1] }
[[stages]]
name = "tpe"
kind = "tpe"
folds = 2
trials = 4
params = { model = ["mlp", "siamese"], lr = [0.001, 0.01, 0.1] }
'''


@pytest.mark.process
def test_run_with_two_workers_completes_every_stage_once(tmp_path):
    (tmp_path / "shared.toml").write_text(SHARED)
    done = subprocess.run([sys.executable, "-m", "pairsearch", "run", "shared.toml",
                           "--workers", "2", "--no-progress", "--device", "cpu",
                           "--out", "rep"], capture_output=True, text=True, cwd=tmp_path,
                          timeout=600)
    assert done.returncode == 0, done.stderr
    storage = f"sqlite:///{tmp_path / 'studies.db'}"

    def trials(name: str) -> list:
        return optuna.load_study(study_name=name, storage=storage).get_trials(deepcopy=False)

    grid = trials("shared-grid")
    complete = [str(sorted(t.params.items())) for t in grid if t.state == TrialState.COMPLETE]
    assert len(complete) == 12 and len(set(complete)) == 12  # every cell once
    # Which processes trained cells is up to the scheduler: on a fast machine the parent
    # can finish the grid before the second interpreter has imported torch (CI did), so
    # only correctness is asserted here; benchmarks/workers.py measures the speed-up.
    workers = {t.user_attrs["worker"] for t in grid
               if t.state == TrialState.COMPLETE and "reused_from" not in t.user_attrs}
    assert 1 <= len(workers) <= 2
    assert not [t for s in ("shared-grid", "shared-grid-retest", "shared-test", "shared-genetic",
                            "shared-tpe") for t in trials(s)
                if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    retest = optuna.load_study(study_name="shared-grid-retest", storage=storage)
    assert len([t for t in retest.trials if t.state == TrialState.COMPLETE]) == 2
    assert retest.user_attrs["chosen"]["test_accuracies"]
    assert len(trials("shared-genetic")) == 8  # one owner: 2 generations of 4
    assert len([t for t in trials("shared-tpe") if t.state != TrialState.WAITING]) <= 5
    assert (tmp_path / "rep" / "shared.md").exists()


def test_an_owned_stage_is_waited_for(monkeypatch):
    from pairsearch.errors import StudyOwned
    from pairsearch.experiments import running

    monkeypatch.setattr(running, "OWNER_POLL_SECONDS", 0.0)
    attempts, lines = [], []

    def run():
        attempts.append(1)
        if len(attempts) < 3:
            raise StudyOwned("genetic study 'g' is being run by host:1")
        return "summary"

    assert running._run_owned(run, running.NEVER, lines.append) == "summary"
    assert len(attempts) == 3 and lines == ["waiting: genetic study 'g' is being run by host:1"]


def test_every_quick_stage_has_cells():
    # A quick space whose cells all miss the stage's parameter budget leaves the stage
    # empty and every stage built on it without a base (report003 --quick once did).
    storage = optuna.storages.InMemoryStorage()
    for name in list_experiments():
        experiment = load_experiment(name, quick=True)
        for stage in experiment.stages:
            if stage.kind == "retest" or stage.get("base") or stage.get("best_of") or \
                    reads_trials_of(stage):
                continue
            space = stage_space(experiment, stage, storage, {})
            assert next(space.cells(), None) is not None, (name, stage.name)


def test_every_companion_row_stands_beside_a_faithful_row():
    from pairsearch.experiments import reproduction_rows
    from pairsearch.experiments.tables import faithful_key

    storage = optuna.storages.InMemoryStorage()  # no study: every row "not run"
    for name in list_experiments():
        companion = load_experiment(name)
        if companion.companion_of is None:
            continue
        faithful = {(row["stage"], row["row"]) for row in
                    reproduction_rows(load_experiment(companion.companion_of), storage)}
        for row in reproduction_rows(companion, storage):
            assert faithful_key(row) in faithful, (name, row["stage"], row["row"])



SMOKE = """
description = "a stated budget and a smaller smoke budget"

[defaults]
epochs = 2
train_pairs = 120
test_pairs = 60

[quick]
epochs = 1
train_pairs = 60
test_pairs = 40

[[stages]]
name = "test"
kind = "test"
repeats = 2
quick = { repeats = 1 }
variants = { flat = { model = "mlp", hidden = "16" } }
# A figure no 2-epoch run reaches: a judged row reads "below".
reported = { flat = { mean = 99.9, std = 0.01 } }

[[stages]]
name = "own-epochs"
kind = "test"
repeats = 1
variants = { long = { model = "mlp", hidden = "16", epochs = 3 } }
reported = { long = { mean = 99.9, std = 0.01, ablates = "test/flat" } }

[[stages]]
name = "grid"
kind = "grid"
folds = 2
variants = { flat = { model = "mlp", hidden = "16" } }
params = { lr = [0.01] }

[[stages]]
name = "grid-retest"
kind = "retest"
of = "grid"
top = 1
folds = 3
repeats = 2
quick = { folds = 2, repeats = 1 }
reported = { chosen = { mean = 99.9, std = 0.01 } }
"""


def test_a_quick_table_judges_nothing_against_the_report(tmp_path, capsys):
    from pairsearch.cli import main
    from pairsearch.experiments import reproduction_rows
    from pairsearch.experiments.tables import stated_budget

    path = tmp_path / "smoke.toml"
    path.write_text(SMOKE)
    url = f"sqlite:///{tmp_path / 's.db'}"
    common = [str(path), "--storage", url, "--device", "cpu", "--no-progress"]
    assert main(["run", *common, "--quick"]) == 0
    capsys.readouterr()
    assert main(["run", *common, "--quick", "--table"]) == 0
    table = capsys.readouterr().out
    assert "quick" in table and "outside 2σ" not in table
    assert "below" not in table and "within" not in table and "above" not in table
    # Read from what the studies stored, not from the flag: the same smoke studies read
    # without --quick (their prefix named) are still smoke runs, row by row.
    storage = open_storage(url)
    full = load_experiment(str(path))
    as_stored = load_experiment(str(path), prefix="smoke-quick")
    rows = reproduction_rows(as_stored, storage)
    assert [r["verdict"] for r in rows] == ["quick", "quick", "quick"]
    assert rows[0]["reduced"] == ["epochs 1 < 2", "train_pairs 60 < 120",
                                  "test_pairs 40 < 60", "repeats 1 < 2"]
    assert rows[2]["reduced"] == ["folds 2 < 3", "test_repeats 1 < 2", "epochs 1 < 2",
                                  "train_pairs 60 < 120", "test_pairs 40 < 60"]
    assert rows[0]["mean"] is not None and rows[0]["note"].startswith("quick: a smoke run")
    # A stage whose cells set their own epochs states the fewest of them.
    assert stated_budget(full.stages[1])["epochs"] == 3 and "epochs 1 < 3" in rows[1]["reduced"]
    assert gap_summary(rows) == []  # no status either
    # The stated budget, run: judged against the report, whatever the command line says.
    assert main(["run", *common]) == 0
    capsys.readouterr()
    judged = reproduction_rows(full, storage)
    assert [r["verdict"] for r in judged] == ["below"] * 3
    assert [r["reduced"] for r in judged] == [[]] * 3
    assert main(["run", *common, "--quick", "--prefix", "smoke", "--table"]) == 0
    assert "below" in capsys.readouterr().out


DIGIT_LOSS_ROWS = ["model_1_aux2", "model_1_ws_aux", "model_2_aux2", "model_2_ws_aux"]


def test_report000_digit_loss_networks_compare_the_digits_probabilities():
    # The faithful grid reads "some chosen probability distribution of the two digits":
    # each digit's softmax into one Linear(20, 2), for the four digit-loss networks only.
    from pairsearch.models import count_parameters, create_model

    experiment = load_experiment("report000")
    stages = {s.name: s for s in experiment.stages}
    grid = stage_space(experiment, stages["grid"], None, {})
    first = {k: v[0] for k, v in grid.params.items() if k != "variant"}
    heads = {v: grid.config({**first, "variant": v}).model_options.get("head")
             for v in grid.variants}
    assert {v for v, head in heads.items() if head == "probs_linear"} == set(DIGIT_LOSS_ROWS)
    assert {heads[v] for v in heads if v not in DIGIT_LOSS_ROWS} <= {None, "logits_linear"}
    config = grid.config({**first, "variant": "model_1_ws_aux"})
    assert count_parameters(create_model(config.model, **config.model_options)) == 20_820
    reported = stages["test"].get("reported")
    assert all("ablates" not in reported[v] for v in DIGIT_LOSS_ROWS)  # faithful rows
    assert "probability distribution of the two digits" in str(stages["test"].get("description"))


def test_report000_logits_reading_is_the_ablation_and_differs_only_in_the_head():
    experiment = load_experiment("report000")
    stages = {s.name: s for s in experiment.stages}
    grid, test = stages["grid-logits-linear"], stages["test-logits-linear"]
    space = stage_space(experiment, grid, None, {})
    report_grid = stage_space(experiment, stages["grid"], None, {})
    searched = {k: v for k, v in space.params.items() if k != "variant"}
    assert searched == {k: v for k, v in report_grid.params.items() if k != "variant"}
    assert searched and grid.get("folds") == 5  # the report's own grid, for each model
    assert sorted(space.variants) == DIGIT_LOSS_ROWS
    first = {k: v[0] for k, v in searched.items()}
    for variant in space.variants:
        config = space.config({**first, "variant": variant})
        faithful = report_grid.config({**first, "variant": variant})
        assert faithful.model_options["head"] == "probs_linear"
        assert config.model == faithful.model and config.model_options == {
            **faithful.model_options, "head": "logits_linear"}  # only the head differs
        assert config.train == faithful.train
        assert test.get("reported")[variant]["ablates"] == f"test/{variant}"
    assert test.get("best_of") == "grid-logits-linear"


@pytest.mark.parametrize("stage_name, mirrored", [
    ("last-layer-probabilities", "architectures"),
    ("comparison-probabilities", "activation-optimizer")])
def test_report001_probabilities_reading_changes_only_the_last_layers_input(stage_name,
                                                                           mirrored):
    experiment = load_experiment("report001")
    stages = {s.name: s for s in experiment.stages}
    space = stage_space(experiment, stages[stage_name], None, {})
    source = stage_space(experiment, stages[mirrored], None, {})
    for row, figures in stages[stage_name].get("reported").items():
        assert figures["ablates"] == f"{mirrored}/{row}"
        assert figures["error"] == stages[mirrored].get("reported")[row]["error"]
        cell = dict(zip(["variant", *sorted(k for k in space.params if k != "variant")],
                        row.split("/")))
        cell = {k: type(space.params[k][0])(v) if k != "variant" else v
                for k, v in cell.items()}
        ours, faithful = space.config(cell), source.config(cell)
        assert ours.model == faithful.model and ours.train == faithful.train
        assert ours.model_options == {**faithful.model_options, "head": "probs_linear"}
