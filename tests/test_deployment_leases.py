"""The leases that let several servers share deployments and devices, on the service's real schema.

SQLite here (migration 0005 applied by ``open_database``, as ``tinyml serve``
does): who may take a deployment's lease or claim a device's row, renewal,
fencing of a holder that lost its lease, and the servers' heartbeats that end
the registrations of a server gone silent. The same calls on PostgreSQL, with
two real servers racing, are in ``test_deployments_ha.py``.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import inspect, update

from platformio_tinyml.errors import TinyMLError
from platformio_tinyml.lwm2m.agent import AgentConfig
from platformio_tinyml.lwm2m.deployment_store import DeploymentStore
from platformio_tinyml.lwm2m.store import DeviceStore, NewRegistration
from platformio_tinyml.service.auth import get_or_create_project
from platformio_tinyml.service import db as service_db
from platformio_tinyml.service.db import Deployment, LwM2MServerRow, Registration, migrate, open_database, utcnow

MODULE = {"module_sha256": "0" * 64, "module_size": 100, "module_name": "kws", "module_version": 1}


@pytest.fixture
def db(tmp_path):
    engine, session = open_database(f"sqlite:///{tmp_path / 'service.db'}")
    with session() as s:
        project = get_or_create_project(s, "fleet").id
        s.commit()
    yield engine, session, project
    engine.dispose()


def _deployment(store, project, owner="a", lease_s=30.0):
    return store.create(project, MODULE, {"endpoints": ["d0", "d1"]}, [50, 100], {}, 0.0, 1024,
                        [("d0", 0, ""), ("d1", 1, ""), ("d2", None, "offline (not registered)")], owner, lease_s)


def test_a_deployment_lease_is_taken_only_when_free_and_a_lost_owner_writes_nothing(db):
    _, session, project = db
    store = DeploymentStore(session)
    dep = _deployment(store, project, owner="a")
    assert store.take(dep, "b", 5) is None                  # a holds it
    assert store.orphans("b") == [] and store.orphans("a") == [dep]
    assert store.take(dep, "a", 5) == "a"                   # a server restarted under its id: at once
    assert store.renew("a", [dep], 5) == {dep}

    with session() as s:                                    # a stalls past its lease
        s.execute(update(Deployment).values(lease_until=utcnow() - dt.timedelta(seconds=1)))
        s.commit()
    assert store.orphans("b") == [dep]
    assert store.take(dep, "b", 5) == "a"
    assert store.take(dep, "a", 5) is None
    assert store.renew("a", [dep], 5) == set()              # a finds out at its next renewal ...
    assert store.set(dep, as_owner="a", message="from a") is False     # ... and meanwhile writes nothing
    assert store.get(dep).message == ""
    assert store.set(dep, as_owner="b", stage=1) is True and store.get(dep).stage == 1
    assert store.set(dep, as_owner="b", state="succeeded") is True
    assert store.get(dep).owner is None and store.orphans("b") == []     # finished: no lease to take


def test_a_device_row_is_driven_by_one_server_of_the_running_stage(db):
    _, session, project = db
    store = DeploymentStore(session)
    dep = _deployment(store, project)
    assert store.drivable("b") == [(dep, "d0")]             # stage 0 only; d2 is skipped
    assert store.claim(dep, "d0", "b", 5) is True
    assert store.claim(dep, "d0", "a", 5) is False
    assert store.drivable("a") == []
    assert store.set_device(dep, "d0", as_driver="a", state="transferring") is False
    assert store.set_device(dep, "d0", as_driver="b", state="transferring", bytes_done=512) is True
    assert store.fail_unclaimed(dep, "d0", "offline") is False          # b drives it
    assert [(ep, driver) for ep, driver, _ in store.waiting(dep, 0)] == [("d0", "b")]
    assert [ep for ep, _, _ in store.waiting(dep, 1)] == ["d1"]
    assert store.renew_rows("b", [(dep, "d0")], 5) == {(dep, "d0")}

    store.release(dep, "d0", "b")                           # b let go (the device left it)
    row = store.device(dep, "d0")
    assert (row.driver, row.state, row.bytes_done) == (None, "transferring", 512)   # where the next one goes on
    assert store.claim(dep, "d0", "a", 5) is True

    store.set(dep, state="paused", owner=None, lease_until=None)
    assert store.renew_rows("a", [(dep, "d0")], 5) == set()           # its driver stops
    assert store.drivable("a") == [] and store.claim(dep, "d0", "b", 5) is False
    store.set(dep, state="running")
    store.release(dep)
    assert store.fail_unclaimed(dep, "d0", "offline: not registered with any server") is True
    assert store.device(dep, "d0").state == "failed" and store.drivable("a") == []
    assert store.waiting(dep, 0) == []                      # the stage is done


def test_a_rollback_is_asked_of_the_server_the_device_is_registered_with(db):
    _, session, project = db
    store = DeploymentStore(session)
    dep = _deployment(store, project)
    assert store.claim(dep, "d1", "a", 5) is True
    store.want_rollback(dep, ["d1"])                        # the owner cannot reach d1: its claim is cleared
    assert store.device(dep, "d1").driver is None and store.rollbacks_left(dep) == ["d1"]
    assert store.rollbacks("b") == [(dep, "d1")]
    assert store.claim_rollback(dep, "d1", "b", 30) is True
    assert store.claim_rollback(dep, "d1", "c", 30) is False and store.rollbacks("c") == []
    store.set_device(dep, "d1", state="rolled_back", rollback_wanted=False)
    assert store.rollbacks_left(dep) == [] and store.rollbacks("b") == []


def _register(devices, endpoint, server, project):
    return devices.registered(NewRegistration(endpoint, project, "127.0.0.1:1", "1.1", "U", 60, [["/9/0", {}]],
                                              server))


def test_a_silent_server_loses_its_registrations_and_a_restarted_one_ends_its_own(db):
    _, session, project = db
    devices = DeviceStore(session)
    devices.server_started("a", "127.0.0.1:5683")
    devices.server_started("b", "127.0.0.1:5684")
    t0 = utcnow()
    ra, rb = _register(devices, "d-a", "a", project), _register(devices, "d-b", "b", project)
    assert devices.online_objects(["d-a", "d-b", "d-x"]) == {"d-a": {9}, "d-b": {9}}
    assert devices.heartbeat("b", 15) == 0

    with session() as s:                                    # a stops beating
        s.execute(update(LwM2MServerRow).where(LwM2MServerRow.id == "a")
                  .values(heartbeat_at=utcnow() - dt.timedelta(seconds=16)))
        s.commit()
    assert devices.heartbeat("b", 15) == 1
    assert devices.online_objects(["d-a", "d-b"]) == {"d-b": {9}}
    with session() as s:
        assert s.get(Registration, ra).end_reason == "server gone"

    r2 = _register(devices, "d-b", "a", project)            # d-b moves to a: b forgets it at its next beat
    assert devices.replaced_since("b", t0) == [rb] and devices.replaced_since("a", t0) == []
    devices.server_started("a", "127.0.0.1:5683")           # a restarted: its own registrations are gone
    with session() as s:
        assert s.get(Registration, r2).end_reason == "server restarted"


@pytest.mark.parametrize("below, table, columns", [
    ("0004", "deployment_devices", {"driver", "driver_until"}),             # 0005: shared servers
    ("0005", "device_pushes", {"endpoint", "kind", "sha256", "state", "message", "finished_at"}),
    ("0007", "builds", {"input_shapes", "input_values"}),                   # 0008: a build's input shapes/values
])
def test_migrations_go_down_and_up_again(db, below, table, columns):
    engine, _, _ = db
    cfg = Config()
    cfg.set_main_option("script_location", str(Path(service_db.__file__).with_name("migrations")))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, below)
    with engine.connect() as conn:
        gone = table not in inspect(conn).get_table_names() or \
            not columns <= {c["name"] for c in inspect(conn).get_columns(table)}
    assert gone, f"downgrading to {below} left {table}'s {sorted(columns)}"
    migrate(engine)
    with engine.connect() as conn:
        cols = {c["name"] for c in inspect(conn).get_columns(table)}
    assert columns <= cols


@pytest.mark.parametrize("servers, failover, needle", [
    (("coap://127.0.0.1:5683", "http://127.0.0.1:1"), 10, "'http://127.0.0.1:1' is not a coap://HOST:PORT URI"),
    (("coap://127.0.0.1:5683", "coap://127.0.0.1:5684"), 1, "--failover-s 1: give 3 to 3600 seconds"),
])
def test_agent_fail_over_settings_are_checked(servers, failover, needle):
    with pytest.raises(TinyMLError) as e:
        AgentConfig(server=servers[0], fallback_servers=servers[1:], failover_s=failover, endpoint="x",
                    public_key=b"\0" * 32)
    assert needle in str(e.value) and "\n" not in str(e.value)
