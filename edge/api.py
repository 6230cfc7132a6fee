"""edge's library API, the one surface the CLI (``edge.cli``) calls: convert, bench, eval (tasks), report,
recommend, devices, demo.

    from edge.api import convert, bench, report, Store
    artifacts = convert("./SmolLM2-135M-Instruct", "gguf:f16,gguf:q4_k_m")
    rows = bench([a.path for a in artifacts], devices=["local"])
    print(report(rows, "md"))
"""

from __future__ import annotations

from edge.bench import BenchConfig, bench
from edge.convert import convert
from edge.core.errors import EdgeError
from edge.core.family import FAMILIES
from edge.core.formats import FORMATS, parse_formats
from edge.core.manifest import Artifact, Manifest
from edge.demo import DEMO_FORMATS, demo_checkpoint, run_demo
from edge.device_table import device_rows, render_devices
from edge.evaluate import EvalConfig, evaluate
from edge.task_report import render_tasks, task_report
from edge.calibration import calibration_report
from edge.recommend import Constraints, Recommendation, constraints, recommend
from edge.recommend import from_store as recommend_from_store
from edge.recommend import RENDERERS as RECOMMENDATION_RENDERERS
from edge.report import RENDERERS, report, write_report
from edge.sensitivity import RENDERERS as SENSITIVITY_RENDERERS
from edge.sensitivity import Sensitivity, sensitivity
from edge.store import Result, Store

def render_recommendation(recs: list[Recommendation], fmt: str = "table"):
    """The recommendations as a rich table, Markdown or JSON (``edge recommend -f``)."""
    return RECOMMENDATION_RENDERERS.get(fmt)(recs)


__all__ = ["SENSITIVITY_RENDERERS", "Sensitivity", "sensitivity", "Constraints", "Recommendation", "constraints", "recommend", "recommend_from_store", "render_recommendation",
           "Artifact", "BenchConfig", "DEMO_FORMATS", "EdgeError", "EvalConfig", "evaluate", "render_tasks", "task_report", "calibration_report", "FAMILIES", "FORMATS", "Manifest", "RENDERERS",
           "Result", "Store", "bench", "convert", "demo_checkpoint", "device_rows", "parse_formats", "render_devices",
           "report", "run_demo", "write_report"]
