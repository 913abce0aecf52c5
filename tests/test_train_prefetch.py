"""Chapter 8's prefetcher: the next batch is prepared on a worker thread
while the step runs; the batches, their order and therefore the run are
exactly those without it, and the worker never outlives the loop."""

import contextlib
import threading
import time

import numpy as np
import pytest
import torch
from test_train_loop import (  # noqa: F401  (the module-scoped fixture)
    artifacts,
    config,
    same_weights,
)

import scratchllm.train.loop as loop
from scratchllm.train import pretrain
from scratchllm.train.data import Prefetcher, WindowSampler


class Recorded:
    """A WindowSampler that records each request and the thread that
    made it; `delay` seconds per batch, `fail_at` a step that raises."""

    def __init__(self, delay: float = 0.0, fail_at: int | None = None):
        shard = np.arange(500, dtype=np.uint16) % 97
        self.sampler = WindowSampler([shard], 8, 4, seed=1)
        self.delay, self.fail_at = delay, fail_at
        self.calls: list[tuple[int, slice, str]] = []

    def batch(self, step, rows=slice(None)):
        self.calls.append((step, rows, threading.current_thread().name))
        time.sleep(self.delay)
        if step == self.fail_at:
            raise ValueError(f"broken batch {step}")
        return self.sampler.batch(step, rows)


def prefetch_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate()
            if t.name.startswith("prefetch")]


def test_prefetcher_serves_the_same_batches_one_ahead():
    source = Recorded()
    order = [(step, slice(half, half + 2)) for step in range(4)
             for half in (0, 2)]
    with Prefetcher(source, order) as prefetcher:
        first = prefetcher.batch(0, slice(0, 2))
        prefetcher.ahead[1].result()    # the next one, prepared meanwhile
        assert [c[:2] for c in source.calls] == order[:2]
        served = [first] + [prefetcher.batch(*r) for r in order[1:]]
    assert [c[:2] for c in source.calls] == order
    assert all(name.startswith("prefetch") for *_, name in source.calls)
    for got, request in zip(served, order):
        want = source.sampler.batch(*request)
        assert all(torch.equal(a, b) for a, b in zip(got, want))
    assert not prefetch_threads()


def test_prefetcher_refuses_a_request_out_of_order():
    with Prefetcher(Recorded(), [(0, slice(None)), (1, slice(None))]) as p:
        with pytest.raises(RuntimeError, match="the order says"):
            p.batch(1)
        p.batch(0)
        p.batch(1)
        with pytest.raises(RuntimeError, match="nothing"):
            p.batch(2)


def test_prefetcher_pins_what_it_serves(monkeypatch):
    pinned = []

    def pin_memory(tensor):
        pinned.append(tensor)
        return tensor.clone()

    monkeypatch.setattr(torch.Tensor, "pin_memory", pin_memory)
    with Prefetcher(Recorded(), [(0, slice(None))], pin=True) as p:
        inputs, _ = p.batch(0)
    assert len(pinned) == 2 and torch.equal(inputs, pinned[0])


def test_a_worker_error_reaches_the_loop_once():
    source = Recorded(fail_at=1)
    with pytest.raises(ValueError, match="broken batch 1"):
        with Prefetcher(source, [(n, slice(None)) for n in range(5)]) as p:
            p.batch(0)
            p.batch(1)
    assert [c[0] for c in source.calls] == [0, 1]   # nothing after it
    assert not prefetch_threads()


def test_an_interrupt_stops_the_worker_without_waiting_for_the_rest():
    source = Recorded(delay=0.2)
    began = time.perf_counter()
    with pytest.raises(KeyboardInterrupt):
        with Prefetcher(source, [(n, slice(None)) for n in range(50)]) as p:
            p.batch(0)
            raise KeyboardInterrupt
    assert time.perf_counter() - began < 2     # 50 batches would take 10 s
    assert len(source.calls) <= 3 and not prefetch_threads()


@pytest.mark.parametrize("micro", [None, 2])
def test_pretrain_prefetching_is_bit_identical(artifacts, monkeypatch,
                                               micro):
    workers = []
    real_load = Prefetcher.load

    def spied_load(self, step, rows):
        workers.append(threading.current_thread().name)
        return real_load(self, step, rows)

    monkeypatch.setattr(Prefetcher, "load", spied_load)
    prefetched = pretrain(config(artifacts, f"prefetched-{micro}",
                                 micro_batch_size=micro))
    per_step = 4 // (micro or 4)
    assert len(workers) == 6 * per_step
    assert all(name.startswith("prefetch") for name in workers)
    monkeypatch.setattr(loop, "prefetching",
                        lambda run, start: contextlib.nullcontext())
    plain = pretrain(config(artifacts, f"plain-{micro}",
                            micro_batch_size=micro))
    assert same_weights(prefetched.model, plain.model)
    assert prefetched.val_loss == plain.val_loss


def test_an_interrupted_run_leaves_no_worker_and_resumes_exactly(
        artifacts, capsys):
    def interrupt(done, record):
        if done == 4:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        pretrain(config(artifacts, "interrupted"), on_step=interrupt)
    assert not prefetch_threads()
    assert "Traceback" not in capsys.readouterr().err
    resumed = pretrain(config(artifacts, "interrupted", resume=True))
    straight = pretrain(config(artifacts, "uninterrupted"))
    assert same_weights(straight.model, resumed.model)


def test_the_benchmark_sees_the_wait_that_prefetching_hides():
    from scratchllm.train.bench import wait_and_step_seconds

    slow = Recorded(delay=0.03)

    def step():
        time.sleep(0.06)

    serial, _ = wait_and_step_seconds(step, slow, "cpu", 5, prefetch=False)
    hidden, work = wait_and_step_seconds(step, slow, "cpu", 5,
                                         prefetch=True)
    assert serial >= 0.03 and hidden < 0.015 and work >= 0.06


def test_benchmark_step_measures_with_and_without_prefetching():
    from scratchllm.model.config import ModelConfig
    from scratchllm.train.bench import benchmark_step

    config = ModelConfig.preset("ci", vocab_size=64, n_layers=1,
                                context_length=8)
    for prefetch in (False, True):
        figures = benchmark_step(config, batch_size=2, context_length=8,
                                 precision="fp32", steps=2, warmup=1,
                                 prefetch=prefetch)
        assert 0 < figures["data_share"] < 1
    assert not prefetch_threads()
