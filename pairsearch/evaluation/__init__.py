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

__all__ = ["Config", "Evaluation", "LOSSES", "Protocol", "RunScore", "TrainConfig", "evaluate",
           "resolve_device", "run_seed", "stratified_folds", "train_options"]
