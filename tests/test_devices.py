"""Devices: the facts parsers (on Android outputs), the devices file, the adb and SSH transports against the
real clients, and `edge bench` on a real OpenSSH server on 127.0.0.1 in agent and native mode, with the
faults a desk full of boards produces (unreachable, wrong key, unknown host key, a board that goes away
mid-run, a full disk, a binary for the wrong CPU)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from typer.testing import CliRunner

from converters.executorch.native import parse_observer
from device_bench import native, sysinfo
from device_bench.config import load_specs
from device_bench.devices import get_device
from device_bench.remote import RemoteDevice
from device_bench.transports import AdbTransport
from edge.bench import BenchConfig, bench, pinned_cpus
from edge.cli import app
from edge.core.errors import DeviceError, UnknownNameError
from edge.core.progress import Progress
from edge.report import report
from edge.store import Store
from sshd import Sshd

FIX = Path(__file__).parent / "fixtures" / "android"
HOSTILE = "we'ird $(touch PWNED) `id` name;&|.gguf"
CFG = BenchConfig(reps=2, n_prompt=128, n_gen=16, n_ttft=32, chunks=3)
needs_sshd = pytest.mark.skipif(not Path("/usr/sbin/sshd").exists(), reason="needs Debian's openssh-server (see README)")


def fixture(name: str) -> str:
    return (FIX / name).read_text()


# ------------------------------------------------------------------ parsers (Android formats)
def test_android_facts_from_probe_sections():
    sections = {"uname": "Linux 6.1.75-android14-11 aarch64", "cpuinfo": fixture("cpuinfo.txt"),
                "meminfo": fixture("meminfo.txt"), "nproc": "9", "cpufreq": fixture("cpufreq.txt"),
                "governor": fixture("governor.txt"), "thermal": fixture("thermal.txt"),
                "getprop": fixture("getprop.txt"), "battery": fixture("dumpsys_battery.txt"),
                "df": "/dev/block/dm-48  115249236  61327840  53790180  54% /data"}
    f = sysinfo.facts_from_probe(sections)
    assert f["model"] == "Pixel 8" and f["soc"] == "Tensor G3" and f["cpu_model"] == "Tensor G3"
    assert f["os"].startswith("Android 14") and f["arch"] == "aarch64" and f["cpus_usable"] == 9
    assert f["ram_bytes"] == 7819520 * 1024 and f["ram_available_bytes"] == 3145728 * 1024
    assert f["clusters"] == [{"max_mhz": 2914, "cpus": [8]}, {"max_mhz": 2367, "cpus": [4, 5, 6, 7]},
                             {"max_mhz": 1704, "cpus": [0, 1, 2, 3]}]
    assert f["governors"] == {"sched_pixel": [0, 4], "performance": [8]}
    assert f["thermal_c"]["BIG"] == 45.1 and "usb_pwr_therm" not in f["thermal_c"]  # -273 °C: unplugged sensor
    assert f["max_temp_c"] == 45.1
    assert f["battery"] == {"status": "charging", "plugged": ["USB"], "level_pct": 78, "temperature_c": 31.2}
    assert f["disk_free_bytes"] == 53790180 * 1024
    # --cores big on this phone: the fastest cluster only
    assert pinned_cpus(BenchConfig(cores="big"), f) == [8] and pinned_cpus(BenchConfig(), f) is None


def test_proc_status_adb_devices_and_idle():
    from edge.measure.procmem import parse_proc_status

    st = parse_proc_status(fixture("proc_status.txt"))
    assert st["VmHWM"] == 241856 * 1024 and st["VmSwap"] == 2048 * 1024
    assert native.parse_mem_samples(["@mem VmHWM: 1000 kB VmRSS: 900 kB VmSwap: 0 kB",
                                     "@mem VmHWM: 2500 kB VmRSS: 800 kB VmSwap: 4 kB"]) == \
        {"VmHWM": 2500 * 1024, "VmRSS": 900 * 1024, "VmSwap": 4 * 1024}
    devs = sysinfo.parse_adb_devices(fixture("adb_devices.txt"))
    assert [(d["serial"], d["state"]) for d in devs] == [("39281FDJH000XY", "device"), ("emulator-5554", "offline"),
                                                         ("R58N12ABCDE", "unauthorized")]
    assert devs[0]["model"] == "Pixel_8"
    idle = sysinfo.parse_idle("cpu  100 0 100 800 0 0 0 0 0 0\ncpu  150 0 150 1700 0 0 0 0 0 0")
    assert idle == pytest.approx(0.9)


def test_executorch_observer_line():
    line = ('I 00:00:02.100 executorch:stats.h:84] ...\nPyTorchObserver {"prompt_tokens":512,"generated_tokens":128,'
            '"model_load_start_ms":1000,"model_load_end_ms":1800,"inference_start_ms":2000,"inference_end_ms":4540,'
            '"prompt_eval_end_ms":2500,"first_token_ms":2520,"aggregate_sampling_time_ms":30,'
            '"SCALING_FACTOR_UNITS_PER_SECOND":1000}\n')
    r = parse_observer(line)
    assert r["load_s"] == pytest.approx(0.8) and r["ttft_s"] == pytest.approx(0.52)
    # ExecuTorch's own rate: generated_tokens decode steps from prompt_eval_end_ms to inference_end_ms
    assert r["pp_tps"] == pytest.approx(512 / 0.5) and r["tg_tps"] == pytest.approx(128 / 2.04)


def test_elf_check(tmp_path):
    native.check_binary(Path(sys.executable).resolve(), "x86_64" if os.uname().machine == "x86_64" else os.uname().machine, "d")
    with pytest.raises(DeviceError, match="but the device is aarch64|but the device is x86_64"):
        native.check_binary(Path(sys.executable).resolve(), "aarch64" if os.uname().machine != "aarch64" else "x86_64", "d")
    script = tmp_path / "llama-bench"
    script.write_text("#!/bin/sh\necho hi\n")
    with pytest.raises(DeviceError, match="not an ELF executable"):
        native.check_binary(script, "aarch64", "d")
    with pytest.raises(DeviceError, match="does not exist"):
        native.check_binary(tmp_path / "missing", "aarch64", "d")


# ------------------------------------------------------------------ devices file
def test_devices_file(tmp_path):
    f = tmp_path / "devices.toml"
    f.write_text('[devices.pi5]\ntransport = "ssh"\nhost = "pi5.local"\nuser = "pi"\n'
                 '[devices.pixel8]\ntransport = "adb"\nserial = "39281FDJH000XY"\n'
                 '[devices.pixel8.tools]\nllama-bench = "/x/llama-bench"\n')
    specs = load_specs(f)
    assert specs["pi5"].mode == "agent" and specs["pi5"].workdir == "/tmp/edge"
    assert specs["pixel8"].mode == "native" and specs["pixel8"].workdir == "/data/local/tmp/edge"
    assert specs["pixel8"].tools == {"llama-bench": "/x/llama-bench"}
    with pytest.raises(UnknownNameError, match="did you mean 'pi5'"):
        get_device("pi4", f)
    for bad, msg in [('[devices.a]\ntransport = "telnet"\n', "transport must be one of"),
                     ('[devices.a]\ntransport = "ssh"\n', "needs host"),
                     ('[devices.a]\ntransport = "ssh"\nhost = "h"\nhots = "x"\n', "unknown key"),
                     ('[devices.local]\ntransport = "ssh"\nhost = "h"\n', "cannot be redefined"),
                     ('[devices.a]\ntransport = "adb"\n[devices.a.tools]\nllama-cli = "x"\n', "unknown tool"),
                     ("[devices.a\n", "not a valid devices file")]:
        f.write_text(bad)
        with pytest.raises(DeviceError, match=msg):
            load_specs(f)


# ------------------------------------------------------------------ adb (the real client, no phone)
def test_adb_commands_are_quoted_and_a_missing_phone_is_one_line():
    t = AdbTransport("39281FDJH000XY", label="pixel8")
    argv = t.argv(["sha256sum", f"/data/local/tmp/edge/{HOSTILE}"])
    assert argv[:4] == ["adb", "-s", "39281FDJH000XY", "shell"] and len(argv) == 5
    import shlex

    assert shlex.split(argv[4]) == ["sha256sum", f"/data/local/tmp/edge/{HOSTILE}"]
    if shutil.which("adb") is None:
        pytest.skip("needs Debian's adb client (see README)")
    try:
        with pytest.raises(DeviceError, match="pixel8: .*(not found|no devices)"):
            AdbTransport("no-such-phone", label="pixel8").run(["true"], timeout=60)
    finally:
        subprocess.run(["adb", "kill-server"], capture_output=True)


# ------------------------------------------------------------------ SSH: a real sshd on 127.0.0.1
@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    if not Path("/usr/sbin/sshd").exists():
        pytest.skip("needs Debian's openssh-server (see README)")
    server = Sshd(tmp_path_factory.mktemp("sshd")).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def devices_file(sshd, tmp_path_factory):
    path = tmp_path_factory.mktemp("devcfg") / "devices.toml"
    path.write_text(sshd.toml("board"))
    return path


class StopAt(Progress):
    """Runs ``action`` the first time a progress line contains ``text`` (a board unplugged mid-run)."""

    def __init__(self, text: str, action) -> None:
        self.text, self.action, self.fired = text, action, False

    def start(self, description: str, total: float | None = None) -> None:
        if not self.fired and self.text in description:
            self.fired = True
            self.action()


def test_ssh_faults_are_one_line(sshd):
    cases = [(sshd.spec(port=1), "Connection refused"),
             (sshd.spec(identity=str(sshd.root / "other_key")), "Permission denied"),
             (sshd.spec(known_hosts=str(sshd.root / "empty_known_hosts")), "Host key verification failed")]
    for spec, msg in cases:
        with pytest.raises(DeviceError, match=msg) as err:
            RemoteDevice(spec).facts()
        assert "\n" not in str(err.value)


def test_ssh_facts_and_edge_devices(sshd, tmp_path):
    dev = RemoteDevice(sshd.spec())
    f = dev.facts()
    assert f["transport"] == "ssh" and f["cores_logical"] == os.cpu_count()
    assert f["ram_bytes"] > 0 and f["membw_gbs"] > 0.1 and f["python"]
    cfg = tmp_path / "devices.toml"
    cfg.write_text(sshd.toml("board") + sshd.toml("gone").replace(f"port = {sshd.port}", "port = 1"))
    try:
        res = CliRunner().invoke(app, ["devices", "--devices-file", str(cfg), "--json"])
    finally:  # `edge devices` asks adb for phones, which starts adb's server
        subprocess.run(["adb", "kill-server"], capture_output=True)
    assert res.exit_code == 0, res.output
    rows = {r["name"]: r for r in json.loads(res.output)}
    assert rows["local"]["reachable"] and rows["board"]["reachable"] and rows["board"]["membw_gbs"] > 0
    assert not rows["gone"]["reachable"] and "Connection refused" in rows["gone"]["why"]


def test_push_once_hostile_names_and_full_disk(sshd, tmp_path):
    dev = RemoteDevice(sshd.spec(workdir=str(sshd.root / "workdir" / "push")))
    src = tmp_path / HOSTILE
    src.write_bytes(os.urandom(3_000_000))
    sent: list[int] = []
    remote = dev.place(src, on_bytes=sent.append)
    assert Path(remote).read_bytes() == src.read_bytes() and sum(sent) == src.stat().st_size
    assert not list(Path.home().glob("PWNED")) and not list(tmp_path.glob("PWNED")) and not list(sshd.root.rglob("PWNED"))
    again = RemoteDevice(dev.spec)  # a new session: the sha256 on the device says it is there
    sent.clear()
    assert again.place(src, on_bytes=sent.append) == remote and sent == []
    # a full disk: the kernel's ENOSPC (the partial file is /dev/full), reported, nothing left behind
    other = tmp_path / "other.bin"
    other.write_bytes(os.urandom(100_000))
    from edge.core.hashing import sha256_file

    target = Path(dev.workdir) / "files" / sha256_file(other) / "other.bin"
    target.parent.mkdir(parents=True)
    (target.parent / "other.bin.partial").symlink_to("/dev/full")
    with pytest.raises(DeviceError, match="No space left on device"):
        dev.place(other)
    assert not target.exists() and not (target.parent / "other.bin.partial").exists()


def test_agent_bench_equals_local_and_resumes_after_a_board_goes_away(sshd, devices_file, tiny_artifacts, tmp_path):
    arts = [tiny_artifacts[v] for v in ("f16", "q8_0", "q4_0")]
    with Store(tmp_path / "r.sqlite") as st:
        local = {r.format: r for r in bench(arts, devices=["local"], config=CFG, store=st)}
        # the board disappears when the third artifact is about to be pushed (one artifact after another
        # here, so that two rows are finished by then; interleaved, a row is stored only once all are loaded)
        with pytest.raises(DeviceError, match="board: .*Connection refused"):
            bench(arts, devices=["board"], config=replace(CFG, interleave=False), store=st, devices_file=devices_file,
                  progress=StopAt("board gguf:q4_0: placing", sshd.stop))
        kept = [r for r in st.results(device="board")]
        assert [r.format for r in kept] == ["gguf:f16", "gguf:q8_0"]  # in the order given
        sshd.start()  # plugged back in: the same command resumes
        rows = {r.format: r for r in bench(arts, devices=["board"], config=replace(CFG, interleave=False), store=st,
                                           devices_file=devices_file)}
        assert rows["gguf:f16"].id == kept[0].id
        assert [r.format for r in st.results(device="board")] == ["gguf:f16", "gguf:q8_0", "gguf:q4_0"]
        runs = st.runs()
    for fmt, r in rows.items():
        # the same runner code on the same machine: quality identical (speed is compared by
        # benchmarks/bench_devices.py, never asserted: the tools build may share these 2 cores)
        assert r.ppl == pytest.approx(local[fmt].ppl, rel=1e-9)
        assert r.device == "board" and r.raw["threads"] >= 1 and r.peak_rss_bytes > 20 * 2**20
        assert r.pp_tps > 0 and r.tg_tps > 0 and r.ttft_s > 0
        assert r.decode_gbs > 0 and r.membw_gbs > 0 and "before" in r.conditions
    assert rows["gguf:q4_0"].kld_mean == pytest.approx(local["gguf:q4_0"].kld_mean, rel=1e-6)
    assert runs[-2].status == "failed" and runs[-1].status == "done"
    assert runs[-1].device_facts["transport"] == "ssh"


def test_cli_bench_on_board_with_cooldown(sshd, devices_file, tiny_artifacts, tmp_path):
    store = tmp_path / "r.sqlite"
    res = CliRunner().invoke(app, ["bench", str(tiny_artifacts["q8_0"]), "--device", "board", "--devices-file",
                                   str(devices_file), "--reps", "1", "--chunks", "1", "--no-quality", "--store", str(store),
                                   "--cooldown", "90", "--cooldown-wait", "3", "--cores", "big"])
    assert res.exit_code == 0, res.output
    with Store(store) as st:
        (r,) = st.results()
    waits = r.raw["cooldown_waits"]
    assert len(waits) == 1 and ("°C" in waits[0]["basis"] or "idle" in waits[0]["basis"]) and waits[0]["waited_s"] <= 10
    res = CliRunner().invoke(app, ["bench", str(tiny_artifacts["q8_0"]), "--device", "bored", "--devices-file", str(devices_file)])
    assert res.exit_code == 2 and "did you mean 'board'" in res.output


@needs_sshd
def test_native_bench_with_llama_cpp_tools(sshd, llama_tools, tiny_artifacts, tmp_path):
    tools = {k: v for k, v in llama_tools.items() if k in ("llama-bench", "llama-perplexity")}  # what native mode runs
    cfg_file = tmp_path / "devices.toml"
    cfg_file.write_text(sshd.toml("nboard", mode="native", tools=tools))
    arts = [tiny_artifacts[v] for v in ("f16", "q4_0")]
    with Store(tmp_path / "r.sqlite") as st:
        agent = {r.format: r for r in bench(arts, devices=["local"], config=CFG, store=st)}
        rows = {r.format: r for r in bench(arts, devices=["nboard"], config=CFG, store=st, devices_file=cfg_file)}
        text = report(st.results(), "md")
    for fmt, r in rows.items():
        assert r.raw["mode"] == "native" and r.pp_tps > 0 and r.tg_tps > 0 and r.ttft_s > 0
        # sampled every 0.05 s: a tiny model runs for a fraction of a second, so only "it was sampled" here
        assert r.peak_rss_bytes and r.peak_rss_bytes > 2**20 and "VmHWM" in r.raw["peak_basis"]
        # llama-perplexity and edge's protocol score the same chunks: the same perplexity
        assert r.ppl == pytest.approx(agent[fmt].ppl, rel=0.01)
        assert r.load_s is None and "no load time" in r.raw["load_note"]
    # both against the source checkpoint (llama-perplexity reads edge's reference in its own KL-base format,
    # tokens included): every row, the float one too, has a KLD, the same as the agent's within storage error
    for fmt in rows:
        assert rows[fmt].kld_mean == pytest.approx(agent[fmt].kld_mean, rel=0.05)
        assert rows[fmt].same_top == pytest.approx(agent[fmt].same_top, abs=0.01)
        assert rows[fmt].ppl_base == pytest.approx(agent[fmt].ppl_base, rel=1e-3)
        assert rows[fmt].ln_ppl_ratio == pytest.approx(agent[fmt].ln_ppl_ratio, abs=2e-3)
        assert rows[fmt].kld_99 <= rows[fmt].kld_99_9 <= rows[fmt].kld_max
    assert "nboard" in text
    # a binary for another CPU is refused before anything runs
    wrong = tmp_path / "llama-bench-arm"
    data = bytearray(Path(tools["llama-bench"]).read_bytes()[:64])
    data[18:20] = (0xB7 if os.uname().machine != "aarch64" else 0x3E).to_bytes(2, "little")
    wrong.write_bytes(bytes(data))
    cfg_file.write_text(sshd.toml("nboard", mode="native", tools={**tools, "llama-bench": str(wrong)}))
    with Store(tmp_path / "r2.sqlite") as st:
        with pytest.raises(DeviceError, match="llama-bench-arm is built for"):
            bench(arts[:1], devices=["nboard"], config=CFG, store=st, devices_file=cfg_file)


def test_artifact_larger_than_the_devices_free_ram_is_refused_with_numbers(tiny_artifacts, tmp_path):
    from device_bench.devices import DEVICES, LocalDevice

    class SmallBoard(LocalDevice):  # this machine, reporting the RAM of a very small board
        name = "small-board"

        def facts(self, refresh: bool = False):
            return {**super().facts(refresh), "ram_available_bytes": 1000}

    DEVICES.register("small-board", SmallBoard)
    try:
        with Store(tmp_path / "r.sqlite") as st:
            with pytest.raises(DeviceError, match=r"tiny-llama-bpe-f16.gguf is \d+ KiB but small-board has 1 KiB of RAM available"):
                bench([tiny_artifacts["f16"]], devices=["small-board"], config=CFG, store=st)
            assert st.results() == [] and st.runs() == []
    finally:
        DEVICES.unregister("small-board")


def test_onnx_folders_in_agent_mode(sshd, devices_file, tiny, tmp_path):
    """A folder artifact (onnxruntime-genai) is pushed file by file and measured by the agent with the
    onnxruntime-genai of this machine's version: the same figures as locally."""
    pytest.importorskip("onnxruntime_genai")
    from edge.convert import convert

    ms = [a.manifest for a in convert(tiny("llama", "bpe"), "onnx:fp32,onnx:int4", tmp_path / "onnx")]
    arts = [tmp_path / "onnx" / m.artifact for m in ms]
    small = BenchConfig(reps=2, n_prompt=64, n_gen=8, n_ttft=16, ctx=128, chunks=2)
    with Store(tmp_path / "r.sqlite") as st:
        local = {r.format: r for r in bench(arts, devices=["local"], config=small, store=st)}
        board = {r.format: r for r in bench(arts, devices=["board"], config=small, store=st, devices_file=devices_file)}
    assert set(board) == {"onnx:fp32", "onnx:int4"}
    for fmt, r in board.items():
        assert r.raw["interleaved"] == 2  # each artifact in its own agent process over SSH, repetitions alternating
        assert r.ppl == pytest.approx(local[fmt].ppl, rel=1e-6) and r.tg_tps > 0
    assert board["onnx:int4"].kld_mean == pytest.approx(local["onnx:int4"].kld_mean, rel=1e-5)
    remote = Path(sshd.spec().workdir) / "files"
    assert any(p.name == "genai_config.json" for p in remote.rglob("genai_config.json"))


def test_report_flags_noisy_rows_and_gives_the_roofline():
    from edge.report import flags
    from edge.store import Result

    def row(device, pp_std, t0, t1):
        return Result(run_id=1, device=device, model="m", format="gguf:q4_0", artifact_path="x", artifact_sha256="s",
                      size_bytes=90 << 20, bits_per_weight=5.35, n_prompt=512, n_gen=128, pp_tps=100.0, pp_tps_std=pp_std,
                      tg_tps=50.0, tg_tps_std=1.0, decode_gbs=4.5, membw_gbs=20.0,
                      conditions={"before": {"max_temp_c": t0}, "after": {"max_temp_c": t1}})

    noisy, steady = row("pixel8", 8.0, 35.0, 52.0), row("pi5", 2.0, 40.0, 41.0)
    assert flags(noisy) == ["pp cv 8% > 5%", "heated 35→52 °C"] and flags(steady) == []
    md = report([noisy, steady], "md")
    assert "100.0 ± 8.0 !cv 8%" in md and "100.0 ± 2.0 |" in md and "4.5 (22%)" in md
    data = json.loads(report([noisy], "json"))[0]["rows"][0]
    assert data["flags"] == "pp cv 8% > 5%; heated 35→52 °C" and data["pct_of_membw"] == pytest.approx(22.5)


def test_transports_are_registered_strategies_with_their_own_keys(tmp_path):
    """Each transport brings its spec's keys (an ssh key on an adb phone is refused, naming adb's keys), its
    identity in the facts, and what it can name by itself (adb:SERIAL, never ssh:HOST)."""
    from device_bench.config import DeviceSpec
    from device_bench.transports import TRANSPORTS, AdbLink, SshLink

    assert list(TRANSPORTS) == ["ssh", "adb"]
    spec = DeviceSpec.from_table("pi5", {"transport": "ssh", "host": "pi5.local", "port": 2222})
    assert spec.link == SshLink("pi5.local", port=2222) and spec.mode == "agent"
    with pytest.raises(DeviceError, match=r"unknown key\(s\) host .*serial"):
        DeviceSpec.from_table("p", {"transport": "adb", "host": "x"})
    phone = get_device("adb:ABC123", tmp_path / "none.toml")
    assert phone.spec.link == AdbLink("ABC123") and phone.spec.mode == "native"
    assert TRANSPORTS.get("adb").identity(phone.spec.link) == {"serial": "ABC123"}
    with pytest.raises(UnknownNameError):
        get_device("ssh:somehost", tmp_path / "none.toml")


def test_tasks_in_agent_mode_on_the_board_give_the_local_answers(sshd, devices_file, tiny_artifacts, tmp_path):
    """edge eval on the loopback SSH board: the items file is pushed once (sha256), the same measuring
    process scores it there, and every item's log-likelihoods and answer equal the local run's."""
    import json

    from edge.evaluate import evaluate
    from task_oracle import QUESTIONS

    task = tmp_path / "q.jsonl"
    task.write_text("\n".join(json.dumps(q) for q in QUESTIONS), encoding="utf-8")
    with Store(tmp_path / "r.sqlite") as st:
        rows = evaluate([tiny_artifacts["q4_0"]], [str(task)], devices=["local", "board"], store=st,
                        devices_file=devices_file)
        src, local, board = rows
        assert (local.device, board.device) == ("local", "board") and board.reference_id == src.id
        here, there = st.task_items(local.id), st.task_items(board.id)
    assert [i.pred for i in here] == [i.pred for i in there] and len(here) == len(QUESTIONS)
    for a, b in zip(here, there):
        assert a.lls == pytest.approx(b.lls, abs=1e-9)
    assert board.acc == local.acc and board.dacc == local.dacc and board.flips == local.flips


# ------------------------------------------------------------------ a lab: several devices at once
def test_host_gate_never_measures_local_beside_host_work():
    """Pushes (busy) overlap each other, never a quiet measurement of the host's own device; a waiting
    measurement goes first (a stream of pushes cannot starve it)."""
    import threading
    import time

    from edge.core.lanes import HostGate, Once, run_lanes

    gate, state, seen = HostGate(), {"busy": 0, "quiet": 0, "overlap": 0, "busy_max": 0}, []
    lock = threading.Lock()

    def push(i: int) -> None:
        for _ in range(30):
            with gate.busy():
                with lock:
                    state["busy"] += 1
                    state["busy_max"] = max(state["busy_max"], state["busy"])
                    state["overlap"] += state["quiet"]
                time.sleep(0.002)
                with lock:
                    state["busy"] -= 1

    def measure() -> None:
        for _ in range(10):
            t0 = time.monotonic()
            with gate.quiet():
                seen.append(time.monotonic() - t0)
                with lock:
                    state["quiet"] += 1
                    state["overlap"] += state["busy"]
                time.sleep(0.005)
                with lock:
                    state["overlap"] += state["busy"]
                    state["quiet"] -= 1

    made = []
    once = Once(lambda: made.append(1) or 42)
    outcomes = run_lanes({**{f"p{i}": (lambda i=i: (push(i), once.get())[1]) for i in range(4)}, "local": measure})
    assert [o.error for o in outcomes] == [None] * 5 and [o.value for o in outcomes[:4]] == [42] * 4
    assert state["overlap"] == 0 and state["busy_max"] >= 2 and made == [1]
    assert max(seen) < 1.0  # each measurement got its turn within a few pushes


def test_a_lab_of_boards_and_local_at_once(sshd, tiny_artifacts, tmp_path):
    """`edge bench -d local,b1,b2`: every device measured at once, each row equal to the same device measured
    alone; b2 going away mid-run stops only b2 (the others' rows are stored, the error names b2), and the same
    command afterwards measures only what b2 missed."""
    second = Sshd(tmp_path / "sshd2").start()
    cfg_file = tmp_path / "devices.toml"
    cfg_file.write_text(sshd.toml("b1") + second.toml("b2"))
    arts = [tiny_artifacts[v] for v in ("f16", "q4_0")]
    cfg = replace(CFG, interleave=False)
    try:
        with Store(tmp_path / "alone.sqlite") as st:
            alone = {r.format: r for r in bench(arts, devices=["local"], config=cfg, store=st)}
        with Store(tmp_path / "lab.sqlite") as st:
            with pytest.raises(DeviceError, match=r"^1 of 3 devices failed: b2: .*Connection refused.* "
                                                  r"\(the rows of local, b1 are stored\)$") as err:
                bench(arts, devices=["local", "b1", "b2"], config=cfg, store=st, devices_file=cfg_file,
                      progress=StopAt("b2 gguf:q4_0: placing", second.stop))
            assert "\n" not in str(err.value)
            got = {d: [r.format for r in st.results(device=d)] for d in ("local", "b1", "b2")}
            assert got == {"local": ["gguf:f16", "gguf:q4_0"], "b1": ["gguf:f16", "gguf:q4_0"], "b2": ["gguf:f16"]}
            before = {r.id for r in st.results()}
            second.start()
            again = bench(arts, devices=["local", "b1", "b2"], config=cfg, store=st, devices_file=cfg_file)
            rows = st.results()
        new = [r for r in rows if r.id not in before]
        assert [(r.device, r.format) for r in new] == [("b2", "gguf:q4_0")]
        assert [(r.device, r.format) for r in again] == [(d, f) for d in ("local", "b1", "b2") for f in ("gguf:f16", "gguf:q4_0")]
        for r in rows:
            assert r.ppl == pytest.approx(alone[r.format].ppl, rel=1e-9)
            assert r.kld_mean == pytest.approx(alone[r.format].kld_mean, rel=1e-6, abs=1e-12)
            assert r.tg_tps > 0 and r.pp_tps > 0
    finally:
        second.stop()
