"""The reports' own networks, one module per report, where no generic model reproduces them.

- ``report000``: ``r000_cnn``, ``r000_cnn_aux1``, ``r000_cnn_aux1_digits``, ``r000_ws``,
  ``r000_aux2``, ``r000_ws_aux`` (model_0 is the generic ``mlp``);
- ``report001``: ``r001_cnn``, ``r001_cnn_aux``, ``r001_siamese_aux`` (its FNNs are the
  generic ``mlp``);
- report 002 has no module: its naive, Model1-4 networks are the generic ``naive``,
  ``siamese``, ``twin_aux``, ``twin`` and ``siamese_aux`` with ReLU (its "Linear/ReLU output
  layers" on the branches' probabilities are our probability head);
- ``report003``: ``r003_mlp``, ``r003_mlp_ws``, ``r003_mlp_ws_aux``, ``r003_cnn``,
  ``r003_cnn_ws``, ``r003_cnn_ws_aux``;
- ``report004``: ``r004_siamese_cnn``, ``r004_siamese_cnn3``, ``r004_rnn`` and its Best Model
  ``deep_aux`` (its baseline and linear siamese networks are the generic ``mlp``, ``twin``
  and ``siamese``; that module's docstring gives their options).

Each builder quotes the sentences it implements. Where a report leaves a detail open (a
kernel size, a width, a dropout rate), the builder says what we chose; where its printed
parameter count contradicts its printed layers, we follow the layers (the tests in
tests/models/test_reports.py pin every count). Some builders also take options that are
ours, not the report's (``head=probs_mlp``, the probability head, above all); each says so,
and says which values are the report's. Importing this package registers every model.
"""

from pairsearch.models.reports import report000, report001, report003, report004  # noqa: F401
from pairsearch.models.reports.common import UNSTATED_DROPOUT, FeaturePairNet
from pairsearch.models.reports.report000 import R000Aux1
from pairsearch.models.reports.report003 import SigmoidPair

__all__ = ["FeaturePairNet", "R000Aux1", "SigmoidPair", "UNSTATED_DROPOUT"]
