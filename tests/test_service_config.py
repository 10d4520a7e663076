"""Service settings: defaults < TOML file < environment < command-line flags."""

from __future__ import annotations

from pathlib import Path

import pytest

from platformio_tinyml.errors import TinyMLError
from platformio_tinyml.service.config import load_config


def test_layers_override_in_order(tmp_path):
    toml = tmp_path / "service.toml"
    toml.write_text('port = 9000\nworkers = 4\ndata = "/srv/tinyml"\nboards_dirs = ["/a", "/b"]\n')
    cfg = load_config(toml, env={"TINYML_SERVICE_WORKERS": "6", "TINYML_SERVICE_LOG_REQUESTS": "no"}, port=None,
                      job_timeout_s=30)
    assert (cfg.port, cfg.workers, cfg.job_timeout_s, cfg.log_requests) == (9000, 6, 30.0, False)
    assert cfg.data == Path("/srv/tinyml") and cfg.boards_dirs == ("/a", "/b")
    assert cfg.database_url == "sqlite:////srv/tinyml/service.db" and cfg.max_upload_bytes == 16 << 20
    env_file = load_config(env={"TINYML_SERVICE_CONFIG": str(toml)})
    assert env_file.port == 9000 and load_config(env={}).port == 8470


@pytest.mark.parametrize("text, env, needle", [
    ("prot = 1\n", {}, "unknown setting 'prot'"),
    ("port = [\n", {}, "invalid TOML"),
    ("", {"TINYML_SERVICE_PORT": "eighty"}, "$TINYML_SERVICE_PORT"),
])
def test_bad_settings_are_one_line_errors(tmp_path, text, env, needle):
    toml = tmp_path / "service.toml"
    toml.write_text(text)
    with pytest.raises(TinyMLError) as e:
        load_config(toml, env=env)
    assert needle in str(e.value) and "\n" not in str(e.value)


def test_serve_on_a_taken_port_is_one_line(tmp_path):
    import socket

    from service_support import tinyml
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        proc = tinyml("serve", "--data", tmp_path, "--port", port, check=False)
    assert proc.returncode == 2 and proc.stderr == (
        f"tinyml: error: --host/--port: cannot listen on 127.0.0.1:{port} (Address already in use). "
        "Stop the program using it, or give another --port\n")


def test_serve_with_a_lease_out_of_range_is_one_line(tmp_path):
    from lwm2m_support import free_udp_port
    from service_support import free_port, tinyml
    proc = tinyml("serve", "--data", tmp_path, "--port", free_port(), "--lwm2m-port", free_udp_port(), check=False,
                  env={"TINYML_SERVICE_LWM2M_LEASE_S": "0.5"})
    assert proc.returncode == 2 and proc.stderr == (
        "tinyml: error: settings (--config file or $TINYML_SERVICE_LWM2M_LEASE_S): lwm2m_lease_s = 0.5 is out of "
        "range. Give 1 to 3600 seconds (default 15): how long a silent server keeps its deployments and devices\n")
