"""CLI commands: `biomarker users add|list|reset|unlock|edit` — local accounts for the app (argon2 hashes).

The same rules as the app's Users page: a new or reset password must be changed at its first sign-in, and every
change is an audit event under the shell account's name (`cli:<os user>`).
"""

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
    """Print every account: name, role, site, state (active, must change password, locked until)."""
    from biomarker.settings import Settings
    from biomarker.store import Store, UserInfo

    store = Store(Settings.from_env())
    try:
        for user in store.list_users(viewer=UserInfo.local_operator()):
            state = "active" if user.active else "inactive"
            if user.must_change_password:
                state += ",must-change-password"
            if user.locked_until is not None:
                state += f",locked-until-{user.locked_until:%Y-%m-%dT%H:%M}Z"
            typer.echo(f"{user.username}\t{user.role}\t{user.site or '-'}\t{state}")
    finally:
        store.close()


def _run(action) -> None:
    """Open the configured store, run `action(store, operator)`, and turn a store error into exit 2."""
    from biomarker.settings import Settings
    from biomarker.store import Store, StoreError, UserInfo

    store = Store(Settings.from_env())
    try:
        action(store, UserInfo.local_operator())
    except StoreError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from None
    finally:
        store.close()


@users_app.command("reset")
def reset(name: str = typer.Argument(..., help="The account whose password is forgotten.")) -> None:
    """Give NAME a new one-time password (printed once; it must be changed at sign-in); unlocks the account."""
    _run(lambda store, operator: typer.echo(
        f"one-time password for {name}: {store.reset_password(name, actor=operator)}"))


@users_app.command("unlock")
def unlock(name: str = typer.Argument(..., help="The locked account.")) -> None:
    """Lift NAME's lockout after repeated wrong passwords."""
    _run(lambda store, operator: (store.unlock_user(name, actor=operator), typer.echo(f"unlocked {name}")))


@users_app.command("edit")
def edit(
    name: str = typer.Argument(..., help="The account to change."),
    role: str = typer.Option(None, "--role", help="New role."),
    site: str = typer.Option(None, "--site", help="New site."),
    active: bool = typer.Option(None, "--active/--inactive", help="Allow or stop sign-in."),
) -> None:
    """Change NAME's role, site or active flag (only the options given)."""
    def action(store, operator) -> None:
        user = store.edit_user(name, actor=operator, role=role, site=site, active=active)
        typer.echo(f"{user.username}: {user.role}" + (f" at site {user.site}" if user.site else ""))

    _run(action)


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root app."""
    app.add_typer(users_app, name="users")
