"""Real brokers for the source tests, each on 127.0.0.1 and free ports, stopped by PID.

- Redis and RabbitMQ from Debian's packages (RabbitMQ with its own epmd on a free port, so
  no daemon outlives the test run), NATS from `tests/component/asyncq/servers.py`;
- Apache Kafka in KRaft mode and ElasticMQ (SQS) from their Maven Central jars, fetched into
  .tools/ by scripts/fetch-brokers.sh and run on the JDK.
"""

from __future__ import annotations

import base64
import glob
import os
import subprocess
import uuid
from pathlib import Path
from typing import Any

from tests.component.asyncq.servers import free_port, port_open, stop_process, wait_until

ROOT = Path(__file__).resolve().parents[3]
TOOLS = ROOT / ".tools"


class Server:
    proc: subprocess.Popen[bytes]
    log_path: Path

    def _start(self, cmd: list[str], log_path: Path, port: int, what: str, **kw: Any) -> None:
        self.log_path = log_path
        self._log = log_path.open("w")
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT, **kw)
        wait_until(lambda: port_open(port) or self.proc.poll() is not None, 90, what)
        assert self.proc.poll() is None, f"{what} exited:\n{log_path.read_text()[-3000:]}"

    def stop(self) -> None:
        stop_process(self.proc, timeout=20)
        self._log.close()


class RedisServer(Server):
    def __init__(self, folder: Path) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        cmd = ["redis-server", "--bind", "127.0.0.1", "--port", str(self.port), "--save", ""]
        cmd += ["--appendonly", "no", "--dir", str(folder)]
        self._start(cmd, folder / "redis.log", self.port, "redis-server")

    def client(self) -> Any:
        import redis

        return redis.Redis.from_url(self.url)


VHOST = "kl-tests"


class RabbitServer(Server):
    def __init__(self, folder: Path) -> None:
        self.port = free_port()
        # The broker's only virtual host is VHOST, not `/`: a mapping reaches the queues only
        # when its `virtualHost` is applied (`broker` is the address without one).
        self.vhost = VHOST
        self.broker = f"amqp://guest:guest@127.0.0.1:{self.port}"
        self.url = f"{self.broker}/{VHOST}"
        epmd_port = free_port()
        (folder / "enabled_plugins").write_text("[].\n")
        (folder / "rabbitmq.conf").write_text(
            f"listeners.tcp.1 = 127.0.0.1:{self.port}\nloopback_users = none\n"
            f"default_vhost = {VHOST}\n"
        )
        env = {
            **os.environ,
            "HOME": str(folder),
            "ERL_EPMD_PORT": str(epmd_port),
            "RABBITMQ_NODENAME": f"kl{self.port}@localhost",
            "RABBITMQ_DIST_PORT": str(free_port()),
            "RABBITMQ_MNESIA_BASE": str(folder / "mnesia"),
            "RABBITMQ_LOG_BASE": str(folder / "log"),
            "RABBITMQ_LOGS": "-",
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(folder / "enabled_plugins"),
            "RABBITMQ_CONFIG_FILE": str(folder / "rabbitmq"),
            "RABBITMQ_PLUGINS_EXPAND_DIR": str(folder / "plugins"),
        }
        # Our own epmd, in the foreground, so it is stopped by PID with the broker.
        self._epmd_log = (folder / "epmd.log").open("w")
        self.epmd = subprocess.Popen(
            ["epmd", "-port", str(epmd_port)], stdout=self._epmd_log, stderr=subprocess.STDOUT
        )
        wait_until(lambda: port_open(epmd_port), 10, "epmd")
        scripts = sorted(glob.glob("/usr/lib/rabbitmq/lib/rabbitmq_server-*/sbin/rabbitmq-server"))
        assert scripts, "rabbitmq-server is not installed (make system-deps)"
        self._start([scripts[-1]], folder / "rabbitmq.log", self.port, "rabbitmq", env=env)

    def stop(self) -> None:
        super().stop()
        stop_process(self.epmd)
        self._epmd_log.close()


def _java() -> str:
    return os.environ.get("JAVA", "java")


class KafkaServer(Server):
    def __init__(self, folder: Path) -> None:
        libs = TOOLS / "kafka" / "libs"
        assert libs.is_dir(), "the Kafka jars are missing (scripts/fetch-brokers.sh)"
        self.port = free_port()
        controller = free_port()
        self.bootstrap = f"127.0.0.1:{self.port}"
        props = folder / "server.properties"
        props.write_text(
            "\n".join(
                [
                    "process.roles=broker,controller",
                    "node.id=1",
                    f"controller.quorum.voters=1@127.0.0.1:{controller}",
                    f"listeners=PLAINTEXT://127.0.0.1:{self.port},"
                    f"CONTROLLER://127.0.0.1:{controller}",
                    f"advertised.listeners=PLAINTEXT://127.0.0.1:{self.port}",
                    "controller.listener.names=CONTROLLER",
                    "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
                    f"log.dirs={folder / 'data'}",
                    "offsets.topic.replication.factor=1",
                    "offsets.topic.num.partitions=4",
                    "transaction.state.log.replication.factor=1",
                    "transaction.state.log.min.isr=1",
                    "group.initial.rebalance.delay.ms=0",
                    "num.partitions=1",
                    "",
                ]
            )
        )
        (folder / "log4j2.properties").write_text(
            "rootLogger.level=WARN\nrootLogger.appenderRef.out.ref=OUT\n"
            "appender.out.type=Console\nappender.out.name=OUT\n"
            "appender.out.layout.type=PatternLayout\nappender.out.layout.pattern=%d %p %c %m%n\n"
        )
        classpath = f"{libs}/*"
        cluster = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        java = [_java(), "-Xms256m", "-Xmx512m", "-XX:+UseSerialGC"]
        java += [f"-Dlog4j2.configurationFile={folder / 'log4j2.properties'}", "-cp", classpath]
        subprocess.run(
            [*java, "kafka.tools.StorageTool", "format", "-t", cluster, "-c", str(props)],
            check=True,
            capture_output=True,
        )
        self._start([*java, "kafka.Kafka", str(props)], folder / "kafka.log", self.port, "kafka")


class ElasticMQServer(Server):
    def __init__(self, folder: Path) -> None:
        libs = TOOLS / "elasticmq" / "libs"
        assert libs.is_dir(), "the ElasticMQ jars are missing (scripts/fetch-brokers.sh)"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        conf = folder / "elasticmq.conf"
        conf.write_text(
            'include classpath("application.conf")\n'
            f"node-address {{ protocol = http, host = 127.0.0.1, port = {self.port}, "
            'context-path = "" }\n'
            f'rest-sqs {{ enabled = true, bind-port = {self.port}, bind-hostname = "127.0.0.1", '
            "sqs-limits = strict }\n"
            "rest-stats { enabled = false }\n"
        )
        # C1 only: on a busy 2-core machine C2's compiler threads cost ElasticMQ more CPU per
        # message than the faster code they bring back (≈1.0 vs ≈0.4 ms per message measured).
        cmd = [_java(), "-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1"]
        cmd += [f"-Dconfig.file={conf}"]
        cmd += ["-cp", f"{libs}/*", "org.elasticmq.server.Main"]
        self._start(cmd, folder / "elasticmq.log", self.port, "elasticmq")

    def client(self) -> Any:
        import boto3

        return boto3.client(
            "sqs",
            endpoint_url=self.url,
            region_name="us-east-1",
            aws_access_key_id="test",
            aws_secret_access_key="test",
        )
