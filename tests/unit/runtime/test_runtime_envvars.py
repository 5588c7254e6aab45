"""The runtime's environment variables, paths and entry point."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from kubelambda.runtime.envvars import (
    Layout,
    build_environment,
    choose_launch,
    declared_python,
    log_stream_name,
    python_paths,
    python_version_dirs,
    runs_in_process,
)
from kubelambda.runtime.spec import CodeRef, EnvironmentSpec

LAYOUT = Layout(Path("/t"), Path("/o"), Path("/tmpx"), Path("/rt"))


def _spec(**fields: object) -> EnvironmentSpec:
    base: dict[str, object] = {
        "function_name": "fn",
        "function_arn": "arn:aws:lambda:us-east-1:0:function:fn",
        "runtime": "python3.12",
        "handler": "app.handler",
        "code": CodeRef(inline={"app.py": ""}),
    }
    base.update(fields)
    return EnvironmentSpec.model_validate(base)


def _env(spec: EnvironmentSpec, **host: str) -> dict[str, str]:
    return build_environment(
        spec,
        layout=LAYOUT,
        runtime_api="127.0.0.1:9001",
        log_stream="s",
        host_env={"PATH": "/usr/bin:/bin", **host},
        interpreter=(3, 11),
        python_bin_dir="/venv/bin",
    )


def test_lambda_variables() -> None:
    env = _env(_spec(memory_size=256, region="eu-west-1"))
    assert env["_HANDLER"] == "app.handler"
    assert env["AWS_LAMBDA_FUNCTION_NAME"] == "fn"
    assert env["AWS_LAMBDA_FUNCTION_VERSION"] == "$LATEST"
    assert env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] == "256"
    assert env["AWS_LAMBDA_LOG_GROUP_NAME"] == "/aws/lambda/fn"
    assert env["AWS_LAMBDA_LOG_STREAM_NAME"] == "s"
    assert env["AWS_LAMBDA_INITIALIZATION_TYPE"] == "on-demand"
    assert env["AWS_REGION"] == env["AWS_DEFAULT_REGION"] == "eu-west-1"
    assert env["AWS_EXECUTION_ENV"] == "AWS_Lambda_python3.12"
    assert env["AWS_LAMBDA_RUNTIME_API"] == "127.0.0.1:9001"
    assert env["LAMBDA_TASK_ROOT"] == "/t" and env["LAMBDA_RUNTIME_DIR"] == "/rt"
    assert env["TZ"] == ":UTC" and env["TMPDIR"] == "/tmpx"
    assert env["PATH"] == "/o/bin:/venv/bin:/usr/bin:/bin"
    assert env["LD_LIBRARY_PATH"] == "/t:/t/lib:/o/lib"
    assert env["PYTHONPATH"].split(":") == [
        "/t",
        "/o/python/lib/python3.12/site-packages",
        "/o/python/lib/python3.11/site-packages",
        "/o/python",
    ]


def test_user_variables_win_except_reserved_ones() -> None:
    env = _env(_spec(environment={"AWS_REGION": "x", "TZ": "Europe/Paris", "MINE": "1"}))
    assert env["AWS_REGION"] == "us-east-1" and env["TZ"] == "Europe/Paris" and env["MINE"] == "1"


def test_custom_runtimes_and_images_have_no_execution_env() -> None:
    assert "AWS_EXECUTION_ENV" not in _env(_spec(runtime="provided.al2023"))
    assert "PYTHONPATH" not in _env(_spec(runtime="provided.al2023"))
    assert "AWS_EXECUTION_ENV" not in _env(_spec(package_type="Image", image_command=["x"]))


def test_python_paths_and_versions() -> None:
    assert python_version_dirs("python3.11", (3, 11)) == ["python3.11"]
    assert python_version_dirs("provided.al2", (3, 11)) == ["python3.11"]
    assert python_paths(LAYOUT, "python3.12", (3, 11))[0] == "/t"


def test_launch_choice() -> None:
    spec = _spec()
    assert choose_launch(spec, LAYOUT, {}).mode == "python"
    wrapped = choose_launch(spec, LAYOUT, {"AWS_LAMBDA_EXEC_WRAPPER": "/t/w"}, python="/py")
    assert wrapped.mode == "exec" and wrapped.argv[:2] == ["/t/w", "/py"]
    image = _spec(package_type="Image", image_command=["python", "-m", "awslambdaric", "a.b"])
    assert choose_launch(image, LAYOUT, {}).argv == ["python", "-m", "awslambdaric", "a.b"]
    custom = _spec(runtime="provided.al2023")
    found = choose_launch(custom, LAYOUT, {}, is_file=lambda p: p == "/o/bootstrap")
    assert found.argv == ["/o/bootstrap"]
    missing = choose_launch(custom, LAYOUT, {}, is_file=lambda p: False)
    assert missing.mode == "missing" and "/t/bootstrap" in missing.detail


def test_our_bootstrap_runs_in_process_only_where_nothing_else_must_run() -> None:
    """The one decision both anatomies take (the agent's child, the runtime container's shim)."""
    assert runs_in_process(_spec(), {})
    assert not runs_in_process(_spec(), {"AWS_LAMBDA_EXEC_WRAPPER": "/opt/w"})
    assert not runs_in_process(_spec(runtime="provided.al2023"), {})
    assert not runs_in_process(_spec(runtime="nodejs22.x", handler="index.handler"), {})
    image = _spec(package_type="Image", image_command=["python", "-m", "awslambdaric", "a.b"])
    assert not runs_in_process(image, {})


def test_the_declared_python_version() -> None:
    assert declared_python("python3.12", (3, 11)) == (3, 12)
    assert declared_python("python3.9", (3, 11)) == (3, 9)
    assert declared_python("provided.al2023", (3, 11)) == (3, 11)


def test_log_stream_name() -> None:
    name = log_stream_name("$LATEST", datetime(2024, 1, 31), "a" * 32)
    assert name == "2024/01/31/[$LATEST]" + "a" * 32


def test_node_functions_get_lambdas_node_path_and_our_bootstrap() -> None:
    spec = _spec(runtime="nodejs22.x", handler="index.handler")
    env = _env(spec)
    assert env["NODE_PATH"] == "/o/nodejs/node22/node_modules:/o/nodejs/node_modules:/t"
    assert "PYTHONPATH" not in env and env["AWS_EXECUTION_ENV"] == "AWS_Lambda_nodejs22.x"
    launch = choose_launch(spec, LAYOUT, env, node="/usr/bin/node")
    assert launch.mode == "node" and launch.argv[0] == "/usr/bin/node"
    assert launch.argv[1].endswith("kubelambda/runtime/nodejs/bootstrap.mjs")
    assert Path(launch.argv[1]).is_file()
    wrapped = choose_launch(spec, LAYOUT, {**env, "AWS_LAMBDA_EXEC_WRAPPER": "/o/wrap"}, node="n")
    assert wrapped.argv[:2] == ["/o/wrap", "n"]
    missing = choose_launch(spec, LAYOUT, env, node=None)
    assert missing.mode == "missing" and "no `node` on PATH" in missing.detail


def test_log_levels_become_lambdas_variables() -> None:
    assert "AWS_LAMBDA_LOG_LEVEL" not in _env(_spec())
    assert _env(_spec(log_format="JSON"))["AWS_LAMBDA_LOG_LEVEL"] == "INFO"
    json_debug = _env(_spec(log_format="JSON", application_log_level="DEBUG"))
    assert json_debug["AWS_LAMBDA_LOG_LEVEL"] == "DEBUG"
    assert json_debug["AWS_LAMBDA_LOG_FORMAT"] == "JSON"
    # In Text format a user's own variable stands; a configured level wins over it.
    own = _spec(environment={"AWS_LAMBDA_LOG_LEVEL": "WARN"})
    assert _env(own)["AWS_LAMBDA_LOG_LEVEL"] == "WARN"
    both = _spec(
        log_format="JSON", application_log_level="ERROR", environment={"AWS_LAMBDA_LOG_LEVEL": "X"}
    )
    assert _env(both)["AWS_LAMBDA_LOG_LEVEL"] == "ERROR"
