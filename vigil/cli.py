"""The `vigil` command: the root app and the registration of its groups, each in a module of its own."""

from __future__ import annotations

import sys

import typer

from vigil.commands.config import config_app
from vigil.commands.control import control_app
from vigil.commands.db import db_app
from vigil.commands.events import events_app
from vigil.commands.keys import keys_app
from vigil.commands.stack import stack_app
from vigil.commands.status import status
from vigil.demo.cli import demo
from vigil.loadtest.cli import loadtest_app
from vigil.models.cli import models_app
from vigil.pipeline.cli import node_app
from vigil.samples.cli import samples_app

app = typer.Typer(help="Vigil: GPU video analytics platform.", no_args_is_help=True, pretty_exceptions_enable=False)
app.add_typer(stack_app, name="stack")
app.add_typer(keys_app, name="keys")
app.add_typer(control_app, name="control")
app.add_typer(events_app, name="events")
app.add_typer(models_app, name="models")
app.add_typer(samples_app, name="samples")
app.add_typer(node_app, name="node")
app.add_typer(loadtest_app, name="loadtest")
app.add_typer(db_app, name="db")
app.add_typer(config_app, name="config")
app.command("demo")(demo)
app.command("status")(status)


def main() -> None:  # pragma: no cover - console entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
