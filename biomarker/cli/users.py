"""CLI commands: `biomarker users add|list` — local accounts for the app (passwords hashed with argon2)."""

from __future__ import annotations

import sys

import typer

users_app = typer.Typer(help="Local accounts: clinician, researcher, auditor, admin.", no_args_is_help=True)


@users_app.command("add")
def add(
    name: str = typer.Argument(..., help="User name (letters, digits, . _ @ -)."),
    role: str = typer.Option(..., "--role", help="clinician | researcher | auditor | admin"),
    site: str = typer.Option(None, "--site", help="Site the user works at (required for clinicians)."),
    password_stdin: bool = typer.Option(False, "--password-stdin", help="Read the password from standard input "
                                        "(first line) instead of prompting."),
) -> None:
    """Create an account in the configured database (DATABASE_URL / BIOMARKER_HOME); the creation is audited."""
    from biomarker.settings import Settings
    from biomarker.store import Store, StoreError, UserInfo

    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = typer.prompt(f"Password for {name}", hide_input=True, confirmation_prompt=True)
    store = Store(Settings.from_env())
    try:
        user = store.add_user(name, password, role, site=site, actor=UserInfo.local_operator())
    except StoreError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from None
    finally:
        store.close()
    typer.echo(f"created {user.role} {user.username}" + (f" at site {user.site}" if user.site else ""))


@users_app.command("list")
def list_users() -> None:
    """Print every account: name, role, site."""
    from biomarker.settings import Settings
    from biomarker.store import Store, UserInfo

    store = Store(Settings.from_env())
    try:
        for user in store.list_users(viewer=UserInfo.local_operator()):
            typer.echo(f"{user.username}\t{user.role}\t{user.site or '-'}")
    finally:
        store.close()


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root app."""
    app.add_typer(users_app, name="users")
