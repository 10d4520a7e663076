"""cgen: the project's own C code generator (portable C99, static arena)."""
from .emit import Generated, generate, runtime_text, write_output

__all__ = ["Generated", "generate", "runtime_text", "write_output"]
