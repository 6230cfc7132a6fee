"""`edge recommend` on synthetic stores whose answers are known by construction: the choice under each
constraint, ties to the smallest, error-bar cases, tiers with a missing row, memory as a share of RAM,
task accuracy drops, nothing fitting (the closest named, --check), and bad input in one line."""

from __future__ import annotations

import json
import math

import pytest
from typer.testing import CliRunner

from edge.cli import app
from edge.recommend import ConstraintError, constraints, from_store, parse_memory, recommend
from edge.store import Result, Run, Store, TaskResult

GiB = 2**30
MiB = 2**20


def row(fmt: str, device: str = "local", *, size_mib: float, kld: float | None, kld_se: float = 0.0,
        tg: float = 100.0, tg_std: float = 0.0, pp: float = 1000.0, mem_mib: float = 300.0, run_id: int = 1,
        reps: int = 5, ppl_ratio: float | None = None, **kw) -> Result:
    return Result(run_id=run_id, model="m", format=fmt, device=device, artifact_path=f"/a/{fmt}",
                  artifact_sha256=f"sha-{fmt}", size_bytes=int(size_mib * MiB), bits_per_weight=size_mib / 10,
                  reps=reps, n_prompt=512, n_gen=128, pp_tps=pp, pp_tps_std=0.0, tg_tps=tg, tg_tps_std=tg_std,
                  ttft_s=0.1, ttft_s_std=0.0, peak_rss_bytes=int(mem_mib * MiB), ctx=512, chunks=8,
                  kld_mean=kld, kld_unc=kld_se if kld is not None else None, ppl=10.0, ppl_unc=0.1,
                  ln_ppl_ratio=None if ppl_ratio is None else math.log(ppl_ratio), ln_ppl_ratio_unc=0.001,
                  tokens_sha256="tok", reference_sha256="ref", **kw)


LADDER = [  # format, size MiB, KLD, decode t/s: quality falls and speed rises down the ladder
    ("gguf:f16", 258, 5e-6, 90.0),
    ("gguf:q8_0", 138, 0.0041, 150.0),
    ("gguf:q4_k_m", 101, 0.056, 200.0),
    ("gguf:q4_0", 87, 0.251, 230.0),
]


def ladder(device: str = "local", **kw) -> list[Result]:
    return [row(f, device, size_mib=s, kld=k, kld_se=k / 50, tg=tg, **kw) for f, s, k, tg in LADDER]


def one(results, device="local", **c):
    recs = recommend(results, constraints(**c))
    assert len(recs) == 1
    return next(d for d in recs[0].decisions if d.name == device)


def verdict(decision, fmt):
    return next(v for v in decision.verdicts if v.format == fmt)


def test_best_quality_that_meets_every_constraint():
    d = one(ladder(), min_tg=120, max_kld=0.05)
    assert d.choice == "gguf:q8_0"
    f16, q4 = verdict(d, "gguf:f16"), verdict(d, "gguf:q4_0")
    assert f16.status == "fails" and "decode 90.0" in f16.reason() and "< 120.0" in f16.reason() and "25 % off" in f16.reason()
    assert q4.status == "fails" and "KLD" in q4.reason() and "×5.0" in q4.reason()
    # no constraint: the best quality there is
    assert one(ladder()).choice == "gguf:f16"
    # a speed floor only: the best quality among the fast ones
    assert one(ladder(), min_tg=210).choice == "gguf:q4_0"


def test_ties_go_to_the_smallest_and_clear_differences_do_not():
    close = [row("gguf:q8_0", size_mib=138, kld=0.0040, kld_se=0.0003), row("gguf:q6_k", size_mib=110, kld=0.0043, kld_se=0.0003)]
    d = one(close)
    assert d.choice == "gguf:q6_k" and d.tied == ["gguf:q8_0"] and "tied" in d.why
    apart = [row("gguf:q8_0", size_mib=138, kld=0.0040, kld_se=0.00001), row("gguf:q6_k", size_mib=110, kld=0.0043, kld_se=0.00001)]
    d = one(apart)  # measured apart, but 0.0003 nats is a negligible difference (< 0.001): the smaller
    assert d.choice == "gguf:q6_k" and d.tied == ["gguf:q8_0"]
    d = one(apart, tie=0.0)  # no negligible difference: the measured better one
    assert d.choice == "gguf:q8_0" and d.tied == []
    far = [row("gguf:q8_0", size_mib=138, kld=0.0040, kld_se=0.00001), row("gguf:q6_k", size_mib=110, kld=0.0083, kld_se=0.00001)]
    assert one(far).choice == "gguf:q8_0"
    # exactly equal quality (two unquantized formats): the smaller file
    same = [row("onnx:fp32", size_mib=519, kld=0.0), row("gguf:f16", size_mib=258, kld=0.0)]
    assert one(same).choice == "gguf:f16"


def test_a_pass_only_within_the_error_bar_is_marked():
    # KLD 0.049 ± 0.001 (SE): the 95 % interval [0.047, 0.051] holds the limit 0.05
    marginal = [row("gguf:q5_k_m", size_mib=107, kld=0.049, kld_se=0.001)]
    d = one(marginal, max_kld=0.05)
    v = verdict(d, "gguf:q5_k_m")
    assert d.choice == "gguf:q5_k_m" and v.marginal and "within its error bar" in d.why
    [kld_check] = v.checks
    assert kld_check.status == "pass within error bar"
    # 0.0505 ± 0.001 fails at its point, within its error bar: not chosen, said so
    d = one([row("gguf:q5_k_m", size_mib=107, kld=0.0505, kld_se=0.001)], max_kld=0.05)
    assert d.choice is None and verdict(d, "gguf:q5_k_m").checks[0].status == "fail within error bar"
    # far from the limit on either side: plain pass and plain fail
    assert verdict(one([row("a:x", size_mib=1, kld=0.01, kld_se=0.0001)], max_kld=0.05), "a:x").checks[0].status == "pass"
    assert verdict(one([row("a:x", size_mib=1, kld=0.09, kld_se=0.0001)], max_kld=0.05), "a:x").checks[0].status == "fail"
    # speed: the t-interval of the mean over 5 reps, 100 ± 10 stddev → ±12.4: a floor of 95 is within it
    v = verdict(one([row("a:x", size_mib=1, kld=0.01, tg=100.0, tg_std=10.0)], min_tg=95), "a:x")
    assert v.checks[0].status == "pass within error bar"
    assert math.isclose(v.checks[0].lo, 100 - 2.776 * 10 / math.sqrt(5), rel_tol=1e-6)


def test_nothing_fits_names_the_closest():
    d = one(ladder(), min_tg=250, max_kld=0.01)
    assert d.choice is None
    # q4_0 misses tg by 8 % but KLD by ×25; q8_0 misses tg by 40 %; f16 by 64 %: q8_0's worst miss is the least
    assert d.closest == "gguf:q8_0" and "closest: gguf:q8_0" in d.why


def test_tier_needs_every_device_and_never_extrapolates():
    rows = ladder("local") + [r for r in ladder("phone", run_id=2, mem_mib=600) if r.format != "gguf:q8_0"]
    for r in rows:  # the phone decodes at a third of the laptop's speed
        if r.device == "phone":
            r.tg_tps /= 3
    recs = recommend(rows, constraints(min_tg=40, max_kld=0.1), tiers={"phones": ["phone"], "all": ["local", "phone"]})
    by = {(d.scope, d.name): d for d in recs[0].decisions}
    assert by[("device", "local")].choice == "gguf:f16"               # 90 t/s ≥ 40
    assert by[("device", "phone")].choice == "gguf:q4_k_m"            # 200/3 = 67 t/s, KLD 0.056
    tier = by[("tier", "all")]
    assert tier.choice == "gguf:q4_k_m"
    q8 = verdict(tier, "gguf:q8_0")
    assert q8.status == "not measured" and q8.missing == ["phone"] and "not measured on phone" in q8.reason()
    f16 = verdict(tier, "gguf:f16")
    assert f16.status == "fails" and "on phone" in f16.reason()        # 30 t/s on the phone
    # a tier of a device with no rows at all: nothing measured, nothing chosen
    recs = recommend(rows, constraints(), tiers={"ghost": ["pixel9"]}, tier="ghost")
    [d] = recs[0].decisions
    assert d.choice is None and all(v.status == "not measured" for v in d.verdicts)


def test_estimate_is_labelled_and_not_used():
    rows = ladder("local", decode_gbs=10.0, membw_gbs=20.0) + \
        [r for r in ladder("phone", run_id=2, decode_gbs=5.0, membw_gbs=10.0) if r.format != "gguf:q8_0"]
    d = recommend(rows, constraints(), tiers={"all": ["local", "phone"]}, tier="all")[0].decisions[0]
    q8 = verdict(d, "gguf:q8_0")
    assert q8.status == "not measured" and "estimate, not measured" in q8.estimate
    # bytes/token of q8_0 = 10e9/150; the phone reads 10 GB/s at 50 % efficiency → 5e9 / (10e9/150) = 75 t/s
    assert "decode ≈ 75 t/s on phone" in q8.estimate
    assert d.choice != "gguf:q8_0"


def test_memory_share_of_each_devices_ram():
    rows = ladder("local", mem_mib=500)
    c = constraints(max_mem="40%")
    d = recommend(rows, c, ram={"local": GiB})[0].decisions[0]     # 40 % of 1 GiB = 410 MiB < 500
    assert d.choice is None and "peak memory 500" in verdict(d, "gguf:f16").reason()
    assert recommend(rows, c, ram={"local": 2 * GiB})[0].decisions[0].choice == "gguf:f16"
    d = recommend(rows, c)[0].decisions[0]                          # RAM unknown: cannot be checked
    assert d.choice is None and "RAM is unknown" in verdict(d, "gguf:f16").reason()
    assert parse_memory("1.5GiB") == (1.5 * GiB, None) and parse_memory("800MB") == (800e6, None)
    assert parse_memory("40%") == (None, 0.4)


def task_row(fmt: str, dacc: float, lo: float, hi: float) -> TaskResult:
    return TaskResult(device="local", model="m", format=fmt, artifact_path=f"/a/{fmt}", artifact_sha256=f"sha-{fmt}",
                      task="arc_easy", task_sha256="t", encoded_sha256="e", kind="choice", n=500, config_sha256="c",
                      acc=0.6 + dacc, acc_se=0.02, dacc=dacc, dacc_lo=lo, dacc_hi=hi, reference_id=1)


def test_accuracy_drop_on_a_task():
    tasks = [task_row("gguf:f16", 0.0, -0.004, 0.004), task_row("gguf:q8_0", -0.004, -0.012, 0.004),
             task_row("gguf:q4_k_m", -0.015, -0.03, 0.0), task_row("gguf:q4_0", -0.06, -0.09, -0.03)]
    recs = recommend(ladder(), constraints(max_acc_drop=2, task="arc_easy", min_tg=120), tasks=tasks)
    d = recs[0].decisions[0]
    assert recs[0].quality == "acc_drop"
    # f16 is too slow; q8_0 (drop 0.4 [-0.4, 1.2]) and q4_k_m (1.5 [0, 3]) cannot be told apart, but q4_k_m
    # passes only within its error bar: q8_0, which passes outright
    assert d.choice == "gguf:q8_0" and d.tied == ["gguf:q4_k_m"]
    tasks[2] = task_row("gguf:q4_k_m", -0.015, -0.017, -0.013)  # measured tightly: q8_0 is better
    d = recommend(ladder(), constraints(max_acc_drop=2, task="arc_easy", min_tg=120), tasks=tasks)[0].decisions[0]
    assert d.choice == "gguf:q8_0" and d.tied == []
    tasks[2] = task_row("gguf:q4_k_m", -0.015, -0.03, 0.0)
    d = recommend(ladder(), constraints(max_acc_drop=2, task="arc_easy"), tasks=tasks)[0].decisions[0]
    # q4_k_m (drop 1.5 [0, 3]) ties with f16 and q8_0 and is the smallest, but passes only within its error
    # bar (its interval reaches 3 > 2): the smallest of those that pass outright, q8_0, comes first
    assert verdict(d, "gguf:q4_k_m").marginal and "gguf:q4_k_m" in d.tied
    assert d.choice == "gguf:q8_0"
    assert verdict(d, "gguf:q4_0").status == "fails"
    # the task not scored: the formats are "not measured", and a note says so
    recs = recommend(ladder(), constraints(max_acc_drop=2, task="piqa"), tasks=tasks)
    assert recs[0].decisions[0].choice is None and "piqa was not scored" in recs[0].notes[0]


@pytest.mark.parametrize("kw, message", [
    ({"max_mem": "lots"}, "--max-mem 'lots'"),
    ({"max_mem": "140%"}, "between 0 and 100"),
    ({"max_ppl_loss": "three"}, "--max-ppl-loss"),
    ({"max_acc_drop": 2.0}, "needs --task"),
    ({"min_tg": -1.0}, "--min-tg"),
])
def test_bad_constraints_are_one_line(kw, message):
    with pytest.raises(ConstraintError) as e:
        constraints(**kw)
    assert message in str(e.value) and "\n" not in str(e.value)


def _store(tmp_path, rows, ram=8 * GiB) -> Store:
    st = Store(tmp_path / "s.sqlite")
    for dev in sorted({r.device for r in rows}):
        run = st.start_run(Run(device=dev, device_facts={"ram_bytes": ram}, config={}, tools={}))
        for r in rows:
            if r.device == dev:
                r.run_id = run.id
                st.add_result(r)
    return st


def test_cli_recommend_check_json_and_tiers(tmp_path):
    rows = ladder("local") + [r for r in ladder("phone") if r.format != "gguf:q8_0"]
    for r in rows:
        if r.device == "phone":
            r.tg_tps /= 3
    st = _store(tmp_path, rows)
    devices = tmp_path / "devices.toml"
    devices.write_text('[devices.phone]\ntransport = "adb"\nserial = "X1"\n\n[tiers]\nlow = ["phone"]\nlaptop = ["local"]\n')
    base = ["recommend", "--store", str(st.path), "--devices-file", str(devices)]
    runner = CliRunner()
    res = runner.invoke(app, base + ["--min-tg", "40", "--max-kld", "0.1", "-f", "json"])
    assert res.exit_code == 0, res.output
    [rec] = json.loads(res.stdout)
    choices = {(d["scope"], d["name"]): d["choice"] for d in rec["decisions"]}
    assert choices == {("device", "local"): "gguf:f16", ("device", "phone"): "gguf:q4_k_m",
                       ("tier", "low"): "gguf:q4_k_m", ("tier", "laptop"): "gguf:f16"}
    assert rec["fits"] is True and rec["decisions"][0]["verdicts"][0]["checks"]
    # a gate: nothing fits the low tier at 100 t/s → exit 1 with --check, 0 without
    res = runner.invoke(app, base + ["--min-tg", "100", "--tier", "low", "--check"])
    assert res.exit_code == 1 and "nothing fits" in res.stdout
    assert runner.invoke(app, base + ["--min-tg", "100", "--tier", "low"]).exit_code == 0
    # memory as a share of the RAM the device's run recorded (8 GiB): 300 MiB fits under 5 %
    res = runner.invoke(app, base + ["--max-mem", "5%", "--tier", "laptop", "-f", "md"])
    assert res.exit_code == 0 and "| tier laptop (local) | `gguf:f16` |" in res.stdout
    # one-line refusals
    res = runner.invoke(app, base + ["--tier", "lwo"])
    assert res.exit_code == 2 and "unknown tier 'lwo' (did you mean 'low'?)" in res.output
    res = runner.invoke(app, base + ["--max-mem", "lots"])
    assert res.exit_code == 2 and res.output.count("\n") == 1
    devices.write_text('[tiers]\nlow = ["pixle8"]\n')
    res = runner.invoke(app, base)
    assert res.exit_code == 9 and "unknown device 'pixle8'" in res.output


def test_report_md_opens_with_the_recommendation(tmp_path):
    st = _store(tmp_path, ladder())
    res = CliRunner().invoke(app, ["report", "--store", str(st.path), "-f", "md", "--min-tg", "120"])
    assert res.exit_code == 0, res.output
    head, _, matrix = res.stdout.partition("### m\n")
    assert "Recommendation for m" in head and "`gguf:q8_0`" in head and "| `gguf:q4_0` |" in matrix
    # the terminal table only when a constraint is given
    res = CliRunner().invoke(app, ["report", "--store", str(st.path)])
    assert "Recommendation" not in res.stdout
    assert from_store(st, constraints(min_tg=120))[0].decisions[0].choice == "gguf:q8_0"
