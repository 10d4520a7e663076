"""What an estimator is, in the terms the emlearn backend needs.

:func:`describe` turns a fitted scikit-learn estimator into a
:class:`ModelInfo` (family, sizes, whether the C output is exact) or
raises :class:`Unsupported` with the reason. No C is generated here, so
``supports()`` stays cheap.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from . import classic

TREE_KINDS = ("DecisionTreeClassifier", "RandomForestClassifier", "ExtraTreesClassifier",
              "DecisionTreeRegressor", "RandomForestRegressor", "ExtraTreesRegressor")
MLP_KINDS = ("MLPClassifier",)
KNN_KINDS = ("KNeighborsClassifier",)
GMM_KINDS = ("GaussianMixture",)
SUPPORTED_KINDS = TREE_KINDS + MLP_KINDS + KNN_KINDS + GMM_KINDS
OUTPUTS = ("class", "proba", "score", "scores")
KNN_PRECISIONS = ("double", "float")
# Keras layers the emlearn net runtime covers (Dense plus activations; the rest are no-ops at inference).
KERAS_ACTIVATIONS = {"linear": "identity", "relu": "relu", "sigmoid": "logistic", "tanh": "tanh",
                     "softmax": "softmax"}


Unsupported = classic.Unsupported    # the estimator (or the requested output) cannot be compiled


@dataclass(frozen=True)
class ModelInfo:
    kind: str                       # estimator class name
    family: str                     # "trees" | "mlp" | "knn" | "gmm" | "classic"
    n_features: int
    classes: tuple | None           # classifier labels (None for regressors)
    output: str                     # "class" | "proba" | "value" | "score" | "scores"
    leaf_bits: int = 0              # trees: 0 = hard votes, 8 = quantized class proportions
    decision_nodes: int = 0
    leaves: int = 0
    n_trees: int = 0
    max_depth: int = 0
    macs: int = 0                   # mlp
    max_width: int = 0              # mlp: widest layer
    weights: int = 0                # mlp/gmm/knn/classic: stored parameters
    n_samples: int = 0              # knn: stored training points
    k: int = 0                      # knn: neighbours; gmm: components
    double: bool = False            # knn: distances accumulated in double
    data_double: bool = False       # knn: training points stored as double (not float32-exact)
    n_scores: int = 0               # keras: units of the last Dense layer ("scores" output)
    notes: tuple[str, ...] = ()
    pre: tuple = ()                 # Pipeline scalers before the estimator (classic.ScalerStep)
    classic: classic.Classic | None = None   # family "classic": generated here, not by emlearn

    @property
    def n_outputs(self) -> int:
        if self.output == "scores":
            return self.n_scores
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


def describe(est, output: str | None = None, precision: str = "double") -> ModelInfo:
    """Describe ``est`` (maybe a Pipeline of scalers before it) for ``output`` ("class",
    "proba"; "score" for GaussianMixture; "value" for regressors; default: what predict()
    gives); raise Unsupported otherwise. ``precision`` is the KNN distance arithmetic."""
    steps, est = classic.scaler_steps(est)
    kind = type(est).__name__
    if kind in classic.CLASSIC_KINDS:
        c = classic.describe_classic(est, output or "class")
        info = ModelInfo(kind=kind, family="classic", n_features=c.n_features, classes=c.classes,
                         output=c.output, weights=c.weights, macs=c.macs, classic=c,
                         notes=c.notes + ("generated C in double precision (scikit-learn's order of "
                                          "operations); float32 on AVR, where double is 32 bits",))
    else:
        info = _describe_emlearn(est, kind, output or "class", precision)
    if steps:
        if len(steps[0].sub or steps[0].mul or steps[0].div or ()) not in (0, info.n_features):
            raise Unsupported("the Pipeline's scaler does not match the estimator's features")
        info = replace(info, pre=tuple(steps), kind=f"{kind} after {'+'.join(s.kind for s in steps)}")
    return info


def _describe_emlearn(est, kind: str, output: str, precision: str) -> ModelInfo:
    if kind not in SUPPORTED_KINDS:
        raise Unsupported(f"emlearn backend takes {', '.join(SUPPORTED_KINDS + classic.CLASSIC_KINDS)}, "
                          f"Pipelines of scalers before them, or a Dense-only Keras model; got {kind}")
    if output not in OUTPUTS[:3]:
        raise Unsupported(f"option output={output!r}: use one of class, proba"
                          + (", score" if kind in GMM_KINDS else ""))
    if output == "score" and kind not in GMM_KINDS:
        raise Unsupported("output=score is for GaussianMixture (log-likelihood per sample)")
    if not hasattr(est, "n_features_in_"):
        raise Unsupported(f"the {kind} is not fitted")
    if kind in TREE_KINDS:
        return _trees(est, kind, output)
    if kind in MLP_KINDS:
        return _mlp(est, kind, output)
    if kind in KNN_KINDS:
        return _knn(est, kind, output, precision)
    return _gmm(est, kind, output)


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
                     notes=("float32 weights and arithmetic (scikit-learn uses float64): "
                            "probabilities differ from scikit-learn by about 1e-6",))


def _knn(est, kind: str, output: str, precision: str) -> ModelInfo:
    from scipy.sparse import issparse
    if precision not in KNN_PRECISIONS:
        raise Unsupported(f"option precision={precision!r}: use one of {', '.join(KNN_PRECISIONS)}")
    metric = est.effective_metric_
    if metric not in ("euclidean", "manhattan"):
        raise Unsupported(f"KNeighborsClassifier metric {metric!r} is not supported "
                          "(euclidean or manhattan only)")
    if est.weights != "uniform":
        raise Unsupported(f"KNeighborsClassifier weights={est.weights!r} is not supported "
                          "(uniform only)")
    if getattr(est, "outputs_2d_", False):
        raise Unsupported("multi-output KNeighborsClassifier is not supported")
    X = est._fit_X
    if issparse(X):
        raise Unsupported("KNeighborsClassifier fitted on sparse data is not supported")
    X = np.asarray(X, dtype=np.float64)
    if not np.all(np.isfinite(X)):
        raise Unsupported("the training data holds NaN or infinity")
    n, d = X.shape
    k = int(est.n_neighbors)
    double = precision == "double"
    data_double = double and not np.array_equal(X.astype(np.float32).astype(np.float64), X)
    notes = ["nearest neighbours are searched by brute force over all stored training points; "
             "exact ties in distance keep the lower training index and tied votes the lower class, "
             "as scikit-learn does"]
    if not double:
        notes.append("precision=float: distances in float32 (scikit-learn uses float64): a "
                     "neighbour can change when two distances differ by less than about 1e-6 relative")
    if data_double:
        notes.append("the training points are not float32 values: stored as double to keep "
                     "scikit-learn's distances (fit on float32 data, or use precision=float, to halve that)")
    return ModelInfo(kind=kind, family="knn", n_features=d, classes=tuple(est.classes_.tolist()),
                     output=output, n_samples=n, k=k, double=double, data_double=data_double,
                     weights=n * d, notes=tuple(notes))


def _gmm(est, kind: str, output: str) -> ModelInfo:
    if not hasattr(est, "precisions_cholesky_"):
        raise Unsupported(f"the {kind} is not fitted")
    n_comp, d = est.means_.shape
    notes = [f"{est.covariance_type} covariance runs as full precision matrices in float32 "
             "(emlearn; scikit-learn uses float64): components agree except near ties; "
             "log-likelihoods differ by about 1e-6 relative"]
    cov = np.asarray(est.covariances_, dtype=np.float64)
    if est.covariance_type in ("full", "tied"):
        cond = float(np.max(np.linalg.cond(cov.reshape(-1, d, d))))
        if cond > 1e6:
            notes.append(f"a covariance matrix is ill-conditioned (condition number {cond:.1e}, e.g. "
                         "redundant features): away from the training data float32 cannot tell "
                         "the components apart and the predicted component can differ from "
                         "scikit-learn's")
    return ModelInfo(kind=kind, family="gmm", n_features=int(d), classes=tuple(range(n_comp)),
                     output=output, k=int(n_comp), weights=n_comp * (d * d + d + 2),
                     notes=tuple(notes))


def describe_keras(layers, output: str = "scores") -> ModelInfo:
    """Describe a Keras model from its layer summaries (see :func:`keras_dense_stack`)."""
    acts, ws, _ = keras_dense_stack(layers)
    if output not in ("scores", "class"):
        raise Unsupported(f"option output={output!r}: a Keras model gives output=scores "
                          "(the last layer's values) or output=class (their argmax)")
    units = ws[-1][1]
    if output == "class" and units < 2:
        raise Unsupported("output=class needs a last layer with at least 2 units")
    macs = sum(a * b for a, b in ws)
    return ModelInfo(kind="keras", family="mlp", n_features=ws[0][0],
                     classes=tuple(range(units)), output=output, macs=macs,
                     max_width=max(max(s) for s in ws), weights=macs + sum(b for _, b in ws),
                     n_scores=units,
                     notes=("float32 weights and arithmetic as in Keras; results differ by "
                            "rounding order only (about 1e-6 relative)",))


def keras_dense_stack(layers) -> tuple[list[str], list[tuple[int, int]], list[int]]:
    """(emlearn activations, (inputs, units) per Dense, index of each Dense in ``layers``)
    for ``layers`` = [(class name, config dict, input rank, (inputs, units))], the
    (input rank, shape) only meaningful for Dense; raise Unsupported otherwise."""
    acts: list[str] = []
    shapes: list[tuple[int, int]] = []
    dense_at: list[int] = []
    for i, (cls, cfg, rank, shape) in enumerate(layers):
        if cls == "InputLayer" or cls == "Dropout":
            continue
        if cls == "Dense":
            if rank != 2:
                raise Unsupported("Dense layers must take a flat (batch, features) input")
            act = cfg.get("activation", "linear")
            if act not in KERAS_ACTIVATIONS:
                raise Unsupported(f"Dense activation {act!r} is not supported by emlearn "
                                  f"({', '.join(KERAS_ACTIVATIONS)})")
            acts.append(KERAS_ACTIVATIONS[act])
            shapes.append(shape)
            dense_at.append(i)
            continue
        if not acts or acts[-1] != "identity":
            raise Unsupported(f"a {cls} layer must follow a Dense layer without activation")
        if cls == "Activation" and cfg.get("activation") in KERAS_ACTIVATIONS:
            acts[-1] = KERAS_ACTIVATIONS[cfg["activation"]]
        elif cls == "ReLU" and not cfg.get("max_value") and not cfg.get("negative_slope") \
                and not cfg.get("threshold"):
            acts[-1] = "relu"
        elif cls == "Softmax" and cfg.get("axis", -1) in (-1, 1):
            acts[-1] = "softmax"
        else:
            raise Unsupported(f"Keras layer {cls} ({cfg.get('activation', '')}) is not supported: "
                              "emlearn takes Dense layers with linear/relu/sigmoid/tanh/softmax")
    if len(acts) < 2:
        raise Unsupported("emlearn's net runtime needs at least 2 Dense layers")
    return acts, shapes, dense_at


def estimate_sizes(info: ModelInfo, arch: str, has_fpu: bool) -> tuple[int, int, int]:
    """Rough (flash, ram, cycles) of the generated code on ``arch``.

    Per decision node the inlined trees emit a float load, a compare and a
    branch (about 16 B on Cortex-M with an FPU, more with soft float and on
    AVR); MLP weights are 4-byte floats. Constant tables sit in RAM as well
    on AVR, where ``const`` data is copied to SRAM.
    """
    avr = arch == "avr"
    if info.family == "classic":
        return classic.estimate_classic(info.classic, arch, has_fpu)
    node_bytes = 28 if avr else (16 if has_fpu else 20)
    flop = 150 if avr else (2 if has_fpu else 40)
    if info.family == "trees":
        leaf_table = info.leaves * len(info.classes or ()) if info.leaf_bits else 0
        const = leaf_table
        code = info.decision_nodes * node_bytes + info.leaves * 6 + 400
        ram = 4 * (len(info.classes or ()) + 8) + 96
        cycles = info.n_trees * max(1, info.max_depth) * (flop + 6)
    elif info.family == "knn":
        item = 8 if info.data_double else 4
        const = info.n_samples * (info.n_features * item + (1 if len(info.classes) <= 256 else 2))
        code = 700 if not avr else 1600
        ram = info.k * (12 if info.double else 8) + 4 * len(info.classes) + 96
        dflop = flop * (12 if info.double and not avr else 1)   # soft double without an FPU for it
        cycles = info.n_samples * (info.n_features * 3 * dflop + 4 * info.k)
    elif info.family == "gmm":
        const = 4 * info.weights
        code = 1200 if not avr else 3000
        ram = 3 * 4 * info.k + 96
        cycles = info.k * info.n_features * info.n_features * 4 * flop + info.k * 100 * flop
    else:   # mlp
        const = 4 * info.weights + 20 * (len(info.classes or ()))
        code = 1800 if not avr else 3500
        ram = 2 * 4 * info.max_width + 128
        cycles = info.macs * (flop + 4) + 200 * flop
    if avr:
        ram += const
    return const + code, ram, cycles
