"""Hello world through each kind of runtime, the context object, Lambda's variables, layers."""

from __future__ import annotations

import base64
import json
import os
import re
import sys
from pathlib import Path

from kubelambda.runtime.provider import ProcessProvider
from kubelambda.runtime.spec import CodeRef, EnvState

from .helpers import SHELL_BOOTSTRAP, b64, make_request, make_spec, zip_bytes

HELLO = {"app.py": "def handler(event, context):\n    return {'hello': event.get('name')}\n"}


async def test_hello_through_our_bootstrap(provider: ProcessProvider, logs: list[str]) -> None:
    env = await provider.start_environment("python3.12")
    assert env.state == EnvState.WARM and env.alive and env.spec is None
    await env.specialize(make_spec(HELLO))
    assert env.state in (EnvState.INITIALIZING, EnvState.READY)
    first = await env.invoke(make_request(b'{"name": "world"}'))
    assert json.loads(first.payload) == {"hello": "world"}
    assert first.function_error is None
    assert first.executed_version == "$LATEST"
    assert first.init_duration_ms is not None and first.init_duration_ms > 0
    assert first.billed_duration_ms >= 1 and first.max_memory_used_mb > 0
    second = await env.invoke(make_request(b'{"name": "again"}'))
    assert json.loads(second.payload) == {"hello": "again"}
    assert second.init_duration_ms is None
    assert env.state == EnvState.READY and env.invocations == 2
    report = [line for line in logs if line.startswith("REPORT")]
    assert len(report) == 2 and "Init Duration" in report[0] and "Init Duration" not in report[1]


async def test_hello_through_awslambdaric(provider: ProcessProvider, logs: list[str]) -> None:
    code = {
        "app.py": (
            "import os\n"
            "def handler(event, context):\n"
            "    print('via awslambdaric')\n"
            "    return {'hello': event['name'], 'function': context.function_name,\n"
            "            'request': context.aws_request_id,\n"
            "            'remaining': context.get_remaining_time_in_millis()}\n"
        )
    }
    spec = make_spec(
        code,
        package_type="Image",
        image_command=[sys.executable, "-m", "awslambdaric", "app.handler"],
    )
    env = await provider.start_environment("python3.12")
    await env.specialize(spec)
    request = make_request(b'{"name": "ric"}')
    result = await env.invoke(request)
    body = json.loads(result.payload)
    assert body["hello"] == "ric" and body["function"] == "hello"
    assert body["request"] == request.request_id and 0 < body["remaining"] <= 3000
    assert result.function_error is None and result.init_duration_ms is not None
    assert "via awslambdaric" in logs
    failing = make_spec(
        {"app.py": "def handler(event, context):\n    raise KeyError('nope')\n"},
        package_type="Image",
        image_command=[sys.executable, "-m", "awslambdaric", "app.handler"],
    )
    env2 = await provider.start_environment("python3.12")
    await env2.specialize(failing)
    error = await env2.invoke(make_request())
    assert error.function_error == "Unhandled"
    assert json.loads(error.payload)["errorType"] == "KeyError"
    broken = make_spec(
        {"other.py": ""},
        package_type="Image",
        image_command=[sys.executable, "-m", "awslambdaric", "app.handler"],
    )
    env3 = await provider.start_environment("python3.12")
    await env3.specialize(broken)
    init_error = await env3.invoke(make_request())
    assert json.loads(init_error.payload)["errorType"] == "Runtime.ImportModuleError"


async def test_exec_wrapper_runs_before_our_bootstrap(provider: ProcessProvider) -> None:
    code = {
        "wrapper": '#!/bin/sh\nexport WRAPPED="yes $#"\nexec "$@"\n',
        "app.py": "import os\ndef handler(event, context):\n    return os.environ['WRAPPED']\n",
    }
    env = await provider.start_environment("python3.12")
    spec = make_spec(code, environment={"AWS_LAMBDA_EXEC_WRAPPER": "./wrapper"})
    await env.specialize(spec)
    result = await env.invoke(make_request())
    assert result.function_error is None and json.loads(result.payload).startswith("yes ")


async def test_hello_through_shell_and_curl_bootstrap(provider: ProcessProvider) -> None:
    spec = make_spec(
        {"bootstrap": SHELL_BOOTSTRAP}, runtime="provided.al2023", handler="function.handler"
    )
    env = await provider.start_environment("provided.al2023")
    await env.specialize(spec)
    request = make_request(b'{"name": "sh"}')
    result = await env.invoke(request)
    assert json.loads(result.payload) == {
        "echo": {"name": "sh"},
        "handler": "function.handler",
        "rid": request.request_id,
    }
    again = await env.invoke(make_request(b"[1, 2]"))
    assert json.loads(again.payload)["echo"] == [1, 2]


async def test_shell_bootstrap_from_a_zip_keeps_its_mode(provider: ProcessProvider) -> None:
    data = zip_bytes({"bootstrap": SHELL_BOOTSTRAP}, modes={"bootstrap": 0o755})
    spec = make_spec(CodeRef(zip_base64=b64(data)), runtime="provided.al2023", handler="x")
    env = await provider.start_environment("provided.al2023")
    await env.specialize(spec)
    result = await env.invoke(make_request(b"7"))
    assert json.loads(result.payload)["echo"] == 7


CONTEXT_HANDLER = """
import os
def handler(event, context):
    cc = context.client_context
    return {
        "function_name": context.function_name,
        "function_version": context.function_version,
        "invoked_function_arn": context.invoked_function_arn,
        "memory_limit_in_mb": context.memory_limit_in_mb,
        "aws_request_id": context.aws_request_id,
        "log_group_name": context.log_group_name,
        "log_stream_name": context.log_stream_name,
        "identity": [context.identity.cognito_identity_id,
                     context.identity.cognito_identity_pool_id],
        "client": None if cc is None else {
            "installation_id": cc.client.installation_id,
            "app_title": cc.client.app_title,
            "app_version_name": cc.client.app_version_name,
            "app_version_code": cc.client.app_version_code,
            "app_package_name": cc.client.app_package_name,
            "custom": cc.custom, "env": cc.env},
        "remaining": context.get_remaining_time_in_millis(),
        "trace": os.environ.get("_X_AMZN_TRACE_ID"),
    }
"""


async def test_every_context_field(provider: ProcessProvider) -> None:
    spec = make_spec({"app.py": CONTEXT_HANDLER}, memory_size=256, timeout=5.0)
    env = await provider.start_environment("python3.12")
    await env.specialize(spec)
    client_context = {
        "client": {
            "installation_id": "inst-1",
            "app_title": "Demo",
            "app_version_name": "1.0",
            "app_version_code": "100",
            "app_package_name": "org.example.demo",
        },
        "custom": {"tenant": "blue"},
        "env": {"locale": "en"},
    }
    identity = {"cognitoIdentityId": "us-east-1:abc", "cognitoIdentityPoolId": "us-east-1:pool"}
    request = make_request(
        client_context=base64.b64encode(json.dumps(client_context).encode()).decode(),
        cognito_identity=json.dumps(identity),
        trace_id="Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1",
        invoked_function_arn=spec.function_arn + ":live",
    )
    body = json.loads((await env.invoke(request)).payload)
    assert body["function_name"] == "hello"
    assert body["function_version"] == "$LATEST"
    assert body["invoked_function_arn"] == spec.function_arn + ":live"
    assert body["memory_limit_in_mb"] == "256"
    assert body["aws_request_id"] == request.request_id
    assert body["log_group_name"] == "/aws/lambda/hello"
    assert re.fullmatch(r"\d{4}/\d{2}/\d{2}/\[\$LATEST\][0-9a-f]{32}", body["log_stream_name"])
    assert body["identity"] == ["us-east-1:abc", "us-east-1:pool"]
    assert body["client"] == {
        **client_context["client"],
        "custom": {"tenant": "blue"},
        "env": {"locale": "en"},
    }
    assert 4000 < body["remaining"] <= 5000
    assert body["trace"] == request.trace_id
    plain = json.loads((await env.invoke(make_request())).payload)
    assert plain["client"] is None and plain["identity"] == [None, None] and plain["trace"] is None


ENV_HANDLER = """
import os, time
def handler(event, context):
    return {"env": dict(os.environ), "cwd": os.getcwd(), "tz": time.strftime("%Z")}
"""


async def test_lambda_environment_variables(provider: ProcessProvider) -> None:
    spec = make_spec(
        {"app.py": ENV_HANDLER},
        name="envy",
        memory_size=512,
        region="eu-west-1",
        function_version="7",
        initialization_type="provisioned-concurrency",
        environment={"GREETING": "hi", "AWS_REGION": "evil", "_HANDLER": "evil.x", "LANG": "C"},
    )
    env = await provider.start_environment("python3.12")
    await env.specialize(spec)
    body = json.loads((await env.invoke(make_request())).payload)
    seen = body["env"]
    assert seen["GREETING"] == "hi" and seen["LANG"] == "C"  # user's variables win...
    assert seen["AWS_REGION"] == "eu-west-1" == seen["AWS_DEFAULT_REGION"]  # ...except reserved
    assert seen["_HANDLER"] == "app.handler"
    assert seen["AWS_LAMBDA_FUNCTION_NAME"] == "envy"
    assert seen["AWS_LAMBDA_FUNCTION_VERSION"] == "7"
    assert seen["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] == "512"
    assert seen["AWS_LAMBDA_LOG_GROUP_NAME"] == "/aws/lambda/envy"
    assert seen["AWS_LAMBDA_LOG_STREAM_NAME"].endswith(seen["AWS_LAMBDA_LOG_STREAM_NAME"][-32:])
    assert "[7]" in seen["AWS_LAMBDA_LOG_STREAM_NAME"]
    assert seen["AWS_LAMBDA_INITIALIZATION_TYPE"] == "provisioned-concurrency"
    assert seen["AWS_EXECUTION_ENV"] == "AWS_Lambda_python3.12"
    assert seen["AWS_LAMBDA_RUNTIME_API"] == env.address
    assert seen["TZ"] == ":UTC" and body["tz"] == "UTC"
    assert seen["LAMBDA_TASK_ROOT"] == body["cwd"]
    assert seen["LAMBDA_RUNTIME_DIR"].endswith("kubelambda/runtime")
    assert seen["TMPDIR"].startswith(str(env.work_dir))
    assert seen["PATH"].split(os.pathsep)[0].endswith("opt/bin")
    assert seen["PYTHONPATH"].split(os.pathsep)[0] == seen["LAMBDA_TASK_ROOT"]
    assert "LD_LIBRARY_PATH" in seen
    other = await provider.start_environment("python3.12")
    await other.specialize(spec)
    other_env = json.loads((await other.invoke(make_request())).payload)["env"]
    assert other_env["TMPDIR"] != seen["TMPDIR"]  # each environment has its own /tmp


async def test_layers_are_importable_in_order(provider: ProcessProvider) -> None:
    first = CodeRef(
        inline={
            "python/shared.py": "WHO = 'first'\n",
            "python/onlyfirst.py": "X = 1\n",
            "bin/greet": "#!/bin/sh\necho layer-tool\n",
        }
    )
    second = CodeRef(
        zip_base64=b64(
            zip_bytes(
                {
                    "python/shared.py": "WHO = 'second'\n",
                    "python/lib/python3.12/site-packages/sitepkg/__init__.py": "Y = 2\n",
                }
            )
        )
    )
    code = {
        "app.py": (
            "import shared, onlyfirst, sitepkg, subprocess, sys\n"
            "def handler(event, context):\n"
            "    out = subprocess.run(['greet'], capture_output=True, text=True).stdout.strip()\n"
            "    return [shared.WHO, onlyfirst.X, sitepkg.Y, out, sys.path[:1]]\n"
        )
    }
    spec = make_spec(code, layers=[first, second])
    env = await provider.start_environment("python3.12")
    await env.specialize(spec)
    result = await env.invoke(make_request())
    assert result.function_error is None, result.payload
    who, x, y, tool, head = json.loads(result.payload)
    assert (who, x, y, tool) == ("second", 1, 2, "layer-tool")  # later layers win
    assert Path(head[0]).joinpath("app.py").is_file()  # the task root comes first


async def test_code_folder_in_place_and_user_venv_importable(
    provider: ProcessProvider, tmp_path: Path
) -> None:
    folder = tmp_path / "fn"
    folder.mkdir()
    (folder / "app.py").write_text(
        "import pydantic\ndef handler(event, context):\n    return pydantic.VERSION\n"
    )
    env = await provider.start_environment("python3.12")
    await env.specialize(make_spec(CodeRef(path=str(folder))))
    result = await env.invoke(make_request())
    assert result.function_error is None and json.loads(result.payload)  # from kubelambda's venv
