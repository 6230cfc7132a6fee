"""The result metrics: one table, one field a line, that the store's ``Result``, bench's rows and every
report renderer are made from. A new metric is a line here and a migration (tests check the two agree).

Each line: the field's key (the ``Result`` attribute and the ``results`` column); its SQL type as the
migrations declare it; where bench reads it from when it makes a row ("res": the measuring process's
result, "quality": that result's quality dict; None: bench fills it itself); flags ("export": a key of
the CSV/JSON records, in table order; "json": stored JSON-encoded, a dict; "stamp": the time the row is
made); and, for a column of the human table, (position, column key, header, cell formatter). A header
may name the row's fields ("pp{n_prompt} t/s"); the formatters are named in ``edge.report.CELLS``, any
other name is a format spec for the value.
"""

from __future__ import annotations

from typing import NamedTuple


class Metric(NamedTuple):
    key: str
    sql: str
    source: str | None = None
    flags: str = ""
    column: tuple[int, str, str, str] | None = None

    def has(self, flag: str) -> bool:
        return flag in self.flags.split()

    @property
    def required(self) -> bool:
        """NOT NULL and nothing to default to: a ``Result`` must be given it."""
        return self.sql.endswith("NOT NULL") and not self.has("stamp")


METRICS: list[Metric] = [
    #      key                SQL type            source     flags      human column
    Metric("run_id",          "INTEGER NOT NULL"),
    Metric("model",           "TEXT NOT NULL",    None,      "export"),
    Metric("dataset",         "TEXT",             None,      "export"),
    Metric("format",          "TEXT NOT NULL",    None,      "export"),
    Metric("device",          "TEXT NOT NULL",    None,      "export"),
    Metric("artifact_path",   "TEXT NOT NULL"),
    Metric("source_sha256",   "TEXT"),
    Metric("reference_sha256", "TEXT",            None,      "export"),
    Metric("size_bytes",      "INTEGER NOT NULL", None,      "export",  (1, "size_mib", "size MiB", "mib")),
    Metric("bits_per_weight", "REAL",             None,      "export",  (2, "bpw", "bpw", ".2f")),
    Metric("parameter_count", "INTEGER"),
    Metric("threads",         "INTEGER",          "res",     "export"),
    Metric("reps",            "INTEGER",          None,      "export"),
    Metric("load_s",          "REAL",             "res",     "export"),
    Metric("n_prompt",        "INTEGER",          None,      "export"),
    Metric("pp_tps",          "REAL",             "res",     "export",  (3, "pp_tps", "pp{n_prompt} t/s (n={reps})", "pm")),
    Metric("pp_tps_std",      "REAL",             "res",     "export"),
    Metric("n_gen",           "INTEGER",          None,      "export"),
    Metric("tg_tps",          "REAL",             "res",     "export",  (4, "tg_tps", "tg{n_gen} t/s (n={reps})", "pm")),
    Metric("tg_tps_std",      "REAL",             "res",     "export"),
    Metric("ttft_s",          "REAL",             "res",     "export",  (5, "ttft", "TTFT ms", "ms")),
    Metric("ttft_s_std",      "REAL",             "res",     "export"),
    Metric("peak_rss_bytes",  "INTEGER",          "res",     "export",  (6, "peak_mib", "peak MiB", "mib")),
    Metric("dataset_sha256",  "TEXT"),
    Metric("ctx",             "INTEGER",          "quality", "export"),
    Metric("chunks",          "INTEGER",          "quality", "export"),
    Metric("ppl",             "REAL",             "quality", "export",  (8, "ppl", "PPL", "ppl")),
    Metric("ppl_unc",         "REAL",             "quality", "export"),
    Metric("kld_mean",        "REAL",             "quality", "export",  (10, "kld", "KLD", "kld")),
    Metric("kld_unc",         "REAL",             "quality", "export"),
    Metric("kld_99",          "REAL",             "quality", "export",  (11, "kld_tail", "KLD p99 / p99.9 / max", "tail")),
    Metric("kld_99_9",        "REAL",             "quality", "export"),
    Metric("kld_max",         "REAL",             "quality", "export"),
    Metric("same_top",        "REAL",             "quality", "export",  (12, "same_top", "same-top %", "top")),
    Metric("same_top_unc",    "REAL",             "quality", "export"),
    Metric("delta_p_mean",    "REAL",             "quality", "export"),
    Metric("delta_p_rms",     "REAL",             "quality", "export",  (13, "rms_dp", "RMS Δp %", "pct")),
    # against the source checkpoint: ln(PPL / PPL_source) and its paired uncertainty (llama-perplexity's)
    Metric("ppl_base",        "REAL",             "quality", "export"),
    Metric("ln_ppl_ratio",    "REAL",             "quality", "export",  (9, "dppl", "ΔPPL %", "dppl")),
    Metric("ln_ppl_ratio_unc", "REAL",            "quality", "export"),
    Metric("tokens_sha256",   "TEXT",             "quality", "export"),  # the token stream scored
    # roofline: weight + KV bytes read per generated token × tg t/s, and the device's measured memory bandwidth
    Metric("decode_gbs",      "REAL",             None,      "export",  (7, "decode_gbs", "decode GB/s (% bw)", "roof")),
    Metric("membw_gbs",       "REAL",             None,      "export"),
    Metric("config_sha256",   "TEXT"),            # the protocol settings and device mode the row was measured with
    Metric("conditions",      "TEXT",             None,      "json"),   # temperatures, governor, battery before/after
    Metric("quality",         "TEXT",             None,      "json"),
    Metric("raw",             "TEXT",             None,      "json"),
    Metric("artifact_sha256", "TEXT NOT NULL",    None,      "export"),
    Metric("created_at",      "TEXT NOT NULL",    None,      "export stamp"),
]
