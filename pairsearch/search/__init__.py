"""Search strategies (grid, TPE, genetic algorithm) over evaluator configurations."""

import warnings

# We drive trials with ask/tell and record heartbeats ourselves (search.workers);
# Optuna warns about both on every trial.
warnings.filterwarnings("ignore", message=".*heartbeat_interval.*is an experimental feature")
warnings.filterwarnings("ignore", message=".*grace_period.*is an experimental feature")
warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used with")
warnings.filterwarnings("ignore", message=".*fail_stale_trials is experimental")
