"""``python -m bot`` is the ``stagecoach`` command."""

from bot.cli.main import app

app(prog_name="stagecoach")
