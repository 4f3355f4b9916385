"""Which scopes each role grants (deny by default)."""

from __future__ import annotations

from modelport.types import Role, Scope

ROLE_SCOPES: dict[Role, frozenset[Scope]] = {
    Role.ADMIN: frozenset(Scope),
    Role.EDITOR: frozenset({Scope.READ, Scope.WRITE, Scope.PREDICT}),
    Role.PREDICT: frozenset({Scope.PREDICT}),
}


def role_allows(role: Role, scope: Scope) -> bool:
    return scope in ROLE_SCOPES[role]
