"""Greedy generation through one long-lived transformers continuous-batching manager (opt-in).

Same answers as ``BatchGenerator`` (greedy, the same no-repeat n-gram, eos stop, ``max_new_tokens``), but rows
that finish free their slot for the next request instead of being stepped as padding until the longest row
ends: 0.4% of the token positions fed to the model are wasted instead of 44-50% (bench/run.py, 256 items,
answers equal on 256 of 256). That does not make it faster on this CPU: with the small default model and two
threads the manager's per-step scheduling costs more than the positions it saves (43.8 vs 78.1 items/s in calls
of 32; single-threaded a probe saw 89 vs 76). It is meant for a GPU and a large model, where every position is
real compute, and is unmeasured there. One manager is started once and fed per call: ``generate_batch`` per
call rebuilds the cache and is slower still."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

import torch
from transformers import ContinuousBatchingConfig, GenerationConfig
from transformers.generation.continuous_batching.cb_logits_processors import ContinuousBatchingLogitsProcessor
from transformers.generation.logits_process import LogitsProcessorList

from model.generator import GenerationTimeout
from model.generation import NO_REPEAT_NGRAM_SIZE, TokenizingGenerator
from model.loader import LoadedModel

# The manager's cache is fixed at creation. Without an explicit size transformers sizes it from system RAM
# (1.5 GB here, and very slow); 64-token pages, 4 per concurrent request, hold prompt + answer with room to spare.
_PAGE_SIZE = 64
_MIN_BLOCKS = 64
_BLOCKS_PER_REQUEST = 4
_MAX_BATCH_TOKENS = 2048
# How often a waiting call looks at its deadline and at the manager's health.
_POLL_S = 0.05
_STOP_TIMEOUT_S = 10.0


def banned_next_tokens(sequence: Sequence[int], n: int) -> set[int]:
    """Tokens that would complete an n-gram already present in ``sequence`` (what generate's n-gram ban forbids)."""
    if n < 1 or len(sequence) < n:
        return set()
    prefix = list(sequence[len(sequence) - n + 1 :])
    return {
        sequence[start + n - 1]
        for start in range(len(sequence) - n + 1)
        if list(sequence[start : start + n - 1]) == prefix
    }


class _NoRepeatNGramSlot(ContinuousBatchingLogitsProcessor):
    """One banned token per request per step, for ``ContinuousNoRepeatNGram``; slot 0 computes them all."""

    supported_kwargs: dict[str, type] = {}
    ignored_kwargs: tuple[str, ...] = ()

    def __init__(self, owner: ContinuousNoRepeatNGram, slot: int) -> None:
        self._owner = owner
        self._slot = slot

    def fill_defaults(self, int32_tensor: torch.Tensor) -> None:
        int32_tensor.fill_(-1)

    def prepare_tensor_args(self, requests_with_new_token) -> torch.Tensor:
        if self._slot == 0:
            self._owner.compute(requests_with_new_token)
        return torch.tensor(self._owner.slot_values(self._slot), dtype=torch.int32)

    def __call__(self, scores: torch.Tensor, tensor_arg: torch.Tensor) -> torch.Tensor:
        banned = tensor_arg[: scores.size(0)].long()
        rows = torch.nonzero(banned >= 0).squeeze(-1)
        if rows.numel() == 0:
            return scores
        scores = scores.clone()
        scores[rows, banned[rows]] = -float("inf")
        return scores


class ContinuousNoRepeatNGram:
    """``no_repeat_ngram_size`` for continuous batching, where transformers 5.23's own processor cannot work.

    Under continuous batching a processor is called with the scores of the batch's new tokens and only the
    last token of each request (1-D ``input_ids``), not each request's history: the stock
    ``NoRepeatNGramLogitsProcessor`` indexes 2-D ``input_ids`` and raises, and the manager reports that as a
    per-request ``.error`` on every request, with no exception in the caller. Here the banned tokens are
    computed on the host from each request's ``RequestState`` (``initial_tokens`` + ``generated_tokens``: the
    prompt and the answer so far, as generate's processor sees them) and handed to the step through CB's
    per-request argument rows. A row carries one int32 per request, so ``slots`` rows (one processor each)
    carry up to ``slots`` banned tokens per request and step; steps needing more are counted in
    ``overflow_steps`` and ban only the ``slots`` smallest ids, so answers may then differ from generate's.

    Relies on transformers internals: ``ContinuousBatchingLogitsProcessor`` and its ``fill_defaults`` /
    ``prepare_tensor_args`` / ``__call__`` protocol, ``FutureRequestState.state`` holding a ``RequestState``, the
    manager's ``logit_processor`` (a ``ContinuousBatchingLogitsProcessorList``: ``logits_processor``,
    ``tensors_required``, ``do_processing``) being read only when the generation thread starts, and the
    per-request rows being ordered like the scores' rows. Synchronous batching is required: with async batching
    the next step is prepared before the last token is appended to ``generated_tokens``.
    """

    def __init__(self, n: int, slots: int = 8) -> None:
        if slots < 1:
            raise ValueError(f"slots must be at least 1 (one banned token per request and step), got {slots}")
        # Read by the generation thread at every step: an int assignment is atomic, so it may change live.
        self.n = n
        self.slots = slots
        self.overflow_steps = 0
        self._banned: list[list[int]] = []

    def compute(self, requests_with_new_token) -> None:
        self._banned = []
        for request in requests_with_new_token:
            state = request.state
            banned = sorted(banned_next_tokens(list(state.initial_tokens) + list(state.generated_tokens), self.n))
            if len(banned) > self.slots:
                self.overflow_steps += 1
            self._banned.append(banned)

    def slot_values(self, slot: int) -> list[int]:
        return [banned[slot] if slot < len(banned) else -1 for banned in self._banned]

    def install(self, manager) -> None:
        """Put the ban on ``manager``; must run after ``init_continuous_batching`` and before ``start``.

        The generation thread sizes its argument storage from ``tensors_required`` when it starts.
        """
        if manager.is_running():
            raise RuntimeError("the n-gram ban must be installed before the continuous-batching manager starts")
        processors = manager.logit_processor
        processors.logits_processor = LogitsProcessorList(_NoRepeatNGramSlot(self, slot) for slot in range(self.slots))
        processors.tensors_required = self.slots
        processors.do_processing = True


class ContinuousGenerator(TokenizingGenerator):
    """Drop-in for ``BatchGenerator`` backed by one continuous-batching manager; ``close()`` stops it.

    The manager is created on the first ``generate``; while it exists it may switch the model's attention
    implementation to a paged one (an ``eager`` model becomes ``paged|eager``), so do not run another generator
    on the same model until ``close()`` restores it.
    """

    def __init__(self, loaded: LoadedModel, max_time_s: float | None = None, max_concurrent: int = 32) -> None:
        """``max_time_s`` bounds one ``generate`` call; ``max_concurrent`` is how many requests decode together."""
        if max_concurrent < 1:
            raise ValueError(f"max_concurrent must be at least 1, got {max_concurrent}")
        super().__init__(loaded)
        self._model = loaded.model
        self._max_time_s = max_time_s
        self._max_concurrent = max_concurrent
        self._ngram = ContinuousNoRepeatNGram(NO_REPEAT_NGRAM_SIZE)
        self._manager = None
        self._closed = False
        # One caller at a time: results come off one shared queue and are matched to this call's requests.
        self._lock = threading.Lock()

    @property
    def no_repeat_ngram_size(self) -> int:
        return self._ngram.n

    @no_repeat_ngram_size.setter
    def no_repeat_ngram_size(self, n: int) -> None:
        self._ngram.n = n

    def is_running(self) -> bool:
        """Whether the manager's generation thread is alive (False before the first ``generate`` and after ``close``)."""
        return self._manager is not None and self._manager.is_running()

    def generate(self, prompts: Sequence[str]) -> list[str]:
        if not prompts:
            return []
        with self._tokenizer_lock:
            inputs = self._tokenizer(list(prompts), add_special_tokens=True)["input_ids"]
        with self._lock:
            # Started inside the lock: time spent waiting for another caller is not this batch's fault.
            ends_at = time.monotonic() + self._max_time_s if self._max_time_s else None
            manager = self._running_manager()
            request_ids = manager.add_requests(inputs=inputs, max_new_tokens=self.max_new_tokens)
            if any(request_id is None for request_id in request_ids):
                raise RuntimeError("the continuous-batching manager refused requests (it is stopping or stopped)")
            results = self._collect(manager, request_ids, ends_at, len(prompts))
        failed = [results[request_id] for request_id in request_ids if results[request_id].error is not None]
        if failed:
            raise RuntimeError(
                f"{len(failed)} of {len(prompts)} requests failed in the continuous-batching manager: {failed[0].error}"
            )
        with self._tokenizer_lock:
            return [
                self._tokenizer.decode(results[request_id].generated_tokens, skip_special_tokens=True)
                for request_id in request_ids
            ]

    def close(self) -> None:
        """Stop the manager (finishing what is in flight) and give the model its attention implementation back."""
        with self._lock:
            self._closed = True
            self._stop_manager()

    def __enter__(self) -> ContinuousGenerator:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def _running_manager(self):
        if self._closed:
            raise RuntimeError("this ContinuousGenerator was closed; create a new one to generate again")
        if self._manager is not None and not self._manager.is_running():
            # Its thread died on an earlier call (that call raised); a fresh manager lets the retry run.
            self._stop_manager()
        if self._manager is None:
            self._manager = self._start_manager()
        return self._manager

    def _start_manager(self):
        generation_config = GenerationConfig(
            max_new_tokens=self.max_new_tokens,
            do_sample=False,
            eos_token_id=self._tokenizer.eos_token_id,
            pad_token_id=self._tokenizer.pad_token_id,
        )
        cb_config = ContinuousBatchingConfig(
            page_size=_PAGE_SIZE,
            num_blocks=max(_MIN_BLOCKS, _BLOCKS_PER_REQUEST * self._max_concurrent),
            max_batch_tokens=_MAX_BATCH_TOKENS,
            max_requests_per_batch=self._max_concurrent,
            # The n-gram ban reads each request's generated tokens when the next step is prepared.
            use_async_batching=False,
        )
        manager = self._model.init_continuous_batching(
            generation_config=generation_config, continuous_batching_config=cb_config
        )
        self._ngram.install(manager)
        manager.start()
        return manager

    def _stop_manager(self) -> None:
        if self._manager is None:
            return
        manager, self._manager = self._manager, None
        if manager._generation_thread is not None:  # stop() on a never-started manager only logs a warning
            manager.stop(block=True, timeout=_STOP_TIMEOUT_S)

    def _collect(self, manager, request_ids: list[str], ends_at: float | None, count: int) -> dict:
        pending = set(request_ids)
        results = {}
        while pending:
            wait = _POLL_S if ends_at is None else min(_POLL_S, max(0.0, ends_at - time.monotonic()))
            result = manager.get_result(timeout=wait)
            # Results of requests an earlier call cancelled can still arrive: they are not this call's.
            if result is not None and result.request_id in pending and result.is_finished():
                pending.discard(result.request_id)
                results[result.request_id] = result
                continue
            if result is None and not manager.is_running():
                error = manager.background_thread_status.fatal_error
                raise RuntimeError(
                    f"the continuous-batching generation thread stopped with {len(pending)} of {count} requests "
                    f"unanswered ({type(error).__name__ + ': ' + str(error) if error else 'no error recorded'}); "
                    "the next call starts a new manager"
                )
            if ends_at is not None and time.monotonic() > ends_at:
                for request_id in pending:
                    manager.cancel_request(request_id)
                raise GenerationTimeout(
                    f"{len(pending)} of {count} prompts still generating after {self._max_time_s:g} s "
                    "(ENRICHER_MODEL_TIMEOUT_S); they were cancelled and the batch's answers discarded"
                )
        return results
