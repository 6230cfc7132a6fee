"""edge: Hugging Face checkpoints to on-device artifacts, measured on real devices.

The library API lives in ``edge.api`` (the CLI is a thin layer over it)::

    from edge.api import convert, bench, BenchConfig, Store, report
    manifests = convert("SmolLM2-135M-Instruct", "gguf:f16,gguf:q4_k_m", out="artifacts")
    results = bench(["artifacts/SmolLM2-135M-Instruct-q4_k_m.gguf"])
"""
