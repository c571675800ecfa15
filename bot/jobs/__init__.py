"""Background runners: the nudge and digest ticks, which turn due rows into messages."""
