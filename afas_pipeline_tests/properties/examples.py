"""How many random sequences the property models play: a fixed few in CI, more on demand.

Every model runs its explicit examples (the `@example`s, one or more per rule it holds, and the sequences that
once broke a rule) and then `<NAME>_EXAMPLES` generated sequences, the same ones on every run. Every example
re-runs the chain through Dagster, seconds each, so the default is small and the explicit examples carry the
rules; to explore further locally, raise the count and draw anew each run:

    SYNC_MODEL_EXAMPLES=100 SYNC_MODEL_RANDOM=1 pytest afas_pipeline_tests/properties/test_sync_model.py
    SPOTLER_LOOP_EXAMPLES=100 SPOTLER_LOOP_RANDOM=1 pytest afas_pipeline_tests/properties/test_loop_model.py
    MAILCHIMP_LOOP_EXAMPLES=100 MAILCHIMP_LOOP_RANDOM=1 pytest afas_pipeline_tests/properties/test_mailchimp_loop_model.py

No shrinking: every try re-runs the chain, so shrinking takes many minutes, and a failing sequence of at most 8
steps is readable as it is.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, Phase, settings


def model_settings(name: str, examples: int) -> settings:
    """Hypothesis settings for the model `name`: `examples` generated sequences unless `<name>_EXAMPLES` says
    otherwise, derandomized unless `<name>_RANDOM` is set (to anything but 0)."""
    count = int(os.environ.get(f"{name}_EXAMPLES", str(examples)))
    random = os.environ.get(f"{name}_RANDOM", "") not in ("", "0")
    return settings(max_examples=count, deadline=None, derandomize=not random, database=None,
                    phases=[Phase.explicit, Phase.generate],
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
