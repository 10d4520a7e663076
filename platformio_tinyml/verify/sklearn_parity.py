"""Parity of a scikit-learn model's generated C (the backend the build picks,
or ``backend``) with scikit-learn's own ``predict()`` on seeded random inputs.

The generated code is built for the host with the strict flags and called
through ``NAME_invoke``; classes must be identical, regression values within
the float tolerance of :mod:`.parity`.
"""

from __future__ import annotations

import ctypes
import re
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from ..device import DeviceProfile
from ..errors import CompileError
from .parity import OutputParity, ParityReport


def check_sklearn_parity(model_path: Path, device: DeviceProfile, samples: int = 200,
                         seed: int = 0, backend: str = "auto") -> ParityReport:
    from ..model.sklearn import load_estimator
    from ..pipeline import compile_model
    est = load_estimator(model_path)
    n_features = int(getattr(est, "n_features_in_", 0))
    if not n_features:
        raise CompileError("the estimator does not record its number of features (not fitted?)",
                           where=str(model_path))
    with tempfile.TemporaryDirectory(prefix="tinyml-verify-") as tmp:
        out = compile_model(model_path, device, Path(tmp), name="vmodel", backend=backend)
        srcs = [str(f.path) for f in out.result.files if f.path.suffix == ".c"]
        so = Path(tmp) / "libvmodel.so"
        cmd = ["gcc", "-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", "-fPIC", "-shared",
               *[f"-I{d}" for d in out.result.include_dirs], *srcs, "-o", str(so), "-lm"]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise CompileError(f"host build of the generated code failed:\n{proc.stderr.strip()}",
                               hint="This is a bug in the backend; please report it")
        header = (Path(tmp) / "vmodel.h").read_text()
        out_size = int(re.search(r"#define VMODEL_OUTPUT_SIZE (\d+)", header).group(1))
        out_float = "VMODEL_OUTPUT_DTYPE_FLOAT32" in header
        lib = ctypes.CDLL(str(so))
        rng = np.random.default_rng(seed)
        # Half the inputs near the usual (standardized) range, half spread wide.
        X = np.concatenate([rng.standard_normal((samples - samples // 2, n_features)),
                            10 * rng.standard_normal((samples // 2, n_features))]).astype(np.float32)
        want = est.predict(X.astype(np.float64))
        classes = getattr(est, "classes_", None)
        int_labels = classes is not None and np.issubdtype(np.asarray(classes).dtype, np.integer)
        rep = ParityReport(model=str(model_path), samples=samples, seed=seed,
                           outputs=[OutputParity("prediction", "float32" if out_float else "int32")])
        o = rep.outputs[0]
        y = np.zeros(out_size, np.float32 if out_float else np.int32)
        for x, w in zip(X, want):
            x = np.ascontiguousarray(x)
            if lib.vmodel_invoke(ctypes.c_void_p(x.ctypes.data), ctypes.c_void_p(y.ctypes.data)) != 0:
                raise CompileError("vmodel_invoke returned an error on the host")
            if classes is not None and not int_labels:
                w = int(np.searchsorted(classes, w))
            got, ref = float(y[0]), float(w)
            o.samples += 1
            o.exact += int(got == ref)
            o.max_abs = max(o.max_abs, abs(got - ref))
            o.max_rel = max(o.max_rel, abs(got - ref) / max(abs(ref), 1e-30))
        return rep
