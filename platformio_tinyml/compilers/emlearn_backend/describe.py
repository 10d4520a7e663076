"""What an estimator is, in the terms the emlearn backend needs.

:func:`describe` turns a fitted scikit-learn estimator into a
:class:`ModelInfo` (family, sizes, whether the C output is exact) or
raises :class:`Unsupported` with the reason. No C is generated here, so
``supports()`` stays cheap.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

TREE_KINDS = ("DecisionTreeClassifier", "RandomForestClassifier", "ExtraTreesClassifier",
              "DecisionTreeRegressor", "RandomForestRegressor", "ExtraTreesRegressor")
MLP_KINDS = ("MLPClassifier",)
BAYES_KINDS = ("GaussianNB",)
SUPPORTED_KINDS = TREE_KINDS + MLP_KINDS + BAYES_KINDS
OUTPUTS = ("class", "proba")


class Unsupported(Exception):
    """The estimator (or the requested output) cannot be compiled; str() says why."""


@dataclass(frozen=True)
class ModelInfo:
    kind: str                       # estimator class name
    family: str                     # "trees" | "mlp" | "bayes"
    n_features: int
    classes: tuple | None           # classifier labels (None for regressors)
    output: str                     # "class" | "proba" | "value"
    leaf_bits: int = 0              # trees: 0 = hard votes, 8 = quantized class proportions
    decision_nodes: int = 0
    leaves: int = 0
    n_trees: int = 0
    max_depth: int = 0
    macs: int = 0                   # mlp
    max_width: int = 0              # mlp: widest layer
    weights: int = 0                # mlp/bayes: float parameters
    notes: tuple[str, ...] = ()

    @property
    def n_outputs(self) -> int:
        return len(self.classes) if self.output == "proba" else 1

    @property
    def int_labels(self) -> tuple[int, ...] | None:
        """The class labels when all are integers in int32 range, else None (index output)."""
        if self.classes is None:
            return None
        try:
            vals = [int(c) for c in self.classes]
        except (TypeError, ValueError):
            return None
        ok = all(v == c and -2**31 <= v < 2**31 for v, c in zip(vals, self.classes))
        return tuple(vals) if ok else None


def describe(est, output: str = "class") -> ModelInfo:
    """Describe ``est`` for ``output`` ("class" or "proba"); raise Unsupported otherwise."""
    kind = type(est).__name__
    if kind not in SUPPORTED_KINDS:
        raise Unsupported(f"emlearn backend takes {', '.join(SUPPORTED_KINDS)}; got {kind}")
    if output not in OUTPUTS:
        raise Unsupported(f"option output={output!r}: use one of {', '.join(OUTPUTS)}")
    if not hasattr(est, "n_features_in_"):
        raise Unsupported(f"the {kind} is not fitted")
    if kind in TREE_KINDS:
        return _trees(est, kind, output)
    if kind in MLP_KINDS:
        return _mlp(est, kind, output)
    return _bayes(est, kind, output)


def _trees(est, kind: str, output: str) -> ModelInfo:
    trees = [e.tree_ for e in getattr(est, "estimators_", [est])]
    if any(t.n_outputs != 1 for t in trees):
        raise Unsupported("multi-output trees are not supported")
    regressor = "Regressor" in kind
    if regressor and output == "proba":
        raise Unsupported(f"output=proba needs a classifier; {kind} predicts values")
    leaf_mask = [t.children_left == -1 for t in trees]
    n_leaves = sum(int(m.sum()) for m in leaf_mask)
    nodes = sum(t.node_count for t in trees)
    notes = []
    leaf_bits = 0
    if not regressor:
        pure = all(np.all((t.value[m, 0, :] > 0).sum(axis=1) == 1) for t, m in zip(trees, leaf_mask))
        # Hard votes equal scikit-learn's averaged proportions only when every leaf is pure,
        # or (for the class) when there is a single tree.
        if not pure and (output == "proba" or len(trees) > 1):
            leaf_bits = 8
            notes.append("leaves hold mixed classes: class proportions are quantized to 8 bits, "
                         "so results can differ from scikit-learn near ties")
    return ModelInfo(kind=kind, family="trees", n_features=int(est.n_features_in_),
                     classes=None if regressor else tuple(est.classes_.tolist()),
                     output="value" if regressor else output, leaf_bits=leaf_bits,
                     decision_nodes=nodes - n_leaves, leaves=n_leaves, n_trees=len(trees),
                     max_depth=max(t.max_depth for t in trees), notes=tuple(notes))


def _mlp(est, kind: str, output: str) -> ModelInfo:
    if est.activation not in ("identity", "relu", "logistic", "tanh"):
        raise Unsupported(f"MLP activation {est.activation!r} is not supported by emlearn")
    sizes = [w.shape for w in est.coefs_]
    macs = sum(a * b for a, b in sizes)
    return ModelInfo(kind=kind, family="mlp", n_features=int(est.n_features_in_),
                     classes=tuple(est.classes_.tolist()), output=output, macs=macs,
                     max_width=max(max(s) for s in sizes),
                     weights=macs + sum(b for _, b in sizes),
                     notes=("weights are printed with 6 decimals (emlearn): probabilities differ "
                            "from scikit-learn by about 1e-6",))


def _bayes(est, kind: str, output: str) -> ModelInfo:
    if output == "proba":
        raise Unsupported("emlearn's GaussianNB gives classes only; use output=class")
    n_classes, n_features = est.theta_.shape
    return ModelInfo(kind=kind, family="bayes", n_features=int(n_features),
                     classes=tuple(est.classes_.tolist()), output=output,
                     weights=3 * n_classes * n_features,
                     notes=("GaussianNB runs in Q16 fixed point without class priors (emlearn): "
                            "predictions approximate scikit-learn's; inputs must stay within "
                            "+-32767",))


def estimate_sizes(info: ModelInfo, arch: str, has_fpu: bool) -> tuple[int, int, int]:
    """Rough (flash, ram, cycles) of the generated code on ``arch``.

    Per decision node the inlined trees emit a float load, a compare and a
    branch (about 16 B on Cortex-M with an FPU, more with soft float and on
    AVR); MLP weights are 4-byte floats. Constant tables sit in RAM as well
    on AVR, where ``const`` data is copied to SRAM.
    """
    avr = arch == "avr"
    node_bytes = 28 if avr else (16 if has_fpu else 20)
    flop = 150 if avr else (2 if has_fpu else 40)
    if info.family == "trees":
        leaf_table = info.leaves * len(info.classes or ()) if info.leaf_bits else 0
        const = leaf_table
        code = info.decision_nodes * node_bytes + info.leaves * 6 + 400
        ram = 4 * (len(info.classes or ()) + 8) + 96
        cycles = info.n_trees * max(1, info.max_depth) * (flop + 6)
    elif info.family == "mlp":
        const = 4 * info.weights + 20 * (len(info.classes or ()))
        code = 1800 if not avr else 3500
        ram = 2 * 4 * info.max_width + 128
        cycles = info.macs * (flop + 4) + 200 * flop
    else:
        const = 4 * info.weights
        code = 900 if not avr else 2000
        ram = 4 * len(info.classes or ()) + 96
        cycles = info.weights * 20 * (8 if avr else 1)
    if avr:
        ram += const
    return const + code, ram, cycles
