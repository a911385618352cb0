"""The project's error types: every bad input becomes one of these, with a message that
names the culprit, so the CLI can print one line and the scheduler can log one line."""


class ArmCpuFilterError(Exception):
    """Base class: an expected failure with a user-facing message."""


class InputError(ArmCpuFilterError, ValueError):
    """Malformed or invalid input (snapshot, definition, model file, property, XML...)."""


class UnknownNameError(InputError, KeyError):
    """A register, field, property, value or model name that does not exist."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""
