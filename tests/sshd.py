"""A real OpenSSH server on 127.0.0.1 as a dev-board stand-in, and llama.cpp's command-line tools built for
this machine (for native mode), both for the device tests.

The server runs Debian's /usr/sbin/sshd with a throwaway host key, a throwaway client key and its own
known_hosts; it logs in the current user (sshd started by a non-root user can only log in that user)
with keys only.
"""

from __future__ import annotations

import getpass
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

SSHD = "/usr/sbin/sshd"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Sshd:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = free_port()
        self.user = getpass.getuser()
        root.mkdir(parents=True, exist_ok=True)
        for name in ("host_key", "client_key", "other_key"):
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(root / name)], check=True)
        (root / "authorized_keys").write_text((root / "client_key.pub").read_text())
        host_pub = (root / "host_key.pub").read_text().split()
        self.known_hosts = root / "known_hosts"
        self.known_hosts.write_text(f"[127.0.0.1]:{self.port} {host_pub[0]} {host_pub[1]}\n")
        (root / "empty_known_hosts").write_text("")
        (root / "sshd_config").write_text("\n".join([
            f"Port {self.port}", "ListenAddress 127.0.0.1", f"HostKey {root / 'host_key'}",
            f"AuthorizedKeysFile {root / 'authorized_keys'}", "PubkeyAuthentication yes",
            "PasswordAuthentication no", "KbdInteractiveAuthentication no", "UsePAM no", "StrictModes no",
            "PermitRootLogin prohibit-password", f"PidFile {root / 'sshd.pid'}", "LogLevel ERROR", "MaxStartups 50",
        ]) + "\n")
        self.proc: subprocess.Popen | None = None

    def start(self) -> Sshd:
        if os.geteuid() == 0:
            Path("/run/sshd").mkdir(exist_ok=True)  # privilege separation directory
        self.proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(self.root / "sshd_config")],
                                     stderr=open(self.root / "sshd.log", "ab"), start_new_session=True)
        deadline = time.time() + 20
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return self
            except OSError:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"sshd exited: {(self.root / 'sshd.log').read_text()[-500:]}")
                time.sleep(0.1)
        raise RuntimeError("sshd did not start listening")

    def stop(self) -> None:
        """Stop the listener and every session it started (a board that went away)."""
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        self.proc.wait(timeout=10)
        self.proc = None

    def table(self, name: str = "board", **kw) -> dict:
        """The board's devices.toml table: this sshd, its throwaway key and known_hosts."""
        return {"transport": "ssh", "host": "127.0.0.1", "port": self.port, "user": self.user,
                "identity": str(self.root / "client_key"), "known_hosts": str(self.known_hosts),
                "workdir": str(self.root / "workdir" / name), "python": sys._base_executable, **kw}

    def spec(self, name: str = "board", **kw):
        from device_bench.config import DeviceSpec

        return DeviceSpec.from_table(name, self.table(name, **kw))

    def toml(self, name: str = "board", **kw) -> str:
        t = self.table(name, **kw)
        lines = [f"[devices.{name}]"]
        for key, v in t.items():
            if key != "tools":
                lines.append(f"{key} = {v}" if isinstance(v, int) else f"{key} = {str(v)!r}".replace("'", '"'))
        if t.get("tools"):
            lines.append(f"[devices.{name}.tools]")
            lines += [f"{k} = \"{v}\"" for k, v in t["tools"].items()]
        return "\n".join(lines) + "\n"


# llama.cpp's AMX matmul (ggml-cpu/amx) segfaults on q8_0 weights on this kind of Xeon (llama.cpp issue #20824):
# built as the README builds the wheel, without it
NO_AMX = ("-DCMAKE_C_FLAGS=-mno-amx-int8", "-DCMAKE_CXX_FLAGS=-mno-amx-int8")


def llama_tools(cache: Path) -> dict[str, str]:
    """llama-bench, llama-perplexity and llama-imatrix built for this machine from the llama-cpp-python sdist of the
    installed version (the same llama.cpp the agent runs), cached in ``cache``."""
    from importlib import metadata

    version = metadata.version("llama-cpp-python")
    out = cache / f"llama.cpp-{version}-noamx"
    tools = {name: str(out / "bin" / name) for name in ("llama-bench", "llama-perplexity", "llama-imatrix")}
    if all(Path(p).exists() for p in tools.values()):
        return tools
    work = cache / f"build-{version}-{os.getpid()}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    sdist = os.environ.get("EDGE_LLAMA_SDIST")
    if not sdist:
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:",
                        f"llama-cpp-python=={version}", "-d", str(work)], check=True)
        sdist = str(next(work.glob("llama_cpp_python-*.tar.gz")))
    subprocess.run(["tar", "xzf", sdist, "-C", str(work)], check=True)
    src = next(work.glob("llama_cpp_python-*/vendor/llama.cpp"))
    build = work / "build"
    subprocess.run(["cmake", "-S", str(src), "-B", str(build), "-G", "Ninja", "-DCMAKE_BUILD_TYPE=Release",
                    "-DBUILD_SHARED_LIBS=OFF", "-DLLAMA_CURL=OFF", "-DLLAMA_BUILD_TESTS=OFF", "-DLLAMA_BUILD_EXAMPLES=OFF",
                    "-DLLAMA_BUILD_SERVER=OFF", "-DGGML_NATIVE=ON", "-DLLAMA_OPENSSL=OFF", *NO_AMX],
                   check=True, capture_output=True)
    subprocess.run(["cmake", "--build", str(build), "--target", *tools, "-j", str(os.cpu_count() or 2)],
                   check=True, capture_output=True)
    (out / "bin").mkdir(parents=True, exist_ok=True)
    for name in tools:
        shutil.copy2(build / "bin" / name, out / "bin" / name)
    shutil.rmtree(work, ignore_errors=True)
    return tools
