"""wfctl: a sharded, durable workflow runner for the tale workflow format, and a stress harness."""

__version__ = "0.1.0"
