"""Evaluator of one configuration: training options, losses, folds and scores."""

from pairsearch.evaluation.config import Config, TrainConfig, ignored_train_options, train_options
from pairsearch.evaluation.evaluator import (
    Evaluation,
    Protocol,
    RunScore,
    evaluate,
    evaluate_many,
    resolve_device,
)
from pairsearch.evaluation.folds import stratified_folds
from pairsearch.evaluation.losses import LOSSES, LossRecipe
from pairsearch.evaluation.precision import resolve_precision
from pairsearch.evaluation.state import RunState, TrainingState
from pairsearch.names import PRECISIONS

__all__ = ["Config", "Evaluation", "LOSSES", "LossRecipe", "PRECISIONS", "Protocol", "RunScore",
           "RunState", "TrainConfig", "TrainingState", "evaluate", "evaluate_many", "ignored_train_options", "resolve_device",
           "resolve_precision", "stratified_folds", "train_options"]
