"""`hotline grid`: the grid workers and the address table (cases.grid).

hotline grid find 龙华区国贸路88号          # the grid and street of an address
hotline grid assign zhou longhua-s03-c01-g1  # a grid worker (role grid) and a grid
hotline grid list --street 金贸街道           # grids, with their workers
hotline grid address add longhua-s03-c01-g2 金贸西路 --from 1 --to 50
hotline grid address list --name 金贸西路
hotline grid address remove 91
"""

from __future__ import annotations

import click

from hotline.cli_context import Context, pass_ctx


def _sessions(ctx: Context):  # type: ignore[no-untyped-def]
    from cases.db import engine_for, session_factory

    return session_factory(engine_for(ctx.settings.database_url))()


@click.group()
def grid() -> None:
    """The grid (网格): grid workers and the address table."""


@grid.command("find")
@click.argument("address")
@pass_ctx
def find(ctx: Context, address: str) -> None:
    """The grid and the street or town ADDRESS lies in, by the address table."""
    from cases.grid import grid_for_address, street_of_address

    with _sessions(ctx) as db:
        found = grid_for_address(db, address)
        street = street_of_address(db, address)
        if found is None:
            click.echo(f"no grid; street: {street or '-'}")
            raise SystemExit(1)
        click.echo(f"{found.code}\t{found.full_name}")


@grid.command("assign")
@click.argument("username")
@click.argument("grid_code")
@pass_ctx
def assign(ctx: Context, username: str, grid_code: str) -> None:
    """Make USERNAME (a user with the grid role) a worker of GRID_CODE."""
    from cases.grid import assign_worker
    from cases.users import log_action

    with _sessions(ctx) as db:
        try:
            assign_worker(db, username, grid_code)
        except ValueError as exc:
            raise click.BadParameter(str(exc)) from None
        log_action(db, "cli", "grid-assign", username, grid_code)
        db.commit()
    click.echo(f"{username} works grid {grid_code}")


@grid.command("list")
@click.option("--street", default="", help="only this street or town, e.g. 金贸街道")
@pass_ctx
def list_grids(ctx: Context, street: str) -> None:
    """Grids: code, full name, workers."""
    from sqlalchemy import select

    from cases.grid import Grid, GridCommunity, GridMember, GridStreet
    from cases.models import User

    with _sessions(ctx) as db:
        query = (
            select(Grid)
            .join(GridCommunity, GridCommunity.id == Grid.community_id)
            .join(GridStreet, GridStreet.id == GridCommunity.street_id)
            .order_by(Grid.code)
        )
        if street:
            query = query.where(GridStreet.name == street)
        workers: dict[int, list[str]] = {}
        for grid_id, username in db.execute(
            select(GridMember.grid_id, User.username).join(User, User.id == GridMember.user_id)
        ):
            workers.setdefault(grid_id, []).append(username)
        for found in db.scalars(query):
            names = ",".join(sorted(workers.get(found.id, []))) or "-"
            click.echo(f"{found.code}\t{found.full_name}\t{names}")


@grid.group()
def address() -> None:
    """The address table: roads (with house-number ranges) and places, each a grid's."""


@address.command("add")
@click.argument("grid_code")
@click.argument("name")
@click.option("--from", "number_from", type=int, default=None, help="first house number")
@click.option("--to", "number_to", type=int, default=None, help="last house number")
@click.option("--place", is_flag=True, help="a named place (万绿园), not a road")
@pass_ctx
def address_add(
    ctx: Context,
    grid_code: str,
    name: str,
    number_from: int | None,
    number_to: int | None,
    place: bool,
) -> None:
    """A line: NAME (a road, or with --place a place) lies in GRID_CODE."""
    from cases.grid import add_address
    from cases.users import log_action

    with _sessions(ctx) as db:
        try:
            line = add_address(
                db, grid_code, name, number_from, number_to, "place" if place else None
            )
        except ValueError as exc:
            raise click.BadParameter(str(exc)) from None
        log_action(db, "cli", "grid-address-add", str(line.id), f"{name} -> {grid_code}")
        db.commit()
        click.echo(f"line {line.id}: {line.kind} {line.name} -> {grid_code}")


@address.command("list")
@click.option("--name", default="", help="lines whose road or place contains this")
@pass_ctx
def address_list(ctx: Context, name: str) -> None:
    """Lines: id, kind, name, house numbers, grid."""
    from sqlalchemy import select

    from cases.grid import GridAddress

    with _sessions(ctx) as db:
        query = select(GridAddress).order_by(GridAddress.name, GridAddress.number_from)
        if name:
            query = query.where(GridAddress.name.contains(name))
        for line in db.scalars(query):
            numbers = f"{line.number_from}-{line.number_to}" if line.number_from else "-"
            click.echo(
                f"{line.id}\t{line.kind}\t{line.name}\t{numbers}\t"
                f"{line.grid.code}\t{line.grid.full_name}"
            )


@address.command("remove")
@click.argument("line_id", type=int)
@pass_ctx
def address_remove(ctx: Context, line_id: int) -> None:
    """Take line LINE_ID off the table."""
    from cases.grid import remove_address
    from cases.users import log_action

    with _sessions(ctx) as db:
        if not remove_address(db, line_id):
            raise click.BadParameter(f"no line {line_id}")
        log_action(db, "cli", "grid-address-remove", str(line_id))
        db.commit()
    click.echo(f"line {line_id} removed")
