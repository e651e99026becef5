"""Accounts, sign-in and sessions of the workbench, kept in the store beside the reviews they sign.

- **Passwords** are hashed with Argon2id by ``argon2-cffi`` (the Argon2 reference implementation's
  maintained binding, OWASP's first choice), with its default cost; a hash made with older
  parameters is redone at the next sign-in. The password itself is never stored or logged.
- **Sessions** are random tokens (``secrets``, 256 bits) in an HttpOnly, SameSite=Strict cookie; the
  store keeps only their sha256, so a copy of the database signs nobody in. Each session has its
  own CSRF token, which every state-changing request must echo (form field or header).
- **Failed sign-ins** are counted per account and per client address within a window
  (``rules/workbench.yaml`` ``sign_in``; the address's limit is higher, since a team behind one NAT
  shares it); past the limit the answer is 429 whatever the password, so guessing is slow and an
  attacker cannot tell a right guess from a refused one. Old failures are pruned at each sign-in.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from qa_audio.workbench.settings import ROLES, WorkbenchSettings

ACCOUNT_TABLES = """
CREATE TABLE IF NOT EXISTS users (
    name TEXT PRIMARY KEY,
    role TEXT NOT NULL CHECK (role IN ('inspector', 'lead')),
    password_hash TEXT NOT NULL,
    created_at TEXT NOT NULL,
    disabled INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS sessions (
    token_hash TEXT PRIMARY KEY,
    user TEXT NOT NULL REFERENCES users(name),
    csrf_token TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS login_failures (
    key TEXT NOT NULL,
    at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS login_failures_key ON login_failures(key, at)
"""
NAME_PATTERN = re.compile(r"[A-Za-z0-9_.\-\u4e00-\u9fff]{1,40}")
"""account names: letters, digits, _ . - and Chinese characters, up to 40"""


class AccountError(ValueError):
    """A name, role or password that cannot be used; the message says why."""


@dataclass(frozen=True)
class User:
    name: str
    role: str


@dataclass(frozen=True)
class Session:
    user: User
    csrf_token: str
    expires_at: str


def create_account_tables(conn: sqlite3.Connection) -> None:
    for statement in (s.strip() for s in ACCOUNT_TABLES.split(";")):
        if statement:
            conn.execute(statement)


def _stamp(moment: datetime | None = None) -> str:
    return (moment or datetime.now(UTC)).isoformat(timespec="seconds")


def check_name(name: str) -> str:
    if not NAME_PATTERN.fullmatch(name or ""):
        raise AccountError(f"account name {name[:50]!r}: use 1-40 letters, digits, _ . - or Chinese characters")
    return name


def check_password(password: str, settings: WorkbenchSettings) -> None:
    if len(password) < settings.min_password_length:
        raise AccountError(f"the password must have at least {settings.min_password_length} characters "
                           f"({settings.path.name} sign_in.min_password_length)")


def add_user(conn: sqlite3.Connection, name: str, role: str, password: str, settings: WorkbenchSettings) -> None:
    check_name(name)
    if role not in ROLES:
        raise AccountError(f"role {role!r}: expected {' or '.join(ROLES)}")
    check_password(password, settings)
    try:
        conn.execute("INSERT INTO users (name, role, password_hash, created_at) VALUES (?, ?, ?, ?)",
                     (name, role, PasswordHasher().hash(password), _stamp()))
    except sqlite3.IntegrityError as exc:
        raise AccountError(f"account {name!r} exists already (set-password changes its password)") from exc


def set_password(conn: sqlite3.Connection, name: str, password: str, settings: WorkbenchSettings) -> None:
    check_password(password, settings)
    if conn.execute("UPDATE users SET password_hash=? WHERE name=?",
                    (PasswordHasher().hash(password), name)).rowcount == 0:
        raise AccountError(f"no account {name!r}")
    conn.execute("DELETE FROM sessions WHERE user=?", (name,))  # a new password signs every old session out


def set_disabled(conn: sqlite3.Connection, name: str, disabled: bool) -> None:
    if conn.execute("UPDATE users SET disabled=? WHERE name=?", (int(disabled), name)).rowcount == 0:
        raise AccountError(f"no account {name!r}")
    if disabled:
        conn.execute("DELETE FROM sessions WHERE user=?", (name,))


def list_users(conn: sqlite3.Connection) -> list[sqlite3.Row]:
    return conn.execute("SELECT name, role, created_at, disabled FROM users ORDER BY name").fetchall()


def users_by_role(conn: sqlite3.Connection, role: str) -> list[str]:
    return [row[0] for row in conn.execute("SELECT name FROM users WHERE role=? AND NOT disabled ORDER BY name",
                                           (role,))]


def too_many_failures(conn: sqlite3.Connection, name: str, address: str, settings: WorkbenchSettings) -> bool:
    since = _stamp(datetime.now(UTC) - timedelta(minutes=settings.window_minutes))
    for key, limit in ((f"user:{name[:60]}", settings.max_failures),
                       (f"addr:{address}", settings.max_failures_per_address)):
        count = conn.execute("SELECT COUNT(*) FROM login_failures WHERE key=? AND at>=?", (key, since)).fetchone()[0]
        if count >= limit:
            return True
    return False


def check_password_of(conn: sqlite3.Connection, name: str, password: str) -> sqlite3.Row | None:
    """The account's row when ``password`` is right and it is enabled, else None. Reads only: the
    Argon2 check (0.1-0.4 s) runs outside any write transaction, so a batch never waits on it."""
    row = conn.execute("SELECT name, role, password_hash, disabled FROM users WHERE name=?", (name,)).fetchone()
    hasher = PasswordHasher()
    if row is None:
        hasher.hash(password)  # the same work for an unknown name, so timing does not tell which names exist
        return None
    try:
        ok = hasher.verify(row["password_hash"], password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        ok = False
    return row if ok and not row["disabled"] else None


def sign_in(conn: sqlite3.Connection, row: sqlite3.Row | None, name: str, password: str, address: str,
            settings: WorkbenchSettings) -> tuple[str, Session] | None:
    """Record the outcome of :func:`check_password_of` (the caller's write transaction): a failure is
    counted (None); a success gives (the cookie's token, the session)."""
    stamp = _stamp()
    conn.execute("DELETE FROM login_failures WHERE at < ?",
                 (_stamp(datetime.now(UTC) - timedelta(minutes=settings.window_minutes)),))
    if row is None:
        conn.executemany("INSERT INTO login_failures (key, at) VALUES (?, ?)",
                         [(f"user:{name[:60]}", stamp), (f"addr:{address}", stamp)])
        return None
    hasher = PasswordHasher()
    if hasher.check_needs_rehash(row["password_hash"]):
        conn.execute("UPDATE users SET password_hash=? WHERE name=?", (hasher.hash(password), name))
    conn.execute("DELETE FROM login_failures WHERE key=?", (f"user:{name}",))
    token = secrets.token_urlsafe(32)
    expires = _stamp(datetime.now(UTC) + timedelta(hours=settings.session_hours))
    session = Session(User(row["name"], row["role"]), secrets.token_urlsafe(32), expires)
    conn.execute("DELETE FROM sessions WHERE expires_at < ?", (stamp,))
    conn.execute("INSERT INTO sessions (token_hash, user, csrf_token, created_at, expires_at) VALUES (?, ?, ?, ?, ?)",
                 (_token_hash(token), session.user.name, session.csrf_token, stamp, expires))
    return token, session


def session_of(conn: sqlite3.Connection, token: str | None) -> Session | None:
    """The live session of a cookie's token (None: none, expired, or its account disabled)."""
    if not token or len(token) > 200:
        return None
    row = conn.execute(
        "SELECT s.csrf_token, s.expires_at, u.name, u.role FROM sessions s JOIN users u ON u.name = s.user "
        "WHERE s.token_hash=? AND NOT u.disabled", (_token_hash(token),)).fetchone()
    if row is None or row["expires_at"] < _stamp():
        return None
    return Session(User(row["name"], row["role"]), row["csrf_token"], row["expires_at"])


def sign_out(conn: sqlite3.Connection, token: str | None) -> None:
    if token:
        conn.execute("DELETE FROM sessions WHERE token_hash=?", (_token_hash(token),))


def same_token(given: str | None, expected: str) -> bool:
    return bool(given) and hmac.compare_digest(str(given).encode(), expected.encode())


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()

