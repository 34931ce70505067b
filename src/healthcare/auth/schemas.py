"""Request and response shapes for users, tokens and sign-in, shared by the API and the UI."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
)

from healthcare.auth.access import Role
from healthcare.patients.schemas import no_control_characters

Username = Annotated[
    str,
    Field(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$",
        description="1-64 of a-z, 0-9, '.', '_', '@', '-'; case is ignored (kept in lower case).",
    ),
]
Password = Annotated[
    str, Field(min_length=1, max_length=256, json_schema_extra={"format": "password"})
]
Label = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=100),
    AfterValidator(no_control_characters),
]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class NamesAUser(BaseModel):
    """User names are compared in lower case, without surrounding blanks."""

    @field_validator("username", mode="before", check_fields=False)
    @classmethod
    def _normalised(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value


class UserIn(Strict, NamesAUser):
    username: Username
    role: Role
    password: Password = Field(description="At least 12 characters, not a common password.")


class UserPatch(Strict):
    role: Role


class UserPath(NamesAUser):
    username: Username


class User(BaseModel):
    id: int
    username: str
    role: Role
    created_at: datetime
    disabled_at: datetime | None


class UserList(BaseModel):
    items: list[User]


class PasswordChange(Strict):
    current_password: Password
    new_password: Password


class TokenIn(Strict, NamesAUser):
    username: Username
    label: Label
    expires_in_days: int | None = Field(
        None, ge=1, le=3650, description="Days until it expires; default 90"
    )


class TokenPath(BaseModel):
    token_id: int = Field(ge=1, le=2**31 - 1)


class Token(BaseModel):
    id: int
    username: str
    label: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    created_by: str | None = Field(
        description="Who made it on the user's behalf (an admin, an operator); null: the user"
    )
    state: str = Field(description="active, expired or revoked")


class NewToken(Token):
    token: str = Field(description="Shown this once; only its hash is stored.")


class TokenList(BaseModel):
    items: list[Token]


class Me(BaseModel):
    username: str
    role: Role
    token_label: str | None
