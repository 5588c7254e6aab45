"""`kubelambda gateway --cluster --auth kubernetes` on the real control plane: ServiceAccount
tokens from the TokenRequest API, checked with a real TokenReview, and RBAC deciding through a
real SubjectAccessReview (verb `invoke` on `functions`, the resource name being the function).
"""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator
from typing import Any

import boto3
import botocore.config
import kubernetes
import pytest
from botocore import UNSIGNED
from botocore.exceptions import ClientError

from tests.cluster.harness.cluster import Cluster
from tests.cluster.harness.controlplane import free_port
from tests.cluster.harness.waiting import wait_until
from tests.cluster.lambda_stack import LambdaStack, Role, handler_code, running_stack


@pytest.fixture(scope="module")
def stack(
    cluster: Cluster, lambda_crds: list[Any], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LambdaStack]:
    with running_stack(cluster, tmp_path_factory.mktemp("rbac")) as running:
        yield running


def start_gateway(stack: LambdaStack, identity: str, *auth: str) -> str:
    """A second gateway of the stack, with auth on (LambdaStack's own runs --auth=none)."""
    port = free_port()
    argv = [
        "gateway",
        "--cluster",
        "--host=127.0.0.1",
        f"--port={port}",
        f"--default-namespace={stack.ns}",
        f"--namespace={stack.ns}",
        f"--identity={identity}",
        f"--agent-key-file={stack.agent_key_file}",  # the agents' control API needs its token
        "--claim-timeout=60",  # refills take longer on a loaded machine
        *auth,
    ]
    role = Role(identity, argv, stack.env(), stack.workdir / f"{identity}.log")
    url = f"http://127.0.0.1:{port}"
    stack.gateways[identity] = (role, url)  # stopped with the stack

    def ready() -> bool:
        if role.proc.poll() is not None:
            raise AssertionError(f"gateway {identity} exited:\n{role.log()}")
        try:
            with urllib.request.urlopen(f"{url}/readyz", timeout=2) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    # As LambdaStack's own: on a loaded 2-core machine the import and first lists take a while.
    wait_until(ready, timeout=90, interval=0.1, what=f"gateway {identity} to be ready")
    return url


def bearer_client(url: str, token: str) -> Any:
    """boto3 as is, sending a bearer token instead of a signature."""
    client = boto3.session.Session().client(
        "lambda",
        endpoint_url=url,
        region_name="us-east-1",
        config=botocore.config.Config(
            signature_version=UNSIGNED, retries={"total_max_attempts": 1}, read_timeout=60
        ),
    )

    def add_token(request: Any, **_: Any) -> None:
        request.headers["Authorization"] = f"Bearer {token}"

    client.meta.events.register("before-send.lambda.*", add_token)
    return client


def service_account_token(stack: LambdaStack, name: str) -> str:
    core = kubernetes.client.CoreV1Api(stack.client)
    core.create_namespaced_service_account(stack.ns, {"metadata": {"name": name}})
    request = {"spec": {"audiences": [], "expirationSeconds": 3600}}
    answer = core.create_namespaced_service_account_token(name, stack.ns, request)
    return str(answer.status.token)


def grant_invoke(stack: LambdaStack, account: str, function: str) -> None:
    rbac = kubernetes.client.RbacAuthorizationV1Api(stack.client)
    rule = {
        "apiGroups": ["kubelambda.dev"],
        "resources": ["functions"],
        "resourceNames": [function],
        "verbs": ["invoke"],
    }
    rbac.create_namespaced_role(
        stack.ns, {"metadata": {"name": f"invoke-{function}"}, "rules": [rule]}
    )
    rbac.create_namespaced_role_binding(
        stack.ns,
        {
            "metadata": {"name": f"{account}-invokes-{function}"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "Role",
                "name": f"invoke-{function}",
            },
            "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": stack.ns}],
        },
    )


def test_a_service_account_invokes_what_its_role_grants_and_nothing_else(
    stack: LambdaStack,
) -> None:
    stack.function("granted", handler_code('{"granted": True}'))
    stack.function("withheld", handler_code('{"withheld": True}'))
    stack.wait_state("functions", "granted", "Active")
    stack.wait_state("functions", "withheld", "Active")
    token = service_account_token(stack, "caller")
    grant_invoke(stack, "caller", "granted")
    url = start_gateway(stack, "gw-rbac", "--auth=kubernetes")
    client = bearer_client(url, token)

    def invoked() -> Any:
        try:
            return client.invoke(FunctionName="granted", Payload=b"{}")
        except ClientError as exc:  # the catalog may not list it yet
            if exc.response["Error"]["Code"] != "ResourceNotFoundException":
                raise
            return None

    response = wait_until(invoked, timeout=30, what="the granted function to be invoked")
    assert response["StatusCode"] == 200
    assert response["Payload"].read() == b'{"granted": true}'

    with pytest.raises(ClientError) as refused:
        client.invoke(FunctionName="withheld", Payload=b"{}")
    error = refused.value.response["Error"]
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert error["Code"] == "AccessDeniedException"
    assert error["Message"] == (
        f"User: arn:aws:iam::000000000000:user/system:serviceaccount:{stack.ns}:caller is not "
        "authorized to perform: lambda:InvokeFunction on resource: "
        f"arn:aws:lambda:us-east-1:000000000000:function:{stack.ns}.withheld because no "
        "identity-based policy allows the lambda:InvokeFunction action"
    )

    with pytest.raises(ClientError) as forged:
        bearer_client(url, token[:-4] + "AAAA").invoke(FunctionName="granted", Payload=b"{}")
    assert forged.value.response["Error"]["Code"] == "UnrecognizedClientException"
    with pytest.raises(ClientError) as signed:  # SigV4 is not a mode of this gateway
        stack.lambda_client("gw-rbac").invoke(FunctionName="granted", Payload=b"{}")
    assert signed.value.response["Error"]["Code"] == "UnrecognizedClientException"
    anonymous = boto3.session.Session().client(
        "lambda",
        endpoint_url=url,
        region_name="us-east-1",
        config=botocore.config.Config(signature_version=UNSIGNED),
    )
    with pytest.raises(ClientError) as missing:
        anonymous.invoke(FunctionName="granted", Payload=b"{}")
    assert missing.value.response["Error"]["Code"] == "MissingAuthenticationTokenException"
