"""Search strategies over evaluator configurations, stored as Optuna studies.

One loop (``driver``) runs every search: it recovers dead trials, asks the strategy for
cells, has the runner evaluate them and tells the study. The strategies only propose:
``strategies`` (grid, TPE), ``halving`` (successive halving of the grid),
``genetic`` (report 002's genetic algorithm on DEAP), ``retest`` (report 002's second
stage).
"""
