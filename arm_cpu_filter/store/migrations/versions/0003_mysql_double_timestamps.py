"""MySQL/MariaDB: host and instance timestamps as DOUBLE.  The first schema declared them as
SQLAlchemy's ``Float``, which MySQL makes a single-precision FLOAT: an epoch time came back
rounded by up to an hour and a fresh host looked stale.  SQLite and PostgreSQL already store
double precision (nothing to do there).  Values already rounded stay so until the host's agent
publishes again.

Revision ID: 0003_mysql_double_timestamps
Revises: 0002_host_kernel_boot_problem
"""

import sqlalchemy as sa
from alembic import op

revision = "0003_mysql_double_timestamps"
down_revision = "0002_host_kernel_boot_problem"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "mysql":
        return
    for table, column in (("arm_cpu_filter_hosts", "taken_at"), ("arm_cpu_filter_instances", "recorded_at")):
        op.alter_column(table, column, type_=sa.Double(), existing_type=sa.Float(), existing_nullable=False)
