"""Schema versions: applied once at start-up and by `cookie-gate migrate`, also when several start at once."""

from __future__ import annotations

import sqlite3
import threading
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from cookie_gate.cli import main
from cookie_gate.store import (
    DecisionRecord,
    StoreError,
    open_store,
    postgres as postgres_backend,
    sql,
    sqlite as sqlite_backend,
)
from cookie_gate.store.sql import SQLStore, StatsBatch
from tests.conftest import SECRET, Postgres

NEXT = sql.SCHEMA_VERSION + 1
#: A later version as the admin issue will add one: a new column on a table that holds data.
NEW_COLUMN = ("ALTER TABLE cookie_gate_inventory ADD COLUMN note TEXT",)
BATCH = StatsBatch(
    hourly={("2026-12-01T10", "pageviews"): 7},
    detail={("2026-12-01", "path", "/kept"): 7},
    cookies={"_ga": ("analytics", "catalogue", "2026-12-01")},
)


def todays_sqlite_tables(path: Path) -> None:
    """The tables as released before schema versions existed, with data in them."""
    connection = sqlite3.connect(path)
    connection.executescript(sqlite_backend._SCHEMA)
    connection.execute("INSERT INTO cookie_gate_hourly VALUES ('2026-12-01T10', 'pageviews', 7)")
    connection.execute("INSERT INTO cookie_gate_detail VALUES ('2026-12-01', 'path', '/kept', 7)")
    connection.execute("INSERT INTO cookie_gate_inventory VALUES ('_ga', 'analytics', 'catalogue', 'a', 'b')")
    connection.commit()
    connection.close()


def todays_postgres_tables(url: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute(postgres_backend._SCHEMA)
        connection.execute("INSERT INTO cookie_gate_hourly VALUES ('2026-12-01T10', 'pageviews', 7)")
        connection.execute("INSERT INTO cookie_gate_detail VALUES ('2026-12-01', 'path', '/kept', 7)")
        connection.execute("INSERT INTO cookie_gate_inventory VALUES ('_ga', 'analytics', 'catalogue', 'a', 'b')")


def run_sql(url: str, statement: str) -> list[tuple[Any, ...]]:
    """`statement` run on the store at `url` by a connection of the test's own, as an admin's shell would."""
    if url.startswith("sqlite"):
        with closing(sqlite3.connect(sqlite_backend.sqlite_path(url), isolation_level=None)) as connection:
            return connection.execute(statement).fetchall()
    import psycopg

    with psycopg.connect(url, autocommit=True) as connection:
        cursor = connection.execute(statement)
        return cursor.fetchall() if cursor.description else []


def kept(store: SQLStore) -> tuple[list[tuple[str, str, int]], list[tuple[str, str, int]]]:
    rows = store.stats_rows("2026-12-01", "2026-12-01", 0)
    return rows.hourly, rows.detail


def open_at_once(url: str, count: int) -> list[int]:
    """Open `count` stores on `url` from as many threads at the same moment; their schema versions."""
    barrier = threading.Barrier(count)
    versions: list[int] = []
    failures: list[BaseException] = []

    def start() -> None:
        store = open_store(url, timeout=10)
        try:
            barrier.wait()
            versions.append(store.schema_version())
        except BaseException as error:  # reported by the test
            failures.append(error)
        finally:
            store.close()

    threads = [threading.Thread(target=start) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    return versions


@pytest.fixture(params=["sqlite", "postgresql"])
def old_store(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A store URL holding today's tables (before schema versions) with data in them."""
    if request.param == "sqlite":
        path = tmp_path / "old.sqlite3"
        todays_sqlite_tables(path)
        return f"sqlite:///{path}"
    database: Postgres = request.getfixturevalue("postgres")
    todays_postgres_tables(database.url)
    return database.url


def test_todays_tables_are_upgraded_in_place_with_their_data(old_store: str) -> None:
    url = old_store
    store = open_store(url)
    assert store.schema_version() == sql.SCHEMA_VERSION
    assert kept(store) == ([("2026-12-01T10", "pageviews", 7)], [("path", "/kept", 7)])
    store.add_stats(BATCH)  # and it still takes increments on the old rows
    assert kept(store)[0] == [("2026-12-01T10", "pageviews", 14)]
    store.close()


def test_a_new_version_is_applied_once_when_several_instances_start_together(
    old_store: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = old_store
    first = open_store(url)
    assert first.schema_version() == sql.SCHEMA_VERSION  # today's release has run here
    first.close()
    monkeypatch.setattr(sql, "SCHEMA_VERSION", NEXT)
    monkeypatch.setattr(sql, "MIGRATIONS", {NEXT: NEW_COLUMN})
    assert open_at_once(url, 6) == [NEXT] * 6  # an ALTER applied twice would have failed one of them
    assert [tuple(row) for row in run_sql(url, "SELECT name, category, note FROM cookie_gate_inventory")] == [
        ("_ga", "analytics", None)
    ]
    versions = run_sql(url, "SELECT version FROM cookie_gate_schema ORDER BY version")
    assert [row[0] for row in versions] == list(range(1, NEXT + 1))
    store = open_store(url)
    assert kept(store)[1] == [("path", "/kept", 7)]
    store.close()


def test_cookie_gate_migrate_applies_the_versions_and_says_which(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "old.sqlite3"
    todays_sqlite_tables(path)
    monkeypatch.setenv("COOKIE_GATE_SECRET_KEY", SECRET)
    monkeypatch.setattr(sql, "SCHEMA_VERSION", NEXT)
    monkeypatch.setattr(sql, "MIGRATIONS", {NEXT: NEW_COLUMN})
    assert main(["--store", f"sqlite:///{path}", "migrate"]) == 0
    assert f"store schema version: {NEXT}" in capsys.readouterr().out
    assert main(["--store", f"sqlite:///{path}", "migrate"]) == 0  # again: nothing to do, no error
    connection = sqlite3.connect(path)
    assert ("note",) in [(row[1],) for row in connection.execute("PRAGMA table_info(cookie_gate_inventory)")]
    connection.close()


# -- version 2: proof of consent --------------------------------------------------------------

V1_DECISION = "('v1-id', 1796000000, 'accept_all', 'analytics necessary', '2026-12', {gpc})"


@pytest.fixture(params=["sqlite", "postgresql"])
def version_one_store(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A store URL as release 1 of the schema left it, with a logged decision."""
    statements = [sql.VERSION_TABLE, "INSERT INTO cookie_gate_schema VALUES (1)"]
    if request.param == "sqlite":
        path = tmp_path / "v1.sqlite3"
        connection = sqlite3.connect(path)
        connection.executescript(sqlite_backend._SCHEMA)
        for statement in statements:
            connection.execute(statement)
        connection.execute("INSERT INTO cookie_gate_consent_log VALUES " + V1_DECISION.format(gpc=1))
        connection.commit()
        connection.close()
        return f"sqlite:///{path}"
    import psycopg

    database: Postgres = request.getfixturevalue("postgres")
    with psycopg.connect(database.url, autocommit=True) as pg:
        pg.execute(postgres_backend._SCHEMA)
        for statement in statements:
            pg.execute(statement)
        pg.execute(
            "INSERT INTO cookie_gate_consent_log (consent_id, decided_at, action, categories, policy_version, gpc)"
            " VALUES " + V1_DECISION.format(gpc="true")
        )
    return database.url


def test_version_two_keeps_the_decisions_of_a_version_one_store(version_one_store: str) -> None:
    store = open_store(version_one_store)
    assert store.schema_version() == 2
    old = DecisionRecord("v1-id", 1796000000, "accept_all", ("analytics", "necessary"), "2026-12", True)
    assert store.decisions("v1-id") == [old]  # method, locale and shown: '' (not recorded then)
    new = DecisionRecord("v1-id", 1796000060, "withdraw", ("necessary",), "2026-12", False, "withdrawal", "ko", "ab")
    store.log_decision(new)
    assert list(store.consent_log()) == [old, new] == list(store.consent_log(page=1))  # paged: one row a query
    assert list(store.consent_log(since=1796000001, consent_id="v1-id")) == [new]
    assert store.withdrawals(["v1-id"]) == {"v1-id": 1796000060}
    store.close()
    again = open_store(version_one_store)  # a second start applies nothing twice
    assert again.schema_version() == 2 and again.decisions("v1-id") == [old, new]
    again.close()


def stamp(url: str, version: int) -> None:
    """Record `version` in the store as a later release's migrate would."""
    version_of(url)  # migrated to this release's version first
    run_sql(url, f"INSERT INTO cookie_gate_schema (version) VALUES ({int(version)})")


def test_a_store_migrated_by_a_newer_release_is_refused_naming_both_versions(
    old_store: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    stamp(old_store, NEXT)
    store = open_store(old_store)
    with pytest.raises(StoreError, match=f"schema is version {NEXT}, newer than this release's {sql.SCHEMA_VERSION}"):
        store.schema_version()
    store.close()
    monkeypatch.setenv("COOKIE_GATE_SECRET_KEY", SECRET)
    for command in ("check-config", "migrate"):
        assert main(["--store", old_store, command]) == 1
        assert f"schema is version {NEXT}" in capsys.readouterr().err


def columns(url: str) -> list[tuple[str, str]]:
    """Every (table, column) of the store, in order."""
    version_of(url)  # opened, so migrated, by the release under test
    if url.startswith("sqlite"):
        found = []
        for (table,) in run_sql(url, "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"):
            found += [(table, row[1]) for row in run_sql(url, f"PRAGMA table_info({table})")]
    else:
        rows = run_sql(
            url,
            "SELECT table_name, column_name FROM information_schema.columns"
            " WHERE table_schema = current_schema() ORDER BY table_name, ordinal_position",
        )
        found = [(str(table), str(column)) for table, column in rows]
    return sorted(found)


def version_of(url: str) -> int:
    store = open_store(url)
    try:
        return store.schema_version()
    finally:
        store.close()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_fresh_store_and_an_upgraded_one_end_identical(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`_SCHEMA` stays at version 1 and every later version is a migration on top of it."""
    if backend == "sqlite":
        upgraded, fresh = f"sqlite:///{tmp_path / 'upgraded.sqlite3'}", f"sqlite:///{tmp_path / 'fresh.sqlite3'}"
        version_of(upgraded)  # today's release
    else:
        import psycopg

        database: Postgres = request.getfixturevalue("postgres")
        upgraded = database.url
        version_of(upgraded)  # today's release
        fresh_schema = database.schema + "_fresh"
        with psycopg.connect(database.url, autocommit=True) as admin:
            admin.execute(f"CREATE SCHEMA {fresh_schema}")
        fresh = database.url.replace(database.schema, fresh_schema)
        request.addfinalizer(lambda: _drop_schema(database.url, fresh_schema))
    monkeypatch.setattr(sql, "SCHEMA_VERSION", NEXT)
    monkeypatch.setattr(sql, "MIGRATIONS", {**sql.MIGRATIONS, NEXT: NEW_COLUMN})
    assert version_of(upgraded) == NEXT
    assert version_of(fresh) == NEXT
    assert ("cookie_gate_inventory", "note") in columns(fresh)
    assert columns(fresh) == columns(upgraded)


def _drop_schema(url: str, schema: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute(f"DROP SCHEMA {schema} CASCADE")
