"""The probe guest in Python (componentize-py): a plain tool, and probes of
what the host gives a Python connector. Each probe says what it saw; the
test (tests/tests/polyglot.rs) decides whether that is what the host must
answer."""

import os
import sys
from urllib.parse import urlsplit

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import (
    environment,
    exit as wasi_exit,
    instance_network,
    network,
    outgoing_handler,
    preopens,
    secrets,
    tcp_create_socket,
    wasi_http_types as http,
)


def wasi_code(error: network.ErrorCode) -> str:
    """`ACCESS_DENIED` as WIT spells it: `access-denied`."""
    return error.name.lower().replace("_", "-")


class Probe(exports.Probe):
    def add(self, a: int, b: int) -> int:
        return a + b

    def socket(self, address: str) -> str:
        host, port = address.rsplit(":", 1)
        octets = tuple(int(part) for part in host.split("."))
        try:
            sock = tcp_create_socket.create_tcp_socket(network.IpAddressFamily.IPV4)
        except Err as e:
            return f"create-tcp-socket: {wasi_code(e.value)}"
        target = network.IpSocketAddress_Ipv4(network.Ipv4SocketAddress(port=int(port), address=octets))
        try:
            sock.start_connect(instance_network.instance_network(), target)
            sock.subscribe().block()
            sock.finish_connect()
        except Err as e:
            return f"connect: {wasi_code(e.value)}"
        return "connected"

    def file(self, path: str) -> str:
        directories = preopens.get_directories()
        try:
            with open(path, "rb") as f:
                read = f"{len(f.read())} bytes"
        except OSError as e:
            read = type(e).__name__
        return f"preopens={len(directories)} read={read}"

    def env(self, name: str) -> str:
        variables = environment.get_environment()
        arguments = environment.get_arguments()
        cwd = environment.initial_cwd()
        return f"vars={len(variables)} args={len(arguments)} cwd={cwd} {name}={os.environ.get(name)}"

    def say(self, text: str) -> str:
        print(text, flush=True)
        print(text, file=sys.stderr, flush=True)
        return "written"

    def quit(self) -> str:
        wasi_exit.exit(Err(None))
        return "still running"

    def fetch(self, url: str) -> int:
        parts = urlsplit(url)
        request = http.OutgoingRequest(http.Fields())
        request.set_scheme(http.Scheme_Https() if parts.scheme == "https" else http.Scheme_Http())
        request.set_authority(parts.netloc)
        request.set_path_with_query(parts.path or "/")
        try:
            future = outgoing_handler.handle(request, None)
        except Err as e:
            raise Err(f"refused: {e.value}")
        while (answer := future.get()) is None:
            future.subscribe().block()
        if isinstance(answer, Err):
            raise Err("the response was taken twice")
        if isinstance(answer.value, Err):
            raise Err(f"failed: {answer.value.value}")
        return answer.value.value.status()

    def leak(self, name: str) -> str:
        try:
            value = secrets.get(name)
        except Err as e:
            raise Err(f"no secret: {e.value}")
        print(value, flush=True)
        print(value, file=sys.stderr, flush=True)
        return value
