"""The control API's contract against `kubelambda dev`, with boto3: shapes, the state machine,
optimistic concurrency, conflicts, bad input, and each family of operations."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.component.control.helpers import (
    ROLE,
    create,
    error_of,
    handler_zip,
    lambda_client,
    lambda_sha,
    zipped,
)
from tests.component.gateway.conftest import DevGateway
from tests.component.s3server import S3Server


@pytest.fixture(scope="module")
def client(control: DevGateway) -> Any:
    return lambda_client(control.url)


def invoke(client: Any, name: str) -> Any:
    answer = client.invoke(FunctionName=name, Payload=b"{}")
    assert "FunctionError" not in answer
    return json.loads(answer["Payload"].read())


def test_create_reports_true_digest_size_and_time(client: Any) -> None:
    data = handler_zip("shape")
    created = create(client, "shape", data, MemorySize=256, Timeout=7, Tags={"team": "a"})
    assert created["CodeSha256"] == lambda_sha(data)
    assert created["CodeSize"] == len(data)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+0000", created["LastModified"])
    assert (created["State"], created["LastUpdateStatus"]) == ("Pending", "InProgress")
    assert created["Role"] == ROLE and created["MemorySize"] == 256 and created["Timeout"] == 7
    config = client.get_function_configuration(FunctionName="shape")
    assert (config["State"], config["LastUpdateStatus"]) == ("Active", "Successful")
    fetched = client.get_function(FunctionName="shape")
    assert fetched["Tags"] == {"team": "a"}
    assert fetched["Configuration"]["CodeSha256"] == lambda_sha(data)
    assert invoke(client, "shape") == "shape"


def test_revision_id_is_an_optimistic_concurrency_token(client: Any) -> None:
    first = create(client, "rev", handler_zip("r1"))
    client.get_waiter("function_active").wait(FunctionName="rev")
    current = client.get_function(FunctionName="rev")["Configuration"]["RevisionId"]
    assert current == first["RevisionId"]
    updated = client.update_function_code(
        FunctionName="rev", ZipFile=handler_zip("r2"), RevisionId=current
    )
    assert updated["RevisionId"] != current
    for call in (
        lambda: client.update_function_code(
            FunctionName="rev", ZipFile=handler_zip("r3"), RevisionId=current
        ),
        lambda: client.update_function_configuration(
            FunctionName="rev", Timeout=9, RevisionId=current
        ),
        lambda: client.publish_version(FunctionName="rev", RevisionId=current),
    ):
        with pytest.raises(client.exceptions.PreconditionFailedException) as caught:
            call()
        assert error_of(caught.value)[0] == 412
    assert invoke(client, "rev") == "r2"
    version = client.publish_version(FunctionName="rev", RevisionId=updated["RevisionId"])
    alias = client.create_alias(FunctionName="rev", Name="a", FunctionVersion=version["Version"])
    client.update_alias(
        FunctionName="rev", Name="a", Description="x", RevisionId=alias["RevisionId"]
    )
    with pytest.raises(client.exceptions.PreconditionFailedException):
        client.update_alias(
            FunctionName="rev", Name="a", Description="y", RevisionId=alias["RevisionId"]
        )


def test_conflicts_are_409(client: Any) -> None:
    create(client, "twice", handler_zip("t"))
    with pytest.raises(client.exceptions.ResourceConflictException) as caught:
        create(client, "twice", handler_zip("t"))
    assert error_of(caught.value)[:2] == (409, "ResourceConflictException")
    version = client.publish_version(FunctionName="twice")["Version"]
    client.create_alias(FunctionName="twice", Name="live", FunctionVersion=version)
    with pytest.raises(client.exceptions.ResourceConflictException):
        client.create_alias(FunctionName="twice", Name="live", FunctionVersion=version)
    with pytest.raises(client.exceptions.ResourceConflictException) as caught:
        client.delete_function(FunctionName="twice", Qualifier=version)
    assert "live" in error_of(caught.value)[2]


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        ({"MemorySize": 64}, "memorySize"),
        ({"Timeout": 901}, "timeout"),
        ({"Runtime": "cobol1"}, "runtime"),
        ({"Environment": {"Variables": {"AWS_REGION": "x"}}}, "reserved"),
        ({"VpcConfig": {"SubnetIds": ["s-1"]}}, "VpcConfig"),
    ],
)
def test_bad_input_is_400_naming_the_field(
    control: DevGateway, extra: dict[str, Any], words: str
) -> None:
    client = lambda_client(control.url, validate=False)
    params = {"Runtime": "python3.12", **extra}
    with pytest.raises(client.exceptions.InvalidParameterValueException) as caught:
        client.create_function(
            FunctionName="bad",
            Role=ROLE,
            Handler="app.handler",
            Code={"ZipFile": handler_zip("b")},
            **params,
        )
    status, _, message = error_of(caught.value)
    assert status == 400 and words in message


def test_bad_names_and_zips_are_400(client: Any) -> None:
    with pytest.raises(client.exceptions.InvalidParameterValueException) as caught:
        create(client, "not-a-zip", b"plain text")
    assert "Could not unzip" in error_of(caught.value)[2]
    with pytest.raises(client.exceptions.InvalidParameterValueException):
        create(client, "Upper_Case", handler_zip("u"))
    with pytest.raises(client.exceptions.InvalidParameterValueException) as caught:
        client.publish_version(FunctionName="shape", CodeSha256=lambda_sha(b"other"))
    assert "CodeSHA256" in error_of(caught.value)[2]


def test_update_configuration_and_delete_one_version(client: Any) -> None:
    create(client, "conf", handler_zip("c"), Environment={"Variables": {"AA": "1"}})
    updated = client.update_function_configuration(
        FunctionName="conf", Environment={"Variables": {"BB": "2"}}, MemorySize=512, Description="d"
    )
    assert updated["LastUpdateStatus"] == "InProgress"
    client.get_waiter("function_updated").wait(FunctionName="conf")
    config = client.get_function_configuration(FunctionName="conf")
    assert config["Environment"] == {"Variables": {"BB": "2"}} and config["MemorySize"] == 512
    one = client.publish_version(FunctionName="conf")["Version"]
    client.update_function_code(FunctionName="conf", ZipFile=handler_zip("c2"))
    two = client.publish_version(FunctionName="conf")["Version"]
    assert (one, two) == ("1", "2")
    client.delete_function(FunctionName="conf", Qualifier=one)
    versions = [
        v["Version"] for v in client.list_versions_by_function(FunctionName="conf")["Versions"]
    ]
    assert versions == ["$LATEST", "2"]
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.invoke(FunctionName="conf:1")
    assert invoke(client, "conf:2") == "c2"
    # Nothing changed since version 2: Lambda answers the latest version again.
    assert client.publish_version(FunctionName="conf")["Version"] == "2"


def test_reserved_concurrency_fits_the_pool_and_shows_in_account_settings(client: Any) -> None:
    create(client, "conc", handler_zip("x"))
    before = client.get_account_settings()
    assert before["AccountLimit"]["ConcurrentExecutions"] == 1000
    client.put_function_concurrency(FunctionName="conc", ReservedConcurrentExecutions=50)
    assert client.get_function_concurrency(FunctionName="conc") == {
        "ReservedConcurrentExecutions": 50,
        "ResponseMetadata": client.get_function_concurrency(FunctionName="conc")[
            "ResponseMetadata"
        ],
    }
    after = client.get_account_settings()
    unreserved = after["AccountLimit"]["UnreservedConcurrentExecutions"]
    assert unreserved == before["AccountLimit"]["UnreservedConcurrentExecutions"] - 50
    assert after["AccountUsage"]["FunctionCount"] >= 1
    with pytest.raises(client.exceptions.InvalidParameterValueException) as caught:
        client.put_function_concurrency(FunctionName="conc", ReservedConcurrentExecutions=950)
    assert (
        "UnreservedConcurrentExecution below its minimum value of [100]"
        in error_of(caught.value)[2]
    )
    client.delete_function_concurrency(FunctionName="conc")
    assert "ReservedConcurrentExecutions" not in client.get_function_concurrency(
        FunctionName="conc"
    )


def test_provisioned_event_invoke_url_and_tags(client: Any) -> None:
    create(client, "extras", handler_zip("e"))
    version = client.publish_version(FunctionName="extras")["Version"]
    client.create_alias(FunctionName="extras", Name="live", FunctionVersion=version)
    with pytest.raises(client.exceptions.InvalidParameterValueException):
        client.put_provisioned_concurrency_config(
            FunctionName="extras", Qualifier="$LATEST", ProvisionedConcurrentExecutions=1
        )
    put = client.put_provisioned_concurrency_config(
        FunctionName="extras", Qualifier="live", ProvisionedConcurrentExecutions=1
    )
    assert put["RequestedProvisionedConcurrentExecutions"] == 1
    got = client.get_provisioned_concurrency_config(FunctionName="extras", Qualifier="live")
    assert got["Status"] == "READY"
    listed = client.list_provisioned_concurrency_configs(FunctionName="extras")
    assert [
        c["FunctionArn"].rsplit(":", 1)[1] for c in listed["ProvisionedConcurrencyConfigs"]
    ] == ["live"]
    client.delete_provisioned_concurrency_config(FunctionName="extras", Qualifier="live")
    with pytest.raises(client.exceptions.ProvisionedConcurrencyConfigNotFoundException):
        client.get_provisioned_concurrency_config(FunctionName="extras", Qualifier="live")

    client.put_function_event_invoke_config(
        FunctionName="extras",
        MaximumRetryAttempts=1,
        DestinationConfig={"OnFailure": {"Destination": "https://hooks.example/failed"}},
    )
    client.update_function_event_invoke_config(FunctionName="extras", MaximumEventAgeInSeconds=600)
    config = client.get_function_event_invoke_config(FunctionName="extras")
    assert (config["MaximumRetryAttempts"], config["MaximumEventAgeInSeconds"]) == (1, 600)
    assert config["DestinationConfig"]["OnFailure"]["Destination"] == "https://hooks.example/failed"
    with pytest.raises(client.exceptions.InvalidParameterValueException):
        client.put_function_event_invoke_config(FunctionName="extras", MaximumRetryAttempts=5)
    assert (
        len(
            client.list_function_event_invoke_configs(FunctionName="extras")[
                "FunctionEventInvokeConfigs"
            ]
        )
        == 1
    )
    client.delete_function_event_invoke_config(FunctionName="extras")
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.get_function_event_invoke_config(FunctionName="extras")

    url = client.create_function_url_config(FunctionName="extras", AuthType="NONE")
    assert url["FunctionUrl"].startswith("http://extras.default.lambda-url.localhost:")
    with pytest.raises(client.exceptions.ResourceConflictException):
        client.create_function_url_config(FunctionName="extras", AuthType="NONE")
    client.update_function_url_config(FunctionName="extras", Cors={"AllowOrigins": ["*"]})
    assert client.get_function_url_config(FunctionName="extras")["Cors"] == {"AllowOrigins": ["*"]}
    assert len(client.list_function_url_configs(FunctionName="extras")["FunctionUrlConfigs"]) == 1
    client.delete_function_url_config(FunctionName="extras")
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.get_function_url_config(FunctionName="extras")

    arn = client.get_function(FunctionName="extras")["Configuration"]["FunctionArn"]
    client.tag_resource(Resource=arn, Tags={"a": "1", "b": "2"})
    client.untag_resource(Resource=arn, TagKeys=["a"])
    assert client.list_tags(Resource=arn)["Tags"] == {"b": "2"}


def test_event_source_mappings(client: Any) -> None:
    create(client, "mapped", handler_zip("m"))
    made = client.create_event_source_mapping(
        FunctionName="mapped", EventSourceArn="arn:aws:sqs:us-east-1:000000000000:jobs", BatchSize=5
    )
    assert made["State"] == "Creating" and made["BatchSize"] == 5
    uuid = made["UUID"]
    assert client.get_event_source_mapping(UUID=uuid)["EventSourceArn"] == (
        "arn:aws:sqs:us-east-1:000000000000:jobs"
    )
    client.update_event_source_mapping(UUID=uuid, BatchSize=8, Enabled=False)
    got = client.get_event_source_mapping(UUID=uuid)
    assert (got["BatchSize"], got["State"]) == (8, "Disabled")
    listed = client.list_event_source_mappings(FunctionName="mapped")["EventSourceMappings"]
    assert [m["UUID"] for m in listed] == [uuid]
    with pytest.raises(client.exceptions.InvalidParameterValueException):
        client.create_event_source_mapping(
            FunctionName="mapped",
            EventSourceArn="arn:aws:sqs:us-east-1:000000000000:q",
            BatchSize=20000,
        )
    assert client.delete_event_source_mapping(UUID=uuid)["State"] == "Deleting"
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.get_event_source_mapping(UUID=uuid)


def test_layers_by_arn(client: Any) -> None:
    layer = zipped({"python/greeting.py": "WORD = 'from a layer'\n"})
    published = client.publish_layer_version(
        LayerName="words", Content={"ZipFile": layer}, CompatibleRuntimes=["python3.12"]
    )
    assert published["Version"] == 1 and published["Content"]["CodeSha256"] == lambda_sha(layer)
    arn = published["LayerVersionArn"]
    code = zipped({"app.py": "import greeting\n\ndef handler(e, c):\n    return greeting.WORD\n"})
    created = create(client, "layered", code, Layers=[arn])
    assert created["Layers"] == [{"Arn": arn, "CodeSize": len(layer)}]
    assert invoke(client, "layered") == "from a layer"
    assert client.get_layer_version_by_arn(Arn=arn)["Version"] == 1
    second = client.publish_layer_version(LayerName="words", Content={"ZipFile": layer})
    assert second["Version"] == 2
    versions = client.list_layer_versions(LayerName="words")["LayerVersions"]
    assert [v["Version"] for v in versions] == [2, 1]
    names = [entry["LayerName"] for entry in client.list_layers()["Layers"]]
    assert "words" in names
    client.delete_layer_version(LayerName="words", VersionNumber=2)
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.get_layer_version(LayerName="words", VersionNumber=2)
    # A number is never reused.
    assert (
        client.publish_layer_version(LayerName="words", Content={"ZipFile": layer})["Version"] == 3
    )
    with pytest.raises(client.exceptions.InvalidParameterValueException):
        create(client, "nolayer", code, Layers=[arn.rsplit(":", 1)[0] + ":99"])


def test_code_from_s3_bucket_and_key(client: Any, s3: S3Server) -> None:
    data = handler_zip("from s3")
    bucket = s3.client()
    bucket.create_bucket(Bucket="uploads")
    bucket.put_object(Bucket="uploads", Key="fn/code.zip", Body=data)
    created = client.create_function(
        FunctionName="from-s3",
        Runtime="python3.12",
        Role=ROLE,
        Handler="app.handler",
        Code={"S3Bucket": "uploads", "S3Key": "fn/code.zip"},
    )
    assert created["CodeSha256"] == lambda_sha(data)
    assert invoke(client, "from-s3") == "from s3"
    with pytest.raises(client.exceptions.InvalidParameterValueException) as caught:
        client.update_function_code(FunctionName="from-s3", S3Bucket="uploads", S3Key="missing.zip")
    assert "GetObject" in error_of(caught.value)[2]


def test_an_image_function_fails_in_dev_mode_with_the_reason(client: Any) -> None:
    client.create_function(
        FunctionName="imaged",
        Role=ROLE,
        PackageType="Image",
        Code={"ImageUri": "registry.example/fn:1"},
        ImageConfig={"Command": ["app.handler"]},
    )
    with pytest.raises(Exception, match="Failed"):  # the waiter's failure state
        client.get_waiter("function_active").wait(
            FunctionName="imaged", WaiterConfig={"Delay": 1, "MaxAttempts": 5}
        )
    config = client.get_function_configuration(FunctionName="imaged")
    assert config["State"] == "Failed" and "cluster mode" in config["StateReason"]


def test_an_operation_we_do_not_serve_names_itself(client: Any) -> None:
    with pytest.raises(ClientError) as caught:
        client.get_policy(FunctionName="shape")
    status, code, message = error_of(caught.value)
    assert (status, code) == (400, "InvalidParameterValueException") and "GetPolicy" in message
