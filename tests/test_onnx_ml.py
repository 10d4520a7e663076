"""ONNX-ML (ai.onnx.ml) models, as skl2onnx exports scikit-learn estimators, through cgen.

scikit-learn pipelines and estimators (StandardScaler / MinMaxScaler / Normalizer with
LogisticRegression, LinearSVC, LinearRegression, Ridge, SVR with four kernels, SVC, decision trees,
random forests and gradient boosting, classifiers and regressors) are trained on seeded synthetic data, converted
with ``skl2onnx.to_onnx`` as users do (``zipmap: False``), compiled by cgen, built for the host
and run on the data rows and random rows (one batch of BATCH rows) next to onnxruntime: labels
(int64) equal, scores within 1e-5 relative (the largest difference over the largest magnitude
of that output over all rows). onnxruntime's labels are also compared with scikit-learn's
``predict``. Hand-built nodes cover what skl2onnx does not write: every tree branch mode on
inputs that hit the thresholds exactly, MIN / MAX / AVERAGE aggregates, SOFTMAX_ZERO, and
LinearClassifier's binary case with one coefficient row. Three models also run as firmware on
emulated boards (atmega2560 in simavr, Cortex-M4F in QEMU). Refusals are one line naming the op.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import skl2onnx
from onnx import TensorProto as TP, helper as h
from sklearn.base import is_classifier
from sklearn.datasets import make_classification, make_regression
from sklearn.ensemble import (GradientBoostingClassifier, GradientBoostingRegressor, RandomForestClassifier,
                              RandomForestRegressor)
from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge
from sklearn.impute import SimpleImputer
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import Binarizer, MinMaxScaler, Normalizer, StandardScaler
from sklearn.svm import SVC, SVR, LinearSVC
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

from platformio_tinyml.compilers.cgen import generate
from platformio_tinyml.errors import UnsupportedOpError
from platformio_tinyml.model.onnx import load_onnx
from platformio_tinyml.verify.firmware import run_model
from platformio_tinyml.verify.host import build_host
from platformio_tinyml.verify.reference import OnnxReference
from conftest import need_programs
from test_cgen_ops import FLOAT_TOL, rel_err
from test_cli import assert_one_line_error, tinyml

BATCH = 64
F = 8
ML_OPSET = {"": 17, "ai.onnx.ml": 3}


def _data(kind: str, classes: int = 3):
    if kind == "reg":
        X, y = make_regression(160, F, n_informative=5, noise=0.5, random_state=0)
    else:
        X, y = make_classification(160, F, n_informative=5, n_classes=classes, random_state=0)
    return X.astype(np.float32), y


def _with_nan(x: np.ndarray) -> np.ndarray:
    """``x`` with NaN in every 5th row's column 2 (what an imputer replaces)."""
    x = x.copy()
    x[::5, 2] = np.nan
    return x


MODELS = {   # name: (estimator factory, data kind, classes)
    "standard_logreg3": (lambda: make_pipeline(StandardScaler(), LogisticRegression()), "clf", 3),
    "minmax_logreg2": (lambda: make_pipeline(MinMaxScaler(), LogisticRegression()), "clf", 2),
    "normalizer_logreg3": (lambda: make_pipeline(Normalizer("l2"), LogisticRegression()), "clf", 3),
    "linearsvc2": (lambda: LinearSVC(), "clf", 2),
    "linearsvc3": (lambda: LinearSVC(), "clf", 3),   # skl2onnx 1.20 fails on a pipeline ending in LinearSVC
    "linreg": (lambda: make_pipeline(StandardScaler(), LinearRegression()), "reg", 0),
    "ridge": (lambda: Ridge(), "reg", 0),
    "tree3": (lambda: DecisionTreeClassifier(max_depth=5, random_state=0), "clf", 3),
    "tree2": (lambda: DecisionTreeClassifier(max_depth=5, random_state=0), "clf", 2),
    "forest3": (lambda: RandomForestClassifier(6, max_depth=4, random_state=0), "clf", 3),
    "forest2": (lambda: RandomForestClassifier(6, max_depth=4, random_state=0), "clf", 2),
    "boost3": (lambda: GradientBoostingClassifier(n_estimators=6, max_depth=3, random_state=0), "clf", 3),
    "boost2": (lambda: GradientBoostingClassifier(n_estimators=6, max_depth=3, random_state=0), "clf", 2),
    "tree_reg": (lambda: DecisionTreeRegressor(max_depth=5, random_state=0), "reg", 0),
    "forest_reg": (lambda: RandomForestRegressor(6, max_depth=4, random_state=0), "reg", 0),
    "boost_reg": (lambda: GradientBoostingRegressor(n_estimators=6, max_depth=3, random_state=0), "reg", 0),
    "svr_rbf": (lambda: make_pipeline(StandardScaler(), SVR(C=50.0)), "reg", 0),
    "svr_poly": (lambda: make_pipeline(StandardScaler(), SVR(kernel="poly", C=50.0)), "reg", 0),
    "svr_sigmoid": (lambda: make_pipeline(StandardScaler(), SVR(kernel="sigmoid", C=50.0)), "reg", 0),
    "svr_linear": (lambda: SVR(kernel="linear"), "reg", 0),
    "svc_rbf3": (lambda: make_pipeline(StandardScaler(), SVC()), "clf", 3),
    "svc_rbf2": (lambda: make_pipeline(StandardScaler(), SVC()), "clf", 2),
    "svc_poly3": (lambda: make_pipeline(StandardScaler(), SVC(kernel="poly", degree=2)), "clf", 3),
    "logreg3_labels": (lambda: LogisticRegression(), "clf", 3),       # y as 1, 3, 5
    "svc_rbf2_labels": (lambda: make_pipeline(StandardScaler(), SVC()), "clf", 2),
    "impute_binarize_logreg2": (lambda: make_pipeline(SimpleImputer(), Binarizer(threshold=0.1), LogisticRegression()),
                                "clf", 2),
}


def _export(name: str, path):
    """(path of the skl2onnx export, fitted model, X) for MODELS[name]."""
    make, kind, classes = MODELS[name]
    X, y = _data(kind, classes)
    if name.endswith("_labels"):
        y = 2 * y + 1
    model = make().fit(X, y)
    last = model.steps[-1][1] if hasattr(model, "steps") else model
    zipmap = is_classifier(last) and not isinstance(last, LinearSVC)   # skl2onnx has no such option for LinearSVC
    options = {id(model): {"zipmap": False}} if zipmap else None
    onx = skl2onnx.to_onnx(model, X[:1], options=options)   # skl2onnx's default opsets (onnx 22, ml 1)
    onnx.save(onx, str(path))
    return path, model, X


def _rows(X: np.ndarray) -> np.ndarray:
    """BATCH rows: half the data, half random draws at the data's scale."""
    rng = np.random.default_rng(3)
    rand = (rng.standard_normal((BATCH - BATCH // 2, X.shape[1])) * X.std(0) + X.mean(0)).astype(np.float32)
    return np.concatenate([X[:BATCH // 2], rand]).astype(np.float32)


def _parity(path, tmp_path, x: np.ndarray):
    """Our outputs and onnxruntime's on the rows ``x`` (one batch): labels equal, scores within
    FLOAT_TOL relative; returns onnxruntime's outputs."""
    name = onnx.load(str(path)).graph.input[0].name
    g = load_onnx(path, {name: x.shape})
    host = build_host(generate(g, "m"), g, tmp_path / "b")
    ours, theirs = host.run([x]), OnnxReference(path, g).run([x])
    assert len(ours) == len(theirs) >= 1
    for k, (a, b) in enumerate(zip(ours, theirs)):
        b = np.asarray(b)
        assert a.dtype == b.dtype, (k, a.dtype, b.dtype)
        b = b.reshape(a.shape)
        if a.dtype.kind == "i":
            assert np.array_equal(a, b), f"output {k}: labels differ at rows {np.flatnonzero(a != b)[:8]}"
        else:   # NaN where onnxruntime has NaN (an imputer keeps NaN it does not replace)
            nan = np.isnan(b)
            assert np.array_equal(np.isnan(a), nan), f"output {k}: NaN at other places"
            e = rel_err(np.where(nan, 0, a), np.where(nan, 0, b))
            assert e <= FLOAT_TOL, f"output {k}: relative error {e:.3g}"
    return theirs


@pytest.mark.parametrize("name", sorted(MODELS))
def test_sklearn_export_matches_onnxruntime_and_sklearn(name, tmp_path):
    path, model, X = _export(name, tmp_path / f"{name}.onnx")
    x = _with_nan(_rows(X)) if "impute" in name else _rows(X)
    ref = _parity(path, tmp_path, x)
    if MODELS[name][1] == "clf":   # onnxruntime (float32) against scikit-learn (float64) on the data rows
        agree = np.mean(np.asarray(ref[0]).reshape(-1)[:BATCH // 2] == model.predict(x[:BATCH // 2]))
        assert agree >= 0.95, agree
    else:
        want = model.predict(x[:BATCH // 2])
        got = np.asarray(ref[0]).reshape(-1)[:BATCH // 2]
        assert np.max(np.abs(got - want)) <= 1e-4 * np.max(np.abs(want)) + 1e-4


def test_skl2onnx_ops_are_the_onnx_ml_ones(tmp_path):
    """The exports above use the ai.onnx.ml operators this reader converts (not an opaque op)."""
    seen = set()
    for name in ("standard_logreg3", "normalizer_logreg3", "linearsvc2", "ridge", "forest3", "boost_reg", "svr_rbf",
                 "svc_rbf3"):
        path, _, _ = _export(name, tmp_path / f"{name}.onnx")
        seen |= {(n.domain, n.op_type) for n in onnx.load(str(path)).graph.node}
        assert all(op.kind.value != "OPAQUE" for op in load_onnx(path).ops), name
    assert {("ai.onnx.ml", op) for op in ("Scaler", "Normalizer", "LinearClassifier", "LinearRegressor",
                                           "TreeEnsembleClassifier", "TreeEnsembleRegressor",
                                           "ArrayFeatureExtractor", "SVMRegressor", "SVMClassifier")} <= seen


# ---- hand-built nodes -----------------------------------------------------------------------------

def _save(path, node, outputs, f=3):
    """One ai.onnx.ml node on X [None, f]; outputs: (name, elem type, shape)."""
    g = h.make_graph([node], "ml", [h.make_tensor_value_info("X", TP.FLOAT, [None, f])],
                     [h.make_tensor_value_info(n, t, s) for n, t, s in outputs])
    m = h.make_model(g, opset_imports=[h.make_opsetid("", 17), h.make_opsetid("ai.onnx.ml", 3)])
    m.ir_version = 8
    onnx.save(m, str(path))
    return path


def _linear_classifier(path, rows: int, post: str, labels=None, **kw):
    rng = np.random.default_rng(5)
    labels = list(range(max(rows, 2))) if labels is None else labels
    node = h.make_node("LinearClassifier", ["X"], ["Y", "Z"], domain="ai.onnx.ml",
                       coefficients=rng.standard_normal(rows * 3).tolist(),
                       intercepts=rng.standard_normal(rows).tolist(), post_transform=post, **kw,
                       **({"classlabels_ints": labels} if labels else {}))
    return _save(path, node, [("Y", TP.INT64, [None]), ("Z", TP.FLOAT, [None, None])])


@pytest.mark.parametrize("rows,post,labels", [(1, "NONE", None), (1, "LOGISTIC", None), (3, "NONE", None),
                                              (3, "LOGISTIC", None), (3, "SOFTMAX", None), (2, "SOFTMAX", None),
                                              (1, "NONE", [7, 2]), (3, "NONE", [4, 9, 1]), (4, "NONE", [3, 3, 0, 8])])
def test_linear_classifier(rows, post, labels, tmp_path):
    """One coefficient row with two labels: onnxruntime's label s > 0 and scores [1 - v, v]. Labels
    other than 0..n-1, also repeated ones."""
    x = np.random.default_rng(2).standard_normal((BATCH, 3)).astype(np.float32)
    x[0] = 0.0
    ref = _parity(_linear_classifier(tmp_path / "m.onnx", rows, post, labels), tmp_path, x)
    assert np.asarray(ref[1]).shape == (BATCH, max(rows, 2))
    if labels:
        assert set(np.asarray(ref[0]).tolist()) <= set(labels) and len(set(np.asarray(ref[0]).tolist())) > 1


@pytest.mark.parametrize("op,attrs", [
    ("Binarizer", {"threshold": 0.5}),
    ("Imputer", {"imputed_value_floats": [1.5, -2.0, 3.0], "replaced_value_float": 0.5}),
    ("Imputer", {"imputed_value_floats": [7.0], "replaced_value_float": float("nan")}),
])
def test_binarizer_and_imputer(op, attrs, tmp_path):
    """On inputs equal to the threshold / the replaced value, and NaN."""
    path = _save(tmp_path / "m.onnx", h.make_node(op, ["X"], ["Y"], domain="ai.onnx.ml", **attrs),
                 [("Y", TP.FLOAT, [None, 3])])
    x = np.random.default_rng(6).choice(np.array([0.5, -0.5, 1.0, 0.0, np.nan], np.float32), size=(BATCH, 3))
    if op == "Binarizer":
        x = np.nan_to_num(x, nan=0.5)   # onnxruntime's Binarizer and NaN: not compared here
    _parity(path, tmp_path, x)


THRESH = [0.0, -0.5, 0.5, 1.0, -1.0, 0.25, 0.75]


def _tree(path, op: str, mode: str, n_targets: int = 3, **kw):
    """Two trees of depth 2 on features 0..2, every branch in ``mode``; inputs hit the thresholds."""
    modes, feats, vals, trues, falses = [], [], [], [], []
    for _ in range(2):
        modes += [mode, mode, mode, "LEAF", "LEAF", "LEAF", "LEAF"]
        feats += [0, 1, 2, 0, 0, 0, 0]
        vals += THRESH
        trues += [1, 3, 5, 0, 0, 0, 0]
        falses += [2, 4, 6, 0, 0, 0, 0]
    rng = np.random.default_rng(7)
    t_ids, n_ids, w_ids, w = [], [], [], []
    for t in range(2):
        for leaf in (3, 4, 5, 6):
            for c in range(n_targets):
                t_ids.append(t), n_ids.append(leaf), w_ids.append(c), w.append(float(rng.uniform(-1, 2)))
    key = "class" if op == "TreeEnsembleClassifier" else "target"
    attrs = dict(nodes_treeids=[0] * 7 + [1] * 7, nodes_nodeids=list(range(7)) * 2, nodes_modes=modes,
                 nodes_featureids=feats, nodes_values=vals, nodes_truenodeids=trues, nodes_falsenodeids=falses,
                 **{f"{key}_treeids": t_ids, f"{key}_nodeids": n_ids, f"{key}_ids": w_ids, f"{key}_weights": w})
    attrs.update(kw)
    if op == "TreeEnsembleClassifier":
        attrs.setdefault("classlabels_int64s", list(range(n_targets)))
        outs = [("Y", TP.INT64, [None]), ("Z", TP.FLOAT, [None, n_targets])]
    else:
        attrs["n_targets"] = n_targets
        outs = [("Z", TP.FLOAT, [None, n_targets])]
    node = h.make_node(op, ["X"], [o[0] for o in outs], domain="ai.onnx.ml", **attrs)
    return _save(path, node, outs)


def _tree_inputs() -> np.ndarray:
    rng = np.random.default_rng(4)
    return rng.choice(np.array(THRESH + [0.1, -0.3, 2.0], np.float32), size=(BATCH, 3))


@pytest.mark.parametrize("mode", ["BRANCH_LEQ", "BRANCH_LT", "BRANCH_GTE", "BRANCH_GT", "BRANCH_EQ", "BRANCH_NEQ"])
def test_tree_branch_modes(mode, tmp_path):
    _parity(_tree(tmp_path / "m.onnx", "TreeEnsembleRegressor", mode), tmp_path, _tree_inputs())


def test_a_flipped_branch_mode_is_caught(tmp_path):
    """The parity check above sees a wrong comparison: LEQ's export against LT's outputs differs."""
    x = _tree_inputs()
    leq = OnnxReference(_tree(tmp_path / "a.onnx", "TreeEnsembleRegressor", "BRANCH_LEQ"),
                        load_onnx(tmp_path / "a.onnx", {"X": x.shape})).run([x])[0]
    lt = OnnxReference(_tree(tmp_path / "b.onnx", "TreeEnsembleRegressor", "BRANCH_LT"),
                       load_onnx(tmp_path / "b.onnx", {"X": x.shape})).run([x])[0]
    assert rel_err(np.asarray(lt), np.asarray(leq)) > FLOAT_TOL


@pytest.mark.parametrize("op,kw", [
    ("TreeEnsembleRegressor", {"aggregate_function": "AVERAGE", "base_values": [0.5, -1.0, 2.0]}),
    ("TreeEnsembleRegressor", {"aggregate_function": "MIN"}),
    ("TreeEnsembleRegressor", {"aggregate_function": "MAX", "base_values": [0.5, -1.0, 2.0]}),
    ("TreeEnsembleRegressor", {"post_transform": "SOFTMAX"}),
    ("TreeEnsembleClassifier", {"post_transform": "SOFTMAX_ZERO"}),
    ("TreeEnsembleClassifier", {"post_transform": "LOGISTIC", "base_values": [0.1, 0.2, 0.3]}),
    ("TreeEnsembleClassifier", {"classlabels_int64s": [4, 9, 17]}),
    ("TreeEnsembleRegressor", {"n_targets": 1, "post_transform": "LOGISTIC", "base_values": [0.3]}),
    ("TreeEnsembleRegressor", {"n_targets": 1, "aggregate_function": "AVERAGE"}),
    ("TreeEnsembleClassifier", {"n_targets": 2, "post_transform": "LOGISTIC", "base_values": [0.2, -0.1]}),
    ("TreeEnsembleClassifier", {"n_targets": 2, "classlabels_int64s": [4, 9]}),
], ids=["average", "min", "max", "softmax", "softmax_zero", "logistic_base", "labels", "one_target",
        "one_target_average", "two_classes_base", "two_classes_labels"])
def test_tree_aggregates_and_transforms(op, kw, tmp_path):
    """One target: onnxruntime applies no post transform (only PROBIT, which is refused). Two
    classes whose leaves weigh both: onnxruntime's label is 1 or 0 (not the class labels) by the
    second score's sign, and cgen's too."""
    _parity(_tree(tmp_path / "m.onnx", op, "BRANCH_LEQ", **kw), tmp_path, _tree_inputs())


def _svr_degree4(path):
    X, y = _data("reg")
    onnx.save(skl2onnx.to_onnx(SVR(kernel="poly", degree=4).fit(X, y), X[:1]), str(path))
    return path


@pytest.mark.parametrize("make,match", [
    (lambda p: _linear_classifier(p, 3, "PROBIT"), "LinearClassifier.*PROBIT"),
    (lambda p: _linear_classifier(p, 3, "NONE", labels=[], classlabels_strings=["a", "b", "c"]),
     "LinearClassifier.*string class labels"),
    (lambda p: _linear_classifier(p, 3, "NONE", labels=[-1, 2, 5]), "LinearClassifier.*labels 0..4095"),
    (lambda p: _linear_classifier(p, 1, "NONE", labels=[0, 1, 2]), "LinearClassifier.*3 class labels for 1"),
    (lambda p: _tree(p, "TreeEnsembleRegressor", "BRANCH_MEMBER"), "TreeEnsembleRegressor.*BRANCH_MEMBER"),
    (lambda p: _tree(p, "TreeEnsembleRegressor", "BRANCH_LEQ", nodes_missing_value_tracks_true=[1] * 14),
     "TreeEnsembleRegressor.*missing-value"),
    (_svr_degree4, "SVMRegressor.*POLY kernel of degree 4"),
])
def test_refused_in_one_line(make, match, tmp_path):
    """Carried as an opaque op; cgen refuses it with the converter's reason."""
    with pytest.raises(UnsupportedOpError, match=match) as e:
        generate(load_onnx(make(tmp_path / "m.onnx")), "m")
    assert "\n" not in str(e.value)


def test_zipmap_is_refused_with_the_skl2onnx_option(tmp_path):
    X, y = _data("clf")
    model = LogisticRegression().fit(X, y)
    path = tmp_path / "zip.onnx"
    onnx.save(skl2onnx.to_onnx(model, X[:1], target_opset=ML_OPSET), str(path))
    with pytest.raises(UnsupportedOpError, match="ZipMap.*'zipmap': False") as e:
        load_onnx(path)
    assert "\n" not in str(e.value)


def test_svm_probabilities_and_other_ml_ops_are_refused_in_one_line(tmp_path):
    """SVC(probability=True)'s Platt scaling (prob_a, prob_b; a hand-built node: scikit-learn 1.9
    deprecates the option) is refused; an ONNX-ML op without a converter (LabelEncoder) is named
    with the ones taken."""
    node = h.make_node("SVMClassifier", ["X"], ["Y", "Z"], domain="ai.onnx.ml", kernel_type="RBF",
                       kernel_params=[0.5, 0.0, 3.0], vectors_per_class=[1, 1], support_vectors=[0.0] * 3 + [1.0] * 3,
                       coefficients=[1.0, -1.0], rho=[0.1], classlabels_ints=[0, 1], prob_a=[-2.0], prob_b=[0.1])
    path = _save(tmp_path / "svc.onnx", node, [("Y", TP.INT64, [None]), ("Z", TP.FLOAT, [None, 2])])
    with pytest.raises(UnsupportedOpError, match="SVMClassifier.*prob_a") as e:
        generate(load_onnx(path), "m")
    assert "\n" not in str(e.value)
    node = h.make_node("LabelEncoder", ["X"], ["Y"], domain="ai.onnx.ml", keys_floats=[0.5], values_floats=[2.0])
    path = _save(tmp_path / "enc.onnx", node, [("Y", TP.FLOAT, [None, 3])])
    with pytest.raises(UnsupportedOpError, match="LabelEncoder.*taken: .*TreeEnsembleClassifier") as e:
        generate(load_onnx(path), "m")
    assert "\n" not in str(e.value)


def test_a_float64_export_names_the_float32_sample(tmp_path):
    X, y = _data("clf")
    model = DecisionTreeClassifier(max_depth=3).fit(X, y)
    path = tmp_path / "double.onnx"
    onnx.save(skl2onnx.to_onnx(model, X[:1].astype(np.float64), options={id(model): {"zipmap": False}}), str(path))
    assert_one_line_error(*tinyml("verify", path, "-t", "nucleo_f446re"), "float64", "X[:1].astype(numpy.float32)")


def test_svc_decision_values_per_row(tmp_path):
    """A two-class SVC's scores are its decision value: a sum of ~90 terms that cancel, which
    onnxruntime adds in double. With the compensated sum each row is within 1e-5 of itself (as
    `tinyml verify` compares), also rows near the decision boundary."""
    path, _, X = _export("svc_rbf2", tmp_path / "svc.onnx")
    x = _rows(X)
    g = load_onnx(path, {"X": x.shape})
    ours = build_host(generate(g, "m"), g, tmp_path / "b").run([x])[1]
    theirs = np.asarray(OnnxReference(path, g).run([x])[1]).reshape(ours.shape)
    assert np.min(np.abs(theirs[:, 1])) < 0.1    # some rows near the boundary
    assert max(rel_err(a, r) for a, r in zip(ours, theirs)) <= FLOAT_TOL


@pytest.mark.parametrize("name,machine", [("boost2", "atmega2560"), ("forest3", "atmega2560"),
                                          ("standard_logreg3", "mps2-an386"), ("svc_rbf2", "mps2-an386")])
def test_on_emulated_boards(name, machine, tmp_path):
    """The firmware (AVR: the node tables read from PROGMEM; Cortex-M4F) gives onnxruntime's outputs."""
    need_programs(*{"atmega2560": ("avr-gcc", "simavr"),
                    "mps2-an386": ("arm-none-eabi-gcc", "qemu-system-arm")}[machine])
    path, _, X = _export(name, tmp_path / f"{name}.onnx")
    g = load_onnx(path)
    samples = [[x[None]] for x in _rows(X)[::16]]
    run = run_model(generate(g, "m"), g, samples, tmp_path / "fw", machine, timeout=120)
    ref = OnnxReference(path, g)
    for s, ours in zip(samples, run.outputs):
        labels, scores = ours
        want_labels, want_scores = ref.run(s)
        assert labels.dtype == np.int64 and np.array_equal(labels, np.asarray(want_labels).reshape(labels.shape))
        assert rel_err(scores, np.asarray(want_scores).reshape(scores.shape)) <= FLOAT_TOL


def test_verify_cli_on_a_pipeline(tmp_path):
    path, _, _ = _export("standard_logreg3", tmp_path / "pipe.onnx")
    rc, out, err = tinyml("verify", path, "-t", "nucleo_f446re", "-n", "10")
    assert rc == 0, out + err
    lines = {ln.split()[0]: ln for ln in out.splitlines() if ln.strip()}
    assert "int64" in lines["label"] and "10/10" in lines["label"] and "PASS" in lines["label"]
    assert "float32" in lines["probabilities"] and "PASS" in lines["probabilities"]
