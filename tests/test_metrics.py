import math

import numpy as np

from edge.measure.metrics import QualityAccumulator, chunk_layout, chunk_tokens, log_softmax, mean_std, percentile
from edge.measure.procmem import parse_proc_status
from device_bench.sysinfo import parse_cpuinfo, parse_meminfo


def test_chunk_layout_is_llama_perplexity():
    assert chunk_layout(1100, 512, None) == (2, 256)
    assert chunk_layout(5000, 512, 3) == (3, 256)
    assert chunk_layout(100, 512, None) == (0, 256)
    assert chunk_tokens(list(range(1100)), 1, 512, bos=7)[:3] == [7, 513, 514]


def test_kld_zero_against_itself_and_positive_otherwise():
    rng = np.random.default_rng(0)
    lp = log_softmax(rng.normal(size=(300, 50)))
    targets = rng.integers(0, 50, 300)
    same = QualityAccumulator()
    same.add(lp, targets, lp)
    s = same.summary()
    assert abs(s["kld_mean"]) < 1e-12 and s["same_top"] == 1.0 and abs(s["delta_p_mean"]) < 1e-12
    assert math.isclose(s["ppl"], s["ppl_base"])
    noisy = QualityAccumulator()
    noisy.add(log_softmax(lp + rng.normal(scale=0.5, size=lp.shape)), targets, lp)
    n = noisy.summary()
    assert n["kld_mean"] > 0.01 and n["same_top"] < 1.0 and n["kld_max"] >= n["kld_99"] >= n["kld_median"]


def test_ppl_of_uniform_distribution_is_vocab_size():
    acc = QualityAccumulator()
    acc.add(log_softmax(np.zeros((10, 32))), np.arange(10))
    assert math.isclose(acc.ppl()[0], 32.0, rel_tol=1e-9)


def test_small_helpers():
    assert percentile(np.array([1.0, 2.0, 3.0]), 0.5) == 2.0
    m, s = mean_std([10.0, 12.0])
    assert m == 11.0 and math.isclose(s, math.sqrt(2))


PROC_STATUS = """Name:\tpython3
VmPeak:\t  912340 kB
VmSize:\t  900000 kB
VmHWM:\t  345678 kB
VmRSS:\t  300000 kB
VmSwap:\t       0 kB
Threads:\t3
"""

CPUINFO = """processor\t: 0
model name\t: AMD EPYC 7B13
physical id\t: 0
core id\t\t: 0

processor\t: 1
model name\t: AMD EPYC 7B13
physical id\t: 0
core id\t\t: 1
"""


def test_parse_proc_texts():
    st = parse_proc_status(PROC_STATUS)
    assert st["VmHWM"] == 345678 * 1024 and st["VmSwap"] == 0 and "Threads" not in st
    ci = parse_cpuinfo(CPUINFO)
    assert ci == {"cpu_model": "AMD EPYC 7B13", "cores_logical": 2, "cores_physical": 2}
    mi = parse_meminfo("MemTotal:       24576000 kB\nMemAvailable:   20000000 kB\nHugePages_Total:       0\n")
    assert mi["MemTotal"] == 24576000 * 1024 and mi["HugePages_Total"] == 0


def test_peak_rss_can_be_reset_between_exports():
    from edge.measure.procmem import peak_rss, reset_peak_rss

    block = bytearray(200 * 2**20)
    block[:: 4096] = b"\1" * len(block[:: 4096])  # touch every page
    high = peak_rss()
    del block
    assert reset_peak_rss()
    assert peak_rss() < high - 150 * 2**20
