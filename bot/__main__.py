"""``python -m bot`` is the ``stagecoach`` command."""

from bot.cli.main import main

main()
