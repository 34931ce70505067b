"""Typed table definitions. The schema itself is created by the migrations, never by create_all."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import BigInteger, CheckConstraint, Date, DateTime, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

GENDERS = ("male", "female", "other", "unknown")


class Base(DeclarativeBase):
    pass


class Patient(Base):
    __tablename__ = "patients"
    # Indexes and the name-search index live in the migrations. AUTOINCREMENT on SQLite: an
    # id is never handed out twice, even after a purge.
    __table_args__ = (
        CheckConstraint("age BETWEEN 0 AND 150", name="ck_patients_age"),
        CheckConstraint(f"gender IN {GENDERS!r}", name="ck_patients_gender"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    # The name folded for search (lower case, no accents); the search index is built on it.
    name_search: Mapped[str] = mapped_column(String(400))
    age: Mapped[int] = mapped_column(Integer)
    disease: Mapped[str | None] = mapped_column(String(200))
    gender: Mapped[str | None] = mapped_column(String(16))
    date_of_birth: Mapped[date | None] = mapped_column(Date)
    phone: Mapped[str | None] = mapped_column(String(40))
    email: Mapped[str | None] = mapped_column(String(254))
    notes: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    version: Mapped[int] = mapped_column(Integer, default=1)
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


patients = Patient.__table__


class PatientTotals(Base):
    """One row kept by database triggers: counts, so unfiltered listings need no count, and a
    revision that changes with every change to any patient."""

    __tablename__ = "patient_totals"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    active: Mapped[int] = mapped_column(Integer)
    deleted: Mapped[int] = mapped_column(Integer)
    revision: Mapped[int] = mapped_column(BigInteger)


patient_totals = PatientTotals.__table__
