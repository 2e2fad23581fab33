"""Evaluator of one configuration: training options, losses, folds and scores."""

from pairsearch.evaluation.config import Config, TrainConfig, train_options
from pairsearch.evaluation.evaluator import (
    Evaluation,
    Protocol,
    RunScore,
    evaluate,
    resolve_device,
    run_seed,
)
from pairsearch.evaluation.folds import stratified_folds
from pairsearch.evaluation.losses import LOSSES
from pairsearch.evaluation.precision import PRECISIONS, resolve_precision

__all__ = ["Config", "Evaluation", "LOSSES", "PRECISIONS", "Protocol", "RunScore", "TrainConfig",
           "evaluate", "resolve_device", "resolve_precision", "run_seed", "stratified_folds",
           "train_options"]
