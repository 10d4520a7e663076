"""Request and response bodies of the HTTP API (the OpenAPI document follows from them)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

SHA256 = "^[0-9a-f]{64}$"


class ErrorOut(BaseModel):
    detail: str


class JobError(BaseModel):
    message: str
    where: str | None = None
    hint: str | None = None


class CompilationOut(BaseModel):
    id: str
    state: str                      # queued | running | succeeded | failed
    cached: bool
    name: str
    target: str
    model_sha256: str
    backend_requested: str
    backend: str | None = None
    backend_version: str | None = None
    chosen_because: str | None = None
    progress: float
    log: list[str]
    report: dict[str, Any] | None = None
    error: JobError | None = None
    created_at: str
    started_at: str | None = None
    finished_at: str | None = None
    seconds: float | None = None
    artifact_url: str | None = None


class LookupIn(BaseModel):
    """A compilation asked for by its content key's inputs, without the model's bytes."""
    model_sha256: str = Field(pattern=SHA256, description="sha256 of the model file (of a SavedModel folder: "
                              "of its files' bytes in sorted path order)")
    model_file: str = Field(min_length=1, max_length=200, description="the model's file name (of a SavedModel: "
                            "its folder's), as it would be uploaded")
    name: str = Field(pattern="^[A-Za-z_][A-Za-z0-9_]{0,63}$", description="C name")
    backend: str = Field("auto", pattern="^[a-z0-9_-]{1,50}$")
    options: dict[str, str | int | float | bool] = Field(default_factory=dict)
    calibration_sha256: str | None = Field(None, pattern=SHA256)
    target: str | None = Field(None, max_length=100, description="board id")
    profile: dict[str, Any] | None = Field(None, description="device profile, as GET /v1/boards/{id} answers")
    input_shapes: dict[str, Any] | None = Field(None, description="open dimensions of graph inputs set, "
                                                 'e.g. {"x": [1, 49, 10, 1]} (--input-shape x=1,49,10,1)')
    input_values: dict[str, Any] | None = Field(None, description="graph inputs bound to constants, "
                                                 'e.g. {"sr": [16000]} (--input-value sr=16000)')


class BackendOut(BaseModel):
    name: str
    version: str
    installed: bool
    inputs: list[str]
    probe_cost: str
    problem: str | None = None


class BoardOut(BaseModel):
    id: str


class BoardsOut(BaseModel):
    boards: list[BoardOut]
    total: int


class CompareRow(BaseModel):
    backend: str
    supported: bool
    chosen: bool
    reasons: list[str]
    flash_bytes: int | None = None
    ram_bytes: int | None = None
    latency_cycles: int | None = None


class CompareOut(BaseModel):
    schema_version: int              # docs/report.schema.json, $defs/compare
    model: str
    format: str
    board: str
    profile: dict                    # the device profile the estimates are for
    chosen: str | None = None
    because: str
    backends: list[CompareRow]


class PublicKeyOut(BaseModel):
    project: str
    algorithm: str
    public_key_pem: str
    public_key_hex: str


class HealthOut(BaseModel):
    status: str
    version: str
    workers: int
    jobs: dict[str, int]


def errors(*codes: int) -> dict:
    """The ``responses=`` entry documenting one-line error answers."""
    return {code: {"model": ErrorOut} for code in codes}
