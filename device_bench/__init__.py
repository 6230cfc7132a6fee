"""Device bench: devices and transports, per-runtime runners and the metrics they report."""
