"""Resource variables of streaming TFLite models, resolved at import.

A stateful model (``tf.Variable`` kept between calls, as streaming keyword
spotters have) converts to::

    subgraph 0:  CALL_ONCE(init=1), VAR_HANDLE -> h, READ_VARIABLE(h) -> x, ...,
                 ASSIGN_VARIABLE(h, value)
    subgraph 1:  VAR_HANDLE -> h, ASSIGN_VARIABLE(h, constant)     (the initial values)

Here every ``VAR_HANDLE`` names a variable by (container, shared name), as TFLite
Micro keys them; the init subgraphs that ``CALL_ONCE`` runs must only assign
constants, which become the variables' initial values (:class:`..ir.graph.Variable`).
``READ_VARIABLE`` / ``ASSIGN_VARIABLE`` stay as ops whose ``attrs`` name the
variable and whose resource-handle input is dropped; ``VAR_HANDLE`` and
``CALL_ONCE`` leave the graph. Anything else (a computed initial value, a handle
passed around, a variable read with two shapes) is refused with one line.
"""

from __future__ import annotations

import numpy as np
import tflite

from ...errors import ModelError
from ...ir import DType, Op, OpKind, Tensor
from ...ir import attrs as A
from ...ir.graph import Variable
from .checks import builtin_options as _options

VAR_OPS = {"VAR_HANDLE", "READ_VARIABLE", "ASSIGN_VARIABLE", "CALL_ONCE"}


def _handle_key(op) -> tuple[str, str]:
    o = _options(op, tflite.VarHandleOptions)
    if o is None:
        return ("", "")
    return ((o.Container() or b"").decode("utf-8", "replace"), (o.SharedName() or b"").decode("utf-8", "replace"))


def _ints(vec_len: int, get) -> list[int]:
    return [int(x) for x in get()] if vec_len else []


class Variables:
    """Collects the variables of one model while the reader walks subgraph 0."""

    def __init__(self, ctx, code_name, read_tensor):
        self.ctx = ctx
        self.code_name = code_name          # op -> its builtin name
        self.read_tensor = read_tensor      # (subgraph, tensor index) -> ir Tensor
        self.keys: dict[tuple[str, str], int] = {}
        self.vars: list[Variable] = []
        self.handles: dict[int, int] = {}   # subgraph 0 tensor -> variable
        self.init_subgraphs: set[int] = set()

    def fail(self, where: str, detail: str, hint: str | None = None) -> ModelError:
        return ModelError(f"{where}: {detail}", where=str(self.ctx.path),
                          hint=hint or "Streaming models need variables set from constants by CALL_ONCE, "
                                       "read and assigned with one shape and type")

    def _var(self, key: tuple[str, str]) -> int:
        if key not in self.keys:
            self.keys[key] = len(self.vars)
            self.vars.append(Variable(name=key[1] or f"variable{len(self.vars)}", shape=(), dtype=None))
        return self.keys[key]

    def _bind(self, v: int, t: Tensor, where: str) -> None:
        """Variable ``v`` is read or written as tensor ``t``: its shape, type and quantization."""
        var = self.vars[v]
        if var.dtype is None:
            var.shape, var.dtype, var.quant = tuple(t.shape), t.dtype, t.quant
        elif (tuple(t.shape), t.dtype, t.quant) != (var.shape, var.dtype, var.quant):
            raise self.fail(where, f"variable '{var.name}' is used as {list(t.shape)} {t.dtype.np_name} "
                                   f"and as {list(var.shape)} {var.dtype.np_name} (or with another quantization)")

    def state(self, t: Tensor, where: str) -> int:
        """A new variable holding tensor ``t`` (an operator's state, as TFLite's is_variable
        tensors of UNIDIRECTIONAL_SEQUENCE_LSTM): zeros at the start, kept between calls; an
        int8 one starts at its zero point, as TFLite Micro resets int8 variable tensors."""
        v = len(self.vars)   # no VAR_HANDLE names it: not in self.keys
        self.vars.append(Variable(name=t.name, shape=(), dtype=None))
        self._bind(v, t, where)
        if t.dtype is DType.INT8 and t.quant is not None and t.quant.zp:
            self.vars[v].init = np.full(t.shape, t.quant.zp, np.int8)
        return v

    def op(self, i: int, op, name: str, tensors: list[Tensor]) -> Op | None:
        """The IR op for subgraph 0's operator ``i`` (None: it leaves the graph)."""
        ins = _ints(op.InputsLength(), op.InputsAsNumpy)
        outs = _ints(op.OutputsLength(), op.OutputsAsNumpy)
        where = f"operator #{i} {name}"
        if name == "CALL_ONCE":
            o = _options(op, tflite.CallOnceOptions)
            k = o.InitSubgraphIndex() if o is not None else -1
            if not 0 < k < self.ctx.model.SubgraphsLength():
                raise self.fail(where, f"runs subgraph {k}; the model has {self.ctx.model.SubgraphsLength()}")
            self._init(k)
            return None
        if name == "VAR_HANDLE":
            if len(outs) != 1:
                raise self.fail(where, f"has outputs {outs} (needs one)")
            self.handles[outs[0]] = self._var(_handle_key(op))
            return None
        if not ins or ins[0] not in self.handles:
            raise self.fail(where, "reads a resource handle that no VAR_HANDLE before it made")
        v = self.handles[ins[0]]
        if name == "READ_VARIABLE" and len(ins) == 1 and len(outs) == 1:
            self._bind(v, tensors[outs[0]], where)
            return Op(index=i, kind=OpKind.READ_VARIABLE, inputs=[], outputs=outs, attrs=A.VariableRef(v),
                      name=name)
        if name == "ASSIGN_VARIABLE" and len(ins) == 2 and not outs:
            self._bind(v, tensors[ins[1]], where)
            return Op(index=i, kind=OpKind.ASSIGN_VARIABLE, inputs=ins[1:], outputs=[], attrs=A.VariableRef(v),
                      name=name)
        raise self.fail(where, f"has inputs {ins} and outputs {outs}")

    def _init(self, k: int) -> None:
        """Run init subgraph ``k`` at import: it may only assign constants to variables."""
        if k in self.init_subgraphs:
            return
        self.init_subgraphs.add(k)
        sg = self.ctx.model.Subgraphs(k)
        handles: dict[int, int] = {}
        for j in range(sg.OperatorsLength()):
            op = sg.Operators(j)
            name = self.code_name(op)
            ins = _ints(op.InputsLength(), op.InputsAsNumpy)
            outs = _ints(op.OutputsLength(), op.OutputsAsNumpy)
            where = f"init subgraph {k} operator #{j} {name}"
            if name == "VAR_HANDLE" and len(outs) == 1:
                handles[outs[0]] = self._var(_handle_key(op))
                continue
            if name == "ASSIGN_VARIABLE" and len(ins) == 2 and ins[0] in handles:
                t = self.read_tensor(k, ins[1])
                if not t.is_const:
                    raise self.fail(where, "assigns a computed value (only constant initial values are "
                                           "supported)")
                v = handles[ins[0]]
                self._bind(v, t, where)
                self.vars[v].init = np.array(t.data, copy=True)
                continue
            raise self.fail(where, "an init subgraph may only create variables and assign them constants")

    def finish(self, ops: list[Op]) -> list[Variable]:
        """The model's variables; each must be read or assigned in subgraph 0 (else it is dropped
        from nothing: an unused variable costs no state)."""
        used = {op.attrs.var for op in ops if op.kind in (OpKind.READ_VARIABLE, OpKind.ASSIGN_VARIABLE)}
        for v, var in enumerate(self.vars):
            if var.dtype is None and v in used:   # cannot happen: every use binds; kept as a guard
                raise self.fail("graph", f"variable '{var.name}' has no type")
            if var.dtype is not None and var.init is None:
                # TFLite Micro zero-fills a variable's buffer when it allocates it.
                var.init = np.zeros(var.shape, var.dtype.numpy)
        # Variables only the init subgraph touches stay in the list (indexes are attrs.var) but are never
        # emitted: state_layout() places only variables the graph's ops use.
        return self.vars


def has_state(g) -> bool:
    return any(op.kind in (OpKind.READ_VARIABLE, OpKind.ASSIGN_VARIABLE) for op in g.ops)
