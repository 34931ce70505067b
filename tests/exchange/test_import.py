"""Imports: every problem by row number, all or nothing unless asked, audited, round trips."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from flask.testing import FlaskClient

from healthcare.audit import trail
from healthcare.auth.access import Actor
from healthcare.cli import main
from healthcare.db.database import Database
from healthcare.exchange import tabular
from healthcare.patients.bulk import IMPORT_BATCH
from healthcare.patients.identifiers import mrn_for
from healthcare.patients.schemas import PatientQuery
from healthcare.patients.service import list_patients, purge_patient
from tests.conftest import audit_rows, empty_all_tables, new_patient
from tests.fhir.conftest import confirmed_patient

HEADER = "name,family_name,given_names,date_of_birth,age,gender,phone,email,identifiers\n"
GOOD = "Asha Verma,,,1990-02-28,,female,+44 20 7946 0958,asha@example.org,urn:nhs|1\n"
ALSO_GOOD = ",Okafor,Chidi,,40,male,,,\n"
BAD = ",,,,,,not a phone,,\n"


def write(tmp_path: Path, text: str, name: str = "patients.csv") -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def total(client: FlaskClient) -> int:
    return client.get("/patients").json["total"]


def test_a_dry_run_reports_every_problem_by_row_and_writes_nothing(
    runner: CliRunner, client: FlaskClient, tmp_path: Path
) -> None:
    path = write(tmp_path, HEADER + GOOD + BAD + ALSO_GOOD)
    result = runner.invoke(main, ["patients", "import", path, "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "row 3: name: Field required unless family_name is given" in result.output
    assert "row 3: phone:" in result.output
    assert "would create 2 of 3 patients" in result.output
    assert total(client) == 0


def test_one_invalid_row_stops_the_whole_import(
    runner: CliRunner, client: FlaskClient, tmp_path: Path
) -> None:
    path = write(tmp_path, HEADER + GOOD + BAD)
    result = runner.invoke(main, ["patients", "import", path])
    assert result.exit_code == 1
    assert "nothing written" in result.output
    assert total(client) == 0


def test_skip_invalid_creates_the_valid_rows_audited(
    runner: CliRunner, client: FlaskClient, db: Database, tmp_path: Path
) -> None:
    path = write(tmp_path, HEADER + GOOD + BAD + ALSO_GOOD)
    result = runner.invoke(main, ["patients", "import", path, "--skip-invalid"])
    assert result.exit_code == 0, result.output
    assert "created 2 of 3 patients" in result.output
    patients = client.get("/patients").json["items"]
    assert [p["name"] for p in patients] == ["Asha Verma", "Chidi Okafor"]
    assert patients[0]["identifiers"] == [{"system": "urn:nhs", "value": "1"}]
    created = audit_rows(db, action="patient.create")
    assert [(row["patient_id"], row["detail"]) for row in created] == [
        (patients[0]["id"], "import"), (patients[1]["id"], "import"),
    ]  # fmt: skip


def test_identifiers_held_by_a_patient_or_another_row_are_problems(
    runner: CliRunner, client: FlaskClient, tmp_path: Path
) -> None:
    holder = new_patient(client, identifiers=[{"system": "urn:nhs", "value": "1"}])
    twice = GOOD.replace("urn:nhs|1", "urn:nhs|2")
    path = write(tmp_path, HEADER + GOOD + twice + twice)
    result = runner.invoke(main, ["patients", "import", path, "--dry-run"])
    assert f"row 2: identifiers: patient {holder['id']} already has urn:nhs|1" in result.output
    assert "row 4: identifiers: row 3 has urn:nhs|2 too" in result.output
    assert "would create 1 of 3" in result.output


def test_likely_duplicates_of_patients_on_record_are_not_created_unless_confirmed(
    runner: CliRunner, client: FlaskClient, tmp_path: Path
) -> None:
    on_record = new_patient(client, date_of_birth="1990-02-28", age=None, phone="020 7946 0958")
    path = write(tmp_path, HEADER + GOOD.replace("urn:nhs|1", "") + ALSO_GOOD)
    result = runner.invoke(main, ["patients", "import", path, "--skip-invalid"])
    assert f"row 2: possible duplicate of patient {on_record['id']} (Asha Verma" in result.output
    assert "created 1 of 2" in result.output
    result = runner.invoke(main, ["patients", "import", path, "--confirm-duplicates"])
    assert result.exit_code == 0, result.output
    assert total(client) == 4


def test_unknown_columns_are_refused(runner: CliRunner, tmp_path: Path) -> None:
    path = write(tmp_path, "name,shoe_size\nA B,9\n")
    result = runner.invoke(main, ["patients", "import", path])
    assert result.exit_code == 2
    assert "unknown columns: shoe_size" in result.output


def test_a_file_that_is_not_utf8_is_refused(runner: CliRunner, tmp_path: Path) -> None:
    path = tmp_path / "latin1.csv"
    path.write_bytes("name,age\nJosé Núñez,40\n".encode("latin-1"))
    result = runner.invoke(main, ["patients", "import", str(path)])
    assert result.exit_code == 2
    assert "codec can't decode" in result.output


def test_ndjson_lines_are_checked_as_fhir(runner: CliRunner, tmp_path: Path) -> None:
    lines = '{"resourceType": "Patient", "birthDate": "1970"}\nnot json\n'
    path = write(tmp_path, lines, "patients.ndjson")
    result = runner.invoke(main, ["patients", "import", path, "--dry-run"])
    assert "row 1: name: Field required" in result.output
    assert "row 2: line: not JSON" in result.output


WRITABLE = ("name", "family_name", "given_names", "age", "disease", "gender", "date_of_birth",
            "phone", "email", "address_lines", "city", "postal_code", "country", "identifiers",
            "notes")  # fmt: skip


def comparable(db: Database) -> list[dict[str, Any]]:
    """Every patient's writable fields, read as the operator (the test empties the users)."""
    items = list_patients(db, Actor.operator(), PatientQuery(limit=500))["items"]
    return [{name: item[name] for name in WRITABLE} for item in items]


@pytest.mark.parametrize("fmt", ["csv", "ndjson"])
def test_export_then_import_into_an_empty_database_loses_nothing(
    fmt: str, runner: CliRunner, client: FlaskClient, db: Database, tmp_path: Path
) -> None:
    confirmed_patient(client, disease="=1+1", phone="+1 555 0100", notes="Line one\nline two")
    confirmed_patient(
        client, name="Zoë Ångström", date_of_birth="1990-02-28", age=None, gender="female",
        address_lines="1 High St\nFlat 2", city="Leeds", postal_code="LS1", country="GB",
        identifiers=[{"system": "urn:a", "value": "-7"}, {"system": "urn:b", "value": "@x"}],
        email="zoe@example.org", notes="'quoted",
    )  # fmt: skip
    confirmed_patient(client, family_name="Solo", given_names=None, name=None, age=0)
    before = comparable(db)
    exported = runner.invoke(main, ["patients", "export", "--format", fmt])
    path = write(tmp_path, exported.output, f"out.{fmt}")
    empty_all_tables(db.engine)
    result = runner.invoke(main, ["patients", "import", path])
    assert result.exit_code == 0, result.output
    assert comparable(db) == before


def test_the_csv_header_is_documented() -> None:
    documented = Path(__file__).parents[2] / "docs" / "fhir.md"
    assert ",".join(tabular.HEADER) in documented.read_text()


def test_imported_patients_are_stored_as_one_created_alone(
    runner: CliRunner, client: FlaskClient, db: Database, tmp_path: Path
) -> None:
    """The batch path keeps every promise of a single create: version 1, its own record
    number, identifiers that search finds, history, and the audit row naming the fields."""
    path = write(tmp_path, HEADER + GOOD + ALSO_GOOD)
    assert runner.invoke(main, ["patients", "import", path]).exit_code == 0
    imported = client.get("/patients").json["items"]
    assert [p["version"] for p in imported] == [1, 1]
    assert [p["mrn"] for p in imported] == [mrn_for(p["id"], db.mrn_prefix) for p in imported]
    found = client.get("/patients", query_string={"identifier": "urn:nhs|1"}).json["items"]
    assert [p["id"] for p in found] == [imported[0]["id"]]
    history = client.get(f"/patients/{imported[1]['id']}/history").json["items"]
    assert [(v["version"], v["action"]) for v in history] == [(1, "patient.create")]
    first = client.get(f"/patients/{imported[1]['id']}/history/1").json["values"]
    assert (first["family_name"], first["mrn"]) == ("Okafor", imported[1]["mrn"])
    alone = {"name": "Asha Verma", "date_of_birth": "1990-02-28", "age": None, "gender": "female",
             "phone": "+44 20 7946 0958", "email": "asha@example.org",
             "identifiers": [{"system": "urn:nhs", "value": "2"}]}  # fmt: skip
    also = {"family_name": "Okafor", "given_names": "Chidi", "age": 40, "gender": "male"}
    made = [
        client.post("/patients", query_string={"confirm_not_duplicate": "true"}, json=body).json
        for body in (alone, also)
    ]
    created = {row["patient_id"]: row["fields"] for row in audit_rows(db, action="patient.create")}
    assert [created[p["id"]] for p in imported] == [created[p["id"]] for p in made]


def test_every_imported_patient_is_in_the_trail_and_its_access_log(
    runner: CliRunner, client: FlaskClient, db: Database, tmp_path: Path
) -> None:
    """More rows than one write transaction takes: each patient audited, in every batch."""
    rows = "".join(f",Family{n},Given{n},,{n % 90},,,,\n" for n in range(IMPORT_BATCH * 2 + 5))
    path = write(tmp_path, HEADER + rows)
    result = runner.invoke(main, ["patients", "import", path])
    assert result.exit_code == 0, result.output
    ids = [p["id"] for p in list_patients(db, Actor.operator(), PatientQuery(limit=500))["items"]]
    created = audit_rows(db, action="patient.create")
    assert len(created) == IMPORT_BATCH * 2 + 5 == total(client)
    assert {row["detail"] for row in created} == {"import"}
    assert {row["patient_id"] for row in created} >= set(ids)
    for patient_id in (created[0]["patient_id"], created[-1]["patient_id"]):
        log = client.get(f"/patients/{patient_id}/access-log").json["items"]
        assert [(e["action"], e["detail"]) for e in log][-1] == ("patient.create", "import")
    assert trail.verify(db.engine).intact


def test_imported_patients_never_get_an_id_used_before(
    runner: CliRunner, client: FlaskClient, db: Database, tmp_path: Path
) -> None:
    """Ids are taken before the rows go in (with their record numbers); still never one that
    a purged patient had, and the next patient created alone comes after them."""
    purged = new_patient(client, name="Purged Later")
    assert client.delete(f"/patients/{purged['id']}").status_code == 204
    purge_patient(db, Actor.operator(), purged["id"])
    path = write(tmp_path, HEADER + GOOD + ALSO_GOOD)
    assert runner.invoke(main, ["patients", "import", path]).exit_code == 0
    imported = [p["id"] for p in client.get("/patients").json["items"]]
    assert min(imported) > purged["id"]
    assert new_patient(client, name="Created Alone")["id"] > max(imported)
