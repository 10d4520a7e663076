"""UNIDIRECTIONAL_SEQUENCE_LSTM: TFLite's fused LSTM, read into the IR.

TFLite's operator has 24 inputs: the sequence, input-to-gate weights
(input, forget, cell, output), recurrent weights, three peephole weights,
four gate biases, a projection (weights, bias), the output and cell state, and
four layer-norm coefficient vectors. The two states are variable tensors:
TFLite Micro zero-fills them when it allocates (and on ``reset()``), the kernel
updates them in place, and they keep their values from one invoke to the next.
Here they become resource variables (zero initial value, see variables.py):
``READ_VARIABLE`` before the LSTM, ``ASSIGN_VARIABLE`` of its final states after
it, so the generated code keeps them between calls exactly as TFLite Micro does.

What the Keras LSTM layer gives (no CIFG, peephole, projection or layer norm;
tanh) is kept; the other variants are refused with one line naming the feature.
"""

from __future__ import annotations

import tflite

from ...ir import Op, OpKind, Tensor
from ...ir import attrs as A
from .checks import builtin_options as _options

N_INPUTS = 24
_VARIANTS = ((9, 12, "peephole connections are"), (16, 18, "a projection layer is"), (20, 24, "layer normalization is"))
_TANH = tflite.ActivationFunctionType.TANH


def lstm_ops(ctx, op, i: int, name: str, tensors: list[Tensor], variables) -> list[Op]:
    """[READ_VARIABLE h, READ_VARIABLE c, the LSTM, ASSIGN_VARIABLE h, ASSIGN_VARIABLE c] for
    operator ``i``; appends the final-state tensors to ``tensors``."""
    ins = [int(x) for x in op.InputsAsNumpy()] if op.InputsLength() else []
    outs = [int(x) for x in op.OutputsAsNumpy()] if op.OutputsLength() else []
    if len(ins) != N_INPUTS or len(outs) != 1:
        raise ctx.fail(i, name, f"has {len(ins)} inputs and {len(outs)} outputs (TFLite Micro's needs "
                                f"{N_INPUTS} and one)")
    if ins[1] < 0:
        raise ctx.fail(i, name, "coupled input and forget gates (CIFG) are not supported; only the Keras "
                                "LSTM layer's form is")
    for lo, hi, what in _VARIANTS:
        if any(t >= 0 for t in ins[lo:hi]):
            raise ctx.fail(i, name, f"{what} not supported; only the Keras LSTM layer's form is")
    o = _options(op, tflite.UnidirectionalSequenceLSTMOptions)
    if o is None:
        raise ctx.fail(i, name, "has no options")
    if o.FusedActivationFunction() != _TANH:
        raise ctx.fail(i, name, f"fused activation {o.FusedActivationFunction()} (only TANH is supported)")
    if any(t < 0 for t in ins[12:16]) or ins[18] < 0 or ins[19] < 0:
        raise ctx.fail(i, name, "a gate bias or a state tensor is absent")
    sg = ctx.model.Subgraphs(0)
    for k, what in ((18, "output"), (19, "cell")):
        if not sg.Tensors(ins[k]).IsVariable():
            raise ctx.fail(i, name, f"its {what} state (tensor #{ins[k]}) is not a variable tensor; TFLite Micro "
                                    "keeps the state in variable tensors")
    attrs = A.Lstm(time_major=bool(o.TimeMajor()), cell_clip=float(o.CellClip()))
    return stateful(i, name, tensors, variables, (ins[18], ins[19]), lambda nxt: Op(
        index=i, kind=OpKind.UNIDIRECTIONAL_SEQUENCE_LSTM, inputs=ins[:9] + ins[12:16] + ins[18:20],
        outputs=[outs[0], *nxt], attrs=attrs, name=name))


def stateful(i: int, name: str, tensors: list[Tensor], variables, state_tensors, make) -> list[Op]:
    """[READ_VARIABLE of each state, ``make(next-state tensor indices)``, ASSIGN_VARIABLE of each]:
    an operator's variable-tensor states as resource variables (zeros at the start, kept between
    calls); appends the next-state tensors to ``tensors``."""
    where = f"operator #{i} {name}"
    states = []
    for t in state_tensors:
        state = tensors[t]
        var = variables.state(state, where)
        out = Tensor(index=len(tensors), name=f"{state.name}/next", shape=tuple(state.shape),
                     dtype=state.dtype, quant=state.quant)
        tensors.append(out)
        states.append((var, t, out.index))
    reads = [Op(index=i, kind=OpKind.READ_VARIABLE, inputs=[], outputs=[t], attrs=A.VariableRef(v), name=name)
             for v, t, _ in states]
    writes = [Op(index=i, kind=OpKind.ASSIGN_VARIABLE, inputs=[nxt], outputs=[], attrs=A.VariableRef(v), name=name)
              for v, _, nxt in states]
    return [*reads, make([nxt for _, _, nxt in states]), *writes]

