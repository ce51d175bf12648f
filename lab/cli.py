"""`python -m lab`: the lab's own command line (demo, lab CA), kept out of the product.

Run it from a source checkout with hangwatch installed: the daemons and hangwatchctl
never import this package, and the wheel does not ship it.
"""

from __future__ import annotations

import click

from lab.demo import demo
from lab.pki_cmd import pki


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """The hangwatch lab: a local demo cluster and a CA for labs and tests."""


main.add_command(demo)
main.add_command(pki)
