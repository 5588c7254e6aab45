"""Our Node.js bootstrap on a real `node`: ES modules and CommonJS, async and callback handlers,
the context object, Lambda's error shapes and init errors, console levels, timeouts."""

from __future__ import annotations

import json
import re
import shutil
from typing import Any

import pytest

from kubelambda.runtime.provider import ProcessProvider
from kubelambda.runtime.spec import EnvState
from kubelambda.runtime.toolchains import find_node

from .helpers import gone, make_request, make_spec, wait_until


@pytest.fixture(autouse=True)
def node_on_path() -> None:
    # `make pytest` installs Debian's nodejs when it is missing: its absence is a broken setup.
    assert find_node() is not None, "no `node` on PATH; run `make system-deps`"


CONTEXT = """
export const handler = async (event, context) => ({
  event,
  functionName: context.functionName,
  functionVersion: context.functionVersion,
  invokedFunctionArn: context.invokedFunctionArn,
  memoryLimitInMB: context.memoryLimitInMB,
  awsRequestId: context.awsRequestId,
  logGroupName: context.logGroupName,
  logStreamName: context.logStreamName,
  remaining: context.getRemainingTimeInMillis(),
  waits: context.callbackWaitsForEmptyEventLoop,
  clientContext: context.clientContext,
  identity: context.identity,
  handlerEnv: process.env._HANDLER,
  taskRoot: process.env.LAMBDA_TASK_ROOT,
  executionEnv: process.env.AWS_EXECUTION_ENV,
  nodePath: process.env.NODE_PATH,
});
"""


async def _invoke(
    provider: ProcessProvider, files: dict[str, str], handler: str, **fields: Any
) -> tuple[Any, Any]:
    runtime = fields.pop("runtime", "nodejs20.x")
    request_fields = fields.pop("request", {})
    env = await provider.start_environment(runtime)
    await env.specialize(make_spec(files, runtime=runtime, handler=handler, **fields))
    payload = request_fields.pop("payload", b'{"name": "node"}')
    result = await env.invoke(make_request(payload, **request_fields))
    return env, result


async def test_esm_async_handler_and_the_context_object(provider: ProcessProvider) -> None:
    import base64

    client_context = base64.b64encode(json.dumps({"custom": {"k": "v"}}).encode()).decode()
    env, result = await _invoke(
        provider,
        {"index.mjs": CONTEXT},
        "index.handler",
        memory_size=256,
        timeout=5.0,
        request={"client_context": client_context},
    )
    assert result.function_error is None
    body = json.loads(result.payload)
    assert body["event"] == {"name": "node"}
    assert body["functionName"] == "hello" and body["functionVersion"] == "$LATEST"
    assert body["invokedFunctionArn"].endswith(":function:hello")
    assert body["memoryLimitInMB"] == "256"
    assert re.fullmatch(r"req-\d{4}-0000-0000-0000-000000000000", body["awsRequestId"])
    assert body["logGroupName"] == "/aws/lambda/hello"
    assert re.fullmatch(r"\d{4}/\d\d/\d\d/\[\$LATEST\][0-9a-f]{32}", body["logStreamName"])
    assert 0 < body["remaining"] <= 5000
    assert body["waits"] is True
    assert body["clientContext"] == {"custom": {"k": "v"}}
    assert body["handlerEnv"] == "index.handler"
    assert body["executionEnv"] == "AWS_Lambda_nodejs20.x"
    assert body["nodePath"].split(":")[-1] == body["taskRoot"]
    assert result.init_duration_ms is not None
    again = await env.invoke(make_request(b'{"n": 2}'))
    assert json.loads(again.payload)["event"] == {"n": 2} and again.init_duration_ms is None


async def test_commonjs_callback_waits_for_the_event_loop(
    provider: ProcessProvider, logs: list[str]
) -> None:
    code = {
        "app.js": (
            "exports.handler = function (event, context, callback) {\n"
            "  setTimeout(() => console.log('timer fired'), 100);\n"
            "  callback(null, {cb: event.name});\n"
            "};\n"
        ),
        "nowait.cjs": (
            "exports.handler = (event, context, callback) => {\n"
            "  context.callbackWaitsForEmptyEventLoop = false;\n"
            "  setTimeout(() => console.log('after the response'), 2000);\n"
            "  callback(null, 'quick');\n"
            "};\n"
        ),
    }
    _, result = await _invoke(provider, code, "app.handler")
    assert json.loads(result.payload) == {"cb": "node"}
    # Waiting for the empty event loop: the timer's line is this invocation's, before END.
    lines = [line for line in logs if "timer fired" in line or line.startswith("END")]
    assert "timer fired" in lines[0] and lines[1].startswith("END")
    assert result.duration_ms >= 100
    _, quick = await _invoke(provider, code, "nowait.handler")
    assert json.loads(quick.payload) == "quick" and quick.duration_ms < 1500


async def test_module_kinds_and_nested_handlers(provider: ProcessProvider) -> None:
    code = {
        "package.json": '{"type": "module"}',
        "src/esm.js": "export const handlers = {main: async (e) => ({esm: e.name})};\n",
        "legacy.cjs": "module.exports.handler = async () => 'cjs';\n",
        "sync.mjs": "export function handler(event) { return {sync: true}; }\n",
    }
    _, esm = await _invoke(provider, code, "src/esm.handlers.main")
    assert json.loads(esm.payload) == {"esm": "node"}
    _, cjs = await _invoke(provider, code, "legacy.handler")
    assert json.loads(cjs.payload) == "cjs"
    # A sync handler that neither returns a promise nor calls back answers null.
    _, sync = await _invoke(provider, code, "sync.handler")
    assert sync.function_error is None and json.loads(sync.payload) is None


async def test_errors_have_lambdas_shape_in_the_response_and_the_log(
    provider: ProcessProvider, logs: list[str]
) -> None:
    code = {
        "index.mjs": (
            "export const handler = async () => {\n"
            "  const error = new TypeError('bad input');\n"
            "  error.code = 'E_BAD';\n"
            "  throw error;\n"
            "};\n"
            "export const cb = (e, c, callback) => callback('just a string');\n"
        )
    }
    _, result = await _invoke(provider, code, "index.handler")
    assert result.function_error == "Unhandled"
    error = json.loads(result.payload)
    assert set(error) == {"errorType", "errorMessage", "trace"}
    assert error["errorType"] == "TypeError" and error["errorMessage"] == "bad input"
    assert error["trace"][0] == "TypeError: bad input"
    assert any("index.mjs:2" in frame for frame in error["trace"][1:])
    logged = next(line for line in logs if "\tERROR\tInvoke Error \t" in line)
    record = json.loads(logged.split("Invoke Error \t", 1)[1])
    assert record["errorType"] == "TypeError" and record["code"] == "E_BAD"
    assert record["stack"][0] == "TypeError: bad input"
    _, plain = await _invoke(provider, code, "index.cb")
    assert json.loads(plain.payload) == {
        "errorType": "string",
        "errorMessage": "just a string",
        "trace": [],
    }


@pytest.mark.parametrize(
    ("files", "handler", "error_type", "message"),
    [
        ({"index.mjs": ""}, "missing.handler", "Runtime.ImportModuleError", "Cannot find module"),
        (
            {"index.mjs": "export const a = 1;"},
            "index.handler",
            "Runtime.HandlerNotFound",
            "index.handler is undefined or not exported",
        ),
        (
            {"index.mjs": "export const handler = 1;"},
            "index.handler",
            "Runtime.HandlerNotFound",
            "index.handler is not a function",
        ),
        ({"index.mjs": ""}, "index", "Runtime.MalformedHandlerName", "Bad handler"),
        (
            {"index.mjs": ""},
            "../index.handler",
            "Runtime.MalformedHandlerName",
            "not a valid handler name",
        ),
        (
            {"index.js": "exports.handler = async () => {"},
            "index.handler",
            "Runtime.UserCodeSyntaxError",
            "SyntaxError",
        ),
        (
            {"index.mjs": "import 'no-such-package';\nexport const handler = 1;"},
            "index.handler",
            "Runtime.ImportModuleError",
            "no-such-package",
        ),
    ],
)
async def test_init_errors_are_lambdas_runtime_errors(
    provider: ProcessProvider,
    logs: list[str],
    files: dict[str, str],
    handler: str,
    error_type: str,
    message: str,
) -> None:
    env, result = await _invoke(provider, files, handler)
    assert result.function_error == "Unhandled"
    error = json.loads(result.payload)
    assert error["errorType"] == error_type and message in error["errorMessage"]
    assert isinstance(error["trace"], list)
    assert any("\tundefined\tERROR\tUncaught Exception \t" in line for line in logs)
    assert any(line.startswith("INIT_REPORT") and error_type in line for line in logs)
    again = await env.invoke(make_request())  # a failed init runs again for each invoke
    assert json.loads(again.payload)["errorType"] == error_type


async def test_nodejs24_refuses_callback_handlers(provider: ProcessProvider) -> None:
    code = {"index.js": "exports.handler = (event, context, callback) => callback(null, 1);\n"}
    _, refused = await _invoke(provider, code, "index.handler", runtime="nodejs24.x")
    error = json.loads(refused.payload)
    assert error["errorType"] == "Runtime.CallbackHandlerDeprecated"
    assert "Node.js 24" in error["errorMessage"]
    _, allowed = await _invoke(provider, code, "index.handler", runtime="nodejs22.x")
    assert json.loads(allowed.payload) == 1


async def test_uncaught_exception_fails_the_invoke_and_resets(provider: ProcessProvider) -> None:
    code = {
        "index.mjs": (
            "export const handler = async (event) => {\n"
            "  if (event.crash) setImmediate(() => { throw new RangeError('async crash'); });\n"
            "  if (event.reject) Promise.reject(new Error('nobody catches me'));\n"
            "  await new Promise((resolve) => setTimeout(resolve, 200));\n"
            "  return process.pid;\n"
            "};\n"
        )
    }
    env, first = await _invoke(provider, code, "index.handler", request={"payload": b"{}"})
    pid = json.loads(first.payload)
    crash = await env.invoke(make_request(b'{"crash": true}'))
    assert json.loads(crash.payload)["errorType"] == "RangeError"
    # The runtime posts the error, then exits (129); a fresh one serves the next call. (Its exit
    # is seen when the agent's loop handles it: wait for the replacement, then for its init.)
    await wait_until(lambda: gone(pid) and env.pid not in (None, pid))
    await wait_until(lambda: env.state == EnvState.READY)
    rejected = await env.invoke(make_request(b'{"reject": true}'))
    error = json.loads(rejected.payload)
    assert error["errorType"] == "Runtime.UnhandledPromiseRejection"
    assert "nobody catches me" in error["errorMessage"]
    second = env.pid
    assert second is not None and second != pid
    await wait_until(lambda: gone(second) and env.pid not in (None, second))
    await wait_until(lambda: env.state == EnvState.READY)
    after = await env.invoke(make_request(b"{}"))
    assert after.function_error is None and json.loads(after.payload) not in (pid, second)


async def test_timeout_kills_the_node_runtime(provider: ProcessProvider, logs: list[str]) -> None:
    code = {
        "index.mjs": "export const handler = () => new Promise(() => setInterval(() => {}, 1000));"
    }
    _, result = await _invoke(provider, code, "index.handler", timeout=1.0)
    assert result.function_error == "Unhandled"
    assert json.loads(result.payload)["errorType"] == "Sandbox.Timedout"
    assert any(line.endswith("Task timed out after 1.00 seconds") for line in logs)
    assert any(line.startswith("REPORT") and "Status: timeout" in line for line in logs)


LEVELS = """
export const handler = async () => {
  console.trace('t-line'); console.debug('d-line'); console.info('i-line');
  console.log('l-line', {n: 1}); console.warn('w-line'); console.error('e-line');
  console.log('multi\\nline');
  return 'ok';
};
"""


def _app_lines(logs: list[str]) -> list[str]:
    return [
        line for line in logs if not line.startswith(("START", "END", "REPORT", "INIT", '{"time'))
    ]


async def test_console_text_format_and_levels(provider: ProcessProvider, logs: list[str]) -> None:
    await _invoke(provider, {"index.mjs": LEVELS}, "index.handler")
    lines = _app_lines(logs)
    levels = [line.split("\t")[2] for line in lines]
    assert levels == ["TRACE", "DEBUG", "INFO", "INFO", "WARN", "ERROR", "INFO"]
    assert lines[3].endswith("\tINFO\tl-line { n: 1 }")
    assert lines[6].endswith("\tmulti\rline")  # one record per line, as Lambda writes it
    assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z\treq-", lines[0])
    logs.clear()
    # A variable the user sets is honoured in Text format too (as Lambda's runtime does).
    await _invoke(
        provider,
        {"index.mjs": LEVELS},
        "index.handler",
        environment={"AWS_LAMBDA_LOG_LEVEL": "WARN"},
    )
    assert [line.split("\t")[2] for line in _app_lines(logs)] == ["WARN", "ERROR"]


async def test_console_json_format_and_levels(provider: ProcessProvider, logs: list[str]) -> None:
    await _invoke(
        provider,
        {"index.mjs": LEVELS},
        "index.handler",
        log_format="JSON",
        application_log_level="DEBUG",
    )
    records = [json.loads(line) for line in logs if line.startswith('{"timestamp"')]
    assert [r["level"] for r in records] == ["DEBUG", "INFO", "INFO", "WARN", "ERROR", "INFO"]
    assert records[2]["message"] == "l-line { n: 1 }"
    assert set(records[0]) == {"timestamp", "level", "requestId", "message"}
    assert records[0]["requestId"].startswith("req-")
    logs.clear()
    # JSON with no level set: Lambda's default is INFO.
    await _invoke(provider, {"index.mjs": LEVELS}, "index.handler", log_format="JSON")
    records = [json.loads(line) for line in logs if line.startswith('{"timestamp"')]
    assert [r["level"] for r in records] == ["INFO", "INFO", "WARN", "ERROR", "INFO"]
    logs.clear()
    await _invoke(
        provider,
        {"index.mjs": "export const handler = async () => { throw new Error('json boom'); };"},
        "index.handler",
        log_format="JSON",
        application_log_level="WARN",
    )
    record = next(json.loads(line) for line in logs if line.startswith('{"timestamp"'))
    assert record["level"] == "ERROR"
    error = record["message"]  # an Error logged alone becomes the message, as in Lambda
    assert error["errorType"] == "Error" and error["errorMessage"] == "json boom"
    assert error["stackTrace"][0] == "Error: json boom"


def test_node_is_found_the_way_dev_mode_looks_for_it() -> None:
    assert find_node() in (shutil.which("node"), shutil.which("nodejs"))
