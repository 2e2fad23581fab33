"""Model zoo for the digit-pair task, registered by name (see ``list_models()``).

``generic``: the generic networks (options, no one report's text); ``reports``: each
report's own networks, one module per report; ``blocks``: the layers they are built of;
``ensemble``: several copies of one network trained at once.
"""

from pairsearch.models import generic as _generic  # noqa: F401  (registers the models)
from pairsearch.models import reports as _reports  # noqa: F401
from pairsearch.models.blocks import ModelOutput, count_parameters
from pairsearch.models.registry import (
    ModelEntry,
    create_model,
    list_models,
    model_entry,
    register_model,
    resolve_options,
)

__all__ = ["ModelEntry", "ModelOutput", "count_parameters", "create_model", "list_models",
           "model_entry", "register_model", "resolve_options"]
