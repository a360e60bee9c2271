"""Registration, login, token refresh and logout."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlmodel.ext.asyncio.session import AsyncSession

from coinql.domain import auth
from coinql.domain.errors import (
    EmailTaken,
    Forbidden,
    InvalidCredentials,
    InvalidInput,
    InvalidToken,
    NotAuthenticated,
)
from coinql.resolvers.budget import refuse
from coinql.resolvers.context import Context, Services
from coinql.store import api_keys as key_store
from coinql.store import auth as auth_store


@dataclass(frozen=True, slots=True)
class IssuedTokens:
    user: auth_store.User
    access_token: str
    refresh_token: str
    expires_in: int


async def _issue(
    services: Services, session: AsyncSession, *, user: auth_store.User, family_id: uuid.UUID
) -> IssuedTokens:
    now = services.now()
    settings = services.settings
    refresh_token = auth.new_refresh_token()
    await auth_store.add_refresh_token(
        session,
        user_id=user.id,
        family_id=family_id,
        token_hash=auth.refresh_token_digest(refresh_token),
        now=now,
        expires_at=now + timedelta(seconds=settings.refresh_token_ttl_seconds),
    )
    access_token = auth.issue_access_token(
        services.secret_key,
        user_id=user.id,
        session_id=family_id,
        now=now,
        ttl=timedelta(seconds=settings.access_token_ttl_seconds),
    )
    return IssuedTokens(user, access_token, refresh_token, settings.access_token_ttl_seconds)


async def create_user(
    session: AsyncSession, *, email: str, password: str, is_admin: bool, now: datetime
) -> auth_store.User:
    """Validate and add a user; `EmailTaken`, `InvalidInput` or `WeakPassword` otherwise."""
    normalized = auth.normalize_email(email)
    return await add_new_user(
        session,
        email=normalized,
        password_hash=await hash_new_password(password),
        is_admin=is_admin,
        now=now,
    )


async def hash_new_password(password: str) -> str:
    """A password that meets the policy, hashed (argon2id, tens of milliseconds of CPU) in a
    worker thread: on the event loop it would hold up every other request. Hash before a
    transaction, not in it: on SQLite the process's transactions take turns."""
    auth.check_password_policy(password)
    return await asyncio.to_thread(auth.hash_password, password)


async def add_new_user(
    session: AsyncSession, *, email: str, password_hash: str, is_admin: bool, now: datetime
) -> auth_store.User:
    """Add a user with a normalized email and a hashed password; `EmailTaken` if it has one.
    The password was hashed before the email is looked up, so a taken email answers no
    sooner than a new one (the time would tell who has an account)."""
    if await auth_store.get_user_by_email(session, email=email) is not None:
        raise EmailTaken("an account with this email already exists")
    return await auth_store.add_user(
        session, email=email, password_hash=password_hash, is_admin=is_admin, now=now
    )


async def register(context: Context, *, email: str, password: str) -> IssuedTokens:
    """Create an account and sign it in; every attempt counts against the client address's
    registrations (COINQL_REGISTRATIONS_PER_ADDRESS per login window)."""
    services = context.services
    settings = services.settings
    limit = (f"register:address:{context.client_address()}", settings.registrations_per_address)
    await _reserve(context, [limit], reason="register_throttle", message="too many sign-ups")
    normalized = auth.normalize_email(email)
    password_hash = await hash_new_password(password)
    async with services.transaction() as session:
        user = await add_new_user(
            session,
            email=normalized,
            password_hash=password_hash,
            is_admin=False,
            now=services.now(),
        )
        await audit(context, session, user.id, "REGISTERED")
        return await _issue(services, session, user=user, family_id=uuid.uuid4())


async def login(context: Context, *, email: str, password: str) -> IssuedTokens:
    """Sign in; the same `InvalidCredentials` for an unknown email and a wrong password.

    Each attempt is counted per account and per client address before the password is even
    looked at (atomically, so parallel or batched attempts cannot get past the limits); past
    either limit, attempts are refused with `RateLimited` (and `Retry-After`). A successful
    attempt is taken back and forgives the account's failures.
    """
    services = context.services
    settings = services.settings
    try:
        normalized = auth.normalize_email(email)
    except InvalidInput:
        normalized = ""
    account_key = f"login:account:{normalized}"
    address_key = f"login:address:{context.client_address()}"
    limits = [(address_key, settings.login_failures_per_address)]
    if normalized:
        limits.append((account_key, settings.login_failures_per_account))
    attempt = await _reserve(
        context, limits, reason="login_throttle", message="too many failed logins"
    )
    async with context.reader() as session:
        user = await auth_store.get_user_by_email(session, email=normalized) if normalized else None
    # Verified against a dummy hash for unknown emails so both failures take as long; in a
    # worker thread, and outside a transaction, as hashing is (see hash_new_password).
    valid = await asyncio.to_thread(
        auth.verify_password, user.password_hash if user else auth.DUMMY_PASSWORD_HASH, password
    )
    rehashed = None
    if user is not None and valid and auth.password_needs_rehash(user.password_hash):
        rehashed = await asyncio.to_thread(auth.hash_password, password)
    async with services.transaction() as session:
        if user is None or not valid:
            # Recorded in this transaction, which commits: the refusal is raised after it.
            target = None if user is not None else normalized or None
            await audit(context, session, user.id if user else None, "LOGIN_FAILED", target=target)
            issued = None
        else:
            if rehashed is not None:
                await auth_store.set_password_hash(session, user_id=user.id, password_hash=rehashed)
            await audit(context, session, user.id, "LOGIN")
            issued = await _issue(services, session, user=user, family_id=uuid.uuid4())
    if issued is None:
        raise InvalidCredentials("email or password is incorrect")
    await services.throttle.release([address_key], attempt)
    await services.throttle.clear(account_key)
    return issued


async def _reserve(
    context: Context, limits: list[tuple[str, int]], *, reason: str, message: str
) -> str:
    """Count one attempt in each window, or refuse it with `RateLimited` when any is full."""
    window = context.services.settings.login_window_seconds
    attempt, wait = await context.services.throttle.reserve(limits, window=window)
    if attempt is None:
        refuse(context, wait, reason=reason, message=message)
    assert attempt is not None
    return attempt


async def refresh(context: Context, *, refresh_token: str) -> IssuedTokens:
    """Rotate a refresh token. Any use of a token after its first, however close together the
    uses arrive, is reuse: it revokes the whole family and closes its sockets.

    The token is claimed in one statement (live and unused, marked used), so only one of many
    concurrent uses can win. The revocation must survive the error returned to the caller, so
    the reuse branch commits its own transaction before raising.
    """
    services = context.services
    now = services.now()
    digest = auth.refresh_token_digest(refresh_token)
    async with services.transaction() as session:
        claimed = await auth_store.claim_refresh_token(session, token_hash=digest, now=now)
        if claimed is not None:
            user = await auth_store.get_user(session, user_id=claimed.user_id)
            if user is None:
                raise InvalidToken("refresh token is invalid, expired or revoked")
            return await _issue(services, session, user=user, family_id=claimed.family_id)
        token = await auth_store.get_refresh_token(session, token_hash=digest)
        if token is None or token.revoked_at is not None or token.expires_at <= now:
            raise InvalidToken("refresh token is invalid, expired or revoked")
        family_id = token.family_id
        await auth_store.revoke_family(session, family_id=family_id, now=now)
    await services.live_sessions.revoke(session_id=family_id)
    raise InvalidToken(
        "refresh token was already used; every session of this login has been revoked"
    )


async def logout(context: Context, *, refresh_token: str) -> bool:
    """Revoke the login session of a refresh token, closing its sockets on every replica;
    False when the token is unknown."""
    services = context.services
    digest = auth.refresh_token_digest(refresh_token)
    async with services.transaction() as session:
        token = await auth_store.get_refresh_token(session, token_hash=digest)
        if token is None or token.revoked_at is not None:
            return False
        family_id = token.family_id
        await auth_store.revoke_family(session, family_id=family_id, now=services.now())
        await audit(context, session, token.user_id, "LOGOUT")
    await services.live_sessions.revoke(session_id=family_id)
    return True


async def change_password(
    context: Context, *, current_password: str, new_password: str
) -> IssuedTokens:
    """Change the caller's password: every login session of theirs is revoked (their sockets
    closed on every replica) and the caller gets a new one.

    The current password is checked like a login, against the same per-account limit.
    """
    services = context.services
    auth.check_password_policy(new_password)
    user = await _confirm_password(context, current_password)
    new_hash = await asyncio.to_thread(auth.hash_password, new_password)
    now = services.now()
    async with services.transaction() as session:
        families = await auth_store.revoke_user_sessions(session, user_id=user.id, now=now)
        await auth_store.set_password_hash(session, user_id=user.id, password_hash=new_hash)
        await audit(context, session, user.id, "PASSWORD_CHANGED")
        issued = await _issue(services, session, user=user, family_id=uuid.uuid4())
    for family_id in families:
        await services.live_sessions.revoke(session_id=family_id)
    return issued


async def _confirm_password(context: Context, password: str) -> auth_store.User:
    """The caller, once `password` is theirs; checked against the login throttle."""
    services = context.services
    user = await require_user(context)
    account_key = f"login:account:{user.email}"
    attempt = await _reserve(
        context,
        [(account_key, services.settings.login_failures_per_account)],
        reason="login_throttle",
        message="too many failed password checks",
    )
    if not await asyncio.to_thread(auth.verify_password, user.password_hash, password):
        raise InvalidCredentials("the password is incorrect")
    await services.throttle.release([account_key], attempt)
    return user


async def change_email(context: Context, *, password: str, new_email: str) -> auth_store.User:
    """Move the caller's account to another email, confirmed with the password."""
    email = auth.normalize_email(new_email)
    user = await _confirm_password(context, password)
    async with context.services.transaction() as session:
        if await auth_store.get_user_by_email(session, email=email) is not None:
            raise EmailTaken("an account with this email already exists")
        await auth_store.set_email(session, user_id=user.id, email=email)
        await audit(context, session, user.id, "EMAIL_CHANGED", target=email)
        changed = await auth_store.get_user(session, user_id=user.id)
    assert changed is not None
    context.reset_user()
    return changed


async def delete_account(context: Context, *, password: str) -> uuid.UUID:
    """Delete the caller and everything they own in one transaction (the rows cascade from the
    user); their sockets close on every replica. The audit log keeps the deletion."""
    user = await _confirm_password(context, password)
    async with context.services.transaction() as session:
        await audit(context, session, user.id, "ACCOUNT_DELETED", target=user.email)
        await auth_store.delete_user(session, user_id=user.id)
    await context.services.live_sessions.revoke(user_id=user.id)
    context.reset_user()
    return user.id


async def audit(
    context: Context,
    session: AsyncSession,
    user_id: uuid.UUID | None,
    action: str,
    *,
    target: str | None = None,
) -> None:
    """Append a sensitive action to the audit log, in the caller's transaction."""
    await key_store.record(
        session,
        user_id=user_id,
        action=action,
        target=target,
        address=context.client_address(),
        now=context.services.now(),
    )


async def require_user(context: Context) -> auth_store.User:
    user = await context.user()
    if user is None:
        raise NotAuthenticated("sign in first: send 'Authorization: Bearer <access token>'")
    return user


async def require_admin(context: Context) -> auth_store.User:
    user = await require_user(context)
    if not user.is_admin:
        raise Forbidden("only admins may change shared market data")
    return user
