"""Which devices a deployment targets: endpoint names, tags, and a small capability query language.

A query such as ``ram >= 20000 and kernel_set == "0x1f"`` is parsed here by a
hand-written tokenizer and recursive-descent parser into a tree of tuples and
evaluated against a device's fields; nothing is ever handed to ``eval``, so a
query can only compare known fields with literals. Grammar::

    query      := or
    or         := and ("or" and)*
    and        := comparison ("and" comparison)*
    comparison := "(" or ")" | FIELD OP literal
    OP         := == | != | < | <= | > | >=
    literal    := number | "string" | 'string' | true | false

A device whose field is unknown (no capabilities read) matches no comparison
on it. Comparing a number field with a string (or the other way) is an error
at parse time, not a silent mismatch.
"""

from __future__ import annotations

import operator
import re
from dataclasses import dataclass

from ..errors import TinyMLError

MAX_QUERY = 1000
MAX_DEPTH = 20

# field -> (kind, how to get it from a device view: GET /v1/devices/{endpoint} with capabilities)
NUMBER, TEXT, BOOL = "number", "string", "bool"


def _cap(*keys):
    def get(dev: dict):
        v = dev.get("capabilities") or None
        for k in keys:
            if not isinstance(v, dict):
                return None
            v = v.get(k)
        return v
    return get


FIELDS = {
    "endpoint": (TEXT, lambda d: d.get("endpoint")),
    "online": (BOOL, lambda d: d.get("online")),
    "board": (TEXT, _cap("profile", "board")),
    "core": (TEXT, _cap("profile", "core")),
    "arch": (TEXT, _cap("profile", "arch")),
    "mcu": (TEXT, _cap("profile", "mcu")),
    "clock_hz": (NUMBER, _cap("profile", "clock_hz")),
    "ram": (NUMBER, _cap("profile", "ram_bytes")),
    "word_bits": (NUMBER, _cap("profile", "word_bits")),
    "accelerator": (TEXT, _cap("profile", "npu")),
    "kernel_set": (TEXT, _cap("kernel_set")),
    "executor_abi": (NUMBER, _cap("executor_abi")),
    "slot_size": (NUMBER, _cap("slot_size")),
    "slot_count": (NUMBER, _cap("slot_count")),
    "active_slot": (NUMBER, _cap("active_slot")),
    "inference_count": (NUMBER, _cap("inference_count")),
    "firmware": (TEXT, _cap("device", "firmware")),
    "model": (TEXT, _cap("device", "model")),
    "manufacturer": (TEXT, _cap("device", "manufacturer")),
}
_OPS = {"==": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le, ">": operator.gt,
        ">=": operator.ge}
_TOKEN = re.compile(r"""\s*(?:
    (?P<number>-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)
  | (?P<string>"[^"\\]*"|'[^'\\]*')
  | (?P<op>==|!=|<=|>=|<|>)
  | (?P<paren>[()])
  | (?P<word>[A-Za-z_][A-Za-z0-9_]*)
)""", re.VERBOSE)


class SelectorError(TinyMLError):
    """A selector that cannot be used; the message says where and what is allowed."""
    status = 422


@dataclass(frozen=True)
class _Tok:
    kind: str
    text: str
    at: int


def _tokens(text: str) -> list[_Tok]:
    out, at = [], 0
    while at < len(text):
        if text[at:].strip() == "":
            break
        m = _TOKEN.match(text, at)
        if m is None or m.end() == at:      # reported when the parser gets there (an unknown field first)
            rest = text[at:].lstrip()
            out.append(_Tok("bad", rest[:20], len(text) - len(rest) + 1))
            break
        kind = m.lastgroup
        out.append(_Tok(kind, m.group(kind), m.start(kind) + 1))
        at = m.end()
    return out


class _Parser:
    def __init__(self, text: str):
        self.toks, self.i, self.depth = _tokens(text), 0, 0

    def peek(self) -> _Tok | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def take(self) -> _Tok:
        tok = self.peek()
        if tok is None:
            raise SelectorError("query: ends too early; a comparison looks like: ram >= 20000")
        self.i += 1
        if tok.kind == "bad":
            raise SelectorError(f"query: unexpected {tok.text!r} at character {tok.at}; a query compares fields "
                                "with numbers or quoted strings, joined by and/or")
        return tok

    def parse(self):
        if not self.toks:
            raise SelectorError("query: empty; give comparisons such as: ram >= 20000 and kernel_set == \"0x1f\"")
        tree = self.or_()
        tok = self.peek()
        if tok is not None and tok.kind == "bad":
            self.take()
        if tok is not None:
            raise SelectorError(f"query: unexpected {tok.text!r} at character {tok.at}; join comparisons with "
                                "and / or")
        return tree

    def _joined(self, word: str, part):
        items = [part()]
        while (tok := self.peek()) is not None and tok.kind == "word" and tok.text == word:
            self.i += 1
            items.append(part())
        return items[0] if len(items) == 1 else (word, *items)

    def or_(self):
        return self._joined("or", self.and_)

    def and_(self):
        return self._joined("and", self.comparison)

    def comparison(self):
        tok = self.take()
        if tok.text == "(":
            self.depth += 1
            if self.depth > MAX_DEPTH:
                raise SelectorError(f"query: parentheses nested deeper than {MAX_DEPTH}")
            tree = self.or_()
            close = self.take()
            if close.text != ")":
                raise SelectorError(f"query: expected ')' at character {close.at}, got {close.text!r}")
            self.depth -= 1
            return tree
        if tok.kind != "word" or tok.text in ("and", "or", "true", "false"):
            raise SelectorError(f"query: expected a field name at character {tok.at}, got {tok.text!r}; "
                                f"fields: {', '.join(FIELDS)}")
        if tok.text not in FIELDS:
            raise SelectorError(f"query: unknown field '{tok.text}' at character {tok.at}; fields: "
                                f"{', '.join(FIELDS)}")
        kind = FIELDS[tok.text][0]
        op = self.take()
        if op.kind != "op":
            raise SelectorError(f"query: expected a comparison (==, !=, <, <=, >, >=) after '{tok.text}' at "
                                f"character {op.at}, got {op.text!r}")
        lit = self.take()
        value = _literal(lit)
        want = {NUMBER: (int, float), TEXT: (str,), BOOL: (bool,)}[kind]
        if isinstance(value, bool) != (kind == BOOL) or not isinstance(value, want):
            raise SelectorError(f"query: '{tok.text}' is a {kind}, compared with {lit.text!r} at character {lit.at}")
        if kind == BOOL and op.text not in ("==", "!="):
            raise SelectorError(f"query: '{tok.text}' is true or false: compare it with == or !=")
        return ("cmp", tok.text, op.text, value)


def _literal(tok: _Tok):
    if tok.kind == "number":
        return float(tok.text) if any(c in tok.text for c in ".eE") else int(tok.text)
    if tok.kind == "string":
        return tok.text[1:-1]
    if tok.kind == "word" and tok.text in ("true", "false"):
        return tok.text == "true"
    raise SelectorError(f"query: expected a number, a quoted string, true or false at character {tok.at}, "
                        f"got {tok.text!r}")


def parse_query(text: str):
    """The query's tree (nested tuples); SelectorError with one line for anything else."""
    if not isinstance(text, str):
        raise SelectorError("query: must be a string such as: ram >= 20000")
    if len(text) > MAX_QUERY:
        raise SelectorError(f"query: longer than {MAX_QUERY} characters")
    return _Parser(text).parse()


def matches(tree, device: dict) -> bool:
    """Whether ``device`` (a device view with capabilities) satisfies the parsed query."""
    if tree[0] == "cmp":
        _, name, op, value = tree
        have = FIELDS[name][1](device)
        if have is None or isinstance(have, bool) != isinstance(value, bool) \
                or isinstance(have, str) != isinstance(value, str):
            return False
        return _OPS[op](have, value)
    parts = (matches(t, device) for t in tree[1:])
    return all(parts) if tree[0] == "and" else any(parts)


def check_selector(selector) -> dict:
    """A selector as given (``endpoints``, ``tags``, ``query``; at least one), checked; SelectorError else."""
    if not isinstance(selector, dict) or not selector:
        raise SelectorError('selector: give a JSON object with "endpoints", "tags" and/or "query", e.g. '
                            '{"tags": ["kws"]}')
    unknown = sorted(set(selector) - {"endpoints", "tags", "query"})
    if unknown:
        raise SelectorError(f"selector: unknown key(s) {', '.join(unknown)}; use endpoints, tags, query")
    for key in ("endpoints", "tags"):
        if key in selector:
            v = selector[key]
            if not isinstance(v, list) or not v or not all(isinstance(s, str) and 0 < len(s) <= 200 for s in v):
                raise SelectorError(f"selector: \"{key}\" must be a non-empty list of names")
    if "query" in selector:
        parse_query(selector["query"])
    return selector


def select(selector: dict, devices: list[dict]) -> list[dict]:
    """The devices (views with capabilities) the selector picks: all of its parts must hold."""
    tree = parse_query(selector["query"]) if "query" in selector else None
    names = set(selector.get("endpoints") or ())
    tags = set(selector.get("tags") or ())
    return [d for d in devices if (not names or d["endpoint"] in names) and tags <= set(d.get("tags") or ())
            and (tree is None or matches(tree, d))]
