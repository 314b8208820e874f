"""LLM steps: providers (OpenAI-compatible, deterministic offline) and the step runner."""

from .providers import LLMProvider, OfflineProvider, OpenAIProvider, provider_from_env, sample_from_schema
from .step import run_llm

__all__ = [
    "LLMProvider",
    "OfflineProvider",
    "OpenAIProvider",
    "provider_from_env",
    "run_llm",
    "sample_from_schema",
]
