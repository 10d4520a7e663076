"""Several LwM2M servers on one database: who holds each registration, each server's heartbeat, and
the leases that let exactly one server drive a deployment and each of its devices, and a flag asking
the server a device is registered with to roll it back.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "lwm2m_servers",
        sa.Column("id", sa.String(200), primary_key=True),
        sa.Column("address", sa.String(200), nullable=False),
        sa.Column("started_at", sa.DateTime, nullable=False),
        sa.Column("heartbeat_at", sa.DateTime, nullable=False))
    op.add_column("registrations", sa.Column("server_id", sa.String(200)))
    op.create_index("ix_registrations_server_id", "registrations", ["server_id"])
    op.add_column("deployments", sa.Column("owner", sa.String(200)))
    op.add_column("deployments", sa.Column("lease_until", sa.DateTime))
    op.add_column("deployment_devices", sa.Column("driver", sa.String(200)))
    op.add_column("deployment_devices", sa.Column("driver_until", sa.DateTime))
    op.add_column("deployment_devices", sa.Column("rollback_wanted", sa.Boolean, nullable=False,
                                                  server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table("deployment_devices") as b:
        b.drop_column("rollback_wanted")
        b.drop_column("driver_until")
        b.drop_column("driver")
    with op.batch_alter_table("deployments") as b:
        b.drop_column("lease_until")
        b.drop_column("owner")
    op.drop_index("ix_registrations_server_id", "registrations")
    with op.batch_alter_table("registrations") as b:
        b.drop_column("server_id")
    op.drop_table("lwm2m_servers")
