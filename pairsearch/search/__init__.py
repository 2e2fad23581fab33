"""Search strategies (grid, TPE, genetic algorithm) over evaluator configurations."""
