"""The dialog: one event in, the replies out, free of any transport.

``router`` takes an event and routes it to a feature module (deals, questions, overrides,
pause, nudges, digests, groups, membership); ``turn``, ``events``, ``state``, ``access`` and
``render`` are what the features share.
"""
