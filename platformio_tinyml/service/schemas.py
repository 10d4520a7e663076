"""Request and response bodies of the HTTP API (the OpenAPI document follows from them)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


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
