"""Dev mode's log output and `kubelambda logs`: each line names its function and version, the
gateway buffers them per function, and --follow shows the next invocation's lines at once."""

from __future__ import annotations

import json
import re
import subprocess
import time
from pathlib import Path

from tests.component.gateway.conftest import KUBELAMBDA, DevGateway

MANIFESTS = """\
apiVersion: kubelambda.dev/v1alpha1
kind: Function
metadata: {name: hello}
spec: {runtime: python3.12, handler: app.handler, code: {path: ./hello}}
---
apiVersion: kubelambda.dev/v1alpha1
kind: Function
metadata: {name: other, namespace: team-a}
spec: {runtime: python3.12, handler: app.handler, code: {path: ./hello}}
---
apiVersion: kubelambda.dev/v1alpha1
kind: EventSourceMapping
metadata: {name: tick}
spec: {functionName: hello, source: {schedule: {expression: rate(1 minute), timezone: Not/AZone}}}
"""
CODE = "def handler(event, context):\n    print('said', event.get('n'))\n    return event['n']\n"


def _start(tmp_path: Path, *flags: str) -> DevGateway:
    folder = tmp_path / "fns"
    (folder / "hello").mkdir(parents=True)
    (folder / "fns.yaml").write_text(MANIFESTS)
    (folder / "hello" / "app.py").write_text(CODE)
    return DevGateway(folder, *flags)


def _logs(dev: DevGateway, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [KUBELAMBDA, "logs", *args, "--endpoint", dev.url],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_lines_name_their_function_and_logs_reads_them(tmp_path: Path) -> None:
    dev = _start(tmp_path, "--no-reload")
    try:
        client = dev.client()
        first = client.invoke(FunctionName="hello", Payload=b'{"n": 1}')
        request_id = first["ResponseMetadata"]["RequestId"]
        second = client.invoke(FunctionName="team-a.other", Payload=b'{"n": 2}')
        dev.wait_for_log(rf"^\[hello:\$LATEST\] REPORT RequestId: {request_id}")
        # The functions' lines reach the terminal in batches, shortly after their answers.
        other_id = second["ResponseMetadata"]["RequestId"]
        dev.wait_for_log(rf"^\[team-a.other:\$LATEST\] REPORT RequestId: {other_id}")
        log = dev.log()
        assert f"[hello:$LATEST] START RequestId: {request_id} Version: $LATEST" in log
        assert "[hello:$LATEST] said 1" in log
        assert "[team-a.other:$LATEST] said 2" in log
        assert not re.search(r"[0-9a-f]{16}", log.split("ready:")[0].replace(request_id, ""))

        done = _logs(dev, "hello")
        assert done.returncode == 0, done.stderr
        lines = done.stdout.splitlines()
        assert f"[$LATEST] START RequestId: {request_id} Version: $LATEST" in lines
        assert "[$LATEST] said 1" in lines and "[$LATEST] said 2" not in lines
        assert any(line.startswith(f"[$LATEST] REPORT RequestId: {request_id}") for line in lines)
        assert "[$LATEST] said 2" in _logs(dev, "team-a.other").stdout
        assert _logs(dev, "hello", "--since", "1h").stdout == done.stdout
        time.sleep(0.01)  # the lines above are older than "now"; nothing is newer than 0 s ago
        assert _logs(dev, "hello", "--since", "0s").stdout == ""
        bad = _logs(dev, "hello", "--since", "soon")
        assert bad.returncode == 2 and "not a duration" in bad.stderr
        missing = _logs(dev, "nope")
        assert missing.returncode == 1 and "ResourceNotFoundException" in missing.stderr
    finally:
        dev.stop()


def test_follow_shows_the_next_invocation_within_a_second(tmp_path: Path) -> None:
    dev = _start(tmp_path, "--no-reload")
    follower = None
    try:
        client = dev.client()
        client.invoke(FunctionName="hello", Payload=b'{"n": 1}')
        out = tmp_path / "follow.out"
        with out.open("w") as sink:
            follower = subprocess.Popen(
                [KUBELAMBDA, "logs", "hello", "--follow", "--endpoint", dev.url], stdout=sink
            )
        deadline = time.monotonic() + 20
        while "said 1" not in out.read_text():  # the backlog: the follower is connected
            assert time.monotonic() < deadline, "kubelambda logs --follow printed nothing"
            time.sleep(0.02)
        response = client.invoke(FunctionName="hello", Payload=b'{"n": 42}')
        answered = time.monotonic()
        request_id = response["ResponseMetadata"]["RequestId"]
        assert json.loads(response["Payload"].read()) == 42
        # The acceptance bound: the follower prints the invocation's lines within a second.
        while f"REPORT RequestId: {request_id}" not in out.read_text():
            assert time.monotonic() - answered < 1.0, out.read_text()[-2000:]
            time.sleep(0.01)
        text = out.read_text()
        assert f"[$LATEST] START RequestId: {request_id}" in text and "[$LATEST] said 42" in text
    finally:
        if follower is not None:
            follower.terminate()
            follower.wait(timeout=10)
        dev.stop()


def test_a_mappings_problem_is_said_once_across_reloads(tmp_path: Path) -> None:
    dev = _start(tmp_path)
    try:
        manifest = dev.folder / "fns.yaml"
        edits = 0
        deadline = time.monotonic() + 30
        while dev.log().count("reloaded: ") < 2:  # the watcher may start after the ready line
            assert time.monotonic() < deadline, dev.log()[-2000:]
            edits += 1
            manifest.write_text(MANIFESTS + f"# edit {edits}\n")
            time.sleep(0.5)
        assert dev.log().count("is not a known IANA timezone") == 1
    finally:
        dev.stop()
