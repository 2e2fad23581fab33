"""The trial evaluator: verdicts for asked trials, reuse of stored results, never a tell."""

from __future__ import annotations

from dataclasses import replace

import optuna
import pytest
from optuna.trial import TrialState

from pairsearch.errors import PairsearchError
from pairsearch.names import Attr
from pairsearch.search.driver import ask
from pairsearch.search.trial_evaluator import TrialEvaluator
from pairsearch.search.types import Proposal


def _bound(storage, space, settings, name="e"):
    study = optuna.create_study(study_name=name, storage=storage, direction="maximize")
    return study, TrialEvaluator(space, settings).bind(study, storage)


def _asked(study, space, evaluator, cell, proposal=None):
    study.enqueue_trial(cell)
    trial = ask(study, space)
    proposal = proposal or Proposal(cell)
    evaluator.label(trial, proposal)
    return trial, proposal


def test_it_returns_verdicts_and_never_tells(storage, tiny_space, tiny):
    space = tiny_space(model=["mlp"], lr=[0.001])
    study, evaluator = _bound(storage, space, tiny)
    cell = {"model": "mlp", "lr": 0.001}
    (verdict,) = evaluator.evaluate([_asked(study, space, evaluator, cell)])
    assert verdict.state == TrialState.COMPLETE and verdict.trained
    assert verdict.value == pytest.approx(sum(verdict.attrs[Attr.ACCURACIES]) / 2)
    assert verdict.attrs[Attr.BUDGET] == 1 and verdict.attrs[Attr.CONFIG_KEY]
    (trial,) = study.get_trials(deepcopy=False)
    assert trial.state == TrialState.RUNNING  # the driver tells, not the evaluator
    assert trial.user_attrs[Attr.WORKER]  # labelled while it runs


def test_a_configuration_in_the_study_is_reused_not_trained(storage, tiny_space, tiny,
                                                            monkeypatch):
    import pairsearch.search.trial_evaluator as module

    space = tiny_space(model=["mlp"], lr=[0.001], **{"lambda": [0.5, 1.0]})
    study, evaluator = _bound(storage, space, tiny)
    first = _asked(study, space, evaluator, {"model": "mlp", "lr": 0.001, "lambda": 0.5})
    (verdict,) = evaluator.evaluate([first])
    study.tell(first[0], verdict.value)
    monkeypatch.setattr(module, "evaluate", lambda *a, **k: pytest.fail("trained again"))
    # mlp reads no lambda: another lambda is the same configuration.
    second = _asked(study, space, evaluator, {"model": "mlp", "lr": 0.001, "lambda": 1.0})
    (again,) = evaluator.evaluate([second])
    assert not again.trained and again.value == verdict.value
    assert again.attrs[Attr.REUSED_FROM] == first[0].number
    assert again.attrs[Attr.ACCURACIES] == verdict.attrs[Attr.ACCURACIES]


def test_a_budget_below_the_protocols_is_a_low_budget_result(storage, tiny_space, tiny):
    settings = replace(tiny, epochs=2)
    space = tiny_space(model=["mlp"], lr=[0.001])
    study, evaluator = _bound(storage, space, settings)
    cell = {"model": "mlp", "lr": 0.001}
    low = _asked(study, space, evaluator, cell, Proposal(cell, epochs=1))
    (verdict,) = evaluator.evaluate([low])
    # PRUNED, kept apart from the best; its value is reported (a pruned trial's value).
    assert verdict.state == TrialState.PRUNED and verdict.report == verdict.value
    full = _asked(study, space, evaluator, cell, Proposal(cell, epochs=2))
    (verdict,) = evaluator.evaluate([full])
    assert verdict.state == TrialState.COMPLETE and verdict.trained  # another budget


def test_an_error_inside_a_trial_is_a_failed_result(storage, tiny_space, tiny, monkeypatch):
    import pairsearch.search.trial_evaluator as module

    def out_of_memory(*args, **kwargs):
        raise RuntimeError("CUDA out of memory")

    monkeypatch.setattr(module, "evaluate", out_of_memory)
    space = tiny_space(model=["mlp"], lr=[0.001])
    study, evaluator = _bound(storage, space, tiny)
    (verdict,) = evaluator.evaluate([_asked(study, space, evaluator,
                                            {"model": "mlp", "lr": 0.001})])
    assert verdict.state == TrialState.FAIL and verdict.value is None
    assert "CUDA out of memory" in verdict.attrs[Attr.FAIL_REASON]


@pytest.mark.parametrize("error", [KeyboardInterrupt, PairsearchError])
def test_an_interruption_propagates_untold(storage, tiny_space, tiny, monkeypatch, error):
    import pairsearch.search.trial_evaluator as module

    def interrupted(*args, **kwargs):
        raise error("stop")

    monkeypatch.setattr(module, "evaluate", interrupted)
    space = tiny_space(model=["mlp"], lr=[0.001])
    study, evaluator = _bound(storage, space, tiny)
    with pytest.raises(error):
        evaluator.evaluate([_asked(study, space, evaluator, {"model": "mlp", "lr": 0.001})])
    assert study.get_trials(deepcopy=False)[0].state == TrialState.RUNNING


def test_bad_settings_are_refused_at_construction(tiny_space, tiny):
    with pytest.raises(PairsearchError, match="cannot draw 5000 train pairs"):
        TrialEvaluator(tiny_space(), replace(tiny, train_pairs=5000))
    with pytest.raises(PairsearchError, match="'epochs' dimension"):
        TrialEvaluator(tiny_space(model=["mlp"], epochs=[1, 2]), tiny)


def test_measure_scores_a_cell_outside_any_trial(tiny_space, tiny):
    evaluator = TrialEvaluator(tiny_space(), replace(tiny, kind="test", repeats=2))
    evaluation = evaluator.measure({"model": "mlp", "lr": 0.001})
    assert len(evaluation.accuracies) == 2 and evaluation.failed is None
