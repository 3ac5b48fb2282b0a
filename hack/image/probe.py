"""The reporter's runtime, exercised: every module it can import and every path that
loads something lazily, each in a fresh interpreter (docs/design.md, "The runtime image").

    python probe.py [--trace OUT.json] [--tmp DIR]

Run it with the interpreter of the reporter's virtualenv. Each exercise runs in a child
interpreter of its own that starts the way the console script starts:

- ``imports``: every module of status_reporter, and every module an ``import``
  statement of status_reporter names, also the ones inside functions (PyYAML, the
  optional ``kubeconfig`` extra, must be absent);
- ``lazy``: what the standard library loads only when it is used: the codecs a name
  lookup reaches (``idna`` for every TLS server name), a TLS handshake through the
  reporter's HTTP client, a name lookup and a thread through the event loop's
  executor, an asyncio child process, an inotify event, a formatted traceback and a
  warning, the in-cluster credentials and the kubeconfig paths (certificate data in a
  temporary file, an exec plugin, a YAML file);
- the command line, as the console script runs it: ``--version``, ``check-result`` of
  a valid, an invalid and a missing file, a configuration error without an API;
- the sidecar against a fake API server on loopback: a result present at once (its
  first write refused with 503, so the retry path runs), a result written later
  (inotify and a Pod watch, credentials from an exec plugin), an adapter crash, a
  configuration error recorded on the Job, and a stop (SIGTERM).

Exit status 0 when every exercise did what it should; otherwise 1, naming each one
that did not. With ``--trace``, writes the union of what the children loaded: every
module with its file (``null`` for built-in ones), as JSON.

The build (Dockerfile) runs it twice: in the build stage, with the full standard
library, ``--trace`` records what the runtime image must hold (hack/image/rootfs.py);
then in the assembled image, where a module missing from that set fails the build. The
container tests run it once more in the finished image. The probe itself (this parent)
uses only what the reporter needs anyway: asyncio, subprocess, msgspec and builtins.
"""

# Only modules that every interpreter has loaded before site.py finishes: a child's
# record must hold what the reporter loads, not what the probe does.
import io
import os
import sys

RECORD = "STATUS_REPORTER_PROBE_RECORD"
# Optional extras: importing them must fail in the image (it does not ship them).
OPTIONAL = frozenset({"yaml"})
# Codecs that a name lookup can reach at run time: the ones with C fast paths (looked up
# through the registry by open() and codecs), and idna (every TLS server name, every
# getaddrinfo of a host name).
CODECS = ("utf-8", "utf-8-sig", "ascii", "latin-1", "idna")
PACKAGE = "status_reporter"


# --------------------------------------------------------------------------- children


def _record() -> None:
    """Write this interpreter's modules (name and file) where the parent said."""
    lines = []
    for name, module in list(sys.modules.items()):
        origin = getattr(module, "__file__", None) or ""
        lines.append(f"{name}\t{origin}\n")
    data = "".join(lines).encode("utf-8", "surrogateescape")
    fd = os.open(os.environ[RECORD], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    while data:
        data = data[os.write(fd, data) :]
    os.close(fd)


def _child_imports(names: list[str]) -> int:
    failed = 0
    for name in names:
        optional = name.partition(".")[0] in OPTIONAL
        try:
            __import__(name)
        except ImportError as exc:
            if not optional:
                print(f"import {name}: {exc!r}", file=sys.stderr)
                failed += 1
        else:
            if optional:
                print(f"import {name}: an optional extra, but installed", file=sys.stderr)
                failed += 1
    return 1 if failed else 0


def _child_lazy(workdir: str) -> int:
    import asyncio
    import codecs
    import ssl
    import traceback
    import warnings

    for name in CODECS:
        codecs.lookup(name)
    assert "kubernetes.default.svc".encode("idna") == b"kubernetes.default.svc"
    # The TLS policy is Python's own (security level 2), whatever OpenSSL's configuration
    # file says: the image has none.
    assert ssl.create_default_context().security_level >= 2

    asyncio.run(_tls_handshake())
    asyncio.run(_loop_paths())
    asyncio.run(_inotify(workdir))

    try:
        raise RuntimeError("probe")
    except RuntimeError as exc:
        formatted = "".join(traceback.format_exception(exc))
    assert "raise RuntimeError" in formatted, formatted
    with _StderrCaptured() as captured:
        warnings.warn("probe", RuntimeWarning, stacklevel=1)
    assert "RuntimeWarning: probe" in captured.getvalue(), captured.getvalue()
    _credentials(workdir)
    return 0


async def _tls_handshake() -> None:
    """The reporter's client against a server that hangs up: start_tls with a server
    name, the error mapped to a TransportError."""
    import asyncio
    import ssl

    from status_reporter.api.transport import Endpoint, HttpClient, TransportError

    async def hang_up(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    server = await asyncio.start_server(hang_up, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    endpoint = Endpoint("127.0.0.1", port, ssl.create_default_context(), "kubernetes")
    async with server, HttpClient(endpoint, keepalive=None, user_agent="probe") as client:
        try:
            await client.request("GET", "/version", timeout=5)
        except TransportError:
            return
    raise AssertionError("a TLS handshake with a server that hung up succeeded")


async def _loop_paths() -> None:
    """A name lookup and a function through the loop's executor, a thread, an asyncio
    child process, the loop's exception handler (logging a formatted traceback)."""
    import asyncio
    import contextlib

    loop = asyncio.get_running_loop()
    with contextlib.suppress(OSError):  # no resolver here: the executor and codec still ran
        await loop.getaddrinfo("kubernetes.default.svc.cluster.local", 443)
    assert await loop.run_in_executor(None, os.getpid) == os.getpid()
    assert await asyncio.to_thread(os.getpid) == os.getpid()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "print('child')", stdout=asyncio.subprocess.PIPE
    )
    out, _ = await process.communicate()
    assert out.strip() == b"child", out
    try:
        raise ValueError("probe")
    except ValueError as exc:
        with _StderrCaptured() as captured:
            loop.call_exception_handler({"message": "probe", "exception": exc})
    assert 'raise ValueError("probe")' in captured.getvalue(), captured.getvalue()


async def _inotify(workdir: str) -> None:
    import asyncio

    from asyncinotify import Inotify, Mask

    with Inotify() as watcher:
        watcher.add_watch(workdir, Mask.CLOSE_WRITE | Mask.MOVED_TO)
        _write_result(os.path.join(workdir, "probe.json"))
        event = await asyncio.wait_for(watcher.get(), 5)
        assert event.name is not None


def _credentials(workdir: str) -> None:
    """In-cluster files (the CA is not a certificate: refused), then the kubeconfigs of
    KUBECONFIGS."""
    import contextlib

    from status_reporter.api import auth, credentials

    account = os.path.join(workdir, "serviceaccount")
    env = {"KUBERNETES_SERVICE_HOST": "10.0.0.1", "KUBERNETES_SERVICE_PORT": "443"}
    try:
        credentials.load(env, home=workdir, service_account_dir=account)
    except auth.CredentialsError as exc:
        error = str(exc)
    else:
        raise AssertionError("in-cluster credentials with an invalid CA loaded")
    assert "no valid PEM certificate" in error, error
    for name in KUBECONFIGS:
        with contextlib.suppress(auth.CredentialsError):
            credentials.load({"KUBECONFIG": os.path.join(workdir, name)}, home=workdir)


class _StderrCaptured:
    """What is written to sys.stderr meanwhile."""

    def __enter__(self) -> io.StringIO:
        self.saved, sys.stderr = sys.stderr, io.StringIO()
        return sys.stderr

    def __exit__(self, *_exc: object) -> None:
        sys.stderr = self.saved


def _child_cli(argv: list[str]) -> int:
    """The console script's own steps, recorded even when the command ends with
    ``os._exit`` (as the sidecar does)."""
    import re  # the console script that pip writes imports it first

    from status_reporter.shell import cli

    assert re
    real_exit = os._exit

    def recorded_exit(code: int) -> None:
        _record()
        real_exit(code)

    os._exit = recorded_exit  # type: ignore[assignment]
    sys.argv = ["status-reporter", *argv]
    try:
        cli.main(argv)
    except SystemExit as exit_:
        return exit_.code if isinstance(exit_.code, int) else 1


def child(kind: str, args: list[str]) -> None:
    """One exercise in this (fresh) interpreter; records its modules, exits with its code."""
    try:
        if kind == "imports":
            code = _child_imports(args)
        elif kind == "lazy":
            code = _child_lazy(args[0])
        else:
            code = _child_cli(args)
    except BaseException:  # the parent reports it: the child's output is kept
        import traceback

        traceback.print_exc()
        code = 70
    _record()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


# --------------------------------------------------------------------------- parent

# kubeconfigs of the lazy child: client-certificate data (written to a temporary file,
# then refused: not a certificate), an exec plugin (never run), YAML (refused without
# PyYAML).
KUBECONFIGS = ("client-data.json", "exec.json", "config.yaml")


def _package_root(package: str) -> str:
    for entry in sys.path:
        root = os.path.join(entry, *package.split("."))
        if os.path.isdir(root):
            return root
    raise SystemExit(f"probe: {package} is not installed")


def _module_names(package: str) -> list[str]:
    """Every module of an installed package, from its files (nothing imported)."""
    root = _package_root(package)
    names = []
    for directory, subdirs, files in os.walk(root):
        subdirs[:] = sorted(d for d in subdirs if d != "__pycache__")
        relative = os.path.relpath(directory, root)
        prefix = package if relative == "." else f"{package}.{relative.replace(os.sep, '.')}"
        for file in sorted(files):
            stem, _, suffix = file.partition(".")
            if stem == "__main__":
                continue  # run, not imported: importing it would run the command
            if suffix == "py":
                names.append(prefix if stem == "__init__" else f"{prefix}.{stem}")
    return names


def _is_submodule(package: str, name: str) -> bool:
    """Whether ``package.name`` is a module of its own (not a name defined in package)."""
    for entry in sys.path:
        directory = os.path.join(entry, *package.split("."))
        if os.path.isdir(directory):
            candidates = os.listdir(directory)
            return name in candidates or any(
                c.startswith(f"{name}.") and c.endswith((".py", ".so")) for c in candidates
            )
    return False


def _named_imports(package: str) -> list[str]:
    """Every module an import statement of ``package`` names, in functions too; not the
    ones under ``if TYPE_CHECKING:`` (never imported at run time). Walks the syntax
    trees of the built-in _ast, so that the image needs no ast module for it."""
    import _ast

    root = _package_root(package)
    found: set[str] = set()

    def visit(node: object, module: str) -> None:
        if isinstance(node, _ast.If):
            test = node.test
            name = test.id if isinstance(test, _ast.Name) else getattr(test, "attr", None)
            if name == "TYPE_CHECKING":
                for statement in node.orelse:
                    visit(statement, module)
                return
        if isinstance(node, _ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, _ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = module.split(".")[: -node.level]
                base = ".".join([*parts, base] if base else parts)
            found.add(base)
            # "from package import module" names a module too.
            found.update(f"{base}.{a.name}" for a in node.names if _is_submodule(base, a.name))
        for field in getattr(node, "_fields", ()):
            value = getattr(node, field, None)
            for item in value if isinstance(value, list) else [value]:
                if isinstance(item, _ast.AST):
                    visit(item, module)

    for directory, _subdirs, files in os.walk(root):
        for file in files:
            if not file.endswith(".py"):
                continue
            path = os.path.join(directory, file)
            module = ".".join([package, *os.path.relpath(path, root)[:-3].split(os.sep)])
            module = module.removesuffix(".__init__")
            with open(path, encoding="utf-8") as source:
                visit(compile(source.read(), path, "exec", _ast.PyCF_ONLY_AST), module)
    found.discard("__future__")
    return sorted(found)


class Run:
    """One child interpreter: its exit code, output and the modules it had loaded."""

    def __init__(
        self, name: str, kind: str, args: list[str], env: dict[str, str], expect: int
    ) -> None:
        import subprocess

        self.name = name
        self.expect = expect
        self.record = os.path.join(env["HOME"], f"record-{id(self)}")
        self.process = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "--child", kind, *args],
            env={**env, RECORD: self.record},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )

    def finish(self, timeout: float = 60) -> tuple[bool, dict[str, str], str]:
        """Wait for the child: (as expected?, modules, output)."""
        import subprocess

        try:
            output, _ = self.process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            output, _ = self.process.communicate()
        modules = {}
        if os.path.exists(self.record):
            with open(self.record, encoding="utf-8", errors="surrogateescape") as record:
                modules = dict(line.rstrip("\n").split("\t", 1) for line in record)
            os.unlink(self.record)
        text = output.decode("utf-8", "replace")
        good = self.process.returncode == self.expect and bool(modules)
        good = good and "Traceback (most recent call last)" not in text
        return good, modules, text


def _json(value: object) -> str:
    import msgspec

    return msgspec.json.encode(value).decode()


def _kubeconfig(server: str, user: dict[str, object], *, insecure: bool = False) -> str:
    """A kubeconfig in JSON (the image reads JSON ones without PyYAML)."""
    cluster: dict[str, object] = {"server": server}
    if insecure:
        cluster["insecure-skip-tls-verify"] = True
    return _json(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "c", "cluster": cluster}],
            "users": [{"name": "u", "user": user}],
            "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
            "current-context": "x",
        }
    )


def _prepare_lazy(directory: str) -> None:
    """The files the lazy child reads."""
    account = os.path.join(directory, "serviceaccount")
    os.mkdir(account)
    for name, text in (("token", "probe"), ("ca.crt", "not a certificate"), ("namespace", "ns")):
        with open(os.path.join(account, name), "w") as file:
            file.write(text)
    data = "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCg=="  # a PEM header, nothing else
    files = {
        "client-data.json": _kubeconfig(
            "https://127.0.0.1:6443",
            {"client-certificate-data": data, "client-key-data": data},
            insecure=True,
        ),
        "exec.json": _kubeconfig(
            "https://kubernetes.example:6443",
            {"exec": {"apiVersion": "client.authentication.k8s.io/v1", "command": "probe"}},
        ),
        "config.yaml": "apiVersion: v1\nkind: Config\n",
    }
    assert set(files) == set(KUBECONFIGS)
    for name, text in files.items():
        with open(os.path.join(directory, name), "w") as file:
            file.write(text)


# --------------------------------------------------------------------------- the sidecar

NAMESPACE, POD, JOB = "probe", "probe-job-x1", "probe-job"
RUNNING: dict[str, object] = {"running": {"startedAt": "2026-01-01T00:00:00Z"}}
CRASHED: dict[str, object] = {"terminated": {"exitCode": 1, "reason": "Error", "message": "x"}}
# (name, adapter state at start, result present, expected exit, extra environment)
SIDECAR: tuple[tuple[str, dict[str, object], bool, int, dict[str, str]], ...] = (
    ("result at once, first write refused", RUNNING, True, 0, {}),
    ("result later (inotify, Pod watch, exec plugin)", RUNNING, False, 0, {}),
    ("adapter crash", CRASHED, False, 1, {"LOG_FORMAT": "json"}),
    ("configuration error", RUNNING, False, 2, {"JOB_NAME": JOB, "POLL_INTERVAL_SECONDS": "0"}),
    ("stop", RUNNING, False, 1, {"MONITOR_MODE": "poll"}),
)


class FakeApi:
    """Just enough of a kube-apiserver, over plain HTTP on loopback, for one sidecar run:
    its Pod and Job, a rules review granting everything, a Pod watch, Events, and the
    status patch (the first one refused with 503 when ``refuse_first_patch``). Serves
    from an event loop in a thread of its own."""

    def __init__(self, adapter: dict[str, object], *, refuse_first_patch: bool) -> None:
        import asyncio
        import threading

        self.adapter = adapter
        self.version = 1
        self.refuse = refuse_first_patch
        self.conditions: list[object] = []
        self.stopping = False
        # Set at the reporter's first request: it has started (however slowly: an
        # emulated architecture's interpreter starts in seconds, not milliseconds).
        self.asked = threading.Event()
        self.loop = asyncio.new_event_loop()
        self.tasks: set[asyncio.Task[None]] = set()
        started = threading.Event()
        self.thread = threading.Thread(target=self._serve, args=(started,), daemon=True)
        self.thread.start()
        started.wait()

    def _serve(self, started: object) -> None:
        import asyncio

        async def listen() -> None:
            self.server = await asyncio.start_server(self._connection, "127.0.0.1", 0)
            self.port = self.server.sockets[0].getsockname()[1]

        self.loop.run_until_complete(listen())
        started.set()  # type: ignore[attr-defined]
        self.loop.run_forever()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def set_adapter(self, state: dict[str, object]) -> None:
        self.adapter = state
        self.version += 1

    def pod(self) -> dict[str, object]:
        owner = {"apiVersion": "batch/v1", "kind": "Job", "name": JOB, "controller": True}
        return {
            "metadata": {
                "name": POD,
                "namespace": NAMESPACE,
                "uid": "pod-uid",
                "resourceVersion": str(self.version),
                "ownerReferences": [owner],
            },
            "spec": {"containers": [{"name": "adapter"}, {"name": "status-reporter"}]},
            "status": {
                "containerStatuses": [
                    {"name": "adapter", "state": self.adapter},
                    {"name": "status-reporter", "state": RUNNING},
                ]
            },
        }

    def job(self) -> dict[str, object]:
        return {
            "metadata": {"name": JOB, "namespace": NAMESPACE, "uid": "job-uid"},
            "spec": {},
            "status": {"startTime": "2026-01-01T00:00:00Z", "conditions": self.conditions},
        }

    def _answer(self, method: str, path: str, body: bytes) -> tuple[int, object]:
        import msgspec

        if method == "GET" and path == f"/api/v1/namespaces/{NAMESPACE}/pods/{POD}":
            return 200, self.pod()
        if method == "GET" and path == f"/apis/batch/v1/namespaces/{NAMESPACE}/jobs/{JOB}":
            return 200, self.job()
        if method == "POST" and path.endswith("/selfsubjectrulesreviews"):
            rule = {"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}
            return 201, {"status": {"resourceRules": [rule]}}
        if method == "POST" and path.endswith("/events"):
            return 201, {}
        if method == "PATCH" and path == f"/apis/batch/v1/namespaces/{NAMESPACE}/jobs/{JOB}/status":
            if self.refuse:
                self.refuse = False
                return 503, {"kind": "Status", "code": 503}
            self.conditions = msgspec.json.decode(body)["status"]["conditions"]
            return 200, self.job()
        return 404, {"kind": "Status", "code": 404, "reason": "NotFound"}

    async def _connection(self, reader: object, writer: object) -> None:
        import asyncio

        assert isinstance(reader, asyncio.StreamReader)
        assert isinstance(writer, asyncio.StreamWriter)
        task = asyncio.current_task()
        assert task is not None
        self.tasks.add(task)
        try:
            while line := await reader.readline():
                self.asked.set()
                method, target, _ = line.decode().split(" ", 2)
                headers = {}
                while (field := await reader.readline()).strip():
                    key, _, value = field.decode().partition(":")
                    headers[key.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                path, _, query = target.partition("?")
                if path == f"/api/v1/namespaces/{NAMESPACE}/pods" and "watch=true" in query:
                    await self._watch(writer)
                    break
                status, answer = self._answer(method, path, body)
                data = _json(answer).encode()
                writer.write(
                    f"HTTP/1.1 {status} Probe\r\nContent-Type: application/json\r\n"
                    f"Retry-After: 0\r\nContent-Length: {len(data)}\r\n\r\n".encode()
                    + data
                )
                await writer.drain()
        except (OSError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass
        finally:
            writer.close()
            self.tasks.discard(task)

    async def _watch(self, writer: object) -> None:
        """A chunked watch stream: the Pod again whenever it changes."""
        import asyncio

        assert isinstance(writer, asyncio.StreamWriter)
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n"
        )
        sent = 0
        while not self.stopping:
            if self.version != sent:
                sent = self.version
                line = (_json({"type": "MODIFIED", "object": self.pod()}) + "\n").encode()
                writer.write(b"%x\r\n%s\r\n" % (len(line), line))
                await writer.drain()
            await asyncio.sleep(0.05)
        writer.write(b"0\r\n\r\n")

    def close(self) -> None:
        import asyncio

        async def shutdown() -> None:
            self.stopping = True
            self.server.close()
            for task in list(self.tasks):
                task.cancel()
            await asyncio.gather(*self.tasks, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(shutdown(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


def sidecar_runs(
    base_env: dict[str, str], workdir: str
) -> list[tuple[str, bool, dict[str, str], str]]:
    """Every SIDECAR scenario at once, each against a fake API of its own:
    (name, as expected?, modules, output) for each."""
    import signal
    import threading

    plugin_output = _json(
        {
            "apiVersion": "client.authentication.k8s.io/v1",
            "kind": "ExecCredential",
            "status": {"token": "probe"},
        }
    )
    exec_user: dict[str, object] = {
        "exec": {
            "apiVersion": "client.authentication.k8s.io/v1",
            "command": sys.executable,
            "args": ["-c", f"print({plugin_output!r})"],
        }
    }
    started: list[tuple[str, FakeApi, Run, str]] = []
    timers: list[threading.Thread] = []
    done = threading.Event()

    def once_started(api: FakeApi, action: object) -> threading.Thread:
        """``action`` a second after the reporter's first request to ``api``."""

        def wait_then_act() -> None:
            if api.asked.wait(60) and not done.wait(1.0):
                action()  # type: ignore[operator]

        return threading.Thread(target=wait_then_act, daemon=True)

    for number, (name, adapter, present, expect, extra) in enumerate(SIDECAR):
        directory = os.path.join(workdir, f"sidecar-{number}")
        os.makedirs(os.path.join(directory, "results"))
        results = os.path.join(directory, "results", "adapter-result.json")
        if present:
            with open(results, "w") as file:
                file.write('{"status": "success", "reason": "Probed", "message": "at once"}')
        api = FakeApi(adapter, refuse_first_patch=number == 0)
        user: dict[str, object] = exec_user if number == 1 else {"token": "probe"}
        kubeconfig = os.path.join(directory, "kubeconfig.json")
        with open(kubeconfig, "w") as file:
            file.write(_kubeconfig(api.url, user))
        termination = os.path.join(directory, "termination-log")
        open(termination, "w").close()  # the kubelet's file; the reporter never creates it
        env = {
            **base_env,
            "HOME": directory,
            "KUBECONFIG": kubeconfig,
            "JOB_NAMESPACE": NAMESPACE,
            "POD_NAME": POD,
            "RESULTS_PATH": results,
            "TERMINATION_MESSAGE_PATH": termination,
            "POLL_INTERVAL_SECONDS": "1",
            "MAX_WAIT_TIME_SECONDS": "30",
            "LOG_LEVEL": "debug",
            **extra,
        }
        run = Run(name, "cli", [], env, expect)
        started.append((name, api, run, termination))
        if number == 1:
            timers.append(once_started(api, lambda results=results: _write_result(results)))
        if name == "stop":

            def stop(run: Run = run, api: FakeApi = api) -> None:
                run.process.send_signal(signal.SIGTERM)
                api.set_adapter({"terminated": {"exitCode": 143, "reason": "Error"}})

            timers.append(once_started(api, stop))
    for timer in timers:
        timer.start()
    outcomes = []
    for name, api, run, termination in started:
        good, modules, output = run.finish()
        with open(termination) as file:
            left = file.read()
        if good and not (api.conditions and left):
            good = False
            output += f"\nno condition written ({api.conditions}) or no termination message"
        api.close()
        outcomes.append((name, good, modules, output))
    done.set()
    for timer in timers:
        timer.join()
    return outcomes


def _write_result(path: str) -> None:
    with open(path + ".tmp", "w") as file:
        file.write('{"status": "success", "reason": "Probed", "message": "later"}')
    os.rename(path + ".tmp", path)


# --------------------------------------------------------------------------- main


def main(argv: list[str]) -> int:
    import shutil
    import tempfile

    if argv[:1] == ["--child"]:
        child(argv[1], argv[2:])
    trace = tmp = None
    while argv:
        option, value, *argv = argv
        if option == "--trace":
            trace = value
        elif option == "--tmp":
            tmp = value
        else:
            print(__doc__.split("\n\n")[1], file=sys.stderr)
            return 2

    names = _module_names(PACKAGE)
    names += [name for name in _named_imports(PACKAGE) if name not in names]
    loaded: dict[str, str] = {}
    failures: list[str] = []
    workdir = tempfile.mkdtemp(prefix="status-reporter-probe-", dir=tmp)
    try:
        os.chmod(workdir, 0o755)  # noqa: S103 - the children may run as another user
        base_env = {
            "PATH": "/nonexistent",
            "HOME": workdir,
            "LANG": os.environ.get("LANG", "C.UTF-8"),
            "PYTHONDONTWRITEBYTECODE": "1",
        }
        lazy_dir = os.path.join(workdir, "lazy")
        os.mkdir(lazy_dir)
        _prepare_lazy(lazy_dir)
        runs = [
            Run("imports", "imports", names, base_env, 0),
            Run("lazy", "lazy", [lazy_dir], base_env, 0),
            Run("--version", "cli", ["--version"], base_env, 0),
            Run("no configuration", "cli", [], base_env, 2),
        ]
        for name, content, code in (
            ("valid", '{"status": "success", "reason": "R", "message": "M"}', 0),
            ("invalid", '{"status": "Success"}', 1),
            ("missing", None, 1),
        ):
            path = os.path.join(workdir, f"{name}.json")
            if content is not None:
                with open(path, "w") as file:
                    file.write(content)
            runs.append(Run(f"check-result {name}", "cli", ["check-result", path], base_env, code))
        outcomes = [(run.name, *run.finish()) for run in runs]
        outcomes += sidecar_runs(base_env, workdir)
    finally:
        shutil.rmtree(workdir)
    for name, good, modules, output in outcomes:
        loaded.update(modules)
        if not good:
            failures.append(f"{name}:\n{output}")
    for failure in failures:
        print(f"probe: FAILED {failure}", file=sys.stderr)
    stdlib = os.path.dirname(os.__file__)
    from_stdlib = sum(1 for file in loaded.values() if file.startswith(stdlib + os.sep))
    print(
        f"probe: {len(outcomes)} exercises, {len(failures)} failed;"
        f" {len(loaded)} modules loaded, {from_stdlib} from {stdlib}",
        file=sys.stderr,
    )
    if trace:
        import msgspec

        traced: dict[str, str | None] = {n: f or None for n, f in sorted(loaded.items())}
        with open(trace, "wb") as out:
            out.write(msgspec.json.format(msgspec.json.encode({"modules": traced}), indent=1))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
