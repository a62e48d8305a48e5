"""The ``restoreagent`` command: one app, its commands in a module per area.

* ``cli_restore.py`` — what users run: restore, chat, ui, assess, demo, tools, runs;
* ``cli_weights.py`` — ``weights list|download|verify|path``;
* ``cli_lab.py`` — benchmarks and data for training: bench, bench-harm, bench-real, bench-tools,
  bench-batch, bench-memory, degrade, export-sft.

Every command imports what it needs when it runs, so ``restoreagent restore`` never loads the
benchmark or training code (``tests/test_layout.py`` checks it); ``cli_app.py`` holds what they share.
"""

from __future__ import annotations

# Each module registers its commands on the app, in this order in --help: the product's first.
from restoreagent import cli_restore, cli_weights  # noqa: F401
from restoreagent import cli_lab  # noqa: F401, I001
from restoreagent.cli_app import app

app.add_typer(cli_weights.app, name="weights")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
