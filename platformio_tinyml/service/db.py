"""The service's database: projects, tokens, builds, compilations and LwM2M devices.

A *build* is one compile of one content key (the local build cache's key:
model bytes, options, device profile, backend and its version, runtime
digest); it is shared by every project that asks for the same thing. A
*compilation* is one project's request and points at a build: it is what
the API shows, so a project never sees another project's ids or names.
At most one build per key is queued, running or succeeded (a unique index
over the live states): two API processes inserting the same key at once get
one build between them. Schema changes go through the Alembic migrations
in ``migrations/``; :func:`open_database` applies them.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from sqlalchemy import (JSON, BigInteger, Boolean, DateTime, Float, ForeignKey, Index, Integer, LargeBinary,
                        String, create_engine, event, text)
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, sessionmaker

LIVE_STATES = ("queued", "running", "succeeded")
ACTIVE_STATES = ("queued", "running")


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


class Base(DeclarativeBase):
    pass


class Project(Base):
    __tablename__ = "projects"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    allow_pickle: Mapped[bool] = mapped_column(Boolean, default=False)
    signing_key_pem: Mapped[bytes] = mapped_column(LargeBinary)     # never leaves the service
    public_key_pem: Mapped[bytes] = mapped_column(LargeBinary)


class Token(Base):
    __tablename__ = "tokens"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)   # sha256 hex of the token
    scopes: Mapped[str] = mapped_column(String(100))                   # comma-separated
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class Build(Base):
    __tablename__ = "builds"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    key: Mapped[str] = mapped_column(String(64), index=True)
    state: Mapped[str] = mapped_column(String(16), default="queued")
    # inputs: blobs in the artifact store, the rest as given
    model_sha256: Mapped[str] = mapped_column(String(64))
    model_file: Mapped[str] = mapped_column(String(200))
    calibration_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    device: Mapped[dict] = mapped_column(JSON)
    name: Mapped[str] = mapped_column(String(100))
    backend_requested: Mapped[str] = mapped_column(String(50))
    options: Mapped[dict] = mapped_column(JSON)
    # --input-shape / --input-value as {name: [dims]} / {name: [values]}; None: none (migration 0008)
    input_shapes: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    input_values: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    # outputs
    backend: Mapped[str | None] = mapped_column(String(50), nullable=True)
    backend_version: Mapped[str | None] = mapped_column(String(100), nullable=True)
    chosen_because: Mapped[str | None] = mapped_column(String(2000), nullable=True)
    report: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    log: Mapped[list] = mapped_column(JSON, default=list)
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    error_message: Mapped[str | None] = mapped_column(String(4000), nullable=True)
    error_where: Mapped[str | None] = mapped_column(String(1000), nullable=True)
    error_hint: Mapped[str | None] = mapped_column(String(2000), nullable=True)
    artifact_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    started_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    finished_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    seconds: Mapped[float | None] = mapped_column(Float, nullable=True)
    # written every few seconds while a worker runs the build: a stale one means its worker died
    heartbeat_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    worker: Mapped[str | None] = mapped_column(String(200), nullable=True)

    __table_args__ = (Index("ux_builds_live_key", "key", unique=True,
                            sqlite_where=text("state != 'failed'"), postgresql_where=text("state != 'failed'")),)


class Compilation(Base):
    __tablename__ = "compilations"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"), index=True)
    build_id: Mapped[str] = mapped_column(ForeignKey("builds.id"), index=True)
    cached: Mapped[bool] = mapped_column(Boolean, default=False)
    target: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")      # readers do not block the writer
    cur.execute("PRAGMA synchronous=NORMAL")    # WAL: durable at checkpoints, consistent always
    cur.execute("PRAGMA busy_timeout=10000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def open_database(url: str) -> tuple[Engine, sessionmaker]:
    """Engine and session factory for ``url``, migrated to the newest schema."""
    if url.startswith("sqlite:///"):
        Path(url[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
        # one connection per request thread (the server's pool has 40): no thread waits for a connection
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30}, pool_size=48,
                               max_overflow=16)
        event.listen(engine, "connect", _sqlite_pragmas)
    else:
        if url.startswith(("postgresql://", "postgres://")):   # psycopg 3, not SQLAlchemy's default psycopg2
            url = "postgresql+psycopg://" + url.split("://", 1)[1]
        engine = create_engine(url, pool_pre_ping=True)
    migrate(engine)
    return engine, sessionmaker(engine, expire_on_commit=False)


def migrate(engine: Engine) -> None:
    """Apply the Alembic migrations (``migrations/versions``) up to ``head``."""
    from alembic import command
    from alembic.config import Config
    cfg = Config()
    cfg.set_main_option("script_location", str(Path(__file__).with_name("migrations")))
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            # API processes and workers start together: one migrates, the others wait for it
            conn.execute(text("SELECT pg_advisory_xact_lock(847001)"))
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


# -- LwM2M devices (the server in platformio_tinyml.lwm2m keeps them here) ----------

class EndpointRule(Base):
    """A project accepts LwM2M registrations whose endpoint name matches ``pattern`` (a shell glob)."""
    __tablename__ = "endpoint_rules"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"), index=True)
    pattern: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class Device(Base):
    """One LwM2M endpoint: its identity, online state, capabilities and tags (registrations below)."""
    __tablename__ = "devices"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    endpoint: Mapped[str] = mapped_column(String(200), unique=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"), index=True)
    online: Mapped[bool] = mapped_column(Boolean, default=False)
    registration_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    last_seen: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    capabilities: Mapped[dict | None] = mapped_column(JSON, nullable=True)    # lwm2m.capabilities.Capabilities
    capabilities_error: Mapped[str | None] = mapped_column(String(1000), nullable=True)
    tags: Mapped[list] = mapped_column(JSON, default=list)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class Registration(Base):
    """One LwM2M registration of a device, from Register to De-register, expiry or replacement."""
    __tablename__ = "registrations"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id"), index=True)
    address: Mapped[str] = mapped_column(String(200))
    lwm2m_version: Mapped[str] = mapped_column(String(10))
    binding: Mapped[str] = mapped_column(String(10))
    lifetime_s: Mapped[int] = mapped_column(Integer)
    objects: Mapped[list] = mapped_column(JSON, default=list)       # link format entries: [target, {attrs}]
    registered_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    ended_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    end_reason: Mapped[str | None] = mapped_column(String(50), nullable=True)   # deregistered, expired, replaced
    server_id: Mapped[str | None] = mapped_column(String(200), nullable=True, index=True)   # the server it is with


class LwM2MServerRow(Base):
    """A ``tinyml serve`` process's LwM2M server: it writes ``heartbeat_at`` every few seconds; one whose
    heartbeat is stale is gone, and its registrations end (migration 0005)."""
    __tablename__ = "lwm2m_servers"
    id: Mapped[str] = mapped_column(String(200), primary_key=True)
    address: Mapped[str] = mapped_column(String(200))
    started_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    heartbeat_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class DeviceValue(Base):
    """A value a device reported: an Observe notification or an LwM2M Send record."""
    __tablename__ = "device_values"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id"), index=True)
    path: Mapped[str] = mapped_column(String(100))
    value: Mapped[dict] = mapped_column(JSON)          # {"value": JSON value}
    source: Mapped[str] = mapped_column(String(10))    # observe, send
    time: Mapped[float | None] = mapped_column(Float, nullable=True)
    received_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


# -- deployments: one module to a selection of devices, stage by stage (platformio_tinyml.lwm2m.deployments) --

class Deployment(Base):
    """A staged rollout of one signed module; its bytes are in the blob store under ``module_sha256``."""
    __tablename__ = "deployments"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"), index=True)
    module_sha256: Mapped[str] = mapped_column(String(64))
    module_size: Mapped[int] = mapped_column(Integer)
    module_name: Mapped[str] = mapped_column(String(100))
    module_version: Mapped[int] = mapped_column(BigInteger)           # uint32 in the header
    selector: Mapped[dict] = mapped_column(JSON)
    stages: Mapped[list] = mapped_column(JSON)                  # cumulative percentages, e.g. [10, 50, 100]
    criteria: Mapped[dict] = mapped_column(JSON)                # {"activated", "inferences", "within_s"}
    max_failure_ratio: Mapped[float] = mapped_column(Float, default=0.0)
    block_size: Mapped[int] = mapped_column(Integer, default=1024)
    # push (Block1 writes to /9/i/2) or pull (its coap:// URI written to /9/i/3, fetched with Block2)
    mode: Mapped[str] = mapped_column(String(8), default="push")
    # the board id or profile that plans the devices without the TinyML object (None: they are skipped)
    profile: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    # a model deployed per device class: [{"board", "profile_sha256", "module_sha256", "module_size", "devices",
    # "error"}], one module packed per distinct device profile (None: one module for every device)
    classes: Mapped[list | None] = mapped_column(JSON, nullable=True)
    state: Mapped[str] = mapped_column(String(16), default="running")
    stage: Mapped[int] = mapped_column(Integer, default=0)      # the stage running (or where it stopped)
    message: Mapped[str] = mapped_column(String(2000), default="")
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    finished_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    # the server that runs its stages, while ``lease_until`` is in the future (it renews it)
    owner: Mapped[str | None] = mapped_column(String(200), nullable=True)
    lease_until: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)


class DeploymentDevice(Base):
    """One device of a deployment: its stage and where its delivery stands."""
    __tablename__ = "deployment_devices"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    deployment_id: Mapped[str] = mapped_column(ForeignKey("deployments.id"), index=True)
    endpoint: Mapped[str] = mapped_column(String(200))
    stage: Mapped[int | None] = mapped_column(Integer, nullable=True)     # None: skipped
    state: Mapped[str] = mapped_column(String(16), default="pending")
    activated: Mapped[bool] = mapped_column(Boolean, default=False)        # the new module ran: roll it back
    reason: Mapped[str] = mapped_column(String(2000), default="")
    update_result: Mapped[int | None] = mapped_column(Integer, nullable=True)
    result_meaning: Mapped[str] = mapped_column(String(200), default="")
    blocks_done: Mapped[int] = mapped_column(Integer, default=0)
    bytes_done: Mapped[int] = mapped_column(Integer, default=0)
    inference_base: Mapped[int | None] = mapped_column(Integer, nullable=True)   # the counter before Activate
    inference_count: Mapped[int | None] = mapped_column(Integer, nullable=True)
    started_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    finished_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    # the server the device is registered to, which delivers to it, while ``driver_until`` is in the future
    driver: Mapped[str | None] = mapped_column(String(200), nullable=True)
    driver_until: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    # the deployment's owner asks the server the device is registered with to roll it back
    rollback_wanted: Mapped[bool] = mapped_column(Boolean, default=False)
    # its device class's module (a model deployed per class); None: the deployment's module
    module_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)

    __table_args__ = (Index("ux_deployment_devices", "deployment_id", "endpoint", unique=True),)


class DevicePush(Base):
    """One single push to a device (``POST /v1/devices/{ep}/modules`` or ``.../firmware``), outside any
    deployment, written when it ends: what was sent and how it ended."""
    __tablename__ = "device_pushes"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"))
    endpoint: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(16))                     # module, firmware
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(Integer)
    module_name: Mapped[str | None] = mapped_column(String(100), nullable=True)    # a module whose header decodes
    module_version: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    state: Mapped[str] = mapped_column(String(16))                    # the delivery's last state (active, failed, ...)
    update_result: Mapped[int | None] = mapped_column(Integer, nullable=True)
    message: Mapped[str] = mapped_column(String(2000), default="")
    started_at: Mapped[dt.datetime] = mapped_column(DateTime)
    finished_at: Mapped[dt.datetime] = mapped_column(DateTime)

    __table_args__ = (Index("ix_device_pushes_device", "project_id", "endpoint", "finished_at"),)
