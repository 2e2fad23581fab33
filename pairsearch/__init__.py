"""pairsearch: hyperparameter and architecture search for the digit-pair comparison task.

Layers, each a subpackage or module that only uses the ones before it:
``data`` (pairs of MNIST digits) → ``models`` (registry of pair networks) →
``evaluation`` (k-fold / test-protocol evaluator) → ``search`` → ``cli``.
"""

__version__ = "0.1.0"
