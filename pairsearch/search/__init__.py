"""Search strategies over evaluator configurations, stored as Optuna studies.

The layout follows one trial's life:

- ``types``: the shared vocabulary (settings, proposals, outcomes, cell keys).
- ``strategies/``: one file per strategy (grid, TPE, successive halving, report 002's
  genetic algorithm on DEAP, report 002's retest); a strategy only proposes cells and
  observes finished trials. ``strategies.create_strategy`` is the one registry the CLI
  and the experiment files use.
- ``driver``: the one loop, and the only place that tells the study: recover dead
  trials → ask → claim → evaluate → handle interruptions → tell.
- ``trial_evaluator``: the bridge to ``pairsearch.evaluation`` (reuse cache, data and
  device); it returns outcomes and never tells.
- ``workers``: liveness of trials and worker processes (heartbeats, leases, spawning).
- ``store/``: the study store (Optuna storage URLs, the study's protocol) and every query
  of what a stored trial is (``store.queries``) and the tables made of them.
- ``space``, ``compare``, ``plots``, ``markdown``: search spaces, the paired test between
  candidates, plots and Markdown summaries.
"""
