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


class MissingExtra(ArmCpuFilterError, ImportError):
    """A feature's package is not installed: the message ends with the pip line that installs it
    (``extra`` None: a core dependency, so the plain install repairs it).  Still an ImportError
    (``name`` is the missing module), so a caller that can do without the feature may catch it."""

    def __init__(self, feature: str, package: str, extra: str | None, module: str | None = None) -> None:
        self.feature, self.package, self.extra = feature, package, extra
        self.pip = f"pip install 'arm-cpu-filter[{extra}]'" if extra else "pip install arm-cpu-filter"
        super().__init__(f"{feature} needs {package}: {self.pip}")
        self.name = module
