"""`python -m lab pki`: a lab CA and certificates for agents, the controller and people."""

from __future__ import annotations

from pathlib import Path

import click

from hangwatch.cliutil import fail
from hangwatch.roles import ROLES
from lab import pki as lib

DIR = click.Path(file_okay=False, path_type=Path)


@click.group()
def pki() -> None:
    """Certificates for labs and tests (production sites bring their own CA).

    \b
    Profile (what the controller authorises on):
      agent       CN and DNS SAN = host id; OU=agent; clientAuth
      viewer, operator, approver, admin
                  CN = NAME, URI SAN hangwatch://user/NAME, OU = role; clientAuth
      controller  CN = NAME, SANs NAME, --host values, localhost, 127.0.0.1, ::1;
                  serverAuth
    Files: DIR/ca.key, DIR/ca.crt; DIR/ROLE-NAME.key (mode 0600) and .crt.
    """


@pki.command("init")
@click.argument("directory", metavar="DIR", type=DIR)
@click.option(
    "--days",
    type=click.IntRange(min=1),
    default=lib.CA_DAYS,
    show_default=True,
    help="Validity of the CA certificate.",
)
@click.option(
    "--force", is_flag=True, help="Replace an existing CA (its certificates stop verifying)."
)
def init(directory: Path, days: int, force: bool) -> None:
    """Create a CA in DIR.

    An EC P-256 key (DIR/ca.key, mode 0600) and a self-signed certificate (DIR/ca.crt).
    """
    try:
        issued = lib.init_ca(directory, days=days, force=force)
    except lib.PkiError as exc:
        fail(str(exc))
    click.echo(f"wrote {issued.key_path} (keep it secret) and {issued.cert_path}")


@pki.command("issue")
@click.argument("name", metavar="NAME")
@click.option(
    "--dir", "directory", metavar="DIR", type=DIR, required=True, help="The CA's directory."
)
@click.option("--role", type=click.Choice(ROLES), required=True, help="Who NAME is.")
@click.option(
    "--host",
    "hosts",
    metavar="HOST",
    multiple=True,
    help="Another DNS name or IP the controller is reached by; repeatable (controller only).",
)
@click.option(
    "--days",
    type=click.IntRange(min=1),
    default=lib.LEAF_DAYS,
    show_default=True,
    help="Validity; may not outlive the CA.",
)
@click.option("--force", is_flag=True, help="Replace an existing key and certificate.")
def issue(
    name: str, directory: Path, role: str, hosts: tuple[str, ...], days: int, force: bool
) -> None:
    """Issue a key and certificate signed by the CA in DIR.

    NAME is a host id (agent), a person or tool (viewer, operator, approver,
    admin) or the controller's name.
    """
    try:
        issued = lib.issue(directory, role, name, hosts=hosts, days=days, force=force)
    except lib.PkiError as exc:
        fail(str(exc))
    click.echo(f"wrote {issued.key_path} and {issued.cert_path}")
