"""Benchmark (not a test): a lab of N loopback boards (one OpenSSH server on 127.0.0.1 each, agent mode)
benched one at a time and then all at once in one `edge bench -d b1,…,bN`, and `local` alone vs `local`
beside the boards in one command. Prints the wall times, the speed-up, and whether every row equals the
sequential one (PPL to 1e-9, KLD to 1e-6).

Loopback boards run on this machine's own cores, so "at once" here shares the CPUs a real lab would not:
the speed-up is a lower bound of a lab's (boards with their own CPUs), and the local figures beside the
boards include that contention (the host gate keeps only the host's pushes and scoring away from local).
Usage: python benchmarks/bench_lab.py [CHECKPOINT] [--out DIR] [--chunks 4] [--reps 3] [--boards 2]
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
    n = 2
    if "--boards" in sys.argv:
        i = sys.argv.index("--boards")
        n = int(sys.argv[i + 1])
        del sys.argv[i:i + 2]
    args = parse_args(__doc__)
    out, have = artifacts(args, [])
    from edge.bench import BenchConfig, bench
    from edge.store import Store
    from sshd import Sshd

    root = Path(tempfile.mkdtemp(prefix="edge-bench-lab-"))
    servers = [Sshd(root / f"sshd{i}").start() for i in range(n)]
    boards = [f"b{i + 1}" for i in range(n)]
    devices_file = root / "devices.toml"
    devices_file.write_text("".join(s.toml(b) for s, b in zip(servers, boards)))
    cfg = BenchConfig(threads=args.threads, reps=args.reps, chunks=args.chunks)
    paths = [have[f] for f in GGUF]
    try:
        with Store(root / "warm.sqlite") as st:  # pushes and agent installs, so neither phase pays for them
            bench(paths, devices=boards, config=cfg, store=st, devices_file=devices_file)
        seq: dict[str, dict] = {}
        t = time.perf_counter()
        with Store(root / "seq.sqlite") as st:
            for d in ["local", *boards]:
                seq[d] = {r.format: r for r in bench(paths, devices=[d], config=cfg, store=st, devices_file=devices_file)}
        seq_boards = time.perf_counter() - t
        t = time.perf_counter()
        with Store(root / "par.sqlite") as st:
            par_rows = bench(paths, devices=boards, config=cfg, store=st, devices_file=devices_file)
        par_boards = time.perf_counter() - t
        t = time.perf_counter()
        with Store(root / "lab.sqlite") as st:
            lab_rows = bench(paths, devices=["local", *boards], config=cfg, store=st, devices_file=devices_file)
        lab = time.perf_counter() - t
    finally:
        for s in servers:
            s.stop()
    local_alone = sum(r.tg_tps for r in seq["local"].values())
    print(f"\n# {len(paths)} GGUF artifacts × {n} loopback boards, {cfg.reps} reps, {cfg.chunks} chunks")
    print(f"local + boards one at a time   {seq_boards:7.1f} s")
    print(f"boards at once                 {par_boards:7.1f} s")
    print(f"local + boards at once         {lab:7.1f} s   ({seq_boards / lab:.2f}× faster than one at a time)")
    def equal(r) -> bool:
        a = seq[r.device][r.format]
        return abs(r.ppl / a.ppl - 1) < 1e-9 and abs((r.kld_mean or 0) - (a.kld_mean or 0)) <= 1e-6 * (a.kld_mean or 0) + 1e-12

    same = all(equal(r) for r in [*par_rows, *lab_rows])
    print(f"every row equal to the one-at-a-time row (PPL 1e-9, KLD 1e-6): {same}")
    print(f"{'format':12} {'tg local alone':>15} {'tg local in lab':>16} {'ratio':>6}")
    for r in lab_rows:
        if r.device == "local":
            a = seq["local"][r.format]
            print(f"{r.format:12} {a.tg_tps:15.1f} {r.tg_tps:16.1f} {r.tg_tps / a.tg_tps:6.2f}")
    print(f"(sum of local tg t/s alone {local_alone:.1f})")
    shutil.rmtree(root, ignore_errors=True)
    print(f"\nartifacts: {out}")


if __name__ == "__main__":
    main()
