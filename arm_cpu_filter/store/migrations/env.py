"""alembic environment: runs on the connection the caller passes in ``config.attributes``
(the store's own engine and transaction); there is no ``alembic.ini`` and no offline mode."""

from alembic import context

from arm_cpu_filter.store.migrations import VERSION_TABLE

context.configure(connection=context.config.attributes["connection"], version_table=VERSION_TABLE)
with context.begin_transaction():
    context.run_migrations()
