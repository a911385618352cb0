"""Host records carry the kernel and boot id their agent published on (the agent withdraws the
record after a reboot) and a ``problem`` that fails the host closed.  Shipped without a
migration at first; nullable, so existing rows stay valid (published by hand, no problem).

Revision ID: 0002_host_kernel_boot_problem
Revises: 0001_initial
"""

import sqlalchemy as sa
from alembic import op

revision = "0002_host_kernel_boot_problem"
down_revision = "0001_initial"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("arm_cpu_filter_hosts", sa.Column("kernel", sa.String(255), nullable=True))
    op.add_column("arm_cpu_filter_hosts", sa.Column("boot_id", sa.String(64), nullable=True))
    op.add_column("arm_cpu_filter_hosts", sa.Column("problem", sa.Text, nullable=True))
