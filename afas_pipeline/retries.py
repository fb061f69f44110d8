"""Steps that talk to the APIs retry a transient failure by themselves, visible in the run's log.

Each client retries a call a few times within seconds (its own backoff; its retry lines reach the run's log
through `python_logs` in dagster.yaml). An outage that outlasts those ends in the client's "unavailable" or
"write incomplete" error. `retry_transient_failures` then asks Dagster to run the step again after a wait
(STEP_UP_FOR_RETRY in the run's log, with the error's line): at most `AFAS_PIPELINE_STEP_RETRIES` times,
waiting `AFAS_PIPELINE_STEP_RETRY_DELAY_S` seconds grown exponentially with jitter (Dagster's own
`Backoff.EXPONENTIAL`, `Jitter.PLUS_MINUS`). A step can always run again: it continues where the failed attempt
stopped, as a rerun does (C4). Anything else (a refusal, a configuration error, a failed blocking check, a bug)
fails the step at once: repeating it cannot help. A retried `<d>_sync` sends a plan made before the outage: it
reads the destination's opt-outs again first and holds back the switch-ons they now forbid (C1,
`afas_pipeline.chain.sync.plan_made_by_this_attempt`), and sends only the records the failed attempt did not
settle (the others are `superseded`, `afas_pipeline.chain.sync._leave_superseded`).
"""

from __future__ import annotations

import functools
import inspect
import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager

import dagster as dg

from afas_pipeline.afas.errors import AfasUnavailable
from afas_pipeline.lib.settings import seconds, whole_number
from afas_pipeline.lib.text import one_line
from afas_pipeline.mailchimp.errors import MailchimpUnavailable
from afas_pipeline.spotler.errors import SpotlerUnavailable, SpotlerWriteIncomplete
from afas_pipeline.xelion.errors import XelionUnavailable

RETRIES_SETTING = "AFAS_PIPELINE_STEP_RETRIES"
DELAY_SETTING = "AFAS_PIPELINE_STEP_RETRY_DELAY_S"
MAX_RETRIES = 10
MAX_DELAY_S = 3600.0

#: No answer after the client's own retries (5xx, 429, timeouts, no connection; `MailchimpWriteIncomplete` and
#: `XelionWriteUnknown` are among their subclasses): the service may answer a minute later.
TRANSIENT_ERRORS: tuple[type[Exception], ...] = (
    AfasUnavailable, SpotlerUnavailable, SpotlerWriteIncomplete, MailchimpUnavailable, XelionUnavailable,
)


def step_retry_policy(env: Mapping[str, str] = os.environ) -> dg.RetryPolicy:
    """The step retries the settings ask for: by default 3, after about 1, 3 and 7 minutes (each give or take
    the delay, 60 s)."""
    return dg.RetryPolicy(
        max_retries=whole_number(env, RETRIES_SETTING, 3, minimum=0, maximum=MAX_RETRIES),
        delay=seconds(env, DELAY_SETTING, 60.0, maximum=MAX_DELAY_S),
        backoff=dg.Backoff.EXPONENTIAL,
        jitter=dg.Jitter.PLUS_MINUS,
    )


def retry_transient_failures(compute: Callable) -> Callable:
    """An asset's compute function that asks Dagster to retry its step after a transient error (decorate it
    under `@dg.asset`). The settings are read when the code location loads; with 0 retries the function is
    left as it is."""
    policy = step_retry_policy()
    if policy.max_retries == 0:
        return compute
    # Dagster runs a generator and a function differently: the step keeps the kind of `compute`.
    if inspect.isgeneratorfunction(compute):
        def step(context, *args, **kwargs): yield from _generator(policy, compute, context, args, kwargs)  # noqa: E704
    else:
        def step(context, *args, **kwargs): return _function(policy, compute, context, args, kwargs)  # noqa: E704
    return _placed_like(step, compute)


def _generator(policy: dg.RetryPolicy, compute: Callable, context, args, kwargs) -> Iterator:
    with _retrying(policy, context):
        yield from compute(context, *args, **kwargs)


def _function(policy: dg.RetryPolicy, compute: Callable, context, args, kwargs):
    with _retrying(policy, context):
        return compute(context, *args, **kwargs)


@contextmanager
def _retrying(policy: dg.RetryPolicy, context) -> Iterator[None]:
    try:
        yield
    except TRANSIENT_ERRORS as error:
        attempt, name = context.retry_number + 1, context.op_def.name
        if attempt > policy.max_retries:
            context.log.error(f"{name}: {one_line(error)}; no step retry left ({policy.max_retries} done)")
            raise
        wait = max(0.0, policy.calculate_delay(attempt))
        context.log.warning(f"{name}: {one_line(error)}; step retry {attempt} of {policy.max_retries} in {wait:.0f}s")
        raise dg.RetryRequested(max_retries=policy.max_retries, seconds_to_wait=wait) from error


def _placed_like(step: Callable, compute: Callable) -> Callable:
    """`step` (one line) named and placed like `compute`, at its file and first line: the UI's link to an asset's
    source (Dagster's code reference, taken from the function's file) and the step's frame in a traceback then
    point at the asset, not at this module. Its signature is `compute`'s (`__wrapped__`)."""
    code = compute.__code__
    step.__code__ = step.__code__.replace(co_filename=code.co_filename, co_firstlineno=code.co_firstlineno,
                                          co_name=code.co_name, co_qualname=code.co_qualname)
    return functools.wraps(compute)(step)
