"""The project's own error types: each carries a one-line message meant for a user."""


class FmnistError(Exception):
    """Base class: the CLI prints ``str(err)`` as one line and exits non-zero."""


class DataError(FmnistError):
    """Missing, truncated or corrupt data files."""


class ChoiceError(FmnistError, ValueError):
    """An unknown name where a registry lists the valid ones."""


class ParamError(FmnistError, ValueError):
    """A parameter with a value outside its valid range."""


class WeightsError(FmnistError):
    """Pretrained weights that cannot be found or loaded."""


class CacheError(FmnistError):
    """A cached artifact that does not match what the caller expects."""
