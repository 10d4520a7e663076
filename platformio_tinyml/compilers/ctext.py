"""The only way model- or user-controlled text gets into generated C/C++.

A model file is untrusted input: its graph, node and tensor names, a
scikit-learn estimator's class labels, the model's file name and the
numbers in its weights all end up near generated code. Every backend
(and anything else that writes C) puts such text into C only through one
of these functions:

* :func:`c_prefix` checks the API prefix (the user's ``name`` option);
  :func:`c_identifier` derives a valid, non-reserved identifier from any
  text (a file name, say). Model names are never used as identifiers.
* :func:`c_comment_text`: text for inside a ``/* */`` or ``//`` comment:
  printable ASCII, no comment delimiters, no line splices, no trigraphs,
  bounded length.
* :func:`c_string_literal`: a complete, quoted C string literal.
* :func:`c_float`: a finite float as a C literal; NaN and infinities are
  refused with one line, never written as text.

Generated code is compiled with ``-std=c99`` (trigraphs on) and
``-Wall -Werror`` (``/*`` inside a comment is an error), so "harmless"
characters are escaped too.
"""

from __future__ import annotations

import math
import re
import struct

from ..errors import CompileError

MAX_PREFIX = 40

# C11/C23 and C++ keywords (tflm's glue is C++, and firmware includes our headers
# from C++), plus names that would clash with the C runtime or ours.
C_RESERVED = frozenset("""
auto break case char const continue default do double else enum extern float for goto if inline int
long register restrict return short signed sizeof static struct switch typedef union unsigned void
volatile while _Alignas _Alignof _Atomic _Bool _Complex _Generic _Imaginary _Noreturn _Static_assert
_Thread_local alignas alignof bool constexpr false nullptr static_assert thread_local true typeof
typeof_unqual _BitInt _Decimal32 _Decimal64 _Decimal128
and and_eq asm bitand bitor catch char8_t char16_t char32_t class co_await co_return co_yield compl
concept consteval constinit const_cast decltype delete dynamic_cast explicit export friend mutable
namespace new noexcept not not_eq operator or or_eq private protected public reinterpret_cast
requires static_cast template this throw try typeid typename using virtual wchar_t xor xor_eq
main
""".split())
# The generated header is NAME.h beside the runtime: a name that is a C library header's (or
# the Arm intrinsics') would shadow it for every `#include <...>` in that folder.
C_HEADERS = frozenset("""
assert complex ctype errno fenv float inttypes iso646 limits locale math setjmp signal stdalign stdarg
stdatomic stdbit stdbool stdckdint stddef stdint stdio stdlib stdnoreturn string tgmath threads time uchar
wchar wctype arm_acle arm_math arm_neon arm_mve
""".split())
_RESERVED_PREFIXES = ("tml_", "eml_")   # our runtime's and emlearn's symbols
_IDENT = re.compile(r"[A-Za-z][A-Za-z0-9_]*")


def _prefix_problem(name: str) -> str | None:
    if not isinstance(name, str) or not _IDENT.fullmatch(name):
        return "use letters, digits and '_', starting with a letter"
    if len(name) > MAX_PREFIX:
        return f"at most {MAX_PREFIX} characters"
    if "__" in name:
        return "no '__' (reserved in C++)"
    if name in C_RESERVED:
        return "not a C/C++ keyword"
    if name.lower() in C_HEADERS:
        return f"not the name of a C library header ({name}.h would hide <{name.lower()}.h>)"
    if name.lower().startswith(_RESERVED_PREFIXES):
        return f"not starting with {', '.join(repr(p) for p in _RESERVED_PREFIXES)} (runtime names)"
    return None


def c_prefix(name: str, where: str | None = None) -> str:
    """``name`` (the user's ``name`` option) if it can prefix the generated C symbols,
    else a :class:`CompileError` saying why. Every symbol we generate is ``name``
    followed by ``_`` and our own text, and ``NAME`` is used for macros."""
    problem = _prefix_problem(name)
    if problem:
        raise CompileError(f"model name {c_comment_text(str(name), limit=60)!r} is not usable as a C "
                           "identifier prefix", where=where, hint=f"Choose a name: {problem}")
    return name


def c_identifier(text: str, *, fallback: str = "model", max_len: int = MAX_PREFIX) -> str:
    """A valid, non-reserved C/C++ identifier derived from ``text`` (a file name, say):
    other characters become ``_``, runs of ``_`` shrink to one, ``m_`` goes before a
    leading digit or a runtime prefix, ``_m`` after a keyword; ``fallback`` (itself an
    identifier) when nothing is left.

    >>> c_identifier("kws ref-model"), c_identifier("1x"), c_identifier("int"), c_identifier("*/")
    ('kws_ref_model', 'm_1x', 'int_m', 'model')
    >>> c_identifier("math")       # math.h would hide <math.h>
    'math_m'
    """
    s = re.sub(r"_+", "_", re.sub(r"[^A-Za-z0-9_]", "_", str(text))).strip("_") or fallback
    if not s[0].isalpha() or s.lower().startswith(_RESERVED_PREFIXES):
        s = "m_" + s
    s = s[:max_len - 2].rstrip("_")
    return s + "_m" if s in C_RESERVED or s.lower() in C_HEADERS else s


def _as_bytes(text: str | bytes) -> bytes:
    if isinstance(text, (bytes, bytearray)):
        return bytes(text)
    return str(text).encode("utf-8", errors="surrogateescape")


def c_comment_text(text: str | bytes, limit: int = 80) -> str:
    r"""``text`` made safe inside a C comment (``/* ... */`` or ``// ...``), on one line.

    Printable ASCII stays, except: ``*`` and ``\`` are written ``\x2a`` / ``\x5c``
    (so no ``*/``, ``/*`` or line splice can form), a second ``?`` in a row is
    ``\x3f`` (no trigraph), a ``/`` at either end is ``\x2f`` (it could meet the
    delimiter around the text); every other byte (newlines, non-ASCII UTF-8, invalid
    bytes) is ``\xNN``. Longer than ``limit`` characters: cut, with ``...``.

    >>> print(c_comment_text("a */ b\n#define x ??/"))
    a \x2a/ b\x0a#define x ?\x3f\x2f
    """
    out: list[str] = []
    n = 0
    raw = _as_bytes(text)
    for i, b in enumerate(raw):
        ch = chr(b)
        edge = ch == "/" and (i == 0 or i == len(raw) - 1)
        prev_q = i > 0 and raw[i - 1] == ord("?")
        safe = 0x20 <= b < 0x7F and ch not in "*\\" and not edge and not (ch == "?" and prev_q)
        piece = ch if safe else f"\\x{b:02x}"
        if n + len(piece) > limit:
            out.append("...")
            break
        out.append(piece)
        n += len(piece)
    return "".join(out)


def is_comment_safe(text: str) -> bool:
    """True if ``text`` can stand inside a comment as it is: what :func:`c_comment_text`
    returns always is. Writers that assemble comment lines check them with this."""
    return (all(0x20 <= ord(c) < 0x7F for c in text) and "*/" not in text and "/*" not in text
            and "??" not in text and not text.endswith("\\"))


_STRING_ESCAPES = {ord('"'): '\\"', ord("\\"): "\\\\", ord("?"): "\\?", ord("\n"): "\\n", ord("\t"): "\\t"}


def c_string_literal(text: str | bytes) -> str:
    r"""A complete C (and C++) string literal holding the bytes of ``text`` (UTF-8).

    ``"``, ``\``, ``?`` (trigraphs) and control characters are escaped; bytes
    outside printable ASCII become 3-digit octal escapes, which never swallow the
    characters after them.

    >>> print(c_string_literal('a"b\\??/\n\xff'))
    "a\"b\\\?\?/\n\303\277"
    """
    parts = []
    for b in _as_bytes(text):
        if b in _STRING_ESCAPES:
            parts.append(_STRING_ESCAPES[b])
        elif 0x20 <= b < 0x7F:
            parts.append(chr(b))
        else:
            parts.append(f"\\{b:03o}")
    return '"' + "".join(parts) + '"'


def c_float(value, *, what: str = "a number", double: bool = False) -> str:
    """The exact C literal of ``value`` as a float32 (``1.5f``) or, with ``double``, a
    double (``1.5``). NaN and infinities raise a one-line :class:`CompileError`: C has
    no portable literal for them, and a model that holds them is broken."""
    v = float(value)
    if not double and math.isfinite(v):
        try:
            v = struct.unpack("<f", struct.pack("<f", v))[0]      # round to float32
        except OverflowError:                                   # beyond float32's range
            v = math.copysign(math.inf, v)
    if not math.isfinite(v):
        raise CompileError(f"{what} is {v}, which generated C cannot hold",
                           hint="The model is damaged or was trained into NaN/Inf; fix or re-export it")
    s = repr(v)
    if "e" not in s and "." not in s:
        s += ".0"
    return s if double else s + "f"
