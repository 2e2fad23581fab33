"""The one exception type the command line turns into a one-line error and exit code 2."""


class PairsearchError(ValueError):
    """A bad input from the user: unknown name, bad value, missing data source, ..."""
