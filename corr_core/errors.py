"""Exceptions with messages that name the offending input.

Every error raised for bad user input derives from :class:`CorrError`, so the CLI and the ROS
node can report it cleanly (one line, no traceback) and keep going where that makes sense.
"""


class CorrError(Exception):
    """Base class for all errors about user input, files, or configuration."""


class DataError(CorrError):
    """A data file or folder is missing, unreadable, or malformed (the message names it)."""


class CorruptBagError(DataError):
    """A rosbag2 file is truncated or otherwise unreadable."""


class UnknownEncodingError(DataError):
    """An image message uses an encoding that corr cannot decode."""


class ShapeMismatchError(DataError):
    """Two arrays that must have the same size do not (the message gives both sizes)."""


class MissingCameraError(DataError):
    """A camera named in the configuration never produced data."""


class CheckpointError(CorrError):
    """A checkpoint is missing, unreadable, or was written for a different model."""


class ConfigError(CorrError):
    """A configuration value is missing, has the wrong type, or is out of range."""


class TrainingError(CorrError):
    """Training cannot continue (for example the loss became NaN or infinite)."""


class ExportError(CorrError):
    """Exporting a model failed, or the exported model does not reproduce the original."""
