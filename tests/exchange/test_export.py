"""Exports: CSV safe to open in a spreadsheet, FHIR NDJSON, both audited per patient."""

from __future__ import annotations

import csv
import io

import orjson
import pytest
from click.testing import CliRunner
from fhir.resources.R4B.patient import Patient
from flask.testing import FlaskClient

from healthcare.cli import main
from healthcare.db.database import Database
from healthcare.errors import Forbidden
from healthcare.exchange import export_lines, tabular
from healthcare.patients.bulk import export_patients
from tests.conftest import Account, audit_rows
from tests.fhir.conftest import confirmed_patient

DANGEROUS = ['=HYPERLINK("http://evil")', "+1+2", "-3", "@SUM(A1)", "\tx", "\rx", "'quoted"]


@pytest.mark.parametrize("value", DANGEROUS)
def test_a_cell_a_spreadsheet_would_run_is_neutralised_and_read_back(value: str) -> None:
    cell = tabular.neutralised(value)
    assert cell.startswith("'")
    assert tabular.restored(cell) == value


def test_plain_cells_are_left_alone() -> None:
    for value in ("Asha", "0207 946", "a=b", "x@example.org"):
        assert tabular.neutralised(value) == value
        assert tabular.restored(value) == value


def test_csv_export_has_the_header_and_neutralised_cells(
    runner: CliRunner, client: FlaskClient
) -> None:
    patient = confirmed_patient(client, disease="=cmd|' /C calc'!A0", phone="+44 20 7946 0958")
    confirmed_patient(client, name="Deleted Person")
    client.delete("/patients/2")
    result = runner.invoke(main, ["patients", "export", "--format", "csv"])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.output)))
    assert tuple(rows[0]) == tabular.HEADER
    assert [row["id"] for row in rows] == [str(patient["id"])]
    assert rows[0]["disease"] == "'=cmd|' /C calc'!A0"
    assert rows[0]["phone"] == "'+44 20 7946 0958"
    assert rows[0]["mrn"] == patient["mrn"]


def test_ndjson_export_is_one_valid_patient_a_line(runner: CliRunner, client: FlaskClient) -> None:
    ids = [confirmed_patient(client, name=f"Person {i}")["id"] for i in range(3)]
    result = runner.invoke(main, ["patients", "export", "--format", "ndjson"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    resources = [Patient.model_validate(orjson.loads(line)) for line in lines]
    assert [int(r.id) for r in resources] == ids


def test_an_export_is_audited_with_each_patient_it_held(
    client: FlaskClient, db: Database, accounts: dict[str, Account]
) -> None:
    ids = [confirmed_patient(client, name=f"Person {i}")["id"] for i in range(5)]
    admin = accounts["admin"].actor()
    batches = list(export_patients(db, admin, "csv", batch=2))
    assert [len(batch) for batch in batches] == [2, 2, 1]
    rows = audit_rows(db, action="patient.export")
    assert [row["patient_id"] for row in rows] == ids
    assert {row["username"] for row in rows} == {"admin"}


def test_only_admins_may_export(db: Database, accounts: dict[str, Account]) -> None:
    for role in ("viewer", "clinician"):
        with pytest.raises(Forbidden):
            list(export_lines(db, accounts[role].actor(), "csv"))
    assert len(audit_rows(db, action="access.denied")) == 2
