"""The store's first schema, as shipped before migrations: content-addressed snapshot and
definition bodies, host -> (fingerprint, taken_at), instance -> (fingerprint, host).

Revision ID: 0001_initial
"""

import sqlalchemy as sa
from alembic import op

revision = "0001_initial"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    for kind in ("snapshots", "definitions"):
        op.create_table(
            f"arm_cpu_filter_{kind}",
            sa.Column("fingerprint", sa.String(64), primary_key=True),
            sa.Column("body", sa.Text, nullable=False),
        )
    op.create_table(
        "arm_cpu_filter_hosts",
        sa.Column("host", sa.String(255), primary_key=True),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("taken_at", sa.Float, nullable=False),
    )
    op.create_table(
        "arm_cpu_filter_instances",
        sa.Column("uuid", sa.String(36), primary_key=True),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("host", sa.String(255), nullable=True),
        sa.Column("recorded_at", sa.Float, nullable=False),
    )
