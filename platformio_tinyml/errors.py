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
        self.supported = tuple(sorted(supported))
        super().__init__(
            f"operator #{op_index} {op_name} is not supported ({detail})",
            where=model,
            hint="Supported operators: " + ", ".join(self.supported),
        )

    def brief(self) -> str:
        """The message with the supported operators shortened to the first few (the CLI's
        ``--explain`` prints them all)."""
        if len(self.supported) <= BRIEF_OPS:
            return str(self)
        head = f"{self.where}: {self.what}" if self.where else self.what
        return one_line(f"{head}. Supported operators: {', '.join(self.supported[:BRIEF_OPS])}, ... "
                        f"({len(self.supported)} in all; --explain lists them)")


BRIEF_OPS = 10          # supported operators named in a brief refusal
BRIEF_REASON = 170      # characters of one backend's reasons in a brief "no backend" line


class DeviceError(TinyMLError):
    """The target board cannot be found or its manifest is unusable."""


class CompileError(TinyMLError):
    """A backend failed on a model it said it supports."""


class NoBackendError(CompileError):
    """No backend can take the model; ``reasons`` holds every backend's reasons in full."""

    def __init__(self, board: str, reasons: dict[str, tuple[str, ...]], where: str | None = None):
        self.reasons = {name: tuple(why) for name, why in reasons.items()}
        parts = "; ".join(f"{name}: {_brief_reason(why, where)}" for name, why in self.reasons.items())
        super().__init__(f"no backend can compile this model for board '{board}' ({parts})", where=where,
                         hint="`tinyml compare` (or --explain) shows every backend's reasons in full")

    def explain(self) -> str:
        """Every backend's reasons, one line each, after the message."""
        rows = [str(self)]
        for name, why in self.reasons.items():
            rows += [f"  {name}: {one_line(r)}" for r in why or ("not supported",)]
        return "\n".join(rows)


def _brief_reason(reasons: tuple[str, ...], where: str | None) -> str:
    """A backend's reasons, without the model path and the list of supported operators, cut short."""
    parts = []
    for text in reasons or ("not supported",):
        if where and text.startswith(f"{where}: "):
            text = text[len(where) + 2:]
        parts.append(text.split(". Supported operators:")[0])
    text = " / ".join(parts)
    return text if len(text) <= BRIEF_REASON else text[:BRIEF_REASON - 3].rstrip() + "..."


class VerificationError(TinyMLError):
    """Generated code disagrees with the reference interpreter."""


class MemoryBudgetError(TinyMLError):
    """Firmware plus model does not fit the board's flash or RAM."""
