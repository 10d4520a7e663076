"""Checks of untrusted uploads, before anything parses them.

A model arrives as bytes and a client-given file name. The name chooses
the format (its suffix) and the default C name, and the model is compiled
under it (generated comments quote it, as for a local compile): reduced to
its last component, printable, at most 200 characters. Pickled scikit-learn models (``.pkl``, ``.joblib``) run code
when loaded and are refused unless the project opted in. A SavedModel
comes as a ``.zip``, checked for absolute or ``..`` paths, links, member
count and unpacked size before a byte is extracted, and extracted with the
sizes enforced while reading (a header can lie).

These checks read bytes, never parse a model: they run in the API process as
part of answering the upload. Loading the model (and refusing a corrupt one)
is the compile job's first step, in its limited child process.
"""

from __future__ import annotations

import io
import stat
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from ..errors import ModelError

MODEL_SUFFIXES = (".tflite", ".onnx", ".keras", ".h5", ".skops", ".zip")
PICKLE_SUFFIXES = (".pkl", ".pickle", ".joblib")
MAX_ZIP_MEMBERS = 1000
UNPACKED_PER_UPLOAD = 32    # an archive may unpack to 32x the upload limit (checked at upload)
MAX_UNPACKED_BYTES = 32 * 16 << 20   # the same for the default limit (when a stored archive is unpacked)


class UploadError(ModelError):
    """An upload refused before parsing; ``status`` is the HTTP answer."""

    def __init__(self, what: str, where: str | None = None, hint: str | None = None, status: int = 422):
        self.status = status
        super().__init__(what, where=where, hint=hint)


@dataclass(frozen=True)
class Upload:
    data: bytes
    filename: str       # the client's name, for messages only
    suffix: str


def check_name(filename: str | None, field: str) -> str:
    """The client's file name, reduced to its last component; refuses odd ones."""
    name = (filename or "").replace("\\", "/").rsplit("/", 1)[-1]
    if not name:
        raise UploadError("the upload has no file name", where=field, hint="Send the file with its name")
    if any(ord(c) < 32 or 0xD800 <= ord(c) <= 0xDFFF or c == "\ufffd" for c in name) or len(name) > 200:
        raise UploadError("the file name has control characters, is not UTF-8 or is too long", where=field,
                          hint="Rename the file (printable UTF-8, at most 200 characters)")
    return name


def check_model(data: bytes, filename: str | None, allow_pickle: bool, max_unpacked: int) -> Upload:
    name = check_name(filename, "model")
    suffix = PurePosixPath(name).suffix.lower()
    if suffix in PICKLE_SUFFIXES and not allow_pickle:
        raise UploadError("pickled models run code when loaded; the service does not accept them", where=name,
                          hint="Save the estimator with skops (.skops) or convert it to ONNX", status=415)
    if suffix not in MODEL_SUFFIXES + PICKLE_SUFFIXES:
        raise UploadError(f"unsupported model file type '{suffix or name}'", where=name, status=415,
                          hint="Send .tflite, .onnx, .keras, .h5, .skops, or a SavedModel folder as .zip")
    if not data:
        raise UploadError("the model file is empty", where=name, hint="Send the model file itself")
    if suffix == ".zip":
        _check_zip(data, name, max_unpacked)
    _check_magic(data, name, suffix)
    _check_structure(data, name, suffix)
    return Upload(data, name, suffix)


def _check_structure(data: bytes, name: str, suffix: str) -> None:
    """A truncated or corrupted .tflite or .onnx is a 422 at once, with the line the model's reader
    gives: the file's structure only, parsed in this process (pure Python flatbuffer walks for
    TFLite, protobuf's parser for ONNX: no interpreter, no model code). Everything that needs the
    model loaded (shapes, operators, the backends) is the compile job's, in its child."""
    try:
        if suffix == ".tflite":
            from ..model.tflite.reader import check_structure
            check_structure(data, name)
        elif suffix == ".onnx":
            import onnx
            try:
                model = onnx.load_from_string(data)
            except Exception as e:   # protobuf's decode errors, of several types
                raise UploadError(f"the file is a corrupt or truncated ONNX file ({type(e).__name__})",
                                  where=name, hint="Re-export the model") from None
            if not model.graph.node:
                raise UploadError("not an ONNX model (no graph nodes; corrupt or truncated file?)", where=name,
                                  hint="Re-export the model")
    except UploadError:
        raise
    except ModelError as e:
        raise UploadError(e.what, where=name, hint=e.hint) from None


ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")   # a Keras v3 file and a .skops file are zip archives


def _check_magic(data: bytes, name: str, suffix: str) -> None:
    """The file's first bytes agree with its suffix: cheap, no parsing. A TFLite flatbuffer
    carries ``TFL3`` at offset 4; ``.keras`` and ``.skops`` files are zip archives."""
    tflite = data[4:8] == b"TFL3"
    if suffix == ".tflite" and not tflite:
        # the same line the TFLite reader gives (model/tflite/reader.py)
        raise UploadError("not a TFLite flatbuffer (missing 'TFL3' identifier)", where=name,
                          hint="Export the model with tf.lite.TFLiteConverter")
    if suffix != ".tflite" and tflite:
        raise UploadError(f"the file is a TFLite flatbuffer, not a {suffix} model", where=name,
                          hint="Send it with the .tflite extension")
    if suffix in (".keras", ".skops") and not data.startswith(ZIP_MAGIC):
        raise UploadError(f"not a {suffix} file (a {suffix} file is a zip archive; this one does not start "
                          "like one)", where=name, hint=f"Save the model again as {suffix}")


def _zip(data: bytes, where: str) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, ValueError, OSError) as e:
        raise UploadError(f"not a readable zip archive ({e})", where=where,
                          hint="Zip the SavedModel folder (saved_model.pb at its top)") from None


def _too_big(limit: int, where: str) -> UploadError:
    return UploadError(f"the archive unpacks to more than {limit:,} bytes", where=where, status=413,
                       hint="Send the SavedModel without unused files, or convert it to .tflite")


def _members(zf: zipfile.ZipFile, where: str, limit: int) -> list[tuple[zipfile.ZipInfo, str]]:
    infos = zf.infolist()
    if len(infos) > MAX_ZIP_MEMBERS:
        raise UploadError(f"the archive has {len(infos)} entries (at most {MAX_ZIP_MEMBERS})", where=where)
    out, total = [], 0
    for info in infos:
        raw = info.filename
        path = PurePosixPath(raw.replace("\\", "/"))
        if raw.startswith(("/", "\\")) or ".." in path.parts or (path.parts and ":" in path.parts[0]):
            raise UploadError(f"archive entry '{raw}' points outside the archive", where=where,
                              hint="Zip the SavedModel folder with relative paths")
        if stat.S_ISLNK(info.external_attr >> 16):
            raise UploadError(f"archive entry '{raw}' is a link; links are not accepted", where=where)
        total += info.file_size
        if total > limit:
            raise _too_big(limit, where)
        if not info.is_dir():
            out.append((info, str(path)))
    return out


def _savedmodel_root(names: list[str], where: str) -> str:
    """'' or 'folder/' - where saved_model.pb is (the top, or one folder down)."""
    for root in ("",) + tuple(sorted({n.split("/", 1)[0] + "/" for n in names if "/" in n})):
        if root + "saved_model.pb" in names:
            return root
    raise UploadError("the archive holds no saved_model.pb", where=where,
                      hint="Zip a SavedModel folder (saved_model.pb and variables/)")


def _check_zip(data: bytes, where: str, limit: int) -> None:
    with _zip(data, where) as zf:
        _savedmodel_root([n for _, n in _members(zf, where, limit)], where)


def extract_savedmodel(data: bytes, dest: Path, where: str, limit: int | None = None) -> None:
    """Unpack a checked SavedModel zip into ``dest`` (saved_model.pb at its top)."""
    limit = limit or max(MAX_UNPACKED_BYTES, UNPACKED_PER_UPLOAD * len(data))
    with _zip(data, where) as zf:
        members = _members(zf, where, limit)
        root = _savedmodel_root([n for _, n in members], where)
        budget = limit
        for info, name in members:
            if not name.startswith(root):
                continue
            target = dest / name[len(root):]
            target.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(info) as src, open(target, "wb") as out:
                while chunk := src.read(1 << 20):
                    budget -= len(chunk)
                    if budget < 0:
                        raise _too_big(limit, where)
                    out.write(chunk)


def model_file_name(filename: str, suffix: str) -> str:
    """The name a model is compiled under: the client's file name (checked by :func:`check_name`:
    one component, printable), a SavedModel zip's without ``.zip`` (the folder's). Generated
    comments quote it, so it is part of the content key."""
    return filename[:-len(suffix)] if suffix == ".zip" else filename


def materialize(data: bytes, suffix: str, filename: str, workdir: Path) -> str:
    """Write a model into ``workdir`` under :func:`model_file_name` (a folder for a SavedModel
    zip); returns the path relative to ``workdir``."""
    workdir.mkdir(parents=True, exist_ok=True)
    name = model_file_name(filename, suffix)
    if suffix == ".zip":
        extract_savedmodel(data, workdir / name, filename)
        return name
    (workdir / name).write_bytes(data)
    return name
