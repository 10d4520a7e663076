"""Write emlearn's C for an estimator, wrapped in the project's C API.

Output for model ``NAME`` (all in one folder, nothing else needed to build):

* ``NAME.h``: ``int NAME_invoke(const void *input, void *output)`` plus the
  ``NAME_INPUT_*`` / ``NAME_OUTPUT_*`` macros cgen also emits;
* ``NAME.c``: emlearn's generated code (symbols prefixed ``NAME_eml``) and
  the ``NAME_invoke`` wrapper;
* the emlearn runtime headers that code includes, copied from the wheel.

Exactness for trees: scikit-learn sends a sample left when
``(double)x <= threshold``; emlearn's inlined trees test ``x < value``.
Each threshold is therefore replaced by the smallest float above the
largest float32 not exceeding it, printed exactly, so the float32 test
``x < value`` makes the same decision for every float32 input.

emlearn prints float parameters with 6 decimals; for MLP, Keras and
GaussianMixture models they are printed as the exact float32 value instead
(:func:`_exact_floats`). KNeighborsClassifier does not use emlearn's
runtime, which converts features and training points to int16 and takes
an integer square root of the distance: the brute-force search is written
here, in float or double, so it finds scikit-learn's neighbours.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...errors import CompileError
from ..capi import IoSpec, api_header
from ..ctext import c_comment_text, c_float, c_prefix

from . import classic
from .describe import ModelInfo

FEATURE_T = "tml_eml_feature"   # emlearn writes the feature type name into its code
_HEADERS = {"trees": ("eml_trees.h", "eml_common.h", "eml_log.h"),
            "mlp": ("eml_net.h", "eml_net_common.h", "eml_common.h", "eml_log.h"),
            "gmm": ("eml_mixture.h", "eml_fixedpoint.h", "eml_common.h", "eml_log.h"),
            "knn": (), "classic": ()}
# emlearn's header-only runtime has unused static helpers and parameters.
_QUIET = ("-Wunused-parameter", "-Wsign-compare", "-Wtype-limits")
# Unused static helpers are reported at the end of the file by older gcc (avr-gcc 5),
# after a pop, so these two stay off for the whole (generated) file.
_QUIET_FILE = ("-Wunused-function", "-Wunused-variable")


@dataclass(frozen=True)
class Emitted:
    files: tuple[Path, ...]
    static_bytes: int            # static buffers in RAM (MLP activations)


_CWD_LOCK = threading.Lock()


@contextlib.contextmanager
def _in_scratch_dir():
    """emlearn's converters compile a host test program into ``./tmp`` of the
    current directory (the user's project during ``pio run``); run them in a
    throw-away directory instead. The working directory is process-wide: lock."""
    with _CWD_LOCK, tempfile.TemporaryDirectory(prefix="tinyml-emlearn-") as tmp:
        old = os.getcwd()
        os.chdir(tmp)
        try:
            yield
        finally:
            os.chdir(old)


def _import_emlearn():
    """``import emlearn``, undoing the ``numpy.seterr(all='raise')`` its import runs
    (emlearn.bayes), which would make numpy raise on underflow in the user's process."""
    with np.errstate():
        import emlearn
    return emlearn


def emlearn_code(est, info: ModelInfo, prefix: str) -> str:
    """emlearn's C for ``est`` with symbols prefixed ``prefix``.

    ``est`` is a scikit-learn estimator or, for a Keras model, the
    ``(activations, weights, biases)`` of its Dense layers.
    """
    _, est = classic.scaler_steps(est)
    if info.family == "classic":
        return "\n".join(classic.classic_code(est, info.classic, prefix))
    emlearn = _import_emlearn()
    if info.family == "knn":
        return _knn_code(est, info, prefix)
    try:
        code = _emlearn_code(emlearn, est, info, prefix)
    except (ValueError, OverflowError) as e:    # e.g. a NaN leaf: int(nan) inside emlearn
        raise CompileError(f"emlearn cannot write this model ({type(e).__name__}: {str(e)[:120]})",
                           hint="Check the estimator for NaN/Inf values (a damaged or badly trained model)"
                           ) from None
    return _no_non_finite(code)


def _no_non_finite(code: str) -> str:
    """emlearn prints some numbers itself (tree leaves, with "%f"): refuse code where one
    came out as nan/inf, as :func:`ctext.c_float` does for ours (``INFINITY`` is ours, from math.h)."""
    m = re.search(r"\b(nan|inf)f?\b", code, re.IGNORECASE)
    if m:
        c_float(float(m.group(1)), what="a value in the model")      # raises, one line
    return code


def _emlearn_code(emlearn, est, info: ModelInfo, prefix: str) -> str:
    with _in_scratch_dir():
        if info.family == "trees":
            model = emlearn.convert(est, method="inline", dtype=FEATURE_T, leaf_bits=info.leaf_bits)
            for node in model.forest_[0]:      # [feature, threshold, left, right]
                node[1] = _exact_threshold(node[1])
            return model.save(name=prefix, include_proba=info.output == "proba")
        with _exact_floats():
            if info.kind == "keras":
                from emlearn.net import c_generate_net_loadable
                acts, weights, biases = est
                return c_generate_net_loadable(acts, weights, biases, prefix=prefix)
            if info.family == "gmm":
                from emlearn.mixture import Wrapper
                return Wrapper(est, classifier=None).save(name=prefix)
            model = emlearn.convert(est, method="loadable")
            return model.save(name=prefix)


def _float_literal(v) -> str:
    """C literal of the float32 nearest ``v``, exact (round-trips); NaN/Inf refused."""
    return c_float(v, what="a model parameter")


@contextlib.contextmanager
def _exact_floats():
    """Make emlearn's code generator print floats exactly instead of with 6 decimals.
    Called under ``_CWD_LOCK`` (emlearn's module is process-wide)."""
    from emlearn import cgen
    orig = cgen.constant

    def constant(val, dtype="float"):
        return _float_literal(val) if dtype == "float" else orig(val, dtype)

    cgen.constant = constant
    try:
        yield
    finally:
        cgen.constant = orig


def _knn_code(est, info: ModelInfo, prefix: str) -> str:
    """Brute-force k nearest neighbours over the stored training points.

    Keeps the k smallest distances sorted by insertion; a later point
    replaces a kept one only when strictly nearer, so exact ties keep the
    lower training index. Euclidean compares squared distances (same order).
    """
    X = np.asarray(est._fit_X, dtype=np.float64)
    y = np.asarray(est._y).astype(np.int64)
    n, d = X.shape
    k = info.k
    acc = "double" if info.double else "float"
    data_t = "double" if info.data_double else "float"
    lit = (lambda v: c_float(v, what="a training point", double=True)) if info.data_double else _float_literal
    lab_t = "uint8_t" if len(info.classes) <= 256 else "uint16_t"
    manhattan = est.effective_metric_ == "manhattan"
    rows = ",\n".join("    " + ", ".join(lit(v) for v in row) for row in X)
    labels = ", ".join(str(int(v)) for v in y)
    term = "(t < 0 ? -t : t)" if manhattan else "t * t"
    return "\n".join([
        f"/* {n} training points x {d} features, k = {k}, {c_comment_text(est.effective_metric_, limit=40)} "
        f"distance in {acc} */",
        f"static const {data_t} {prefix}_data[{n * d}] = {{", rows, "};",
        f"static const {lab_t} {prefix}_labels[{n}] = {{{labels}}};",
        "",
        f"static void {prefix}_votes(const float *x, int32_t votes[{len(info.classes)}])",
        "{",
        f"    {acc} best[{k}];",
        f"    int32_t best_i[{k}];",
        "    int32_t kept = 0;",
        f"    for (int32_t i = 0; i < {n}; i++) {{",
        f"        const {data_t} *p = &{prefix}_data[i * {d}];",
        f"        {acc} s = 0;",
        f"        for (int32_t j = 0; j < {d}; j++) {{",
        f"            const {acc} t = ({acc})x[j] - ({acc})p[j];",
        f"            s += {term};",
        "        }",
        f"        if (kept == {k} && !(s < best[{k - 1}])) {{",
        "            continue;",
        "        }",
        f"        int32_t at = kept < {k} ? kept++ : {k - 1};",
        "        while (at > 0 && s < best[at - 1]) {",
        "            best[at] = best[at - 1];",
        "            best_i[at] = best_i[at - 1];",
        "            at--;",
        "        }",
        "        best[at] = s;",
        "        best_i[at] = i;",
        "    }",
        f"    for (int32_t c = 0; c < {len(info.classes)}; c++) {{",
        "        votes[c] = 0;",
        "    }",
        "    for (int32_t m = 0; m < kept; m++) {",
        f"        votes[{prefix}_labels[best_i[m]]]++;",
        "    }",
        "}",
        "",
        f"static int32_t {prefix}_predict(const float *x, int32_t n_features)",
        "{",
        f"    int32_t votes[{len(info.classes)}];",
        f"    if (n_features != {d}) {{",
        "        return -1;",
        "    }",
        f"    {prefix}_votes(x, votes);",
        "    int32_t c = 0;",
        f"    for (int32_t j = 1; j < {len(info.classes)}; j++) {{",
        "        if (votes[j] > votes[c]) {",
        "            c = j;",
        "        }",
        "    }",
        "    return c;",
        "}",
        ""])


def _exact_threshold(th: float) -> str:
    """C float literal ``v`` with ``x < v`` <=> ``(double)x <= th`` for all float32 ``x``
    (``INFINITY``, from math.h, above the largest float32); a NaN/Inf ``th`` is refused."""
    c_float(th, what="a tree threshold", double=True)
    t = np.float32(th)
    if float(t) > float(th):
        t = np.nextafter(t, np.float32(-np.inf))
    v = np.nextafter(t, np.float32(np.inf))
    if not np.isfinite(v):
        return "INFINITY"
    return c_float(v)


def write(est, info: ModelInfo, name: str, outdir: Path) -> Emitted:
    """Write ``NAME.h``, ``NAME.c`` and the emlearn headers into ``outdir``."""
    c_prefix(name)
    emlearn = _import_emlearn()
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    prefix = f"{name}_eml"
    body = emlearn_code(est, info, prefix)
    if info.pre:
        body += "\n" + "\n".join(classic.scaler_code(list(info.pre), info.n_features, prefix))
    files = []
    for h in _HEADERS[info.family]:
        shutil.copyfile(Path(emlearn.includedir) / h, outdir / h)
        files.append(outdir / h)
    (outdir / f"{name}.h").write_text(_header(info, name))
    (outdir / f"{name}.c").write_text(_source(info, name, prefix, body))
    files += [outdir / f"{name}.h", outdir / f"{name}.c"]
    static = 2 * 4 * info.max_width if info.family == "mlp" else 0
    static += 4 * info.k if info.family == "gmm" else 0
    static += 8 * info.classic.weights // max(info.n_features, 1) if info.family == "classic" \
        and info.classic.family == "svm" else 0
    static += 2 * 8 * max(max(w.shape) for w in classic.scaler_steps(est)[1].coefs_) \
        if info.family == "classic" and info.classic.family == "mlpreg" else 0
    return Emitted(tuple(files), static)


def _header(info: ModelInfo, name: str) -> str:
    out_dt = "int32" if info.output == "class" else "float32"
    gmm = info.family == "gmm"
    what = {"class": ("the most likely component" if gmm else "the predicted class")
            + ("" if info.int_labels else " (index into the labels below)"),
            "proba": f"{info.n_outputs} " + ("component responsibilities" if gmm else "class probabilities"),
            "value": "the predicted value", "score": "the log-likelihood (score_samples)",
            "scores": f"the {info.n_outputs} values of the last layer"}[info.output]
    keras = info.kind == "keras"
    kind = c_comment_text(info.kind, limit=40)
    intro = [f"{name}.h - C API of a " + ("Keras Dense model" if keras else f"scikit-learn {kind}")
             + " generated by platformio-tinyml (emlearn backend).",
             "",
             f"The input is {info.n_features} float32 features, unscaled, as given to "
             + ("model.predict();" if keras else "scikit-learn's predict();"),
             f"the output is {what}."]
    if info.classes is not None and not gmm and not keras:
        intro.append("Class labels (index order): " + c_comment_text(", ".join(map(str, info.classes)), limit=400))
    extra = [f"#define {name.upper()}_NUM_CLASSES {len(info.classes)}"] if info.classes is not None else []
    return api_header(name, [IoSpec((1, info.n_features), "float32")], [IoSpec((1, info.n_outputs), out_dt)],
                      0, intro, extra_decls=extra, invoke_errors="-1 on a NULL pointer or an error")


def _source(info: ModelInfo, name: str, prefix: str, body: str) -> str:
    push = "".join(f'#pragma GCC diagnostic ignored "{w}"\n' for w in _QUIET)
    lines = [f"/* {name}.c - generated by platformio-tinyml (emlearn backend); do not edit. */",
             f'#include "{name}.h"', "", "#include <math.h>", "#include <stddef.h>", "#include <stdint.h>", ""]
    lines += [f'#pragma GCC diagnostic ignored "{w}"' for w in _QUIET_FILE]
    if info.family == "trees":
        lines.append(f"typedef float {FEATURE_T};")
    if info.family == "gmm":
        lines.append(f"static float {prefix}_logp[{info.k}];")
    lines += ["", "/* ---- emlearn output begins ---- */", "#pragma GCC diagnostic push", push.rstrip(),
              body, "#pragma GCC diagnostic pop", "/* ---- emlearn output ends ---- */", ""]
    lines += _labels(info, name) if info.family != "classic" else []
    lines += [f"int {name}_invoke(const void *input, void *output)", "{",
              "    if (input == NULL || output == NULL) {", "        return -1;", "    }",
              "    const float *x = (const float *)input;"]
    if info.family == "classic":
        lines += [f"    double v[{info.n_features}];"]
        lines += ([f"    {prefix}_scale(x, v);"] if info.pre else
                  [f"    for (int32_t j = 0; j < {info.n_features}; j++) {{", "        v[j] = (double)x[j];", "    }"])
        lines += [f"    return {prefix}_run(v, output);"]
    else:
        if info.pre:    # scikit-learn scales in double, then the estimator reads float32 features
            lines += [f"    double v[{info.n_features}];", f"    float xs[{info.n_features}];",
                      f"    {prefix}_scale(x, v);", f"    for (int32_t j = 0; j < {info.n_features}; j++) {{",
                      "        xs[j] = (float)v[j];", "    }", "    x = xs;"]
        lines += _call(info, name, prefix)
    lines += ["}", "",
              f"int {name}_invoke_multi(const void *const inputs[], void *const outputs[])", "{",
              f"    return {name}_invoke(inputs[0], outputs[0]);", "}", ""]
    return "\n".join(lines)


def _labels(info: ModelInfo, name: str) -> list[str]:
    labels = info.int_labels
    if info.output != "class" or labels is None or labels == tuple(range(len(labels))):
        return []
    vals = ", ".join(str(v) for v in labels)
    return [f"static const int32_t {name}_labels[{len(labels)}] = {{{vals}}};", ""]


def _call(info: ModelInfo, name: str, prefix: str) -> list[str]:
    n, k = info.n_features, info.n_outputs
    mapped = bool(_labels(info, name))
    if info.output == "value":
        return [f"    *(float *)output = {prefix}_predict(x, {n});", "    return 0;"]
    if info.family == "gmm":
        model, logp = f"&{prefix}_model", f"{prefix}_logp"
        if info.output == "class":
            return [f"    if (eml_mixture_predict_log_proba({model}, x, {n}, {logp}) != EmlOk) {{",
                    "        return -1;", "    }", "    int32_t c = 0;",
                    f"    for (int32_t j = 1; j < {info.k}; j++) {{",
                    f"        if ({logp}[j] > {logp}[c]) {{", "            c = j;", "        }", "    }",
                    "    *(int32_t *)output = c;", "    return 0;"]
        if info.output == "score":
            return [f"    return eml_mixture_score({model}, x, {n}, {logp}, (float *)output) == EmlOk ? 0 : -1;"]
        return ["    float score;",
                f"    return eml_mixture_predict_proba({model}, x, {n}, {logp}, &score, (float *)output) "
                "== EmlOk ? 0 : -1;"]
    if info.output == "scores":
        return [f"    return eml_net_regress(&{prefix}, x, {n}, (float *)output, {k}) == EmlOk ? 0 : -1;"]
    if info.family == "knn" and info.output == "proba":
        return [f"    int32_t votes[{k}];", f"    {prefix}_votes(x, votes);",
                f"    for (int32_t c = 0; c < {k}; c++) {{",
                f"        ((float *)output)[c] = (float)votes[c] / {float(info.k)!r}f;", "    }",
                "    return 0;"]
    if info.output == "proba":
        if info.family == "trees":
            return [f"    return {prefix}_predict_proba(x, {n}, (float *)output, {k}) == 0 ? 0 : -1;"]
        return [f"    return eml_net_predict_proba(&{prefix}, x, {n}, (float *)output, {k}) == EmlOk ? 0 : -1;"]
    call = f"{prefix}_predict(x, {n})"
    return [f"    const int32_t c = {call};",
            f"    if (c < 0 || c >= {len(info.classes)}) {{", "        return -1;", "    }",
            f"    *(int32_t *)output = {name + '_labels[c]' if mapped else 'c'};", "    return 0;"]
