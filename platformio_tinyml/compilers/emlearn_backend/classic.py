"""Generated C for the scikit-learn models emlearn does not take, and scaler pipelines.

emlearn covers trees, forests, MLP classifiers, KNN and mixtures.
The estimators here are written as C by this module instead, in ``double``
arithmetic following scikit-learn's own order of operations, so predicted
classes are scikit-learn's and values agree to rounding:

* linear models (``linear``): LogisticRegression, RidgeClassifier,
  LinearSVC, SGDClassifier, Perceptron, LinearRegression, Ridge, Lasso,
  ElasticNet, LinearSVR, SGDRegressor;
* kernel SVMs (``svm``): SVC and NuSVC (linear, poly, rbf, sigmoid kernels,
  libsvm's one-vs-one vote), SVR and NuSVR;
* boosted and isolation trees (``boost``): GradientBoostingClassifier /
  Regressor, HistGradientBoostingClassifier / Regressor (numeric features),
  AdaBoostClassifier (SAMME over decision trees), IsolationForest;
* MLPRegressor (``mlpreg``);
* GaussianNB (``nb``): scikit-learn's joint log-likelihood, so classes are
  exact (emlearn's runtime is Q16 fixed point without class priors).

A :class:`~sklearn.pipeline.Pipeline` of per-feature scalers
(StandardScaler, MinMaxScaler, MaxAbsScaler, RobustScaler) before any
supported estimator becomes the same arithmetic in front of it
(:func:`scaler_steps`); the emlearn families use it too.

On AVR ``double`` is 32 bits wide (avr-gcc's default), so there results
agree with scikit-learn to float32 rounding only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

LINEAR_CLASSIFIERS = ("LogisticRegression", "RidgeClassifier", "LinearSVC", "SGDClassifier", "Perceptron")
LINEAR_REGRESSORS = ("LinearRegression", "Ridge", "Lasso", "ElasticNet", "LinearSVR", "SGDRegressor")
SVM_KINDS = ("SVC", "NuSVC", "SVR", "NuSVR")
BOOST_KINDS = ("GradientBoostingClassifier", "GradientBoostingRegressor", "HistGradientBoostingClassifier",
               "HistGradientBoostingRegressor", "AdaBoostClassifier", "IsolationForest")
MLPREG_KINDS = ("MLPRegressor",)
NB_KINDS = ("GaussianNB",)
CLASSIC_KINDS = LINEAR_CLASSIFIERS + LINEAR_REGRESSORS + SVM_KINDS + BOOST_KINDS + MLPREG_KINDS + NB_KINDS
SCALER_KINDS = ("StandardScaler", "MinMaxScaler", "MaxAbsScaler", "RobustScaler")
_ACTS = {"identity": "v", "relu": "(v > 0.0 ? v : 0.0)", "tanh": "tanh(v)", "logistic": "(1.0 / (1.0 + exp(-v)))",
         "exp": "exp(v)"}


class Unsupported(Exception):
    """The estimator cannot be compiled here; str() says why."""


@dataclass(frozen=True)
class ScalerStep:
    """x <- (x - sub) * mul / div, elementwise, each part optional (the scaler's own operations)."""
    kind: str
    sub: tuple[float, ...] | None = None
    mul: tuple[float, ...] | None = None
    add: tuple[float, ...] | None = None
    div: tuple[float, ...] | None = None


def scaler_steps(est) -> tuple[list[ScalerStep], object]:
    """(scaler steps, final estimator) of a Pipeline; ([], est) for anything else."""
    if type(est).__name__ != "Pipeline":
        return [], est
    steps = [s for _, s in est.steps if s not in (None, "passthrough")]
    if not steps:
        raise Unsupported("the Pipeline has no estimator")
    out = []
    for s in steps[:-1]:
        kind = type(s).__name__
        if kind not in SCALER_KINDS:
            raise Unsupported(f"Pipeline step {kind} is not supported: only {', '.join(SCALER_KINDS)} "
                              "may come before the estimator")
        out.append(_scaler(s, kind))
    final = steps[-1]
    if type(final).__name__ in SCALER_KINDS:
        raise Unsupported("the Pipeline ends in a scaler, not an estimator")
    return out, final


def _vec(a) -> tuple[float, ...] | None:
    return None if a is None else tuple(float(v) for v in np.asarray(a, dtype=np.float64).ravel())


def _scaler(s, kind: str) -> ScalerStep:
    if kind == "StandardScaler":
        return ScalerStep(kind, sub=_vec(s.mean_) if s.with_mean else None,
                          div=_vec(s.scale_) if s.with_std else None)
    if kind == "MinMaxScaler":
        if getattr(s, "clip", False):
            raise Unsupported("MinMaxScaler(clip=True) is not supported")
        return ScalerStep(kind, mul=_vec(s.scale_), add=_vec(s.min_))
    if kind == "MaxAbsScaler":
        return ScalerStep(kind, div=_vec(s.scale_))
    return ScalerStep(kind, sub=_vec(s.center_) if s.with_centering else None,
                      div=_vec(s.scale_) if s.with_scaling else None)


@dataclass(frozen=True)
class Classic:
    """What the C generator needs: the family and the fitted estimator's arrays."""
    kind: str
    family: str                 # linear | svm | boost | mlpreg | nb
    n_features: int
    classes: tuple | None       # None for regressors and IsolationForest's -1/1
    output: str                 # class | value
    weights: int                # stored parameters (doubles)
    macs: int                   # multiply-adds (or tree nodes visited) per inference
    notes: tuple[str, ...] = ()


def describe_classic(est, output: str = "class") -> Classic:
    kind = type(est).__name__
    if not hasattr(est, "n_features_in_"):
        raise Unsupported(f"the {kind} is not fitted")
    n = int(est.n_features_in_)
    regressor = kind in LINEAR_REGRESSORS or kind in ("SVR", "NuSVR", "GradientBoostingRegressor",
                                                      "HistGradientBoostingRegressor", "MLPRegressor")
    want = "value" if regressor else "class"
    if output not in ("class", want):
        raise Unsupported(f"option output={output} is not available: a {kind} gives output={want}")
    classes = None if regressor or kind == "IsolationForest" else tuple(np.asarray(est.classes_).tolist())
    if kind in LINEAR_CLASSIFIERS + LINEAR_REGRESSORS:
        coef = np.atleast_2d(est.coef_)
        return Classic(kind, "linear", n, classes, want, coef.size + coef.shape[0], coef.size)
    if kind in SVM_KINDS:
        if est.kernel not in ("linear", "poly", "rbf", "sigmoid"):
            raise Unsupported(f"{kind} kernel {est.kernel!r} is not supported (linear, poly, rbf, sigmoid)")
        if getattr(est, "break_ties", False):
            raise Unsupported(f"{kind}(break_ties=True) is not supported")
        sv = est.support_vectors_
        return Classic(kind, "svm", n, classes, want, sv.size + est._dual_coef_.size, sv.size * 2)
    if kind in NB_KINDS:
        return Classic(kind, "nb", n, classes, want, 2 * est.theta_.size + len(classes), est.theta_.size * 3)
    if kind in MLPREG_KINDS:
        if est.activation not in _ACTS or est.out_activation_ not in _ACTS:
            raise Unsupported(f"MLPRegressor activation {est.activation!r} / {est.out_activation_!r} "
                              "is not supported")
        macs = sum(w.size for w in est.coefs_)
        return Classic(kind, "mlpreg", n, None, want, macs + sum(b.size for b in est.intercepts_), macs)
    trees = _boost_trees(est, kind)
    nodes = sum(len(t.feature) for t in trees)
    visits = sum(t.depth for t in trees)
    return Classic(kind, "boost", n, classes, "class" if kind == "IsolationForest" else want,
                   nodes * 3, visits,
                   ("IsolationForest: the output is 1 (inlier) or -1 (outlier), as predict() gives",)
                   if kind == "IsolationForest" else ())


@dataclass
class _Tree:
    """One tree as flat arrays: go left when x[feature] <= threshold; leaves hold values."""
    feature: np.ndarray      # int, -1 at a leaf
    threshold: np.ndarray    # float64
    left: np.ndarray
    right: np.ndarray
    value: np.ndarray        # float64 per node (what a leaf adds)
    nan_left: np.ndarray     # HistGradientBoosting: where NaN goes
    depth: int
    cast32: bool             # compare float32(x), as scikit-learn's tree code does


def _sk_tree(t, values, cast32=True) -> _Tree:
    leaf = t.children_left == -1
    return _Tree(np.where(leaf, -1, t.feature).astype(np.int64), t.threshold.astype(np.float64),
                 t.children_left, t.children_right, np.asarray(values, np.float64),
                 np.zeros(t.node_count, bool), int(t.max_depth), cast32)


def _boost_trees(est, kind: str) -> list[_Tree]:
    if kind.startswith("GradientBoosting"):
        return [_sk_tree(e.tree_, e.tree_.value[:, 0, 0]) for e in est.estimators_.ravel()]
    if kind.startswith("HistGradientBoosting"):
        if getattr(est, "is_categorical_", None) is not None and np.any(est.is_categorical_):
            raise Unsupported(f"{kind} with categorical features is not supported")
        out = []
        for it in est._predictors:
            for p in it:
                nd = p.nodes
                leaf = nd["is_leaf"].astype(bool)
                out.append(_Tree(np.where(leaf, -1, nd["feature_idx"]).astype(np.int64),
                                 nd["num_threshold"].astype(np.float64), nd["left"].astype(np.int64),
                                 nd["right"].astype(np.int64), nd["value"].astype(np.float64),
                                 nd["missing_go_to_left"].astype(bool), int(nd["depth"].max()), False))
        return out
    if kind == "AdaBoostClassifier":
        if any(type(e).__name__ != "DecisionTreeClassifier" for e in est.estimators_):
            raise Unsupported("AdaBoostClassifier is supported over decision trees only")
        # each tree's leaf value: the index of the class it predicts (argmax, first on ties)
        return [_sk_tree(e.tree_, np.argmax(e.tree_.value[:, 0, :], axis=1)) for e in est.estimators_]
    out = []
    for e, feats, dpl, apl in zip(est.estimators_, est.estimators_features_, est._decision_path_lengths,
                                  est._average_path_length_per_tree):
        tr = _sk_tree(e.tree_, dpl + apl - 1.0)     # what a leaf adds to the depth sum, as fit() stored it
        tr.feature = np.where(tr.feature >= 0, np.asarray(feats)[np.maximum(tr.feature, 0)], -1)
        out.append(tr)
    return out


# ---- C ---------------------------------------------------------------------------------

def _d(v) -> str:
    """Exact C double literal."""
    f = float(v)
    if not np.isfinite(f):
        raise Unsupported("the model holds NaN or infinite parameters")
    return repr(f)


def _darr(name: str, values) -> list[str]:
    vals = np.asarray(values, np.float64).ravel()
    rows = [", ".join(_d(v) for v in vals[i:i + 6]) for i in range(0, len(vals), 6)] or ["0.0"]
    return [f"static const double {name}[{max(len(vals), 1)}] = {{", *("    " + r + "," for r in rows), "};"]


def _iarr(name: str, values, ctype: str = "int32_t") -> list[str]:
    vals = [int(v) for v in np.asarray(values).ravel()] or [0]
    rows = [", ".join(map(str, vals[i:i + 16])) for i in range(0, len(vals), 16)]
    return [f"static const {ctype} {name}[{len(vals)}] = {{", *("    " + r + "," for r in rows), "};"]


def scaler_code(steps: list[ScalerStep], n: int, prefix: str) -> list[str]:
    """``static void PREFIX_scale(const float *x, double *v)``: the pipeline's scalers, in order."""
    lines = []
    body = ["    for (int32_t j = 0; j < %d; j++) {" % n, "        double t = (double)x[j];"]
    for k, s in enumerate(steps):
        for part, op in (("sub", "t -= {};"), ("mul", "t *= {};"), ("add", "t += {};"), ("div", "t /= {};")):
            vals = getattr(s, part)
            if vals is None:
                continue
            if part == "div":    # scikit-learn leaves zero scales as 1
                vals = tuple(v if v != 0.0 else 1.0 for v in vals)
            lines += _darr(f"{prefix}_s{k}_{part}", vals)
            body.append("        " + op.format(f"{prefix}_s{k}_{part}[j]"))
    body += ["        v[j] = t;", "    }"]
    return lines + ["", f"static void {prefix}_scale(const float *x, double *v)", "{", *body, "}", ""]


def classic_code(est, info: Classic, prefix: str) -> list[str]:
    """C defining ``static int PREFIX_run(const double *x, void *output)`` (0 on success)."""
    return {"linear": _linear, "svm": _svm, "boost": _boost, "mlpreg": _mlpreg,
            "nb": _gaussian_nb}[info.family](est, info, prefix)


def _class_out(info: Classic, prefix: str, idx: str) -> list[str]:
    """Store class index ``idx`` as the label (integer labels) or the index."""
    labels = _int_labels(info.classes)
    if labels is not None and labels != list(range(len(labels))):
        return [f"    *(int32_t *)output = {prefix}_labels[{idx}];"]
    return [f"    *(int32_t *)output = (int32_t)({idx});"]


def _int_labels(classes) -> list[int] | None:
    if classes is None:
        return None
    try:
        vals = [int(c) for c in classes]
    except (TypeError, ValueError):
        return None
    return vals if all(v == c and -2**31 <= v < 2**31 for v, c in zip(vals, classes)) else None


def _labels_table(info: Classic, prefix: str) -> list[str]:
    labels = _int_labels(info.classes)
    if labels is None or labels == list(range(len(labels))):
        return []
    return _iarr(f"{prefix}_labels", labels)


def _argmax(n: int, arr: str) -> list[str]:
    return ["    int32_t best = 0;", f"    for (int32_t k = 1; k < {n}; k++) {{",
            f"        if ({arr}[k] > {arr}[best]) {{", "            best = k;", "        }", "    }"]


def _linear(est, info: Classic, prefix: str) -> list[str]:
    coef = np.atleast_2d(np.asarray(est.coef_, np.float64))
    icpt = np.atleast_1d(np.asarray(est.intercept_, np.float64)) * np.ones(coef.shape[0])
    k, n = coef.shape
    lines = _darr(f"{prefix}_coef", coef) + _darr(f"{prefix}_icpt", icpt) + _labels_table(info, prefix)
    lines += ["", f"static int {prefix}_run(const double *x, void *output)", "{", f"    double s[{k}];",
              f"    for (int32_t k = 0; k < {k}; k++) {{", "        double a = 0.0;",
              f"        for (int32_t j = 0; j < {n}; j++) {{", f"            a += x[j] * {prefix}_coef[k * {n} + j];",
              "        }", f"        s[k] = a + {prefix}_icpt[k];", "    }"]
    return lines + _scores_out(info, prefix, k)


def _scores_out(info: Classic, prefix: str, k: int) -> list[str]:
    """The end of ``PREFIX_run`` from its scores ``s[k]``: the value, the sign's class (one
    score) or the first largest score's class."""
    if info.output == "value":
        out = ["    *(float *)output = (float)s[0];"]
    elif k == 1:
        out = _class_out(info, prefix, "s[0] > 0.0 ? 1 : 0")
    else:
        out = _argmax(k, "s") + _class_out(info, prefix, "best")
    return out + ["    return 0;", "}", ""]


def _gaussian_nb(est, info: Classic, prefix: str) -> list[str]:
    """scikit-learn's joint log-likelihood: log(prior) + (-0.5 * sum(log(2 pi var)) - 0.5 * sum((x - mean)^2 / var));
    the parts that do not depend on x are computed here, in float64 as scikit-learn does."""
    theta = np.asarray(est.theta_, np.float64)
    var = np.asarray(est.var_, np.float64)
    k, n = theta.shape
    norm = np.array([-0.5 * np.sum(np.log(2.0 * np.pi * var[i, :])) for i in range(k)])
    lines = _darr(f"{prefix}_mean", theta) + _darr(f"{prefix}_var", var) + _darr(f"{prefix}_norm", norm)
    lines += _darr(f"{prefix}_logprior", np.log(np.asarray(est.class_prior_, np.float64)))
    lines += _labels_table(info, prefix)
    lines += ["", f"static int {prefix}_run(const double *x, void *output)", "{", f"    double s[{k}];",
              f"    for (int32_t k = 0; k < {k}; k++) {{", "        double a = 0.0;",
              f"        for (int32_t j = 0; j < {n}; j++) {{", f"            const double t = x[j] - {prefix}_mean[k * {n} + j];",
              f"            a += t * t / {prefix}_var[k * {n} + j];", "        }",
              f"        s[k] = {prefix}_logprior[k] + ({prefix}_norm[k] - 0.5 * a);", "    }"]
    return lines + _scores_out(info, prefix, k)


def _svm(est, info: Classic, prefix: str) -> list[str]:
    sv = np.asarray(est.support_vectors_, np.float64)
    n_sv, n = sv.shape
    dual = np.asarray(est._dual_coef_, np.float64)
    icpt = np.asarray(est._intercept_, np.float64)
    gamma, coef0, degree = float(est._gamma), float(est.coef0), int(est.degree)
    lines = _darr(f"{prefix}_sv", sv) + _darr(f"{prefix}_dual", dual) + _darr(f"{prefix}_icpt", icpt)
    lines += _labels_table(info, prefix)
    kern = {"linear": "d", "rbf": f"exp(-{_d(gamma)} * d)", "poly": f"pow({_d(gamma)} * d + {_d(coef0)}, {degree})",
            "sigmoid": f"tanh({_d(gamma)} * d + {_d(coef0)})"}[est.kernel]
    dist = est.kernel == "rbf"
    lines += ["", f"static int {prefix}_run(const double *x, void *output)", "{", f"    static double kv[{n_sv}];",
              f"    for (int32_t i = 0; i < {n_sv}; i++) {{", "        double d = 0.0;",
              f"        for (int32_t j = 0; j < {n}; j++) {{"]
    lines += ([f"            const double t = x[j] - {prefix}_sv[i * {n} + j];", "            d += t * t;"] if dist
              else [f"            d += x[j] * {prefix}_sv[i * {n} + j];"])
    lines += ["        }", f"        kv[i] = {kern};", "    }"]
    if info.classes is None:    # SVR: one decision value
        lines += ["    double s = 0.0;", f"    for (int32_t i = 0; i < {n_sv}; i++) {{",
                  f"        s += {prefix}_dual[i] * kv[i];", "    }",
                  f"    *(float *)output = (float)(s + {prefix}_icpt[0]);", "    return 0;", "}", ""]
        return lines
    nc = len(info.classes)
    starts = np.concatenate([[0], np.cumsum(est._n_support)[:-1]])
    lines[:0] = _iarr(f"{prefix}_start", starts) + _iarr(f"{prefix}_nsv", est._n_support)
    lines += [f"    int32_t votes[{nc}] = {{0}};", "    int32_t p = 0;",
              f"    for (int32_t i = 0; i < {nc}; i++) {{", f"        for (int32_t j = i + 1; j < {nc}; j++) {{",
              "            double s = 0.0;",
              f"            for (int32_t m = 0; m < {prefix}_nsv[i]; m++) {{",
              f"                const int32_t a = {prefix}_start[i] + m;",
              f"                s += {prefix}_dual[(j - 1) * {n_sv} + a] * kv[a];", "            }",
              f"            for (int32_t m = 0; m < {prefix}_nsv[j]; m++) {{",
              f"                const int32_t a = {prefix}_start[j] + m;",
              f"                s += {prefix}_dual[i * {n_sv} + a] * kv[a];", "            }",
              f"            s += {prefix}_icpt[p++];",
              "            votes[s > 0.0 ? i : j]++;", "        }", "    }"]
    return lines + _argmax(nc, "votes") + _class_out(info, prefix, "best") + ["    return 0;", "}", ""]


def _trees_tables(trees: list[_Tree], prefix: str) -> list[str]:
    offs = np.concatenate([[0], np.cumsum([len(t.feature) for t in trees])])
    cat = lambda f: np.concatenate([f(t) for t in trees])  # noqa: E731
    lines = _iarr(f"{prefix}_tree", offs[:-1])
    lines += _iarr(f"{prefix}_feat", cat(lambda t: t.feature), "int16_t" if max(1, np.max(cat(lambda t: t.feature))) < 32767 else "int32_t")
    lines += _darr(f"{prefix}_thr", cat(lambda t: np.where(t.feature >= 0, t.threshold, 0.0)))
    lines += _iarr(f"{prefix}_left", cat(lambda t: np.where(t.feature >= 0, t.left, 0)))
    lines += _iarr(f"{prefix}_right", cat(lambda t: np.where(t.feature >= 0, t.right, 0)))
    lines += _darr(f"{prefix}_val", cat(lambda t: np.where(t.feature >= 0, 0.0, t.value)))
    if any(t.nan_left.any() for t in trees):
        lines += _iarr(f"{prefix}_nanl", cat(lambda t: t.nan_left), "uint8_t")
    cast32 = trees[0].cast32
    nan = any(t.nan_left.any() for t in trees)
    walk = [f"static double {prefix}_leaf(int32_t t, const double *x)", "{",
            f"    const int32_t base = {prefix}_tree[t];", "    int32_t i = 0;",
            f"    while ({prefix}_feat[base + i] >= 0) {{",
            f"        const double v = {'(double)(float)' if cast32 else ''}x[{prefix}_feat[base + i]];",
            f"        const int go_left = {f'v != v ? {prefix}_nanl[base + i] : ' if nan else ''}"
            f"v <= {prefix}_thr[base + i];",
            f"        i = go_left ? {prefix}_left[base + i] : {prefix}_right[base + i];", "    }",
            f"    return {prefix}_val[base + i];", "}", ""]
    return lines + [""] + walk


def _boost(est, info: Classic, prefix: str) -> list[str]:
    kind = info.kind
    trees = _boost_trees(est, kind)
    lines = _trees_tables(trees, prefix) + _labels_table(info, prefix)
    head = ["", f"static int {prefix}_run(const double *x, void *output)", "{"]
    if kind == "IsolationForest":
        from sklearn.ensemble._iforest import _average_path_length
        norm = len(trees) * float(_average_path_length([est.max_samples_])[0])
        return lines + head + ["    double depth = 0.0;", f"    for (int32_t t = 0; t < {len(trees)}; t++) {{",
                               f"        depth += {prefix}_leaf(t, x);", "    }",
                               f"    const double score = -pow(2.0, -depth / {_d(norm)});",
                               f"    *(int32_t *)output = score - {_d(est.offset_)} < 0.0 ? -1 : 1;",
                               "    return 0;", "}", ""]
    if kind == "AdaBoostClassifier":
        nc = len(info.classes)
        w = np.asarray(est.estimator_weights_[:len(trees)], np.float64)
        lines += _darr(f"{prefix}_w", w)
        body = [f"    double s[{nc}] = {{0}};", f"    for (int32_t t = 0; t < {len(trees)}; t++) {{",
                f"        const int32_t c = (int32_t){prefix}_leaf(t, x);",
                f"        for (int32_t k = 0; k < {nc}; k++) {{",
                f"            s[k] += (k == c ? 1.0 : {_d(-1.0 / (nc - 1))}) * {prefix}_w[t];", "        }", "    }"]
        # SAMME's decision: 1 for the predicted class, -1/(K-1) for the others (the scaling by the
        # weight sum does not change the argmax); binary: the sign of s[1] - s[0]
        if nc == 2:
            body += _class_out(info, prefix, "(s[1] - s[0]) > 0.0 ? 1 : 0")
        else:
            body += _argmax(nc, "s") + _class_out(info, prefix, "best")
        return lines + head + body + ["    return 0;", "}", ""]
    hist = kind.startswith("Hist")
    if hist:
        init = np.asarray(est._baseline_prediction, np.float64).ravel()
        per_iter = len(est._predictors[0])
        scale = 1.0
    else:
        init = np.asarray(est._raw_predict_init(np.zeros((1, info.n_features))), np.float64).ravel()
        per_iter = est.estimators_.shape[1]
        scale = float(est.learning_rate)
    k = per_iter
    lines += _darr(f"{prefix}_init", init)
    body = [f"    double s[{k}];", f"    for (int32_t k = 0; k < {k}; k++) {{", f"        s[k] = {prefix}_init[k];",
            "    }", f"    for (int32_t t = 0; t < {len(trees)}; t++) {{",
            f"        s[t % {k}] += " + ("" if hist else f"{_d(scale)} * ") + f"{prefix}_leaf(t, x);", "    }"]
    return lines + head + body + _scores_out(info, prefix, k)


def _mlpreg(est, info: Classic, prefix: str) -> list[str]:
    ws = [np.asarray(w, np.float64) for w in est.coefs_]
    bs = [np.asarray(b, np.float64) for b in est.intercepts_]
    width = max(max(w.shape) for w in ws)
    lines = []
    for i, (w, b) in enumerate(zip(ws, bs)):
        lines += _darr(f"{prefix}_w{i}", w) + _darr(f"{prefix}_b{i}", b)
    body = ["", f"static int {prefix}_run(const double *x, void *output)", "{",
            f"    static double a[{width}], z[{width}];", f"    for (int32_t j = 0; j < {ws[0].shape[0]}; j++) {{",
            "        a[j] = x[j];", "    }"]
    for i, w in enumerate(ws):
        n_in, n_out = w.shape
        act = _ACTS[est.activation if i < len(ws) - 1 else est.out_activation_]
        body += [f"    for (int32_t o = 0; o < {n_out}; o++) {{", "        double v = 0.0;",
                 f"        for (int32_t j = 0; j < {n_in}; j++) {{",
                 f"            v += a[j] * {prefix}_w{i}[j * {n_out} + o];", "        }",
                 f"        v += {prefix}_b{i}[o];", f"        z[o] = {act};", "    }",
                 f"    for (int32_t o = 0; o < {n_out}; o++) {{", "        a[o] = z[o];", "    }"]
    if ws[-1].shape[1] != 1:
        raise Unsupported("multi-output MLPRegressor is not supported")
    return lines + body + ["    *(float *)output = (float)a[0];", "    return 0;", "}", ""]


def estimate_classic(info: Classic, arch: str, has_fpu: bool) -> tuple[int, int, int]:
    """Rough (flash, ram, cycles): parameters as 8-byte doubles (4 on AVR), soft double
    arithmetic unless the core has a double-precision FPU (none of the MCUs here)."""
    avr = arch == "avr"
    item = 4 if avr else 8
    const = item * info.weights
    code = 900 if not avr else 2200
    ram = 96 + (item * info.weights if avr else 0)
    if info.family == "svm":
        ram += 8 * (info.weights // max(info.n_features, 1))
    if info.family == "mlpreg":
        ram += 2 * 8 * 64
    flop = 200 if avr else 60     # soft double (a dp FPU would make this ~3)
    return const + code, ram, info.macs * (flop + 4) + 200
