"""Errors raised by the data access functions."""


class NotFoundError(LookupError):
    """A function that changes a row was given the id of a row that does not exist.

    (Functions that only read return ``None`` instead.)
    """
