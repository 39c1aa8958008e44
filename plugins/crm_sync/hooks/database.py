"""SQLAlchemy engines from Airflow connections: the staging database and SQL sources."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from airflow.sdk import BaseHook
from airflow.sdk.exceptions import AirflowNotFoundException

from crm_sync.exceptions import ConfigurationError
from crm_sync.sync.staging import make_engine

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

log = logging.getLogger(__name__)

# Airflow conn_type -> SQLAlchemy drivername. Only drivers pinned in requirements.txt.
_DRIVERS = {
    "postgres": "postgresql+psycopg",
    "postgresql": "postgresql+psycopg",
    "mssql": "mssql+pymssql",
    "sqlite": "sqlite",
}


def sqlalchemy_url(conn: Any) -> str:
    """Build a SQLAlchemy URL from an Airflow connection.

    An ``extra`` key ``sqlalchemy_url`` wins (any dialect SQLAlchemy knows); otherwise the
    URL is built from the connection's type, host, port, schema (the database), login and
    password, with the password escaped by SQLAlchemy rather than pasted into a string.
    """
    extra = conn.extra_dejson or {}
    if extra.get("sqlalchemy_url"):
        url = sa.make_url(extra["sqlalchemy_url"])
        if conn.password and url.password is None and url.username:
            url = url.set(password=conn.password)
        return url.render_as_string(hide_password=False)
    conn_type = (conn.conn_type or "").lower()
    driver = extra.get("sqlalchemy_scheme") or _DRIVERS.get(conn_type)
    if driver is None:
        raise ConfigurationError(
            f"connection {conn.conn_id!r}: type {conn_type!r} is not supported for SQL access; "
            f"use one of {sorted(_DRIVERS)} or set extra.sqlalchemy_url"
        )
    if driver == "sqlite":
        path = conn.host or conn.schema or ""
        return f"sqlite:///{path}" if path else "sqlite://"
    query = {k: str(v) for k, v in extra.items() if k in {"sslmode", "application_name", "tds_version"}}
    return sa.URL.create(
        driver,
        username=conn.login or None,
        password=conn.password or None,
        host=conn.host or None,
        port=conn.port or None,
        database=conn.schema or None,
        query=query,
    ).render_as_string(hide_password=False)


class StagingHook(BaseHook):
    """The staging database: staged records, sync state, ledger, outbox, quota.

    The connection may be of any type ``sqlalchemy_url`` understands (SQLite, PostgreSQL,
    SQL Server). When the connection does not exist, a SQLite file under AIRFLOW_HOME is
    used, so a fresh install works without setup.
    """

    conn_name_attr = "staging_conn_id"
    default_conn_name = "crm_sync_staging"
    conn_type = "crm_sync_staging"
    hook_name = "crm_sync staging database"

    def __init__(self, staging_conn_id: str = default_conn_name) -> None:
        super().__init__()
        self.staging_conn_id = staging_conn_id

    def get_url(self) -> str | None:
        """Return the staging URL, or None for the default SQLite file."""
        try:
            conn = self.get_connection(self.staging_conn_id)
        except AirflowNotFoundException:
            log.info("connection %s not defined: staging on the default SQLite file", self.staging_conn_id)
            return None
        return sqlalchemy_url(conn)

    def get_engine(self) -> Engine:
        """Return the (cached, schema-checked) staging engine."""
        return make_engine(self.get_url())


class SqlSourceHook(BaseHook):
    """A SQL source read through SQLAlchemy (SQL Server in production, SQLite or PostgreSQL locally)."""

    conn_name_attr = "source_conn_id"
    default_conn_name = "aou_source"
    conn_type = "mssql"
    hook_name = "SQL source"

    def __init__(self, source_conn_id: str = default_conn_name) -> None:
        super().__init__()
        self.source_conn_id = source_conn_id

    def get_engine(self) -> Engine:
        """Return a SQLAlchemy engine for the source connection."""
        url = sqlalchemy_url(self.get_connection(self.source_conn_id))
        if url.startswith("sqlite"):
            return sa.create_engine(url)
        return sa.create_engine(url, pool_pre_ping=True)
