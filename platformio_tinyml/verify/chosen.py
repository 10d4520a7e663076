"""``tinyml verify`` and the ``tinyml-verify`` target: parity of the code the build uses.

The backend is chosen exactly as the build chooses it (:func:`~platformio_tinyml.pipeline.prepare_request`
then :func:`~platformio_tinyml.pipeline.choose_backend`); ``backend`` names another. Then:

* cgen: its code for the model, built for the host (:func:`.parity.check_parity`);
* scikit-learn models: the backend's code against ``predict()`` (:mod:`.sklearn_parity`);
* tflm: the firmware runs TensorFlow Lite Micro, the reference interpreter itself,
  on the model array the backend embeds: that array must be the model file, byte
  for byte;
* any other backend whose generated sources are C (emlearn's Keras code, tvm's
  ``codegen=c``): its output for the board, built for the host, against the
  reference interpreter; integer outputs may differ by the backend's
  ``int_tolerance`` attribute (tvm: 1, its requantization rounds differently),
  which the table states;
* anything else (vela's NPU command stream) cannot run here: one line saying so.
"""

from __future__ import annotations

import ctypes
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..device import DeviceProfile
from ..errors import TinyMLError
from .parity import ParityReport

NAME = "vmodel"     # the C prefix of the code verify builds


@dataclass
class Verification:
    backend: str                 # the backend whose code was checked
    because: str                 # why selection chose it ("requested" for --backend)
    method: str                  # what was compared with what, for the user
    report: ParityReport | None  # None when no inputs were run (tflm: see the module docstring)

    @property
    def ok(self) -> bool:
        return self.report is None or self.report.ok

    def to_dict(self) -> dict:
        """The verify result as ``verify --json`` prints it and report.json records it."""
        rep = self.report
        return {"ok": self.ok, "backend": self.backend, "because": self.because, "method": self.method,
                "samples": rep.samples if rep else 0, "seed": rep.seed if rep else None,
                "outputs": [{"name": o.name, "dtype": o.dtype, "samples": o.samples, "exact": o.exact,
                             "max_abs_error": o.max_abs, "max_rel_error": o.max_rel,
                             "tolerance": o.tolerance, "ok": o.ok}
                            for o in (rep.outputs if rep else [])]}


def verify_model(model_path: Path, device: DeviceProfile, *, backend: str = "auto", samples: int = 20,
                 seed: int = 0, calibration: Path | None = None,
                 backend_options: dict[str, str] | None = None,
                 input_shapes: dict[str, tuple[int, ...]] | None = None,
                 input_values: dict[str, tuple[float, ...]] | None = None) -> Verification:
    from ..pipeline import choose_backend, prepare_request
    model_path = Path(model_path)
    req = prepare_request(model_path, device, backend=backend, calibration=calibration,
                          backend_options=backend_options, input_shapes=input_shapes, input_values=input_values)
    chosen, _, because = choose_backend(req, backend)
    if req.graph is None:       # no IR (scikit-learn): the backend's code against the library itself
        from .sklearn_parity import check_sklearn_parity
        rep = check_sklearn_parity(model_path, device, samples=samples, seed=seed, backend=chosen)
        return Verification(chosen, because, f"{chosen} code (host build) vs scikit-learn predict()", rep)
    if chosen == "cgen":
        from .parity import check_parity
        rep = check_parity(req.graph, model_path, samples=samples, seed=seed)
        return Verification(chosen, because, "cgen code (host build) vs reference interpreter", rep)
    from ..pipeline import compile_model
    with tempfile.TemporaryDirectory(prefix="tinyml-verify-") as tmp:
        out = compile_model(model_path, device, Path(tmp), name=NAME, backend=chosen, calibration=calibration,
                            backend_options=backend_options, input_shapes=input_shapes,
                            input_values=input_values)
        if chosen == "tflm":
            return Verification(chosen, because, _check_tflm_array(Path(tmp), req.model_path), None)
        sources = [f.path for f in out.result.files if f.role.value == "source"]
        foreign = [p.name for p in sources if p.suffix != ".c"]
        if foreign or not sources:
            raise TinyMLError(f"verify cannot run {chosen}'s code on this machine "
                              f"({', '.join(foreign) or 'no C sources'})", where=str(model_path),
                              hint="Check another backend's code with --backend (e.g. --backend cgen)")
        from .host import HOST_CFLAGS, HostModel, _run_cc
        from .parity import compare_with_reference
        so = Path(tmp) / f"lib{NAME}.so"
        _run_cc(["gcc", *HOST_CFLAGS, *[f"-I{d}" for d in out.result.include_dirs], *map(str, sources),
                 "-o", str(so), "-lm"], NAME)
        host = HostModel(ctypes.CDLL(str(so)), NAME, req.graph, so)
        from ..compilers.registry import discover
        tolerance = int(getattr(discover().compilers[chosen], "int_tolerance", 0))
        rep = compare_with_reference(host.run, req.graph, req.model_path, model_path, samples, seed, tolerance)
        return Verification(chosen, because, f"{chosen} code (host build) vs reference interpreter", rep)


def _check_tflm_array(outdir: Path, model_path: Path) -> str:
    """The model array tflm embeds, against the model file; a mismatch is an error."""
    text = (outdir / f"{NAME}_model_data.c").read_text()
    body = text.split("= {", 1)[1].split("};", 1)[0]
    embedded = bytes(int(h, 16) for h in re.findall(r"0x([0-9a-fA-F]{2})", body))
    if embedded != Path(model_path).read_bytes():
        raise TinyMLError(f"tflm's embedded model array ({len(embedded):,} B) differs from the model file",
                          where=str(model_path), hint="This is a bug in the tflm backend; please report it")
    return (f"tflm runs TensorFlow Lite Micro (the reference interpreter) on the embedded model array: "
            f"{len(embedded):,} B, identical to the model file; no separate parity run")


__all__ = ["Verification", "verify_model"]
