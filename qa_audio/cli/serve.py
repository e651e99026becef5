"""``qa-audio serve`` (the inspector's workbench) and ``qa-audio users`` (its accounts).

Exit codes as the other commands: 0 ok, 2 bad input (a name, role or password that cannot be
used), 3 bad setup (a missing or foreign ``--db``, a bad ``workbench.yaml``, a port in use).
"""

from __future__ import annotations

import sqlite3
import sys
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from qa_audio import privacy
from qa_audio.cli.common import EXIT_BAD_INPUT, EXIT_BAD_SETUP
from qa_audio.cli.common import configure_logging as _configure_logging
from qa_audio.cli.common import fail as _fail

DbOption = Annotated[Path, typer.Option("--db", help="The batch's SQLite store.", dir_okay=False)]
RulesOption = Annotated[Path | None, typer.Option("--rules", help="A deployment's own rules folder (with its "
                                                  "workbench.yaml).", file_okay=False)]

users_app = typer.Typer(add_completion=False, no_args_is_help=True,
                        help="The workbench's accounts: inspectors and QA leads.")


class Role(StrEnum):
    inspector = "inspector"
    lead = "lead"


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
    app.add_typer(users_app, name="users")


def serve(
    db: DbOption = Path("qa-audio.db"),
    host: Annotated[str, typer.Option(help="The address to listen on (keep 127.0.0.1 behind a TLS proxy).")]
    = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="The port.")] = 8080,
    threads: Annotated[int, typer.Option(min=1, max=64, help="waitress worker threads.")] = 8,
    rules: RulesOption = None,
    secure_cookies: Annotated[bool, typer.Option("--secure-cookies", help="Mark the cookies Secure: set it when "
                                                 "a TLS reverse proxy serves the workbench.")] = False,
    trusted_proxy: Annotated[str | None, typer.Option(help="The reverse proxy's address: its X-Forwarded-For "
                                                      "then names the client (for the per-address sign-in "
                                                      "limit); from anyone else the header is ignored.")] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log each request.")] = False,
) -> None:
    """Start the inspector's workbench on HOST:PORT over the store (which a batch may be writing)."""
    privacy.keep_data_local()
    _configure_logging(verbose)
    app, _ = _workbench(db, rules, secure_cookies)
    import waitress

    typer.echo(f"qa-audio workbench on http://{host}:{port}/ over {db} (Ctrl+C stops it)", err=True)
    proxy = ({"trusted_proxy": trusted_proxy, "trusted_proxy_count": 1,
              "trusted_proxy_headers": {"x-forwarded-for", "x-forwarded-proto"}} if trusted_proxy else {})
    try:
        waitress.serve(app, host=host, port=port, threads=threads, ident="qa-audio", _quiet=not verbose,
                       clear_untrusted_proxy_headers=True, **proxy)
    except OSError as exc:
        _fail(f"cannot listen on {host}:{port}: {exc.strerror or exc}", EXIT_BAD_SETUP)


def _workbench(db: Path, rules: Path | None, secure_cookies: bool):
    """The Flask app over ``db`` (its tables made or upgraded first), and its settings; exit 3 on bad setup."""
    from qa_audio.workbench.app import create_app

    _store(db).close()
    settings = _settings(rules)
    return create_app(db, settings, rules_dir=rules, secure_cookies=secure_cookies), settings


def _settings(rules: Path | None):
    from qa_audio.rule_files import RuleFileError
    from qa_audio.workbench.settings import load_workbench_settings

    try:
        return load_workbench_settings(rules)
    except (RuleFileError, FileNotFoundError) as exc:
        _fail(str(exc), EXIT_BAD_SETUP)


def _store(db: Path):
    """The store with the workbench's tables (exit 3 when missing or not a qa-audio store)."""
    from qa_audio.batch.store import Store, StoreError
    from qa_audio.workbench.accounts import create_account_tables

    if not db.exists():
        _fail(f"{db}: no such database (run qa-audio batch --db {db} first)", EXIT_BAD_SETUP)
    try:
        store = Store(db)
    except StoreError as exc:
        _fail(str(exc), EXIT_BAD_SETUP)
    with store.transaction():
        create_account_tables(store.conn)
    return store


def _password(password_stdin: bool, min_length: int) -> str:
    if password_stdin:
        line = sys.stdin.readline()
        return line.rstrip("\r\n")
    return typer.prompt(f"password (at least {min_length} characters)", hide_input=True, confirmation_prompt=True)


def _change_accounts(db: Path, change: Callable[[sqlite3.Connection], None], done: str) -> None:
    """Run ``change`` in one transaction on the store's accounts; a refused name, role or password
    (AccountError) is one line and exit 2, and nothing is changed."""
    from qa_audio.workbench.accounts import AccountError

    store = _store(db)
    try:
        with store.transaction():
            change(store.conn)
    except AccountError as exc:
        _fail(str(exc), EXIT_BAD_INPUT)
    finally:
        store.close()
    typer.echo(done, err=True)


PasswordStdin = Annotated[bool, typer.Option("--password-stdin", help="Read the password from the first line of "
                                             "standard input instead of asking.")]


@users_app.command("add")
def users_add(
    name: Annotated[str, typer.Argument(help="The account name (letters, digits, _ . - or Chinese).")],
    role: Annotated[Role, typer.Option(help="inspector: reviews calls; lead: also assigns them, sees agreement.")],
    db: DbOption = Path("qa-audio.db"),
    rules: RulesOption = None,
    password_stdin: PasswordStdin = False,
) -> None:
    """Create an account (the password is asked twice, or read from stdin)."""
    from qa_audio.workbench.accounts import AccountError, add_user, check_name

    settings = _settings(rules)
    _store(db).close()  # a missing or foreign store is said before the password is asked for
    try:
        check_name(name)
    except AccountError as exc:
        _fail(str(exc), EXIT_BAD_INPUT)
    password = _password(password_stdin, settings.min_password_length)
    _change_accounts(db, lambda conn: add_user(conn, name, role.value, password, settings),
                     f"account {name} ({role.value}) created in {db}")


@users_app.command("set-password")
def users_set_password(
    name: Annotated[str, typer.Argument()],
    db: DbOption = Path("qa-audio.db"),
    rules: RulesOption = None,
    password_stdin: PasswordStdin = False,
) -> None:
    """Give an account a new password (its sessions end)."""
    from qa_audio.workbench.accounts import set_password

    settings = _settings(rules)
    _store(db).close()
    password = _password(password_stdin, settings.min_password_length)
    _change_accounts(db, lambda conn: set_password(conn, name, password, settings), f"password of {name} changed")


@users_app.command("disable")
def users_disable(name: Annotated[str, typer.Argument()], db: DbOption = Path("qa-audio.db"),
                  enable: Annotated[bool, typer.Option("--enable", help="Enable it again.")] = False) -> None:
    """Disable an account (its sessions end; its reviews stay), or enable it again."""
    from qa_audio.workbench.accounts import set_disabled

    _change_accounts(db, lambda conn: set_disabled(conn, name, not enable),
                     f"account {name} {'enabled' if enable else 'disabled'}")


@users_app.command("list")
def users_list(db: DbOption = Path("qa-audio.db")) -> None:
    """The accounts, one a line: name, role, created, disabled."""
    from qa_audio.workbench.accounts import list_users

    store = _store(db)
    try:
        for row in list_users(store.conn):
            typer.echo(f"{row['name']}\t{row['role']}\t{row['created_at']}\t{'disabled' if row['disabled'] else ''}")
    finally:
        store.close()
