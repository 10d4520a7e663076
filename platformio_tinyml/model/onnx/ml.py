"""The ONNX-ML (``ai.onnx.ml``) operators that skl2onnx writes for scikit-learn models, in float32,
with onnxruntime's semantics (the reference ``tinyml verify`` compares against):

* Scaler: ``(x - offset) * scale`` (SUB, MUL); Binarizer: ``x > threshold`` as 1 / 0; Imputer
  (float): the imputed value where x is NaN (or the replaced value) (comparisons, SELECT_V2).
* Normalizer over the rows of [N, C]: MAX, L1 or L2 norm (REDUCE_MAX / ABS+SUM / SQUARE+SUM+SQRT);
  a row whose norm is 0 is copied, as onnxruntime does (the divisor becomes 1).
* LinearRegressor, LinearClassifier: FULLY_CONNECTED with the intercepts; the classifier's label
  is the ARG_MAX of the raw scores (int64, the first maximum, as onnxruntime's ``>`` scan; other
  labels than 0..n-1: see _label), its
  scores get the post transform (NONE, LOGISTIC, SOFTMAX). One coefficient row with two labels
  is onnxruntime's binary case: label ``s > 0``, scores ``[1 - v, v]`` with ``v`` the (LOGISTIC'd)
  score.
* TreeEnsembleRegressor / TreeEnsembleClassifier: one TREE_ENSEMBLE op (attrs.TreeEnsemble).
* ArrayFeatureExtractor with constant indices: GATHER on the last axis.
* SVMRegressor: the kernel (LINEAR, POLY of degree 2 or 3, RBF, SIGMOID) against the support
  vectors as FULLY_CONNECTED or SQUARED_DIFFERENCE + SUM + EXP, then FULLY_CONNECTED with the
  coefficients and rho; one_class as SELECT_V2 of 1 / -1.
* SVMClassifier (one-against-one, without probabilities): the pairs' decision values (the
  products coefficient * kernel value, summed with rho by a compensated pairwise sum that is as
  exact as onnxruntime's double sum: bit-exact on the tests), their votes (GREATER, SELECT_V2,
  FULLY_CONNECTED of exact small integers) and the ARG_MAX of the votes.

onnx's shape inference does not know these ops' outputs: :func:`output_types` gives them to
the reader's inference loop, so the nodes after them (Cast, Identity, ...) have shapes.

Refused in one line (the node is carried as an opaque op, which cgen refuses with the reason):
string class labels, negative or larger than 4095 ones for LinearClassifier and SVMClassifier,
PROBIT and SOFTMAX_ZERO post transforms of linear models, BRANCH_MEMBER nodes, missing-value
tracking, the ``*_as_tensor`` (double) attributes, POLY kernels of other degrees, SVMClassifier's
probabilities (prob_a / prob_b) and its linear form, the other ONNX-ML operators, and ZipMap (a
sequence of maps: export with ``options={id(model): {'zipmap': False}}``).
"""

from __future__ import annotations

import numpy as np

from ...ir import DType, OpKind
from ...ir import attrs as A
from .attention import _Builder
from .layout import Layout
from .shape_ops import Fail, cv_attrs

K = OpKind
F32 = DType.FLOAT32
_FLOAT, _INT64 = 1, 7          # onnx TensorProto FLOAT, INT64
ZIPMAP_HINT = ("ZipMap (probabilities as a sequence of maps; the IR holds tensors): convert with skl2onnx "
               "options={id(model): {'zipmap': False}}")


def _text(x) -> str:
    return x.decode() if isinstance(x, bytes) else str(x)


def _rows(cv, name) -> tuple[int, tuple[int, int]]:
    """Activation ``name`` as float32 [N, C]."""
    v = cv._float_source(name)
    if len(v.shape) != 2:
        raise Fail(f"input '{name}' has rank {len(v.shape)} (an [N, features] matrix is supported)")
    return v.idx, tuple(v.shape)


def _set(cv, name: str, idx: int) -> None:
    """ONNX tensor ``name`` is IR tensor ``idx``, with its shape and type (onnx's shape inference
    does not know the ONNX-ML ops' outputs, which the next node may need)."""
    from .reader import Val
    t = cv.tensors[idx]
    cv.vals[name] = Val(idx, Layout.SAME, tuple(t.shape))
    cv.shapes[name] = tuple(t.shape)
    cv.elem_types[name] = _INT64 if t.dtype is DType.INT64 else _FLOAT


def _bind(cv, name: str, idx: int, dtype: DType = F32) -> None:
    """ONNX tensor ``name`` is IR tensor ``idx`` (a RESHAPE to its own tensor)."""
    out = cv._tensor(name, tuple(cv.tensors[idx].shape), dtype)
    cv._emit(K.RESHAPE, [idx], [out])
    _set(cv, name, out)


def scaler(cv, node) -> None:
    a = cv_attrs(node)
    x, (n, c) = _rows(cv, node.input[0])
    b = _Builder(cv, node, "scaler")
    off = np.asarray(a.get("offset", [0.0]), np.float32)
    scale = np.asarray(a.get("scale", [1.0]), np.float32)
    for what, v in (("offset", off), ("scale", scale)):
        if v.size not in (1, c):
            raise Fail(f"{what} has {v.size} values for {c} features")
    y = b.ew(K.MUL, b.ew(K.SUB, x, b.const(off.reshape(1, -1))), b.const(scale.reshape(1, -1)))
    _bind(cv, node.output[0], b.reshape(y, (n, c)))


def _where(cv, node, b: _Builder, kind, x: int, ref, then, otherwise) -> int:
    """``then`` where ``kind(x, ref)`` holds, else ``otherwise`` (IR tensors or constants)."""
    shape = b.shape(x)
    cond = cv._tensor(f"{node.output[0]}/cond{b.n}", shape, DType.BOOL)
    cv._emit(kind, [x, ref if isinstance(ref, int) else b.const(ref)], [cond])
    ins = [v if isinstance(v, int) else b.const(v) for v in (then, otherwise)]
    return b.op(K.SELECT_V2, [cond] + ins, shape)


def binarizer(cv, node) -> None:
    """1 where x > threshold, else 0 (NaN: 0, as onnxruntime's comparison), element-wise on an
    input of any rank in the reader's layout."""
    from .reader import Val
    v = cv._float(node.input[0])
    if v.layout is Layout.FLAT_NHWC:
        raise Fail("a flattened NCHW input (its element order differs from ONNX's)")
    thr = np.float32(cv_attrs(node).get("threshold", 0.0))
    one = np.ones([1] * len(cv.tensors[v.idx].shape), np.float32)
    y = _where(cv, node, _Builder(cv, node, "bin"), K.GREATER, v.idx, thr * one, one, 0 * one)
    cv.vals[node.output[0]] = Val(y, v.layout, v.shape, v.chw)


def imputer(cv, node) -> None:
    """x, with the feature's imputed value where x is NaN (replaced_value_float NaN) or equals
    replaced_value_float."""
    a = cv_attrs(node)
    x, (n, c) = _rows(cv, node.input[0])
    vals = np.asarray(a.get("imputed_value_floats", []), np.float32)
    if vals.size not in (1, c):
        raise Fail(f"{vals.size} imputed_value_floats for {c} features (the float form is supported)")
    rep = np.float32(a.get("replaced_value_float", 0.0))
    b = _Builder(cv, node, "imp")
    nan = bool(np.isnan(rep))   # NaN is found as x != x
    _bind(cv, node.output[0], _where(cv, node, b, K.NOT_EQUAL if nan else K.EQUAL, x, x if nan else [[rep]],
                                     vals.reshape(1, -1), x))


def normalizer(cv, node) -> None:
    norm = _text(cv_attrs(node).get("norm", "MAX"))
    x, (n, c) = _rows(cv, node.input[0])
    b = _Builder(cv, node, "norm")
    row = (n, 1)
    keep = A.Mean((1,), True)
    if norm == "MAX":
        d = b.op(K.REDUCE_MAX, [x], row, keep)
    elif norm == "L1":
        d = b.op(K.SUM, [b.op(K.ABS, [x], (n, c))], row, keep)
    elif norm == "L2":
        d = b.op(K.SQRT, [b.op(K.SUM, [b.op(K.SQUARE, [x], (n, c))], row, keep)], row)
    else:
        raise Fail(f"norm '{norm}' (MAX, L1 and L2 are supported)", final=True)
    zero = cv._tensor(f"{node.output[0]}/norm_zero", row, DType.BOOL)
    cv._emit(K.EQUAL, [d, b.const([[0.0]])], [zero])
    d = b.op(K.SELECT_V2, [zero, b.const([[1.0]]), d], row)
    _bind(cv, node.output[0], b.ew(K.DIV, x, d))


def _linear(cv, node, b: _Builder, x: int, n: int, f: int, a: dict) -> tuple[int, int]:
    """(raw scores [N, T], T) of a LinearRegressor / LinearClassifier."""
    coef = np.asarray(a.get("coefficients", []), np.float32)
    if coef.size == 0 or coef.size % f:
        raise Fail(f"{coef.size} coefficients for {f} features", final=True)
    t = coef.size // f
    inter = np.asarray(a.get("intercepts", [0.0] * t), np.float32)
    if inter.size != t:
        raise Fail(f"{inter.size} intercepts for {t} coefficient rows", final=True)
    post = _text(a.get("post_transform", "NONE"))
    if post not in ("NONE", "LOGISTIC", "SOFTMAX"):
        raise Fail(f"post_transform {post} (NONE, LOGISTIC and SOFTMAX are supported)")
    w = b.const(coef.reshape(t, f), "w")
    return b.op(K.FULLY_CONNECTED, [x, w, b.const(inter, "b")], (n, t), A.FullyConnected()), t


def _transform(b: _Builder, post: str, s: int) -> int:
    if post == "LOGISTIC":
        return b.op(K.LOGISTIC, [s], b.shape(s))
    if post == "SOFTMAX":
        return b.op(K.SOFTMAX, [s], b.shape(s), A.Softmax(1.0, -1))
    return s


def linear_regressor(cv, node) -> None:
    a = cv_attrs(node)
    x, (n, f) = _rows(cv, node.input[0])
    b = _Builder(cv, node, "linreg")
    post = _text(a.get("post_transform", "NONE"))
    if post != "NONE":
        raise Fail(f"post_transform {post} (NONE is supported)")
    s, t = _linear(cv, node, b, x, n, f, a)
    if int(a.get("targets", t)) != t:
        raise Fail(f"targets {a.get('targets')} with {t} coefficient rows", final=True)
    _bind(cv, node.output[0], s)


def _int_labels(a: dict, key: str) -> tuple[int, ...]:
    if a.get("classlabels_strings"):
        raise Fail("string class labels (classlabels_strings; the IR holds numeric tensors): train with "
                   "integer labels 0..n-1")
    return tuple(int(v) for v in a.get(key, ()))


MAX_LABEL = 4095   # the largest class label other than 0..n-1 taken (a one-hot row of that length)


def _check_labels(labels: tuple[int, ...]) -> None:
    if labels != tuple(range(len(labels))) and not all(0 <= v <= MAX_LABEL for v in labels):
        raise Fail(f"class labels {list(labels)[:8]} (labels 0..{MAX_LABEL} are supported, negative ones not: "
                   "train with y encoded as 0..n-1)")


def _label(cv, name: str, scores: int, n: int, labels: tuple[int, ...]) -> None:
    """ONNX output ``name`` (int64 [N]): ``labels`` at the first maximum of ``scores`` [N, C]: the
    ARG_MAX itself for labels 0..C-1; otherwise (labels in 0..MAX_LABEL) the first maximum as a
    one-hot row (the largest of ``C - j`` where ``scores == max``, as Hardmax), spread to a row of
    max(labels) + 1 by a FULLY_CONNECTED of 0/1 weights (exact), whose ARG_MAX is the label."""
    c = len(labels)
    if labels != tuple(range(c)):
        _check_labels(labels)
        b = _Builder(cv, cv.node, "label")
        keep = A.Mean((1,), True)

        def first_max(v):   # 1.0 at the first maximum of each row, else 0.0
            w = _where(cv, cv.node, b, K.EQUAL, v, b.op(K.REDUCE_MAX, [v], (n, 1), keep),
                       (c - np.arange(c, dtype=np.float32)).reshape(1, c), [[0.0]])
            return _where(cv, cv.node, b, K.EQUAL, w, b.op(K.REDUCE_MAX, [w], (n, 1), keep), [[1.0]], [[0.0]])

        spread = np.zeros((max(labels) + 1, c), np.float32)
        spread[list(labels), np.arange(c)] = 1.0
        scores = b.op(K.FULLY_CONNECTED, [first_max(scores), b.const(spread, "w")], (n, spread.shape[0]),
                      A.FullyConnected())
    out = cv._tensor(name, (n,), DType.INT64)
    cv._emit(K.ARG_MAX, [scores], [out], A.ArgMinMax(1))
    _set(cv, name, out)


def linear_classifier(cv, node) -> None:
    a = cv_attrs(node)
    labels = _int_labels(a, "classlabels_ints")
    x, (n, f) = _rows(cv, node.input[0])
    b = _Builder(cv, node, "linclf")
    s, t = _linear(cv, node, b, x, n, f, a)
    post = _text(a.get("post_transform", "NONE"))
    binary = t == 1 and len(labels) == 2
    if len(labels) != (2 if t == 1 else t):   # onnxruntime refuses one row without two labels at load
        raise Fail(f"{len(labels)} class labels for {t} coefficient row(s)")
    _check_labels(labels)
    if binary:   # onnxruntime: label s > 0, scores [1 - v, v]
        if post == "SOFTMAX":
            raise Fail("post_transform SOFTMAX with one coefficient row (NONE and LOGISTIC are supported)")
        label_in = b.op(K.CONCATENATION, [b.op(K.NEG, [s], (n, 1)), s], (n, 2), A.Concatenation(1))
        v = _transform(b, post, s)
        scores = b.op(K.CONCATENATION, [b.ew(K.SUB, b.const([[1.0]]), v), v], (n, 2), A.Concatenation(1))
    else:
        label_in, scores = s, _transform(b, post, s)
    _label(cv, node.output[0], label_in, n, labels)
    if len(node.output) > 1 and node.output[1]:
        _bind(cv, node.output[1], scores)


def array_feature_extractor(cv, node) -> None:
    """Y = X[..., indices] with constant indices (LinearSVC's positive-class column)."""
    if node.input[1] not in cv.consts:
        raise Fail("indices given at run time (constant indices are supported)")
    idx = np.asarray(cv._const_f(node.input[1])).astype(np.int64).reshape(-1)
    x, (n, c) = _rows(cv, node.input[0])
    if idx.size == 0 or idx.min() < 0 or idx.max() >= c:
        raise Fail(f"indices {idx.tolist()[:8]} out of range for {c} columns", final=True)
    b = _Builder(cv, node, "afe")
    y = b.op(K.GATHER, [x], (n, idx.size), A.Gather(1, tuple(int(i) for i in idx), (idx.size,)))
    _bind(cv, node.output[0], y)


def _tree_nodes(a: dict, targets_key: str):
    """The nodes of every tree in preorder (children after their parent), as attrs.TreeEnsemble's
    arrays, with the leaf weights grouped per leaf."""
    for k in ("nodes_values_as_tensor", "base_values_as_tensor", f"{targets_key}_weights_as_tensor"):
        if k in a:
            raise Fail(f"{k} (double thresholds or weights; the float attributes are supported)")
    if any(int(v) for v in a.get("nodes_missing_value_tracks_true", ())):
        raise Fail("nodes_missing_value_tracks_true (missing-value tracking is not supported)")
    tree, nid = list(a["nodes_treeids"]), list(a["nodes_nodeids"])
    modes = [_text(m) for m in a["nodes_modes"]]
    bad = sorted({m for m in modes if m not in A.TREE_MODES})
    if bad:
        raise Fail(f"node mode {bad[0]} (BRANCH_LEQ/LT/GTE/GT/EQ/NEQ and LEAF are supported)")
    n = len(tree)
    cols = [a["nodes_featureids"], a["nodes_values"], a["nodes_truenodeids"], a["nodes_falsenodeids"], nid]
    if any(len(c) != n for c in cols) or len(modes) != n:
        raise Fail("node attributes of different lengths", final=True)
    at = {(int(t), int(i)): k for k, (t, i) in enumerate(zip(tree, nid))}
    if len(at) != n:
        raise Fail("a node id appears twice in one tree", final=True)
    w_tree, w_node = a.get(f"{targets_key}_treeids", []), a.get(f"{targets_key}_nodeids", [])
    w_id, w_val = a.get(f"{targets_key}_ids", []), a.get(f"{targets_key}_weights", [])
    if not len(w_tree) == len(w_node) == len(w_id) == len(w_val):
        raise Fail("leaf weight attributes of different lengths", final=True)
    weights: dict[int, list[tuple[int, float]]] = {}
    for t, i, c, v in zip(w_tree, w_node, w_id, w_val):
        k = at.get((int(t), int(i)))
        if k is None:
            raise Fail(f"a weight for node {i} of tree {t}, which does not exist", final=True)
        weights.setdefault(k, []).append((int(c), float(v)))
    by_tree: dict[int, list[int]] = {}   # the trees in the order they appear
    for k, t in enumerate(tree):
        by_tree.setdefault(int(t), []).append(k)
    order: list[int] = []
    roots = []
    pos: dict[int, int] = {}
    for t, ks in by_tree.items():
        children = {int(cols[c][k]) for k in ks if modes[k] != "LEAF" for c in (2, 3)}
        tops = [int(nid[k]) for k in ks if int(nid[k]) not in children]
        if len(tops) != 1:
            raise Fail(f"tree {t} has {len(tops)} roots", final=True)
        roots.append(len(order))
        stack = [at[(t, tops[0])]]
        while stack:
            k = stack.pop()
            if k in pos:
                raise Fail(f"tree {t} is not a tree (node {nid[k]} is reached twice)", final=True)
            pos[k] = len(order)
            order.append(k)
            if modes[k] != "LEAF":
                for child in (cols[3][k], cols[2][k]):   # true child first in preorder
                    c = at.get((t, int(child)))
                    if c is None:
                        raise Fail(f"node {nid[k]} of tree {t} has a missing child {child}", final=True)
                    stack.append(c)
    leaf = A.TREE_MODES.index("LEAF")
    arr = dict(feature=[], threshold=[], mode=[], true_child=[], false_child=[], leaf_first=[], leaf_count=[],
               weight_target=[], weight_value=[])
    for k in order:
        m = A.TREE_MODES.index(modes[k])
        is_leaf = m == leaf
        arr["mode"].append(m)
        arr["feature"].append(0 if is_leaf else int(cols[0][k]))
        arr["threshold"].append(0.0 if is_leaf else float(np.float32(cols[1][k])))
        arr["true_child"].append(0 if is_leaf else pos[at[(int(tree[k]), int(cols[2][k]))]])
        arr["false_child"].append(0 if is_leaf else pos[at[(int(tree[k]), int(cols[3][k]))]])
        ws = weights.get(k, []) if is_leaf else []
        arr["leaf_first"].append(len(arr["weight_value"]))
        arr["leaf_count"].append(len(ws))
        for c, v in ws:
            arr["weight_target"].append(c)
            arr["weight_value"].append(float(np.float32(v)))
    return tuple(roots), {key: tuple(v) for key, v in arr.items()}


def tree_ensemble(cv, node) -> None:
    a = cv_attrs(node)
    classifier = node.op_type == "TreeEnsembleClassifier"
    x, (n, f) = _rows(cv, node.input[0])
    post = _text(a.get("post_transform", "NONE"))
    if post not in A.TREE_TRANSFORMS:
        raise Fail(f"post_transform {post} (NONE, LOGISTIC, SOFTMAX and SOFTMAX_ZERO are supported)")
    if classifier:
        labels = _int_labels(a, "classlabels_int64s")
        n_targets = len(labels)
        key, agg = "class", "SUM"
    else:
        labels = ()
        n_targets = int(a.get("n_targets", 1))
        key, agg = "target", _text(a.get("aggregate_function", "SUM"))
        if agg not in A.TREE_AGGREGATES:
            raise Fail(f"aggregate_function {agg}", final=True)
    roots, arr = _tree_nodes(a, key)
    if n_targets < 1 or any(not 0 <= t < n_targets for t in arr["weight_target"]):
        raise Fail(f"a leaf weight for a target outside 0..{n_targets - 1}", final=True)
    if any(m != A.TREE_MODES.index("LEAF") and not 0 <= fi < f for m, fi in zip(arr["mode"], arr["feature"])):
        raise Fail(f"a node reads a feature outside 0..{f - 1}", final=True)
    base = tuple(float(np.float32(v)) for v in a.get("base_values", ()))
    binary = classifier and n_targets == 2 and len(set(arr["weight_target"])) == 1
    if classifier and n_targets == 2 and not binary and len(base) < 2 and any(
            m == A.TREE_MODES.index("LEAF") and 1 not in arr["weight_target"][first:first + count]
            for m, first, count in zip(arr["mode"], arr["leaf_first"], arr["leaf_count"])):
        # a row whose leaves give class 1 no weight takes onnxruntime's one-score path, whose second
        # score differs between its versions (a fuzzed skl2onnx tree): refused, not guessed
        raise Fail("two classes weighted by some leaves only for class 0 (skl2onnx weighs class 1 at every "
                   "leaf or only class 1)")
    attrs = A.TreeEnsemble(n_targets, roots, aggregate=agg, base_values=base, post_transform=post, labels=labels,
                           binary=binary, all_positive=all(v >= 0 for v in a.get(f"{key}_weights", ())), **arr)
    names = [node.output[1] if len(node.output) > 1 else "", node.output[0]] if classifier else [node.output[0]]
    outs = [cv._tensor(names[0] or f"{node.output[0]}/scores", (n, n_targets), F32)]
    if classifier:
        outs.append(cv._tensor(node.output[0], (n,), DType.INT64))
    cv._emit(K.TREE_ENSEMBLE, [x], outs, attrs)
    for name, idx in zip(names, outs):
        if name:
            _set(cv, name, idx)


def _svm_kernel(b: _Builder, x: int, n: int, f: int, a: dict, s: int) -> int:
    """onnxruntime's kernel values [N, S] of the rows of ``x`` against the ``s`` support vectors:
    LINEAR ``x.sv``, POLY ``(gamma x.sv + coef0)^degree`` (degree 2 or 3), RBF
    ``exp(-gamma |x - sv|^2)`` or SIGMOID ``tanh(gamma x.sv + coef0)``."""
    kernel = _text(a.get("kernel_type", "LINEAR"))
    gamma, coef0, degree = (list(a.get("kernel_params", [])) + [0.0, 0.0, 0.0])[:3]
    sv = np.asarray(a.get("support_vectors", []), np.float32)
    if sv.size != s * f:
        raise Fail(f"{sv.size} support vector values for {s} vectors of {f} features", final=True)
    sv = sv.reshape(s, f)
    if kernel == "RBF":
        d = b.op(K.SQUARED_DIFFERENCE, [b.reshape(x, (n, 1, f)), b.const(sv.reshape(1, s, f), "sv")], (n, s, f))
        return b.op(K.EXP, [b.ew(K.MUL, b.op(K.SUM, [d], (n, s), A.Mean((2,), False)),
                                 b.const([[-np.float32(gamma)]]))], (n, s))
    if kernel not in ("LINEAR", "POLY", "SIGMOID"):
        raise Fail(f"kernel_type {kernel}", final=True)
    if kernel == "POLY" and degree not in (2, 3):
        raise Fail(f"POLY kernel of degree {degree:g} (2 and 3 are supported)")
    k = b.op(K.FULLY_CONNECTED, [x, b.const(sv, "sv")], (n, s), A.FullyConnected())
    if kernel != "LINEAR":
        k = b.ew(K.MUL, k, b.const([[gamma]]))
        if coef0 != 0:
            k = b.ew(K.ADD, k, b.const([[coef0]]))
    if kernel == "SIGMOID":
        return b.op(K.TANH, [k], (n, s))
    if kernel == "POLY":
        sq = b.op(K.SQUARE, [k], (n, s))
        return sq if degree == 2 else b.ew(K.MUL, sq, k)
    return k


def _fc(b: _Builder, x: int, w: np.ndarray, bias: np.ndarray) -> int:
    n = b.shape(x)[0]
    return b.op(K.FULLY_CONNECTED, [x, b.const(w, "w"), b.const(bias, "b")], (n, w.shape[0]), A.FullyConnected())


def svm_regressor(cv, node) -> None:
    """onnxruntime's SVMRegressor: with support vectors, ``K(x, sv) . coefficients + rho`` (see
    _svm_kernel); without, ``x.coefficients + rho``; one_class: 1 where that is > 0, else -1
    (post_transform is not applied, as in onnxruntime)."""
    a = cv_attrs(node)
    x, (n, f) = _rows(cv, node.input[0])
    b = _Builder(cv, node, "svr")
    coef = np.asarray(a.get("coefficients", []), np.float32)
    rho = np.asarray(a.get("rho", []), np.float32)
    s = int(a.get("n_supports", 0))
    if coef.size != (s if s > 0 else f) or rho.size < 1:
        raise Fail(f"{coef.size} coefficients and {rho.size} rho for {s} support vectors of {f} features",
                   final=True)
    y = _fc(b, _svm_kernel(b, x, n, f, a, s) if s > 0 else x, coef.reshape(1, -1), rho[:1])
    if int(a.get("one_class", 0)):
        pos = cv._tensor(f"{node.output[0]}/svr_pos", (n, 1), DType.BOOL)
        cv._emit(K.GREATER, [y, b.const([[0.0]])], [pos])
        y = b.op(K.SELECT_V2, [pos, b.const([[1.0]]), b.const([[-1.0]])], (n, 1))
    _bind(cv, node.output[0], y)


def _exact_sum(b: _Builder, t: int) -> int:
    """The sums over the last axis of ``t`` [N, P, L] as [N, P], nearly as exact as onnxruntime's
    double sum of float terms: pairwise float additions, each with its rounding error (Knuth's
    TwoSum: ``e = (a - (s - bb)) + (c - bb)``, ``bb = s - a``, exact in IEEE float), the errors
    summed and added last."""
    n, p, length = b.shape(t)
    errs = []
    one = (1, 1, 1)
    while length > 1:
        h = length // 2

        def half(start, size, src=t):
            return b.op(K.SLICE, [src], (n, p, size), A.Slice((0, 0, start), (n, p, size), one))

        x, y = half(0, h), half(h, h)
        total = b.ew(K.ADD, x, y)
        back = b.ew(K.SUB, total, x)
        errs.append(b.ew(K.ADD, b.ew(K.SUB, x, b.ew(K.SUB, total, back)), b.ew(K.SUB, y, back)))
        if length % 2:
            total = b.op(K.CONCATENATION, [total, half(2 * h, 1)], (n, p, h + 1), A.Concatenation(2))
        t, length = total, h + length % 2
    e = errs[0] if len(errs) == 1 else b.op(K.CONCATENATION, errs, (n, p, sum(b.shape(v)[2] for v in errs)),
                                            A.Concatenation(2))
    return b.ew(K.ADD, b.reshape(t, (n, p)), b.op(K.SUM, [e], (n, p), A.Mean((2,), False)))


def svm_classifier(cv, node) -> None:
    """onnxruntime's SVMClassifier (libsvm's one-against-one) without probabilities: the decision
    value of each class pair (i, j), ``sum coef * K`` over both classes' support vectors + rho
    (the products as MUL [N, pairs, S], summed by _exact_sum); a pair votes for i when it is > 0, else for j;
    the label is the first class with the most votes (vote counts are exact small integers in
    float32: FULLY_CONNECTED of the 0/1 comparisons). Scores: the decision values, for two
    classes ``[-d, d]``."""
    a = cv_attrs(node)
    labels = _int_labels(a, "classlabels_ints")
    x, (n, f) = _rows(cv, node.input[0])
    if a.get("prob_a"):
        raise Fail("prob_a / prob_b (SVC(probability=True)'s Platt scaling is not supported)")
    post = _text(a.get("post_transform", "NONE"))
    if post != "NONE":
        raise Fail(f"post_transform {post} (NONE is supported)")
    per_class = [int(v) for v in a.get("vectors_per_class", ())]
    c, s = len(labels), sum(per_class)
    if s == 0:
        raise Fail("no support vectors (the linear SVMClassifier form is not supported)")
    if len(per_class) != c or c < 2:
        raise Fail(f"{c} class labels with {len(per_class)} classes of support vectors", final=True)
    _check_labels(labels)
    coef = np.asarray(a.get("coefficients", []), np.float32)
    pairs = [(i, j) for i in range(c) for j in range(i + 1, c)]
    rho = np.asarray(a.get("rho", []), np.float32)
    if coef.size != (c - 1) * s or rho.size != len(pairs):
        raise Fail(f"{coef.size} coefficients and {rho.size} rho for {c} classes and {s} support vectors",
                   final=True)
    coef = coef.reshape(c - 1, s)
    start = np.concatenate([[0], np.cumsum(per_class)]).astype(int)
    w = np.zeros((len(pairs), s), np.float32)
    votes = np.zeros((c, len(pairs)), np.float32)
    for k, (i, j) in enumerate(pairs):
        w[k, start[i]:start[i + 1]] = coef[j - 1, start[i]:start[i + 1]]
        w[k, start[j]:start[j + 1]] = coef[i, start[j]:start[j + 1]]
        votes[i, k], votes[j, k] = 1.0, -1.0
    b = _Builder(cv, node, "svc")
    k = b.reshape(_svm_kernel(b, x, n, f, a, s), (n, 1, s))
    terms = b.op(K.MUL, [k, b.const(w.reshape(1, len(pairs), s), "w")], (n, len(pairs), s), A.Elementwise())
    rho_col = b.const(np.broadcast_to(rho.reshape(1, -1, 1), (n, len(pairs), 1)).copy(), "rho")
    d = _exact_sum(b, b.op(K.CONCATENATION, [terms, rho_col], (n, len(pairs), s + 1), A.Concatenation(2)))
    pos = cv._tensor(f"{node.output[0]}/svc_pos", (n, len(pairs)), DType.BOOL)
    cv._emit(K.GREATER, [d, b.const([[0.0]])], [pos])
    won = b.op(K.SELECT_V2, [pos, b.const([[1.0]]), b.const([[0.0]])], (n, len(pairs)))
    _label(cv, node.output[0], _fc(b, won, votes, (votes < 0).sum(1).astype(np.float32)), n, labels)
    if len(node.output) > 1 and node.output[1]:
        scores = d if c > 2 else b.op(K.CONCATENATION, [b.op(K.NEG, [d], (n, 1)), d], (n, 2), A.Concatenation(1))
        _bind(cv, node.output[1], scores)


def output_types(node, ins: list, a: dict) -> list[tuple[str, list[int], int]]:
    """(name, shape, onnx element type) of the outputs of ONNX-ML ``node`` on inputs ``ins``
    ((shape, element type), or None when unknown) that this reader converts (onnx's shape
    inference leaves them unknown)."""
    if not ins or ins[0] is None or len(ins[0][0]) != 2:
        return []
    shape = ins[0][0]
    n, op, out = shape[0], node.op_type, list(node.output) + ["", ""]
    if op == "ArrayFeatureExtractor":
        k = ins[1] if len(ins) > 1 else None
        return [] if k is None else [(out[0], [n, int(np.prod(k[0], dtype=np.int64))], ins[0][1])]
    if op in ("Scaler", "Normalizer", "Imputer"):
        return [(out[0], list(shape), _FLOAT)]
    if op == "LinearRegressor":
        return [(out[0], [n, int(a.get("targets", 1))], _FLOAT)]
    if op == "SVMRegressor":
        return [(out[0], [n, 1], _FLOAT)]
    if op == "TreeEnsembleRegressor":
        return [(out[0], [n, int(a.get("n_targets", 1))], _FLOAT)]
    if op == "LinearClassifier" and a.get("classlabels_ints"):
        rows, labels = len(a.get("intercepts", ())), len(a["classlabels_ints"])
        return [(out[0], [n], _INT64), (out[1], [n, 2 if rows == 1 and labels == 2 else rows], _FLOAT)]
    if op == "SVMClassifier" and a.get("classlabels_ints") and a.get("vectors_per_class"):
        c = len(a["classlabels_ints"])
        return [(out[0], [n], _INT64), (out[1], [n, 2 if c == 2 else c * (c - 1) // 2], _FLOAT)]
    if op == "TreeEnsembleClassifier" and a.get("classlabels_int64s"):
        return [(out[0], [n], _INT64), (out[1], [n, len(a["classlabels_int64s"])], _FLOAT)]
    return []


def zipmap(cv, node) -> None:
    raise Fail(ZIPMAP_HINT, final=True)


HANDLERS = {"Scaler": scaler, "Normalizer": normalizer, "Binarizer": binarizer, "Imputer": imputer,
            "LinearRegressor": linear_regressor, "LinearClassifier": linear_classifier, "ArrayFeatureExtractor": array_feature_extractor,
            "TreeEnsembleRegressor": tree_ensemble, "TreeEnsembleClassifier": tree_ensemble,
            "SVMRegressor": svm_regressor, "SVMClassifier": svm_classifier, "ZipMap": zipmap}
