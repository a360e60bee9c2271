"""Connections, paper books, API keys and the audit log in the store, on both backends."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from coinql.store import accounts as account_store
from coinql.store import api_keys as key_store
from coinql.store import auth as auth_store
from coinql.store import portfolio as portfolio_store
from coinql.store.db import create_engine, create_session_factory, insert
from coinql.store.secrets import SecretBox, generate_key
from coinql.store.tables import metadata
from tests.conftest import Backend

NOW = datetime(2026, 1, 1, tzinfo=UTC)
API_KEY = "pk-live-0123456789abcdef"
SECRET = "sk-0123456789abcdefghijklmnopqrstuv"
PASSPHRASE = "correct horse battery staple"


@pytest.fixture
async def sessions(backend: Backend) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_engine(backend.database_url)
    yield create_session_factory(engine)
    await engine.dispose()


async def owner_with_portfolio(
    sessions: async_sessionmaker[AsyncSession], email: str
) -> tuple[uuid.UUID, uuid.UUID]:
    async with sessions() as session, session.begin():
        user = await auth_store.add_user(
            session, email=email, password_hash="x", is_admin=False, now=NOW
        )
        portfolio = await portfolio_store.add_portfolio(
            session,
            owner_id=user.id,
            name="exchange",
            base_currency="USDT",
            cost_basis="FIFO",
            now=NOW,
        )
    return user.id, portfolio.id


async def connect(
    sessions: async_sessionmaker[AsyncSession],
    box: SecretBox,
    owner: uuid.UUID,
    portfolio: uuid.UUID,
) -> uuid.UUID:
    async with sessions() as session, session.begin():
        connection = await account_store.add_connection(
            session,
            box=box,
            owner_id=owner,
            portfolio_id=portfolio,
            exchange="okx",
            label="main",
            api_key=API_KEY,
            secret=SECRET,
            passphrase=PASSPHRASE,
            sandbox=True,
            permissions=(True, True, False),
            now=NOW,
        )
    return connection.id


async def raw_contents(backend: Backend) -> bytes:
    """Everything the database holds, as the disk (SQLite) or the server (PostgreSQL) has it."""
    if backend.name == "sqlite":
        path = Path(make_url(backend.database_url).database or "")
        files = [path, path.with_name(path.name + "-wal")]
        return b"".join(f.read_bytes() for f in files if f.exists())
    engine = create_engine(backend.database_url)
    lines = []
    async with engine.connect() as connection:
        for table in metadata.sorted_tables:
            rows = await connection.execute(
                text(f'SELECT CAST(t AS text) FROM "{table.name}" AS t')
            )
            lines.extend(row[0] for row in rows)
    await engine.dispose()
    return "\n".join(lines).encode()


async def test_no_secret_is_stored_in_clear_and_each_decrypts(
    backend: Backend, sessions: async_sessionmaker[AsyncSession]
) -> None:
    box = SecretBox([generate_key()])
    owner, portfolio = await owner_with_portfolio(sessions, "a@example.com")
    connection_id = await connect(sessions, box, owner, portfolio)
    contents = await raw_contents(backend)
    assert b"okx" in contents  # the check reads the rows it means to
    for secret in (API_KEY, SECRET, PASSPHRASE, API_KEY[:12], SECRET[3:15]):
        assert secret.encode() not in contents
    async with sessions() as session:
        connection = await account_store.get_connection(
            session, connection_id=connection_id, owner_id=owner
        )
        assert connection is not None and connection.api_key_mask == "cdef"
        assert account_store.connection_credentials(connection, box) == (
            API_KEY,
            SECRET,
            PASSPHRASE,
        )


async def test_another_users_connection_looks_like_none(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    box = SecretBox([generate_key()])
    owner, portfolio = await owner_with_portfolio(sessions, "a@example.com")
    stranger, _ = await owner_with_portfolio(sessions, "b@example.com")
    connection_id = await connect(sessions, box, owner, portfolio)
    async with sessions() as session:
        assert (
            await account_store.get_connection(
                session, connection_id=connection_id, owner_id=stranger
            )
            is None
        )
        assert await account_store.list_connections(session, owner_id=stranger) == []
        assert [c.id for c in await account_store.list_connections(session, owner_id=owner)] == [
            connection_id
        ]


async def test_rotation_re_encrypts_every_secret_under_the_new_key(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    old, new = generate_key(), generate_key()
    owner, portfolio = await owner_with_portfolio(sessions, "a@example.com")
    connection_id = await connect(sessions, SecretBox([old]), owner, portfolio)
    async with sessions() as session, session.begin():
        assert await account_store.rotate_secrets(session, box=SecretBox([new, old])) == 3
    async with sessions() as session, session.begin():
        assert await account_store.rotate_secrets(session, box=SecretBox([new, old])) == 0
        connection = await account_store.get_connection(
            session, connection_id=connection_id, owner_id=owner
        )
        assert connection is not None
        assert account_store.connection_credentials(connection, SecretBox([new]))[1] == SECRET


async def test_two_writers_of_one_paper_book_cannot_both_win(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    owner, portfolio = await owner_with_portfolio(sessions, "a@example.com")
    connection_id = await connect(sessions, SecretBox([generate_key()]), owner, portfolio)
    async with sessions() as session, session.begin():
        await account_store.add_paper_book(session, connection_id=connection_id, book={"n": 0})

    async def write(n: int) -> bool:
        async with sessions() as session, session.begin():
            account = await account_store.load_paper_book(session, connection_id=connection_id)
            assert account is not None and account.version == 0
            read = (account.connection_id, account.version)
            await asyncio.sleep(0.05)  # both have read version 0 before either writes
            stale = account_store.PaperAccount(connection_id=read[0], book={}, version=read[1])
            return await account_store.save_paper_book(session, account=stale, book={"n": n})

    results = await asyncio.gather(*(write(n) for n in range(1, 5)), return_exceptions=True)
    assert sum(result is True for result in results) == 1
    async with sessions() as session:
        account = await account_store.load_paper_book(session, connection_id=connection_id)
        assert account is not None and account.version == 1 and account.book["n"] in range(1, 5)


async def test_api_keys_are_found_by_hash_and_revoked_once(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    owner, _ = await owner_with_portfolio(sessions, "a@example.com")
    stranger, _ = await owner_with_portfolio(sessions, "b@example.com")
    key = "cq_abcd1234_" + "z" * 40
    async with sessions() as session, session.begin():
        row = await key_store.add_api_key(
            session,
            owner_id=owner,
            name="notebook",
            prefix="abcd1234",
            key=key,
            scopes=["READ"],
            now=NOW,
        )
    assert row.key_hash != key and key not in row.key_hash
    async with sessions() as session:
        assert await key_store.find_api_key(session, prefix="abcd1234", key=key) is not None
        assert await key_store.find_api_key(session, prefix="abcd1234", key=key + "x") is None
        assert await key_store.find_api_key(session, prefix="nope", key=key) is None

    async def revoke(by: uuid.UUID) -> bool:
        async with sessions() as session, session.begin():
            return await key_store.revoke_api_key(
                session, key_id=row.id, owner_id=by, now=NOW + timedelta(minutes=1)
            )

    assert await revoke(stranger) is False
    results = await asyncio.gather(*(revoke(owner) for _ in range(4)), return_exceptions=True)
    assert results.count(True) == 1
    async with sessions() as session:
        assert await key_store.find_api_key(session, prefix="abcd1234", key=key) is None
        assert await key_store.list_api_keys(session, owner_id=owner) == []


async def test_the_audit_log_pages_newest_first_per_user(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    owner, _ = await owner_with_portfolio(sessions, "a@example.com")
    stranger, _ = await owner_with_portfolio(sessions, "b@example.com")
    async with sessions() as session, session.begin():
        for n in range(5):
            await key_store.record(
                session,
                user_id=owner,
                action=f"A{n}",
                target=None,
                address="127.0.0.1",
                now=NOW + timedelta(seconds=n),
            )
        await key_store.record(
            session, user_id=stranger, action="LOGIN", target=None, address=None, now=NOW
        )
        await key_store.record(
            session,
            user_id=None,
            action="LOGIN_FAILED",
            target="x@example.com",
            address=None,
            now=NOW,
        )
    async with sessions() as session:
        page = await key_store.audit_page(session, user_id=owner, after=None, first=3)
        assert [e.action for e in page] == ["A4", "A3", "A2"]
        rest = await key_store.audit_page(session, user_id=owner, after=page[-1].id, first=3)
        assert [e.action for e in rest] == ["A1", "A0"]
        everyone = await key_store.audit_page(session, user_id=None, after=None, first=10)
        assert len(everyone) == 7


async def test_an_exchange_trade_is_booked_once_per_portfolio(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    _, portfolio = await owner_with_portfolio(sessions, "a@example.com")

    def entry(seq: int, trade_id: str | None) -> portfolio_store.LedgerEntry:
        return portfolio_store.LedgerEntry(
            portfolio_id=portfolio,
            seq=seq,
            kind="DEPOSIT",
            asset="USDT",
            quantity=Decimal(1),
            fee=Decimal(0),
            time=NOW,
            exchange_trade_id=trade_id,
        )

    async with sessions() as session, session.begin():
        await insert(session, entry(1, "t1"))
        await insert(session, entry(2, None))
        await insert(session, entry(3, None))  # hand-entered rows carry none, any number of them
    with pytest.raises(IntegrityError):
        async with sessions() as session, session.begin():
            await insert(session, entry(4, "t1"))
