"""The service's WSGI application with a meter around each request bench/http.py sends.

gunicorn serves `bench.probe:application` in place of `llmtools.wsgi` under bench/http.py only.
A request carrying an `X-Bench` header (the bench's name for what it asked) is passed to the
service unchanged, and around it this records, in the thread that serves it:

- the CPU time of that thread (`time.thread_time_ns`: Python's and the C libraries' work for
  this request alone, not the time it waited for the GIL or a core),
- the CPU time of the PostgreSQL backend that this thread's database connection talks to
  (its `/proc/<pid>/schedstat`, in nanoseconds; -1 when the connection was opened or replaced
  during the request, so the two readings are of different processes),
- the SQL statements it ran (Django's `execute_wrapper`), the status and the wall time,

and appends them as one line to `$BENCH_PROBE_DIR/probe-<worker pid>.tsv` (one `os.write` of a
line in append mode, after the readings: nothing is buffered, so nothing is lost when the
worker stops). The response body is read inside the measured window, so that rendering a
lazily produced body counts too. Requests without the header (the bench's set-up) pass through.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from typing import Any

from django.db import connections

from llmtools.wsgi import application as service

PROBE_DIR = os.environ.get("BENCH_PROBE_DIR", "")
_files: dict[int, int] = {}  # worker pid -> its file descriptor (the workers fork after import)


def _file() -> int:
    pid = os.getpid()
    if pid not in _files:
        path = os.path.join(PROBE_DIR, f"probe-{pid}.tsv")
        _files[pid] = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    return _files[pid]


def _backend_pid() -> int:
    """The PostgreSQL backend of this thread's connection, 0 when it has none open."""
    connection = connections["default"].connection
    if connection is None or connection.closed:
        return 0
    return connection.info.backend_pid


def _cpu_ns(pid: int) -> int:
    with open(f"/proc/{pid}/schedstat", "rb") as stat:
        return int(stat.read().split(maxsplit=1)[0])


def application(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    tag = environ.get("HTTP_X_BENCH")
    if not tag or not PROBE_DIR:
        return service(environ, start_response)
    status: list[str] = []

    def start(value: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        status.append(value)
        return start_response(value, headers, exc_info)

    queries = 0

    def count(execute: Callable[..., Any], sql: str, params: Any, many: bool, context: Any) -> Any:
        nonlocal queries
        queries += 1
        return execute(sql, params, many, context)

    backend = _backend_pid()
    backend_before = _cpu_ns(backend) if backend else 0
    wall = time.perf_counter_ns()
    cpu = time.thread_time_ns()
    with connections["default"].execute_wrapper(count):
        result = service(environ, start)
        try:
            body = b"".join(result)
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()  # Django's request_finished: part of the request's work
    cpu = time.thread_time_ns() - cpu
    wall = time.perf_counter_ns() - wall
    backend_cpu = -1
    if backend and _backend_pid() == backend:
        backend_cpu = _cpu_ns(backend) - backend_before
    line = f"{tag}\t{status[0][:3]}\t{cpu}\t{backend_cpu}\t{queries}\t{wall}\t{time.time():.3f}\n"
    os.write(_file(), line.encode())
    return [body]
