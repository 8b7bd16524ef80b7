"""``matching.durable_postgres`` of ``solvent bench``: where it finds its server, and the
tables of its own that each run gets and leaves behind. (The figure itself comes from
``solvent bench``; CI runs it in ``--quick`` mode against the machine's server.)"""

from __future__ import annotations

import uuid

import psycopg
import pytest

import solvent
from conftest import postgres_base_url, require_postgres, with_prefix
from solvent import bench_markets as bmk
from solvent.store import postgres_conninfo, postgres_helpers_present


def test_no_server_is_a_reason_not_a_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(bmk.POSTGRES_URL_ENV, "postgresql://nobody@127.0.0.1:1/none")
    base, why = bmk.postgres_server()
    assert base == "postgresql://nobody@127.0.0.1:1/none"
    assert why is not None and "OperationalError" in why


def test_a_bad_url_is_a_reason_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(bmk.POSTGRES_URL_ENV, "postgresql://postgres@127.0.0.1/x?prefix=no-dash")
    _base, why = bmk.postgres_server()
    assert why is not None and "StoreError" in why


@pytest.mark.postgres
def test_each_run_gets_tables_of_its_own_and_drops_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    require_postgres()
    monkeypatch.setenv(bmk.POSTGRES_URL_ENV, with_prefix(postgres_base_url(), "ignored_"))
    base, why = bmk.postgres_server()
    assert why is None
    urls = []
    for _ in range(2):
        with bmk._store_url("postgres", base) as url:
            conninfo, prefix = postgres_conninfo(url)
            assert prefix.startswith("bench_") and url.count("prefix=") == 1
            with solvent.Ledger.open(url) as led:
                led.register_asset("BTC", 8)
            with psycopg.connect(conninfo) as conn:
                assert conn.execute("SELECT to_regclass(%s)", (prefix + "journal",)
                                    ).fetchone() == (prefix + "journal",)
            urls.append(url)
        with psycopg.connect(conninfo) as conn:
            for table in ("journal", "snapshots"):
                assert conn.execute("SELECT to_regclass(%s)", (prefix + table,)
                                    ).fetchone() == (None,)
    assert urls[0] != urls[1]


def test_a_run_leaves_a_database_without_eventsourcing_objects_as_it_found_it() -> None:
    """The bench dropped its tables but left eventsourcing's shared function and type in
    the target database (by default ``postgres``): objects a database that never held a
    store did not have (the docs probe). They go too now, and only where the run made
    them: a database that had them (a ledger lives there) keeps them."""
    require_postgres()
    conninfo, _ = postgres_conninfo(postgres_base_url())
    name = f"bench_clean_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = postgres_base_url().rsplit("/", 1)[0] + "/" + name
    try:
        assert not postgres_helpers_present(base)
        with bmk._store_url("postgres", base) as url, solvent.Ledger.open(url) as led:
            led.register_asset("BTC", 8)
            assert postgres_helpers_present(url)
        assert not postgres_helpers_present(base)
        with solvent.Ledger.open(with_prefix(base, "kept_")) as led:  # a ledger lives here
            led.register_asset("BTC", 8)
        with bmk._store_url("postgres", base) as url, solvent.Ledger.open(url) as led:
            led.register_asset("ETH", 8)
        assert postgres_helpers_present(base)
        with solvent.Ledger.open(with_prefix(base, "kept_")) as led:
            led.register_asset("ETH", 8)
            assert led.assets() == ["BTC", "ETH"]
    finally:
        with psycopg.connect(conninfo, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
