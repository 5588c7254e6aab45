"""The one list of served operations agrees with botocore's model, the service and the docs."""

from __future__ import annotations

from pathlib import Path

from kubelambda.gateway.control_api.routes import lambda_model, route_table
from kubelambda.serving.control.operations import DATA_PLANE, SERVED, compatibility_table, snake
from kubelambda.serving.control.service import ControlService

DOCS = Path(__file__).resolve().parents[3] / "docs" / "compatibility.md"


def test_every_served_name_is_an_operation_of_botocores_model() -> None:
    names = set(lambda_model().operation_names)
    assert set(SERVED) <= names
    assert set(DATA_PLANE) <= names
    assert len(SERVED) == len(set(SERVED))


def test_the_service_has_a_method_for_each_served_operation_and_no_other() -> None:
    methods = {
        name
        for name in dir(ControlService)
        if not name.startswith("_") and callable(getattr(ControlService, name))
    }
    served = {snake(op) for op in SERVED}
    assert served <= methods
    operations = {snake(op) for op in lambda_model().operation_names}
    assert (methods & operations) == served  # nothing half-served outside the list


def test_every_operation_but_invoke_has_a_route() -> None:
    routed = {op.name for ops in route_table().values() for op, _ in ops}
    assert routed == set(lambda_model().operation_names) - set(DATA_PLANE)


def test_docs_hold_the_generated_table() -> None:
    assert compatibility_table() in DOCS.read_text(), (
        "docs/compatibility.md is out of date: paste "
        "kubelambda.serving.control.operations.compatibility_table()"
    )


def test_snake_names() -> None:
    assert snake("CreateFunction") == "create_function"
    assert snake("GetFunctionUrlConfig") == "get_function_url_config"
    assert snake("ListTags") == "list_tags"
