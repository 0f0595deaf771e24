"""`hotline open311 key add|list|revoke`: the API keys of Open311 applications."""

from __future__ import annotations

from datetime import UTC

import click

from hotline.cli_context import Context, pass_ctx


@click.group()
def open311() -> None:
    """Open311 GeoReport v2: the applications' API keys."""


@open311.group()
def key() -> None:
    """API keys: stored hashed, shown once, revocable."""


def _sessions(ctx: Context):  # type: ignore[no-untyped-def]
    from cases.db import engine_for, session_factory

    return session_factory(engine_for(ctx.settings.database_url))()


@key.command("add")
@click.argument("app_name")
@click.option("--by", "created_by", default="cli", help="who asked for it, for the audit")
@pass_ctx
def key_add(ctx: Context, app_name: str, created_by: str) -> None:
    """Issue a key for APP_NAME; the key is the last line (shown this once only)."""
    from cases.open311 import issue_key
    from cases.users import log_action

    with _sessions(ctx) as session:
        try:
            row, plain = issue_key(session, app_name, created_by)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="APP_NAME") from None
        log_action(session, created_by, "open311_key_add", f"key {row.id}", row.app_name)
        session.commit()
        click.echo(f"key {row.id} for {row.app_name}; keep it secret, it is not shown again:")
    click.echo(plain)


@key.command("list")
@pass_ctx
def key_list(ctx: Context) -> None:
    """Every key: id, application, made (Beijing time), last used, revoked."""
    from cases.open311 import list_keys
    from cases.service import HOTLINE_TZ

    def when(moment) -> str:  # type: ignore[no-untyped-def]
        if moment is None:
            return "-"
        aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
        return aware.astimezone(HOTLINE_TZ).strftime("%Y-%m-%d %H:%M")

    with _sessions(ctx) as session:
        for row in list_keys(session):
            state = f"revoked {when(row.revoked_at)}" if row.revoked_at else "live"
            click.echo(
                f"{row.id}\t{row.app_name}\tmade {when(row.created_at)} by {row.created_by}"
                f"\tlast used {when(row.last_used_at)}\t{state}"
            )


@key.command("revoke")
@click.argument("key_id_or_app")
@click.option("--by", "revoked_by", default="cli")
@pass_ctx
def key_revoke(ctx: Context, key_id_or_app: str, revoked_by: str) -> None:
    """Revoke a key by its id, or every live key of an application by its name."""
    from cases.open311 import revoke_key
    from cases.users import log_action

    with _sessions(ctx) as session:
        rows = revoke_key(session, key_id_or_app)
        if not rows:
            raise click.ClickException(f"no live key {key_id_or_app!r}")
        for row in rows:
            log_action(session, revoked_by, "open311_key_revoke", f"key {row.id}", row.app_name)
        session.commit()
        click.echo("revoked: " + ", ".join(f"key {row.id} ({row.app_name})" for row in rows))
