"""How a runtime is measured and checked, for every family: the ``Runtime`` protocol, the bench
protocol (llama-bench / llama-perplexity), its statistics, process memory, and verification against
transformers. Above ``edge.core``; below the families that implement runtimes."""
