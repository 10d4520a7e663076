"""The service's settings: defaults < TOML file < environment < command line.

``tinyml serve --config FILE`` (or ``$TINYML_SERVICE_CONFIG``) names a TOML
file whose top-level keys are the field names below (``port = 8470``);
``$TINYML_SERVICE_<FIELD>`` (upper case) overrides it, and flags given on the
command line override both.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields, replace
from pathlib import Path

from ..errors import TinyMLError

DEFAULT_DATA = Path.home() / ".local" / "share" / "platformio-tinyml" / "service"
ENV_PREFIX = "TINYML_SERVICE_"
MIB = 1 << 20


@dataclass(frozen=True)
class ServiceConfig:
    host: str = "127.0.0.1"
    port: int = 8470
    data: Path = DEFAULT_DATA
    database: str = ""                  # SQLAlchemy URL; default: SQLite under ``data``
    workers: int = 2                    # compile jobs run at once
    max_upload_mb: float = 16           # one request's body
    max_jobs_in_flight: int = 8         # queued + running jobs per project
    job_timeout_s: float = 600          # wall clock per compile child process
    job_memory_mb: int = 8192           # address-space limit per compile child process
    boards_dirs: tuple[str, ...] = ()   # extra board manifest folders
    log_requests: bool = True
    lwm2m_port: int = 5683              # UDP port of the LwM2M server (bound to ``host``); 0: no LwM2M server
    lwm2m_object_id: int = 32100        # object id of the TinyML object (docs/lwm2m/tinyml-object.xml)
    lwm2m_timeout_s: float = 10         # one request to a device, retransmissions included
    lwm2m_public_host: str = ""         # the host in pull URIs (coap://HOST:PORT/pkg/...; default: host)
    lwm2m_queue_wait_s: float = 30      # a request to a sleeping (queue mode) device waits this long
    lwm2m_awake_s: float = 20           # a queue-mode device is reachable this long after Register/Update
    lwm2m_flood_count: int = 20         # Registers per address per 10 s before 4.29 Too Many Requests
    lwm2m_server_id: str = ""           # this server among several on one database (default HOSTNAME:LWM2M_PORT)
    lwm2m_dtls_port: int = 0            # coaps:// (DTLS-PSK) port of the LwM2M server on ``host``; 0: no DTLS
    lwm2m_psk_file: str = ""            # JSON {"IDENTITY": "HEXKEY"}: the devices' pre-shared keys (docs/lwm2m.md)
    lwm2m_lease_s: float = 15           # a server silent this long is gone: its deployments and devices move on
    broker: str = ""                    # Celery broker URL (redis://...): jobs go to `tinyml worker` processes
    queues: str = "fast,slow"           # `tinyml worker`: the queues it takes (fast: cgen/emlearn/tflm/auto; slow: tvm/vela)
    heartbeat_s: float = 2              # a running job's worker writes its heartbeat this often
    stale_after_s: float = 30           # a running job whose heartbeat is older is queued again (its worker died)

    @property
    def database_url(self) -> str:
        return self.database or f"sqlite:///{Path(self.data) / 'service.db'}"

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * MIB)


def _coerce(name: str, kind: str, value, where: str):
    try:
        if kind == "int":
            return int(value)
        if kind == "float":
            return float(value)
        if kind == "bool":
            return value if isinstance(value, bool) else str(value).lower() in ("1", "yes", "true", "on")
        if kind == "Path":
            return Path(str(value)).expanduser()
        if kind.startswith("tuple"):
            items = value if isinstance(value, (list, tuple)) else str(value).split(os.pathsep)
            return tuple(str(v) for v in items if str(v))
        return str(value)
    except (TypeError, ValueError):
        raise TinyMLError(f"setting '{name}' = {value!r} is not a valid {kind}", where=where) from None


def read_toml(path: Path) -> dict:
    """The parsed TOML file at ``path``; a one-line error when unreadable."""
    try:
        import tomllib
    except ImportError:   # Python 3.10
        import tomli as tomllib
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except OSError as e:
        raise TinyMLError(f"cannot read the configuration file ({e.strerror})", where=str(path)) from None
    except tomllib.TOMLDecodeError as e:
        raise TinyMLError(f"invalid TOML ({e})", where=str(path)) from None


def load_config(file: Path | None = None, env: dict | None = None, **flags) -> ServiceConfig:
    """Merge the layers; ``flags`` whose value is None are not given."""
    env = os.environ if env is None else env
    kinds = {f.name: str(f.type).split(" ")[0].split("[")[0] for f in fields(ServiceConfig)}
    values: dict = {}
    file = file or (Path(env[ENV_PREFIX + "CONFIG"]) if env.get(ENV_PREFIX + "CONFIG") else None)
    if file is not None:
        for k, v in read_toml(Path(file)).items():
            if k not in kinds:
                raise TinyMLError(f"unknown setting '{k}'", where=str(file),
                                  hint="Known settings: " + ", ".join(sorted(kinds)))
            values[k] = _coerce(k, kinds[k], v, str(file))
    for k, kind in kinds.items():
        if env.get(ENV_PREFIX + k.upper()):
            values[k] = _coerce(k, kind, env[ENV_PREFIX + k.upper()], "$" + ENV_PREFIX + k.upper())
    for k, v in flags.items():
        if v is not None:
            values[k] = _coerce(k, kinds[k], v, "--" + k.replace("_", "-"))
    return replace(ServiceConfig(), **values)
