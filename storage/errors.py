"""Errors raised by the data access functions."""

from __future__ import annotations

from typing import TypeVar

from sqlmodel import Session, SQLModel

Row = TypeVar("Row", bound=SQLModel)


class NotFoundError(LookupError):
    """A function that changes a row was given the id of a row that does not exist.

    (Functions that only read return ``None`` instead.)
    """


def require(session: Session, model: type[Row], row_id: int) -> Row:
    """The row of ``model`` with this id; NotFoundError ("no deal 7") if there is none."""
    row = session.get(model, row_id)
    if row is None:
        raise NotFoundError(f"no {model.__tablename__} {row_id}")
    return row
