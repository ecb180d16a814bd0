"""A local, single-node Apache Kafka broker (KRaft) run from the official jars.

No Docker: the jars come from Maven Central through the shipped `kafka-pom.xml`
(`bus.adapters.resources.kafka_pom`, run as `mvn dependency:copy-dependencies`), are cached once per machine,
and the broker runs as `java -cp 'libs/*' kafka.Kafka server.properties`.
Everything the broker writes (data, logs, pid) lives under one directory.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from bus.adapters.private_file import write_private
from bus.adapters.resources import as_path, kafka_pom
from bus.errors import BrokerError

KAFKA_VERSION = "4.1.0"
DEFAULT_HEAP = "512m"
DEFAULT_PORT = 9092
ADMIN_USER = "admin"
LISTENERS_FILE = "listeners.json"

Echo = Callable[[str], object]
"""Where progress messages go (print, or the CLI's stderr console)."""


def jar_cache_dir() -> Path:
    base = os.environ.get("BUS_KAFKA_CACHE") or Path.home() / ".cache" / "epa-bus"
    return Path(base) / f"kafka-{KAFKA_VERSION}" / "libs"


def ensure_jars(echo: Echo = print) -> Path:
    """Fetch the Kafka jars with Maven on first use; return the libs directory."""
    libs = jar_cache_dir()
    marker = libs / ".complete"
    if marker.exists():
        return libs
    if shutil.which("mvn") is None:
        raise BrokerError("Maven (mvn) is needed once to fetch the Apache Kafka jars")
    if shutil.which("java") is None:
        raise BrokerError("Java 17+ is needed to run the Apache Kafka broker")
    echo(f"fetching Apache Kafka {KAFKA_VERSION} jars from Maven Central into {libs} ...")
    libs.mkdir(parents=True, exist_ok=True)
    with as_path(kafka_pom()) as pom:
        cmd = [
            "mvn", "-q", "-B", "-f", str(pom), "dependency:copy-dependencies",
            f"-DoutputDirectory={libs}", "-DincludeScope=runtime",
            f"-Dkafka.version={KAFKA_VERSION}",
        ]
        result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        raise BrokerError(f"mvn failed ({result.returncode}):\n{result.stdout}{result.stderr}")
    marker.write_text(KAFKA_VERSION)
    return libs


def port_is_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class Listeners:
    """Where a broker started from a directory listens, recorded there by `start`.

    `bus broker status|stop|start --dir D` read it back, so an operator need not repeat
    the `--port` the broker was started with (and a cluster restarts a dead node on the
    ports its peers expect).
    """

    host: str
    port: int
    controller_port: int
    tls_port: int = 0

    def save(self, directory: Path) -> None:
        (directory / LISTENERS_FILE).write_text(json.dumps(self.__dict__, indent=2) + "\n")

    @classmethod
    def load(cls, directory: Path) -> Listeners | None:
        """What `start` recorded in `directory`, or None if nothing (readable) is there."""
        try:
            data = json.loads((Path(directory) / LISTENERS_FILE).read_text())
            return cls(host=str(data["host"]), port=int(data["port"]),
                       controller_port=int(data["controller_port"]), tls_port=int(data.get("tls_port", 0)))
        except (OSError, ValueError, KeyError, TypeError):
            return None


def recorded_broker(directory: Path, port: int | None = None, *, secure: bool = False, tls: bool = False,
                    heap: str = DEFAULT_HEAP) -> LocalBroker:
    """The broker of `directory` on the ports it was last started with; on `port` if one is
    given, or on 9092 when nothing was recorded."""
    recorded = Listeners.load(Path(directory)) if port is None else None
    if recorded is None:
        return LocalBroker(Path(directory), port=port or DEFAULT_PORT, secure=secure, tls=tls, heap=heap)
    return LocalBroker(Path(directory), host=recorded.host, port=recorded.port,
                       controller_port=recorded.controller_port, tls_port=recorded.tls_port,
                       secure=secure, tls=tls, heap=heap)


@dataclass
class LocalBroker:
    """One KRaft node acting as both broker and controller, on loopback."""

    directory: Path
    port: int = DEFAULT_PORT
    secure: bool = False
    heap: str = DEFAULT_HEAP
    host: str = "127.0.0.1"
    controller_port: int = field(default=0)
    tls: bool = False
    """Also listen with TLS (SASL_SSL if secure, else SSL) on `tls_port`; see tls_certs."""
    tls_port: int = 0

    def __post_init__(self) -> None:
        self.directory = Path(self.directory).resolve()
        if not self.controller_port:
            self.controller_port = self.port + 1
        if self.tls and not self.tls_port:
            self.tls_port = self.port + 2

    # paths -----------------------------------------------------------------
    @property
    def data_dir(self) -> Path:
        return self.directory / "data"

    @property
    def log_file(self) -> Path:
        return self.directory / "logs" / "server.log"

    @property
    def pid_file(self) -> Path:
        return self.directory / "broker.pid"

    @property
    def admin_password_file(self) -> Path:
        return self.directory / "admin.password"

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    # configuration ---------------------------------------------------------
    def _server_properties(self) -> str:
        proto = "SASL_PLAINTEXT" if self.secure else "PLAINTEXT"
        lines = [
            "process.roles=broker,controller",
            "node.id=1",
            f"controller.quorum.bootstrap.servers={self.host}:{self.controller_port}",
            f"listeners=CLIENT://{self.host}:{self.port},CONTROLLER://{self.host}:{self.controller_port}",
            f"advertised.listeners=CLIENT://{self.host}:{self.port}",
            "controller.listener.names=CONTROLLER",
            f"listener.security.protocol.map=CLIENT:{proto},CONTROLLER:PLAINTEXT",
            "inter.broker.listener.name=CLIENT",
            f"log.dirs={self.data_dir}",
            "num.partitions=6",
            "offsets.topic.replication.factor=1",
            "offsets.topic.num.partitions=6",
            "transaction.state.log.replication.factor=1",
            "transaction.state.log.min.isr=1",
            "transaction.state.log.num.partitions=6",
            "min.insync.replicas=1",
            "default.replication.factor=1",
            "group.initial.rebalance.delay.ms=0",
            "auto.create.topics.enable=false",
            "log.retention.hours=168",
            "transaction.max.timeout.ms=900000",
        ]
        if self.secure:
            password = self.admin_password()
            jaas = (
                "org.apache.kafka.common.security.scram.ScramLoginModule required "
                f'username="{ADMIN_USER}" password="{password}";'
            )
            lines += [
                "sasl.enabled.mechanisms=SCRAM-SHA-512",
                "sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512",
                f"listener.name.client.scram-sha-512.sasl.jaas.config={jaas}",
                "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer",
                "allow.everyone.if.no.acl.found=false",
                # The controller listener is loopback-only PLAINTEXT: its peer is this node.
                f"super.users=User:{ADMIN_USER};User:ANONYMOUS",
            ]
        if self.tls:
            lines = self._with_tls_listener(lines)
        return "\n".join(lines) + "\n"

    # TLS listener (optional) -----------------------------------------------
    @property
    def tls_dir(self) -> Path:
        return self.directory / "tls"

    @property
    def ca_file(self) -> Path:
        """What TLS clients pass as `--ssl-cafile`."""
        return self.tls_dir / "ca.pem"

    @property
    def tls_bootstrap(self) -> str:
        return f"{self.host}:{self.tls_port}"

    def _with_tls_listener(self, lines: list[str]) -> list[str]:
        """Add a TLS listener next to CLIENT; certificates are made once (bus.adapters.tls_certs)."""
        from bus.adapters.tls_certs import ensure_certificates

        files = ensure_certificates(self.tls_dir, [self.host, "localhost"])
        proto = "SASL_SSL" if self.secure else "SSL"
        tls = f"TLS://{self.host}:{self.tls_port}"
        extra = {
            "listeners=": f"listeners=CLIENT://{self.host}:{self.port},{tls},"
                          f"CONTROLLER://{self.host}:{self.controller_port}",
            "advertised.listeners=": f"advertised.listeners=CLIENT://{self.host}:{self.port},{tls}",
            "listener.security.protocol.map=": lines[next(
                i for i, x in enumerate(lines) if x.startswith("listener.security.protocol.map="))
            ] + f",TLS:{proto}",
        }
        out = [next((v for k, v in extra.items() if line.startswith(k)), line) for line in lines]
        out += [
            "listener.name.tls.ssl.keystore.type=PEM",
            f"listener.name.tls.ssl.keystore.location={files.keystore}",
            "listener.name.tls.ssl.client.auth=none",
            "listener.name.tls.ssl.enabled.protocols=TLSv1.3,TLSv1.2",
        ]
        if self.secure:
            jaas = next(x for x in lines if x.startswith("listener.name.client.scram-sha-512."))
            out.append(jaas.replace("listener.name.client.", "listener.name.tls.", 1))
        return out

    def _log4j_properties(self) -> str:
        return "\n".join([
            "status = warn",
            "appender.file.type = RollingFile",
            "appender.file.name = file",
            f"appender.file.fileName = {self.log_file}",
            f"appender.file.filePattern = {self.log_file}.%i",
            "appender.file.layout.type = PatternLayout",
            "appender.file.layout.pattern = [%d] %p %m (%c)%n",
            "appender.file.policies.type = Policies",
            "appender.file.policies.size.type = SizeBasedTriggeringPolicy",
            "appender.file.policies.size.size = 20MB",
            "appender.file.strategy.type = DefaultRolloverStrategy",
            "appender.file.strategy.max = 3",
            "rootLogger.level = INFO",
            "rootLogger.appenderRef.file.ref = file",
            "logger.kafka.name = kafka",
            "logger.kafka.level = INFO",
            "logger.state.name = state.change.logger",
            "logger.state.level = WARN",
            "",
        ])

    def admin_password(self) -> str:
        """The SCRAM admin password, created once per broker directory (0600)."""
        if self.admin_password_file.exists():
            return self.admin_password_file.read_text().strip()
        self._make_directory()
        password = secrets.token_urlsafe(24)
        write_private(self.admin_password_file, password + "\n")
        return password

    def _make_directory(self) -> None:
        """Owner-only when we create it: the data holds SCRAM credentials, the config a password."""
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)

    @property
    def properties_file(self) -> Path:
        return self.directory / "server.properties"

    def write_config(self) -> Path:
        """Write server.properties (0600: with --secure it holds the admin password), the log
        configuration and the listeners record; return the properties file."""
        self._make_directory()
        (self.directory / "logs").mkdir(parents=True, exist_ok=True)
        write_private(self.properties_file, self._server_properties())
        (self.directory / "log4j2.properties").write_text(self._log4j_properties())
        Listeners(self.host, self.port, self.controller_port, self.tls_port).save(self.directory)
        return self.properties_file

    def _java(self, libs: Path, main: str, *args: str, heap: str = "256m") -> list[str]:
        return [
            "java", f"-Xmx{heap}", f"-Xms{min_heap(heap)}", "-XX:+UseG1GC",
            "-XX:MaxGCPauseMillis=20", "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={self.directory / 'log4j2.properties'}",
            "-cp", f"{libs}/*", main, *args,
        ]

    # lifecycle -------------------------------------------------------------
    def pid(self) -> int | None:
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            return pid
        return pid

    def is_running(self) -> bool:
        return self.pid() is not None

    def start(self, timeout: float = 90.0, echo: Echo = print) -> None:
        """Format storage on first start, launch the JVM, wait until it answers."""
        if self.is_running():
            echo(f"broker already running (pid {self.pid()}) at {self.bootstrap}")
            return
        proc, since = self._launch(echo)
        self._await_started(proc, since, timeout)

    def _launch(self, echo: Echo = print) -> tuple[subprocess.Popen[bytes], int]:
        """Write config, format if new, spawn the JVM; return it and the log size before it ran.

        Split from waiting so that a cluster can launch every node before any of them
        can finish starting (a node needs a controller quorum to come up).
        """
        if port_is_open(self.host, self.port):
            raise BrokerError(f"port {self.port} is already in use by another process")
        libs = ensure_jars(echo)
        props = self.write_config()
        if not (self.data_dir / "meta.properties").exists():
            self.format_storage(libs, props)
        since = self.log_file.stat().st_size if self.log_file.exists() else 0
        stdout = open(self.directory / "logs" / "stdout.log", "ab")  # noqa: SIM115
        proc = subprocess.Popen(
            self._java(libs, "kafka.Kafka", str(props), heap=self.heap),
            stdout=stdout, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            cwd=self.directory, start_new_session=True,
        )
        stdout.close()
        self.pid_file.write_text(f"{proc.pid}\n")
        return proc, since

    def _await_started(self, proc: subprocess.Popen[bytes], since: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                self.pid_file.unlink(missing_ok=True)
                raise BrokerError(
                    f"broker exited with code {proc.returncode}; see {self.log_file} and "
                    f"{self.directory / 'logs' / 'stdout.log'}"
                )
            if port_is_open(self.host, self.port) and self._log_says_started(since):
                return
            time.sleep(0.3)
        self.stop()
        raise BrokerError(f"broker did not start within {timeout:.0f}s; see {self.log_file}")

    def _log_says_started(self, since: int = 0) -> bool:
        """Only log lines written since `since` count: a restarted node's old log says it too."""
        try:
            with open(self.log_file, "rb") as fh:
                if fh.seek(0, os.SEEK_END) < since:
                    since = 0  # rolled over meanwhile
                fh.seek(since)
                return b"Kafka Server started" in fh.read()
        except OSError:
            return False

    def format_storage(self, libs: Path, props: Path, cluster_id: str | None = None, standalone: bool = True) -> None:
        """Format the node's KRaft storage (Kafka's StorageTool), with a fresh cluster id unless given.

        Runs once before the first start; with `--secure` it also records the admin's SCRAM
        credential, which KRaft can only learn at format time.
        """
        # `--cluster-id=ID` in one token: an id may begin with "-", which argparse takes for an option.
        args = ["format", *(["--standalone"] if standalone else []), f"--cluster-id={cluster_id or base64_uuid()}",
                f"--config={props}"]
        if self.secure:
            args += ["--add-scram", f"SCRAM-SHA-512=[name={ADMIN_USER},password={self.admin_password()}]"]
        result = subprocess.run(
            self._java(libs, "kafka.tools.StorageTool", *args), capture_output=True, text=True
        )
        if result.returncode != 0:
            raise BrokerError(f"formatting storage failed:\n{result.stdout}{result.stderr}")

    def stop(self, timeout: float = 30.0) -> bool:
        """SIGTERM (clean shutdown), SIGKILL if it lingers; True if a broker was stopped."""
        pid = self.pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return False
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not _alive(pid):
                break
            time.sleep(0.2)
        else:
            os.kill(pid, signal.SIGKILL)
        self.pid_file.unlink(missing_ok=True)
        return True



CLUSTER_HEAP = "384m"
CLUSTER_MARKER = "cluster.nodes"


@dataclass
class _ClusterNode(LocalBroker):
    """One member of a LocalCluster: static controller voters, replicated internal topics."""

    node_id: int = 1
    voters: str = ""
    cluster_id: str = ""
    replication: int = 3

    def _server_properties(self) -> str:
        rf, isr = str(self.replication), str(min(2, self.replication))
        overrides = {
            "node.id": str(self.node_id), "offsets.topic.replication.factor": rf,
            "transaction.state.log.replication.factor": rf, "transaction.state.log.min.isr": isr,
            "min.insync.replicas": isr, "default.replication.factor": rf,
        }
        lines = []
        for line in super()._server_properties().splitlines():
            key = line.split("=", 1)[0]
            if key == "controller.quorum.bootstrap.servers":
                line = f"controller.quorum.voters={self.voters}"
            elif key in overrides:
                line = f"{key}={overrides[key]}"
            lines.append(line)
        # Fence a dead node after 6 s rather than 9 s so fault tests fail over sooner.
        lines += ["broker.heartbeat.interval.ms=1000", "broker.session.timeout.ms=6000"]
        return "\n".join(lines) + "\n"

    def format_storage(self, libs: Path, props: Path, cluster_id: str | None = None, standalone: bool = True) -> None:
        # Static voters: every node is formatted with the same cluster id, no --standalone.
        super().format_storage(libs, props, cluster_id=self.cluster_id, standalone=False)


class LocalCluster:
    """N combined broker+controller KRaft nodes on loopback, for fault-tolerance tests.

    Each node lives in `<directory>/node-<id>` with its own client and controller port;
    the controller quorum is static (`controller.quorum.voters`). Internal topics use
    replication `min(3, nodes)` and min ISR 2, so one node may die without losing writes.
    """

    def __init__(self, directory: Path, nodes: int = 3, *, ports: list[int] | None = None,
                 controller_ports: list[int] | None = None, base_port: int = 9092,
                 heap: str = CLUSTER_HEAP, host: str = "127.0.0.1") -> None:
        self.directory = Path(directory).resolve()
        ports = ports or [base_port + 2 * i for i in range(nodes)]
        controller_ports = controller_ports or [p + 1 for p in ports]
        if len(ports) != nodes or len(controller_ports) != nodes:
            raise BrokerError(f"need {nodes} client and controller ports")
        voters = ",".join(f"{i + 1}@{host}:{cp}" for i, cp in enumerate(controller_ports))
        cluster_id = self._cluster_id()
        self.nodes = [
            _ClusterNode(self.directory / f"node-{i + 1}", port=ports[i], controller_port=controller_ports[i],
                         heap=heap, host=host, node_id=i + 1, voters=voters, cluster_id=cluster_id,
                         replication=min(3, nodes))
            for i in range(nodes)
        ]

    def _cluster_id(self) -> str:
        """The cluster id is kept next to the nodes so a restarted cluster reuses its storage."""
        path = self.directory / "cluster.id"
        if path.exists():
            return path.read_text().strip()
        self.directory.mkdir(parents=True, exist_ok=True)
        cluster_id = base64_uuid()
        path.write_text(cluster_id + "\n")
        return cluster_id

    @property
    def bootstrap(self) -> str:
        return ",".join(n.bootstrap for n in self.nodes)

    def node(self, node_id: int) -> _ClusterNode:
        return self.nodes[node_id - 1]

    def is_running(self) -> bool:
        return any(n.is_running() for n in self.nodes)

    @classmethod
    def recorded(cls, directory: Path, nodes: int, *, heap: str = CLUSTER_HEAP) -> LocalCluster | None:
        """The cluster of `directory` on the ports its nodes were last started with, if every
        node recorded them (see `Listeners`); None otherwise."""
        directory = Path(directory)
        found = [Listeners.load(directory / f"node-{i + 1}") for i in range(nodes)]
        listeners = [x for x in found if x is not None]
        if len(listeners) != nodes or len({x.host for x in listeners}) != 1:
            return None
        return cls(directory, nodes, ports=[x.port for x in listeners],
                   controller_ports=[x.controller_port for x in listeners], heap=heap, host=listeners[0].host)

    def start(self, timeout: float = 120.0, echo: Echo = print) -> list[int]:
        """Launch every node that is not running, then wait for each; return their ids.

        On a fresh cluster that is every node (launched before any is awaited: none can
        finish starting alone, it needs a quorum); on a running one, the dead nodes, which
        rejoin on the ports and storage they had. If a launched node fails to start, only
        the launched nodes are stopped: the live ones keep serving.
        """
        (self.directory / CLUSTER_MARKER).write_text(f"{len(self.nodes)}\n")
        launched: list[tuple[_ClusterNode, subprocess.Popen[bytes], int]] = []
        try:
            self._format_new_nodes(echo)
            for n in self.nodes:
                if not n.is_running():
                    launched.append((n, *n._launch(echo)))
            deadline = time.monotonic() + timeout
            for n, proc, since in launched:
                n._await_started(proc, since, max(1.0, deadline - time.monotonic()))
        except BaseException:
            self._stop_nodes([n for n, _, _ in launched], timeout=30.0)
            if not self.is_running():
                forget_cluster(self.directory)
            raise
        return [n.node_id for n, _, _ in launched]

    def _format_new_nodes(self, echo: Echo) -> None:
        """Format the storage of every node that has none, all at once.

        Each format is a JVM run of several seconds; one after the other they made up a
        third of a fresh cluster's start. A node whose port is taken is left to `_launch`,
        which refuses it before anything is written.
        """
        new = [n for n in self.nodes if not n.is_running() and not (n.data_dir / "meta.properties").exists()
               and not port_is_open(n.host, n.port)]
        if not new:
            return
        libs = ensure_jars(echo)
        with ThreadPoolExecutor(max_workers=len(new)) as pool:
            for done in [pool.submit(n.format_storage, libs, n.write_config()) for n in new]:
                done.result()

    def stop(self, timeout: float = 30.0) -> bool:
        """Stop every node (clean shutdown, SIGKILL if it lingers); True if any was running."""
        stopped = self._stop_nodes(self.nodes, timeout)
        forget_cluster(self.directory)
        return stopped

    @staticmethod
    def _stop_nodes(nodes: list[_ClusterNode], timeout: float) -> bool:
        # All at once: stopped one by one, the last node would wait for a lost quorum.
        pids = [(n, n.pid()) for n in nodes]
        for _, pid in pids:
            if pid is not None:
                os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while any(p is not None and _alive(p) for _, p in pids) and time.monotonic() < deadline:
            time.sleep(0.2)
        for n, pid in pids:
            if pid is not None and _alive(pid):
                os.kill(pid, signal.SIGKILL)
            n.pid_file.unlink(missing_ok=True)
        return any(p is not None for _, p in pids)

    def stop_node(self, node_id: int, kill: bool = True, timeout: float = 30.0) -> None:
        """SIGKILL (a crash) or SIGTERM (a clean shutdown) one node; wait until it is gone."""
        n = self.node(node_id)
        pid = n.pid()
        if pid is None:
            return
        if not kill:
            n.stop(timeout)
            return
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + timeout
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        n.pid_file.unlink(missing_ok=True)

    def start_node(self, node_id: int, timeout: float = 90.0, echo: Echo = print) -> None:
        """Restart one node of a running cluster and wait until it has rejoined."""
        self.node(node_id).start(timeout=timeout, echo=echo)


def cluster_size(directory: Path) -> int:
    """How many nodes `bus broker start --nodes N` started from `directory` (1 if no cluster)."""
    try:
        return int((Path(directory) / CLUSTER_MARKER).read_text().strip())
    except (OSError, ValueError):
        return 1

def forget_cluster(directory: Path) -> None:
    """Drop the marker that makes stop/status address a cluster (its node data stays)."""
    (Path(directory) / CLUSTER_MARKER).unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        # Reap it if it is our child; otherwise just probe.
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def min_heap(heap: str) -> str:
    return "128m" if heap.endswith("m") and int(heap[:-1]) > 128 else heap


def base64_uuid() -> str:
    """Kafka cluster ids are URL-safe base64 UUIDs without padding, never starting with "-".

    Kafka's own `Uuid.randomUuid` draws again on a leading "-" because its tools would read
    such an id as a command-line option; we do the same.
    """
    import base64

    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not text.startswith("-"):
            return text
