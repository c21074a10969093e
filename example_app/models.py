"""The example app's own data: users and their coin balance."""

from __future__ import annotations

from flask_sqlalchemy import SQLAlchemy
from sqlalchemy.orm import DeclarativeBase


class Base(DeclarativeBase):
    pass


db = SQLAlchemy(model_class=Base)


class User(db.Model):  # type: ignore[name-defined,misc]
    """A Telegram user of the shop; ``id`` is their Telegram id."""

    __tablename__ = "users"
    id = db.Column(db.BigInteger, primary_key=True, autoincrement=False)
    first_name = db.Column(db.String(128), nullable=False, default="")
    coins = db.Column(db.BigInteger, nullable=False, default=0)
