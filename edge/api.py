"""The public library API: everything the CLI does, as Python calls."""

from edge.bench import BenchConfig, bench
from edge.convert import convert
from edge.demo import demo_checkpoint
from edge.report import build_matrices, report
from edge.store import Result, Run, Store

__all__ = ["convert", "bench", "BenchConfig", "report", "build_matrices", "Store", "Result", "Run", "demo_checkpoint"]
