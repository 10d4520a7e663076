"""Errors a user can cause, each one printable as a single actionable line.

Deep code raises a subclass of :class:`TinyMLError`; the front ends (CLI,
PlatformIO extra-script, SCons tool) catch the base class and print
``str(err)`` once. Anything else escaping is a bug in this tool.
"""

from __future__ import annotations


class TinyMLError(Exception):
    """Base class: ``what`` failed, ``where`` (file, option, op) and a ``hint``."""

    def __init__(self, what: str, where: str | None = None, hint: str | None = None):
        self.what = what
        self.where = where
        self.hint = hint
        super().__init__(self.format())

    def format(self) -> str:
        text = f"{self.where}: {self.what}" if self.where else self.what
        if self.hint:
            text += f". {self.hint}"
        return text


def one_line(text: str) -> str:
    """``text`` with line breaks and other control characters escaped: messages quote
    model-controlled names, and an error must stay one line (no forged log lines)."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape", "backslashreplace").decode("ascii")
                   for c in text)


class ModelError(TinyMLError):
    """The model file cannot be read or uses something we cannot compile.

    Its messages quote names from the model file, so they are made :func:`one_line`."""

    def format(self) -> str:
        return one_line(super().format())


class UnsupportedOpError(ModelError):
    """An operator (or a dtype/shape of one) no kernel implements."""

    def __init__(self, model: str, op_index: int, op_name: str, detail: str,
                 supported: list[str] | tuple[str, ...]):
        self.op_index = op_index
        self.op_name = op_name
        super().__init__(
            f"operator #{op_index} {op_name} is not supported ({detail})",
            where=model,
            hint="Supported operators: " + ", ".join(sorted(supported)),
        )


class DeviceError(TinyMLError):
    """The target board cannot be found or its manifest is unusable."""


class CompileError(TinyMLError):
    """A backend failed on a model it said it supports."""


class VerificationError(TinyMLError):
    """Generated code disagrees with the reference interpreter."""


class MemoryBudgetError(TinyMLError):
    """Firmware plus model does not fit the board's flash or RAM."""
