"""/me, /users and /tokens: who am I, and the admin's scriptable account management."""

from __future__ import annotations

from flask import Response, current_app
from flask_openapi3 import APIBlueprint, Tag

from healthcare.api.problems import Problem
from healthcare.api.responses import PROBLEM_RESPONSES, json_response
from healthcare.auth import tokens, users
from healthcare.auth.schemas import (
    Me,
    NewToken,
    PasswordChange,
    Token,
    TokenIn,
    TokenList,
    TokenPath,
    User,
    UserIn,
    UserList,
    UserPatch,
    UserPath,
)
from healthcare.auth.web import current_actor, current_session
from healthcare.db.database import current_database

RESPONSES = {**PROBLEM_RESPONSES, 401: Problem, 403: Problem}
api = APIBlueprint(
    "users_api",
    __name__,
    abp_tags=[Tag(name="users", description="Accounts and API tokens (admins)")],
    abp_responses=RESPONSES,
    abp_security=[{"bearer": []}],
)


@api.get("/me", summary="Who the credentials belong to", responses={200: Me})
def me() -> Response:
    actor = current_actor()
    return json_response(
        {"username": actor.username, "role": actor.role, "token_label": actor.token_label}
    )


@api.post(
    "/me/password",
    summary="Change my password",
    responses={204: None, 422: Problem, 429: Problem},
)
def change_password(body: PasswordChange) -> Response:
    session = current_session()
    users.change_password(
        current_database(),
        current_actor(),
        current_app.extensions["healthcare.login_policy"],
        body.current_password,
        body.new_password,
        keep_session=session.key,
    )
    return Response(status=204)


@api.get("/users", summary="List users", responses={200: UserList})
def list_users() -> Response:
    return json_response({"items": users.list_users(current_database(), current_actor())})


@api.post("/users", summary="Create a user", responses={201: User, 409: Problem, 422: Problem})
def create_user(body: UserIn) -> Response:
    user = users.create_user(
        current_database(), current_actor(), body.username, body.role, body.password
    )
    return json_response(user, 201)


@api.patch(
    "/users/<username>",
    summary="Change a user's role",
    responses={200: User, 409: Problem, 422: Problem},
)
def change_role(path: UserPath, body: UserPatch) -> Response:
    user = users.set_role(current_database(), current_actor(), path.username, body.role)
    return json_response(user)


@api.post(
    "/users/<username>/disable",
    summary="Disable a user: their sessions end and their tokens stop working",
    responses={200: User, 409: Problem},
)
def disable_user(path: UserPath) -> Response:
    return json_response(users.disable_user(current_database(), current_actor(), path.username))


@api.get(
    "/tokens", summary="List API tokens (never the tokens themselves)", responses={200: TokenList}
)
def list_tokens() -> Response:
    return json_response({"items": tokens.list_tokens(current_database(), current_actor())})


@api.post(
    "/tokens",
    summary="Create an API token (shown once)",
    responses={201: NewToken, 409: Problem, 422: Problem},
)
def create_token(body: TokenIn) -> Response:
    created = tokens.create_token(
        current_database(), current_actor(), body.username, body.label, body.expires_in_days
    )
    return json_response(created, 201)


@api.delete("/tokens/<int:token_id>", summary="Revoke an API token", responses={200: Token})
def revoke_token(path: TokenPath) -> Response:
    return json_response(tokens.revoke_token(current_database(), current_actor(), path.token_id))
