"""Every request example in the API docs (Swagger UI's "Try it out" starts from them) is a
valid request: each is replayed against its endpoint and must succeed (issue 14)."""

from __future__ import annotations

import pytest
from drf_spectacular.generators import SchemaGenerator

from tests.factories import EstimateFactory, ModelProfileFactory

# operation id -> (method, path template); the {id} of a path is an object the caller owns
OPERATIONS = {
    "calculate": ("post", "/api/v1/calculate"),
    "check": ("post", "/api/v1/check"),
    "profiles_create": ("post", "/api/v1/profiles/"),
    "estimates_create": ("post", "/api/v1/estimates/"),
    "estimates_update": ("patch", "/api/v1/estimates/{id}/"),
    "profiles_update": ("patch", "/api/v1/profiles/{profile_id}/"),
    "estimate_runs_create": ("post", "/api/v1/estimates/{public_id}/runs/"),
}


def _examples() -> list[tuple[str, str, dict]]:
    schema = SchemaGenerator().get_schema(request=None, public=True)
    found = []
    for operations in schema["paths"].values():
        for operation in operations.values():
            content = (operation.get("requestBody") or {}).get("content", {})
            for example_name, example in (
                content.get("application/json", {}).get("examples", {}).items()
            ):
                found.append((operation["operationId"], example_name, example["value"]))
    return found


EXAMPLES = _examples()


def test_the_docs_have_examples_for_the_main_operations():
    documented = {operation for operation, _, _ in EXAMPLES}
    main = {"calculate", "profiles_create", "profiles_update", "estimates_create"}
    main.add("estimates_update")
    assert main <= documented


@pytest.mark.django_db
@pytest.mark.parametrize(("operation", "name", "value"), EXAMPLES, ids=[e[1] for e in EXAMPLES])
def test_each_example_is_a_valid_request(client_for, alice, catalog, operation, name, value):
    assert operation in OPERATIONS, f"{operation}: say here how to replay its example"
    method, path = OPERATIONS[operation]
    estimate = EstimateFactory(owner=alice)
    profile = ModelProfileFactory(owner=alice)
    path = path.replace("{id}", str(estimate.pk)).replace("{public_id}", estimate.public_id)
    path = path.replace("{profile_id}", str(profile.pk))
    response = getattr(client_for(alice), method)(path, value, format="json")
    assert response.status_code in (200, 201), (name, response.json())
