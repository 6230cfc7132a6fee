"""Benchmark (not a test): the same GGUF artifacts on `local` and on this machine again through a real
OpenSSH server on 127.0.0.1 (agent mode, and native mode with llama.cpp's own tools when built), in one
run. Same machine, so every ratio should be ~1.0; the differences are the protocol's overhead.

Prints the rows of each device, the ratios ssh/local, and the SSH path's overhead: one ssh round trip,
the first push of the artifacts, the agent's install, the wall time per device.
Usage: python benchmarks/bench_devices.py [CHECKPOINT] [--out DIR] [--chunks 16] [--reps 5] [--native]
(default checkpoint: the demo model; needs Debian's openssh-server).
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent.parent / "tests"))

from beside_gguf import GGUF, artifacts, parse_args  # noqa: E402


def main() -> None:
    argv = [a for a in sys.argv[1:] if a != "--native"]
    native = "--native" in sys.argv
    sys.argv[1:] = argv
    args = parse_args(__doc__)
    out, have = artifacts(args, [])
    from device_bench.remote import RemoteDevice
    from edge.bench import BenchConfig, bench
    from edge.store import Store
    from sshd import Sshd, llama_tools

    root = Path(tempfile.mkdtemp(prefix="edge-bench-sshd-"))
    server = Sshd(root).start()
    devices_file = root / "devices.toml"
    text = server.toml("loopback")
    if native:
        text += server.toml("loopback-native", mode="native", tools=llama_tools(Path.home() / ".cache" / "edge-test"))
    devices_file.write_text(text)
    try:
        dev = RemoteDevice(server.spec("loopback"))
        t = time.perf_counter()
        for _ in range(10):
            dev.transport.check(["true"])
        rtt = (time.perf_counter() - t) / 10
        dev.facts()
        t = time.perf_counter()
        for path in have.values():
            dev.place(path)
        push = time.perf_counter() - t
        t = time.perf_counter()
        dev.mode.ensure(dev, "gguf", lambda ev: None)
        install = time.perf_counter() - t
        cfg = BenchConfig(threads=args.threads, reps=args.reps, chunks=args.chunks)
        names = ["local", "loopback"] + (["loopback-native"] if native else [])
        rows: dict[str, dict[str, object]] = {}
        wall: dict[str, float] = {}
        paths = [have[f] for f in GGUF]
        with Store(out / "devices.sqlite") as store:
            for name in names:
                t = time.perf_counter()
                rows[name] = {r.format: r for r in bench(paths, devices=[name], config=cfg, store=store,
                                                         devices_file=devices_file, resume=False)}
                wall[name] = time.perf_counter() - t
        t = time.perf_counter()
        RemoteDevice(server.spec("loopback")).place(paths[0])
        recheck = time.perf_counter() - t
    finally:
        server.stop()
    print(f"\n# {len(paths)} GGUF artifacts, {cfg.reps} reps, pp{cfg.n_prompt}/tg{cfg.n_gen}, {cfg.chunks} chunks; "
          f"same machine through sshd on 127.0.0.1")
    print(f"{'device':16} {'format':12} {'pp t/s':>16} {'tg t/s':>14} {'TTFT s':>7} {'load s':>7} {'peak MiB':>8} "
          f"{'PPL':>8} {'KLD':>8} {'GB/s':>6}")
    for name in names:
        for f in GGUF:
            r = rows[name][f]
            kld = f"{r.kld_mean:.5f}" if r.kld_mean is not None else ""
            load = f"{r.load_s:7.3f}" if r.load_s is not None else f"{'':7}"
            print(f"{name:16} {f:12} {r.pp_tps:8.1f} ± {r.pp_tps_std:5.1f} {r.tg_tps:6.1f} ± {r.tg_tps_std:4.1f} "
                  f"{r.ttft_s:7.3f} {load} {r.peak_rss_bytes / 2**20:8.0f} {r.ppl:8.3f} {kld:>8} {r.decode_gbs or 0:6.2f}")
    for name in names[1:]:
        print(f"\n# ratios {name} / local (1.0 = the same measurement)")
        for f in GGUF:
            a, b = rows[name][f], rows["local"][f]
            print(f"{f:12} pp {a.pp_tps / b.pp_tps:5.2f}  tg {a.tg_tps / b.tg_tps:5.2f}  TTFT {a.ttft_s / b.ttft_s:5.2f}  "
                  f"peak {a.peak_rss_bytes / b.peak_rss_bytes:5.2f}  PPL {a.ppl / b.ppl:6.4f}")
    size = sum(p.stat().st_size for p in paths) / 2**20
    print(f"\n# SSH path overhead: one ssh round trip (new connection) {1000 * rtt:.0f} ms; "
          f"re-check of an artifact already on the device (sha256sum there) {recheck:.2f} s")
    print(f"first push of {size:.0f} MiB {push:.1f} s ({size / push:.0f} MiB/s); agent install (venv + wheel + "
          f"llama-cpp-python from pip's cache) {install:.1f} s")
    for name in names:
        print(f"wall time of the bench on {name:16} {wall[name]:7.1f} s  ({wall[name] / wall['local']:.3f} × local)")
    shutil.rmtree(root, ignore_errors=True)
    print(f"\nartifacts and results: {out}")


if __name__ == "__main__":
    main()
