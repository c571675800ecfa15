"""The edges a person starts: the ``stagecoach`` command line, the terminal chat, the settings
and the wiring that puts settings, database, playbook and dialog together."""
