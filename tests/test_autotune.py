"""The autotuner: the fastest measured candidate wins, the cache is reused, foreign or corrupt caches are ignored."""
import dataclasses
import json
import os
import re
import warnings

import numpy as np
import pytest
import tensorflow as tf

import tfvgg
from tfvgg import autotune, winograd
from tests.conftest import random_images

SMALL = autotune.Workload(8, 8, 4, 8, 2)


@pytest.fixture
def cache_path(tmp_path, monkeypatch):
    """Tuning on, with a cache file of this test's own."""
    path = tmp_path / "autotune.json"
    monkeypatch.setenv(autotune.ENV_CACHE, str(path))
    monkeypatch.setenv(autotune.ENV_ENABLE, "1")
    monkeypatch.setattr(autotune, "_CACHES", {})
    return path


def fake_measure(seconds_by_name, calls):
    def measure(workload, choices):
        calls.append([c.name for c in choices])
        return {c.name: seconds_by_name.get(c.algorithm, 1.0) * (1 + 0.01 * (c.chunk or 0)) for c in choices}
    return measure


def test_the_fastest_candidate_wins_and_chunk_sizes_are_tried_for_the_best_winograd():
    calls = []
    entry = autotune.tune(autotune.Workload(28, 28, 256, 256, 8),
                          fake_measure({"direct": 0.7, "winograd2": 0.9, "winograd4": 0.5, "winograd6": 0.7}, calls))
    first, second = calls[:2]
    assert first[0] == "direct" and {n.split("/")[0] for n in first} == {"direct", *winograd.ALGORITHMS}
    assert {n.split("/")[0] for n in second} == {"direct", "winograd4"} and len(second) >= 3
    assert entry["choice"] == min(entry["seconds"], key=entry["seconds"].get) == "winograd4/1"  # fewest images
    calls.clear()                                   # direct 2x behind: not timed again in the second round
    autotune.tune(autotune.Workload(28, 28, 256, 256, 8),
                  fake_measure({"direct": 1.0, "winograd2": 0.9, "winograd4": 0.5, "winograd6": 0.7}, calls))
    assert {n.split("/")[0] for n in calls[1]} == {"winograd4"}


def test_the_winner_comes_from_the_last_round_not_a_first_round_time_measured_apart():
    rounds = iter([{"direct": 1.0, "winograd2/8": 0.95, "winograd4/8": 0.5, "winograd6/8": 0.6},
                   {"direct": 1.3, "winograd4/8": 0.7, "winograd4/4": 0.65}])   # a slower moment of the machine
    entry = autotune.tune(autotune.Workload(28, 28, 256, 256, 8, pass_name="inference"),
                          lambda workload, choices: next(rounds, {}))
    assert entry["choice"] == "winograd4/4"        # not winograd6/8, whose 0.6 s lost in its own round
    assert entry["seconds"]["winograd6/8"] == 0.6 and entry["seconds"]["winograd4/8"] == 0.7


def test_direct_wins_where_winograd_is_far_behind_and_16_bit_types_skip_f4_and_f6():
    calls = []
    workload = autotune.Workload(8, 8, 4, 8, 4, dtype="bfloat16", pass_name="inference")
    entry = autotune.tune(workload, fake_measure({"direct": 1.0, "winograd2": 2.0}, calls))
    assert calls == [["direct", "winograd2/4"]]           # no second round: Winograd is over 1.25x behind
    assert entry["choice"] == "direct"


def test_choice_names_round_trip_and_unknown_names_are_refused():
    assert autotune.Choice.parse("winograd4/2") == autotune.Choice("winograd4", 2)
    assert autotune.Choice.parse("winograd6/4+xla") == autotune.Choice("winograd6", 4, "xla")
    assert autotune.Choice("winograd2", None, "xla").name == "winograd2+xla"
    assert autotune.Choice("winograd2").products == "matmul"
    assert autotune.Choice.parse("direct").name == "direct"
    for name in ("fft", "direct+xla", "direct/2", "winograd4/0", "winograd4/x", "winograd4/2+mm"):
        with pytest.raises(ValueError, match=re.escape(f"unknown convolution choice '{name}'")):
            autotune.Choice.parse(name)


def test_inference_tries_products_in_xla_at_batch_1_only_for_the_close_winograd_candidates():
    calls = []
    def measure(workload, choices):        # products in XLA 0.7x; winograd2 and 4 close, winograd6 far behind
        calls.append([c.name for c in choices])
        return {c.name: {"direct": 1.3, "winograd2": 1.1, "winograd4": 1.0, "winograd6": 2.0}[c.algorithm] *
                (1 + abs((c.chunk or 4) - 4) / 8) * (0.7 if c.products == "xla" else 1.0) for c in choices}
    entry = autotune.tune(autotune.Workload(28, 28, 512, 512, 8, pass_name="inference"), measure)
    assert not any(n.endswith("+xla") for names in calls for n in names)   # batch 8: chunk sizes climbed only
    rule = autotune.Choice.parse(next(n for n in calls[0] if n.startswith("winograd4")))
    assert rule.chunk == 2                                            # CHUNK_BYTES' rule, the same on any CPU
    assert calls[1:] == [["direct", "winograd4/2", "winograd4/1", "winograd4/4"], ["winograd4/4", "winograd4/8"]]
    assert entry["choice"] == "winograd4/4"
    calls.clear()
    entry = autotune.tune(autotune.Workload(28, 28, 512, 512, 1, pass_name="inference"), measure)
    close = [n for n in calls[0] if n.startswith(("winograd2", "winograd4"))]
    assert calls[1:] == [["direct"] + close + [n + "+xla" for n in close]]   # batch 1: a round of its own
    assert entry["choice"] == "winograd4/1+xla"
    calls.clear()
    autotune.tune(autotune.Workload(28, 28, 512, 512, 8, pass_name="training"), measure,
                  inference_entry={"seconds": {"direct": 1.3, "winograd4/4+xla": 0.7, "winograd4/4": 1.0}})
    assert calls[0] == ["direct", "winograd4/4+xla"]   # training takes inference's fastest placement and chunk


def test_the_rules_chunk_is_rounded_to_a_divisor_of_the_batch():
    workload = autotune.Workload(28, 28, 512, 512, 32)
    rule = winograd.chunk_sizes((32, 28, 28, 512), 512, 4)[0]                     # 3: [3] * 10 + [2]
    tried = {c.name for c in autotune.candidate_algorithms(workload)}
    assert rule == 3 and "winograd4/2" in tried                                 # the divisor below the rule's 3


def test_chunk_sizes_are_hill_climbed_on_8_images_then_on_up_on_the_full_batch():
    calls, batches, best_chunk = [], [], 16
    def measure(workload, choices):                  # winograd4 fastest at 16 images per call, direct 2x behind
        calls.append([c.name for c in choices])
        batches.append(workload.batch)
        return {c.name: 3.0 if c.algorithm == "direct" else (1 + abs((c.chunk or 1) - best_chunk) / 32) *
                (1.0 if c.algorithm == "winograd4" else 1.5) for c in choices}
    entry = autotune.tune(autotune.Workload(28, 28, 512, 512, 32, pass_name="inference"), measure)
    assert batches == [8, 8, 8, 32, 32]
    assert calls[1:3] == [["winograd4/2", "winograd4/1", "winograd4/4"],   # the rule's 2, its neighbours, then up
                          ["winograd4/2", "winograd4/4", "winograd4/8"]]   # beside the near equal (1.045x), while
    # it gains, on 8 images; at 8, the largest there, on up on 32 images
    assert calls[3:] == [["winograd4/8", "winograd4/16"], ["winograd4/16", "winograd4/32"]]   # 32 loses: stop
    assert entry["choice"] == "winograd4/16" and set(entry["seconds"]) == {"winograd4/8", "winograd4/16",
                                                                           "winograd4/32"}   # the full batch's
    small = autotune.Workload(28, 28, 512, 512, 8)
    assert entry["screen"] == {"batch": autotune.SCREEN_BATCH, "seconds": {
        n: measure(small, [autotune.Choice.parse(n)])[n] for names in calls[:3] for n in names}}


def test_measured_choice_is_cached_and_reused_by_the_next_process(cache_path, monkeypatch):
    workload = dataclasses.replace(SMALL, pass_name="inference")
    choice = autotune.choose(workload, "direct")              # measured for real, on this machine
    data = json.loads(cache_path.read_text())
    assert data["format"] == autotune.CACHE_FORMAT and data["machine"] == autotune.machine_fingerprint()
    entry = data["entries"][workload.key()]
    assert choice.name == entry["choice"] and entry["choice"] in entry["seconds"]   # the last round's fastest
    assert "direct" in entry["seconds"] and len(entry["seconds"]) >= 4
    monkeypatch.setattr(autotune, "_CACHES", {})              # a new process: nothing in memory
    monkeypatch.setattr(autotune, "tune", lambda *a: pytest.fail("tuned again despite the cache"))
    assert autotune.choose(workload, "direct") == choice


@pytest.mark.parametrize("content,why", [("{not json", "unreadable"), ('{"format": "other"}', "not a tfvgg"),
                                         (None, "another machine")])
def test_a_corrupt_or_foreign_cache_is_ignored_with_one_warning(cache_path, content, why):
    if content is None:   # a valid file from another machine
        content = json.dumps({"format": autotune.CACHE_FORMAT, "machine": {"cpu": "elsewhere"},
                              "entries": {SMALL.key(): {"choice": "winograd2/2", "seconds": {"winograd2/2": 1.0}}}})
    cache_path.write_text(content)
    with pytest.warns(RuntimeWarning, match=why) as caught:
        cache = autotune.Cache(str(cache_path))
    assert len(caught) == 1 and cache.get(SMALL) is None
    cache.put(SMALL, {"choice": "direct", "seconds": {"direct": 1.0}, "tuning_seconds": 0.1})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert autotune.Cache(str(cache_path)).get(SMALL)["choice"] == "direct"   # rewritten whole, valid


@pytest.fixture
def fresh_fingerprint(monkeypatch):
    """The machine fingerprint read again after each change; this process's real one after the test."""
    for name in autotune.SPEED_SETTINGS:
        monkeypatch.delenv(name, raising=False)
    autotune._read_fingerprint.cache_clear()
    yield
    autotune._read_fingerprint.cache_clear()


def test_a_cache_tuned_under_an_isa_cap_or_on_fewer_cores_is_not_reused_without_them(cache_path, monkeypatch,
                                                                                        fresh_fingerprint):
    autotune.Cache(str(cache_path)).put(SMALL, {"choice": "direct", "seconds": {"direct": 1.0}, "tuning_seconds": 0.1})
    plain = autotune.machine_fingerprint()
    assert plain["settings"] == {} and plain["cores"] == len(os.sched_getaffinity(0))
    for change in (lambda: monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2"),
                   lambda: monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0})):
        change()
        autotune._read_fingerprint.cache_clear()
        with pytest.warns(RuntimeWarning, match="another machine"):
            assert autotune.Cache(str(cache_path)).get(SMALL) is None
    assert autotune.machine_fingerprint()["settings"] == {"ONEDNN_MAX_CPU_ISA": "AVX2"}
    assert autotune.machine_fingerprint()["cores"] == 1


def test_an_unknown_batch_takes_the_layers_pick_at_the_largest_batch_tuned(cache_path, rng, monkeypatch):
    cache = autotune.current_cache()
    layer = autotune.Workload(16, 16, 3, 8, None, pass_name="training")
    for batch, choice in ((2, "direct"), (8, "winograd2/4+xla"), (4, "winograd4/2")):
        cache.put(dataclasses.replace(layer, batch=batch), {"choice": choice, "seconds": {choice: 1.0},
                                                            "tuning_seconds": 0.1})
    cache.put(dataclasses.replace(layer, batch=16, c_out=4), {"choice": "winograd6/8", "seconds": {}})  # another layer
    monkeypatch.setattr(autotune, "tune", lambda *a: pytest.fail("measured with no batch to measure"))
    assert autotune.choose(layer, "direct") == autotune.Choice("winograd2", None, "xla")   # batch 8's, rule's chunks
    assert autotune.choose(dataclasses.replace(layer, pass_name="inference"), "winograd4") == \
        autotune.Choice("winograd4")                                                     # nothing tuned: the rule
    images, p = random_images(rng, (3, 16, 16, 3)), tfvgg.ParamStore(seed=1)
    direct = tfvgg.conv_op(images, "conv", 3, 3, 8, 1, 1, p, algorithm="direct")
    traced = tf.function(lambda x: tfvgg.conv_op(x, "conv", 3, 3, 8, 1, 1, p, algorithm="auto"),
                         input_signature=[tf.TensorSpec([None, 16, 16, 3])])
    graph_ops = {op.type for op in traced.get_concrete_function().graph.get_operations()}
    assert "Conv2D" not in graph_ops                                                     # Winograd, not direct
    np.testing.assert_allclose(traced(images).numpy(), direct.numpy(), rtol=0, atol=1e-4 * np.abs(direct).max())


def test_tuning_off_follows_the_fixed_rule(monkeypatch):
    monkeypatch.setenv(autotune.ENV_ENABLE, "0")
    monkeypatch.setattr(autotune, "tune", lambda *a: pytest.fail("tuned with tuning off"))
    assert autotune.choose(autotune.Workload(28, 28, 512, 512, 8), "winograd4") == autotune.Choice("winograd4")
    autotune.set_enabled(True)
    try:
        assert autotune.enabled()
    finally:
        autotune.set_enabled(None)
    assert not autotune.enabled()


def test_auto_inside_a_traced_gradient_tunes_and_matches_direct(cache_path, rng, monkeypatch):
    # Timings made up (real ones: test above): F(2x2) "wins" the first layer only, which keeps compiles few.
    monkeypatch.setattr(autotune, "time_choices", lambda w, choices, **_: {
        c.name: (0.5 if c.algorithm == "winograd2" and w.c_in == 3 else 1.0 if c.algorithm == "direct" else 2.0)
        for c in choices})
    images = random_images(rng, (2, 16, 16, 3))
    p = tfvgg.ParamStore(seed=1)

    @tf.function
    def loss_and_gradients(x, algorithm):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(tfvgg.inference_op(x, p, config="A", num_classes=10, conv_algorithm=algorithm)[2])
        return loss, tape.gradient(loss, p.params)

    tfvgg.inference_op(images, p, config="A", num_classes=10)               # variables first
    auto_loss, auto_grads = loss_and_gradients(images, "auto")
    direct_loss, direct_grads = loss_and_gradients(images, "direct")
    np.testing.assert_allclose(auto_loss.numpy(), direct_loss.numpy(), rtol=1e-4)
    for a, b in zip(auto_grads, direct_grads):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=0, atol=1e-4 * np.abs(b.numpy()).max() + 1e-7)
    keys = json.loads(cache_path.read_text())["entries"]
    assert keys["16x16 3->64 batch 2 float32 NHWC training"]["choice"].startswith("winograd2/")
    assert len(keys) == 7 and sum(e["choice"] == "direct" for e in keys.values()) == 6   # A's distinct shapes


def test_network_workloads_follow_the_papers_table():
    workloads = autotune.network_workloads("D", 8)
    assert [layers for layers in workloads.values()][-1] == ["conv5_1", "conv5_2", "conv5_3"]
    assert len(workloads) == 9 and sum(len(v) for v in workloads.values()) == 13
    assert autotune.Workload(56, 56, 256, 256, 8) in workloads


def test_training_tries_only_what_inference_did_not_rule_out():
    calls = []
    inference = {"direct": 1.0, "winograd2/1": 1.6, "winograd4/1": 0.8, "winograd4/4": 0.6, "winograd6/1": 0.75}
    workload = autotune.Workload(28, 28, 512, 512, 8, pass_name="training")
    entry = autotune.tune(workload, fake_measure({"direct": 1.0, "winograd4": 0.7, "winograd6": 0.9}, calls),
                          inference_entry={"seconds": inference})
    assert len(calls) == 1                                   # one round: the chunk sizes came from inference
    assert calls[0] == ["direct", "winograd4/4", "winograd6/1"]   # 2.7x inference's fastest: F(2x2) not tried
    assert entry["choice"] == "winograd4/4"


def test_training_takes_the_chunk_size_inference_picked_not_a_faster_time_from_another_round():
    calls = []
    inference = {"choice": "winograd4/4", "seconds": {}, "screen": {"batch": 8, "seconds": {
        "direct": 1.3, "winograd4/2": 0.54, "winograd4/4": 0.57, "winograd6/2": 0.6, "winograd6/4": 0.58}}}
    workload = autotune.Workload(28, 28, 512, 512, 8, pass_name="training")
    autotune.tune(workload, fake_measure({}, calls), inference_entry=inference)
    assert calls[0] == ["direct", "winograd4/4", "winograd4/2", "winograd6/4"]   # F(6x6): the size it ran fastest
    # with; the pick's algorithm at the rule's size too


def test_training_times_the_picks_algorithm_at_the_rules_chunk_size_too():
    calls = []
    inference = {"choice": "winograd6/4", "seconds": {"direct": 132.9, "winograd4/1": 83.4, "winograd6/1": 83.2,
                                                      "winograd6/4": 87.1}}   # 112x112 128->128, batch 8 (ms)
    workload = autotune.Workload(112, 112, 128, 128, 8, pass_name="training")
    limit = winograd.training_chunk_limit(8, 112, 112, 128, 128, 6)
    rule = {c.algorithm: c.chunk for c in autotune.candidate_algorithms(workload)}["winograd6"]
    assert limit == 2 and rule == 1                 # inference's 4 is cut to 2; the rule's size is 1
    entry = autotune.tune(workload, lambda w, choices: calls.append([c.name for c in choices]) or {
        c.name: {"direct": 470.5, "winograd4/1": 313.1, "winograd6/2": 278.6, "winograd6/1": 253.7}[c.name]
        for c in choices}, inference_entry=inference)   # as the per-layer table timed them
    assert calls == [["direct", "winograd4/1", "winograd6/2", "winograd6/1"]] and entry["choice"] == "winograd6/1"


def test_training_tries_winograd_that_lost_inference_to_direct_but_not_hopeless_ones():
    calls = []
    measure = fake_measure({"direct": 2.0, "winograd4": 0.9, "winograd6": 0.8}, calls)
    workload = autotune.Workload(224, 224, 64, 64, 8, pass_name="training")
    entry = autotune.tune(workload, measure, inference_entry={"seconds": {   # direct's backward is other kernels
        "direct": 0.2, "winograd2/1": 0.58, "winograd4/1": 0.34, "winograd6/1": 0.31}})
    assert calls[0] == ["direct", "winograd4/1", "winograd6/1"] and entry["choice"] == "winograd6/1"
    calls.clear()
    entry = autotune.tune(workload, measure, inference_entry={"seconds": {"direct": 0.1, "winograd4/1": 0.34,
                                                                          "winograd6/1": 0.31}})
    assert calls == [] and entry["choice"] == "direct"    # 3.1x direct at best in inference: nothing to time


def test_training_chunks_stay_within_the_memory_limit():
    workload = autotune.Workload(56, 56, 256, 256, 32, pass_name="training")
    limit = winograd.training_chunk_limit(32, 56, 56, 256, 256, 4)                 # 7: divisors up to 4
    calls = []
    def measure(workload, choices):                  # bigger chunks always faster: the climb runs into the limit
        calls.append([c.name for c in choices])
        return {c.name: 3.0 if c.algorithm == "direct" else (2.0 if c.algorithm != "winograd4" else 1 / c.chunk)
                for c in choices}
    entry = autotune.tune(workload, measure)
    assert limit == 7 and entry["choice"] == "winograd4/4"
    assert max(autotune.Choice.parse(n).chunk or 0 for n in entry["seconds"]) <= limit
    inference = {"direct": 1.0, "winograd4/32": 0.5, "winograd6/16": 0.6}      # inference ran whole batches
    calls.clear()
    entry = autotune.tune(workload, measure, inference_entry={"seconds": inference})
    small_limit = winograd.training_chunk_limit(8, 56, 56, 256, 256, 4)
    screen = [autotune.Choice.parse(n) for n in calls[0]]                 # the screen, its chunks cut to fit
    assert [c.algorithm for c in screen] == ["direct", "winograd4", "winograd6"]
    assert all(c.chunk <= small_limit < 4 for c in screen[1:]) and len(calls) == 1   # it kept winograd4 alone,
    assert entry["choice"] == "winograd4/4" and entry["seconds"] == {}               # under its full-batch name
    calls.clear()                                    # inference holds no activations for a backward pass: no limit
    assert autotune.tune(dataclasses.replace(workload, pass_name="inference"), measure)["choice"] == "winograd4/32"


def _fake_timings(monkeypatch, seconds_of):
    """``time_choices`` with made-up run times: ``seconds_of(name, run number)``; returns the runs per name."""
    runs = {}
    monkeypatch.setattr(autotune, "layer_run", lambda w, c, p=None, i=None: lambda: runs.setdefault(c.name, []).append(1))

    def fake_time_contestants(contestants, num_batches, num_warmup_batches, print_fn=None):
        out = {}
        for name, run in contestants.items():
            run()
            out[name] = autotune.timing.Timing([seconds_of(name, len(runs[name]))])
        return out

    monkeypatch.setattr(autotune.timing, "time_contestants", fake_time_contestants)
    return runs


def test_clear_losers_are_timed_once(monkeypatch):
    runs = _fake_timings(monkeypatch, lambda name, n: 1.0 if name == "direct" else 3.0)
    seconds = autotune.time_choices(SMALL, [autotune.Choice("direct"), autotune.Choice("winograd2", 1)], repeats=5)
    assert seconds == {"direct": 1.0, "winograd2/1": 3.0}
    assert len(runs["winograd2/1"]) == 1 + 1                             # warm-up, then one timed run
    assert len(runs["direct"]) == 1 + autotune.MIN_REPEATS               # alone: nothing left to compare


def test_one_run_in_a_slow_spell_does_not_drop_a_candidate(monkeypatch):
    # 56x56 128->256 on 8 images (ms): F(6x6) in chunks of 2 ran first, in a spell that ended before chunks of 4.
    runs = _fake_timings(monkeypatch, lambda name, n: {"winograd6/2": 61.4 if n == 2 else 35.0,
                                                       "winograd6/4": 36.2, "winograd2/1": 110.0}[name])
    seconds = autotune.time_choices(SMALL, [autotune.Choice.parse(n) for n in ("winograd6/2", "winograd6/4",
                                                                               "winograd2/1")], repeats=5)
    assert min(seconds, key=seconds.get) == "winograd6/2" and seconds["winograd6/2"] == 35.0
    assert len(runs["winograd2/1"]) == 1 + 1                             # 3x behind after one run: dropped


@pytest.mark.parametrize("overlap,timed_runs", [(False, autotune.MIN_REPEATS), (True, 5)])
def test_timing_ends_early_only_when_the_leader_is_clear(monkeypatch, overlap, timed_runs):
    monkeypatch.setattr(autotune, "ROUNDS_BUDGET", float("inf"))
    # direct alternates 1.0 and 1.1 s; F(2x2) 1.2 s, or 1.05 s on every third run (overlapping direct's range).
    runs = _fake_timings(monkeypatch, lambda name, n: (1.0 + 0.1 * (n % 2)) if name == "direct" else
                         (1.05 if overlap and n % 3 == 0 else 1.2))
    seconds = autotune.time_choices(SMALL, [autotune.Choice("direct"), autotune.Choice("winograd2", 1)], repeats=5)
    assert min(seconds, key=seconds.get) == "direct"
    assert len(runs["direct"]) == len(runs["winograd2/1"]) == 1 + timed_runs


@pytest.mark.parametrize("run_budgets,budget_rounds,timed_runs", [
    (0.002, autotune.MIN_REPEATS, 5), (0.6, autotune.MIN_REPEATS, autotune.MIN_REPEATS), (0.6, 1, 1), (0.2, 1, 3)])
def test_long_runs_end_the_timing_at_the_rounds_budget(monkeypatch, run_budgets, budget_rounds, timed_runs):
    # Overlapping, not near equal (7%): short runs take every round, long ones stop at the budget (after
    # budget_rounds rounds: 1 on a batch ranked on fewer images first). A round of two takes 2.2 runs' time.
    run_seconds = run_budgets * autotune.ROUNDS_BUDGET
    runs = _fake_timings(monkeypatch, lambda name, n: run_seconds * ((1.0 + 0.1 * (n % 2)) if name == "direct"
                                                                     else (1.07 if n % 2 else 1.2)))
    autotune.time_choices(SMALL, [autotune.Choice("direct"), autotune.Choice("winograd2", 1)], repeats=5,
                          budget_rounds=budget_rounds)
    assert len(runs["direct"]) == len(runs["winograd2/1"]) == 1 + timed_runs


def test_near_equals_end_the_timing_early(monkeypatch):
    runs = _fake_timings(monkeypatch, lambda name, n: (1.0 + 0.1 * (n % 2)) if name == "direct" else 1.02)
    autotune.time_choices(SMALL, [autotune.Choice("direct"), autotune.Choice("winograd2", 1)], repeats=5)
    assert len(runs["direct"]) == 1 + autotune.MIN_REPEATS


def test_a_workload_no_candidate_can_run_is_named(monkeypatch):
    def failing(workload, choice, pass_name=None, inputs=None):
        raise tf.errors.UnimplementedError(None, None, "no NCHW convolution on this CPU")

    monkeypatch.setattr(autotune, "layer_run", failing)
    assert autotune.time_choices(SMALL, [autotune.Choice("direct")]) == {}
    with pytest.raises(RuntimeError, match="no convolution candidate ran for " + SMALL.key()):
        autotune.tune(SMALL)


def test_command_lines_keep_xla_kernels_per_machine(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setenv("TF_XLA_FLAGS", "--tf_xla_auto_jit=0")
    directory = autotune.use_persistent_xla_cache()
    assert directory == str(tmp_path / "tfvgg" / f"xla-{autotune._fingerprint_digest()}")
    assert (tmp_path / "tfvgg").is_dir()
    assert os.environ["TF_XLA_FLAGS"] == f"--tf_xla_auto_jit=0 --tf_xla_persistent_cache_directory={directory}"
    assert autotune.use_persistent_xla_cache() is None              # named already: left alone


def test_a_tuning_budget_tunes_the_largest_layers_first_and_leaves_the_rest_to_the_rule(cache_path, monkeypatch):
    clock = iter(range(0, 10_000, 10))
    monkeypatch.setattr(autotune.time, "perf_counter", lambda: next(clock))   # 10 s per look at the clock
    monkeypatch.setattr(autotune, "_MEASURING", [True])
    tuned = []

    def fake_tune(workload, measure=None, inference_entry=None, prepared=None):
        tuned.append(workload)
        return {"choice": "winograd4/1", "seconds": {"direct": 2.0, "winograd4/1": 1.0}, "tuning_seconds": 10.0}

    monkeypatch.setattr(autotune, "tune", fake_tune)
    rows = autotune.tune_network("D", 8, pass_names=["inference"], print_fn=None, budget_seconds=15)
    assert tuned == [autotune.Workload(56, 56, 256, 256, 8, pass_name="inference")]   # the most multiply-adds
    assert [r["tuned"] for r in rows].count(True) == 1 and len(rows) == 9
    left = [r for r in rows if not r["tuned"]]
    assert all(r["seconds"] == {} and r["choice"] in ("direct", "winograd4") for r in left)
    monkeypatch.setattr(autotune, "tune", lambda *a: pytest.fail("measured after the budget ran out"))
    assert autotune.choose(autotune.Workload(8, 8, 4, 8, 2), "direct") == autotune.Choice("direct")


def test_the_rounds_of_one_tuning_build_each_candidate_once(monkeypatch):
    built = []
    real_layer_run = autotune.layer_run

    def counting(workload, choice, pass_name=None, inputs=None):
        built.append((choice.name, id(inputs[0])))
        return real_layer_run(workload, choice, pass_name, inputs)

    monkeypatch.setattr(autotune, "layer_run", counting)
    workload = autotune.Workload(8, 8, 4, 8, 4, pass_name="inference")
    prepared = {}
    first = autotune.time_choices(workload, [autotune.Choice("direct"), autotune.Choice("winograd2", 2)],
                                  repeats=2, prepared=prepared)
    again = autotune.time_choices(workload, [autotune.Choice("direct"), autotune.Choice("winograd2", 4)],
                                  repeats=2, prepared=prepared)
    assert set(first) == {"direct", "winograd2/2"} and set(again) == {"direct", "winograd2/4"}
    assert sorted(name for name, _ in built) == ["direct", "winograd2/2", "winograd2/4"]   # direct built once
    assert len({inputs for _, inputs in built}) == 1   # every candidate reads the same input variables


def test_a_large_batch_is_searched_on_8_images_and_the_full_batch_decides_what_those_cannot():
    calls, direct_on_32 = [], [0.95]
    def measure(workload, choices):   # at 8 images F(4x4) leads direct by 5%; at 32, direct leads by 5%
        calls.append((workload.batch, [c.name for c in choices]))
        small = workload.batch == autotune.SCREEN_BATCH
        times = {"direct": 1.05 if small else direct_on_32[0], "winograd2": 2.0, "winograd4": 1.0, "winograd6": 1.3}
        return {c.name: times[c.algorithm] * workload.batch * (1 + 0.001 * (c.chunk or 0)) for c in choices}
    workload = autotune.Workload(28, 28, 512, 512, 32, pass_name="inference")
    entry = autotune.tune(workload, measure)
    assert [batch for batch, _ in calls] == [8, 8, 32] and len(calls[0][1]) == 4   # every algorithm, on 8 images
    assert calls[1][1] == ["direct", "winograd4/2", "winograd4/1", "winograd4/4"]  # the climb, on 8 images
    assert calls[2][1] == ["winograd4/1", "direct"]   # direct's kernels do not run per chunk: within SCREEN_KEEP,
    assert entry["choice"] == "direct"                # the full batch decides (F(6x6), 1.3x behind, is out)
    assert set(entry["seconds"]) == set(calls[2][1])                             # full-batch times only
    assert set(entry["screen"]["seconds"]) == {n for _, names in calls[:2] for n in names}
    assert autotune.speedup_vs_direct(entry) == (1.0, None)
    calls.clear()
    direct_on_32[0] = 1.2
    entry = autotune.tune(workload, measure)
    assert entry["choice"] == "winograd4/1" and autotune.speedup_vs_direct(entry) == (
        pytest.approx(entry["seconds"]["direct"] / entry["seconds"]["winograd4/1"]), None)   # direct ran there
    calls.clear()
    entry = autotune.tune(workload, fake_measure({"direct": 1.4, "winograd2": 2.0, "winograd4": 1.0,
                                                  "winograd6": 1.05}, calls))
    assert entry["seconds"] == {} and entry["choice"] == "winograd4/1"   # Winograd finalists only, at the chunk
    assert calls[1] == ["direct", "winograd6/2", "winograd4/2", "winograd4/1", "winograd4/4"] and len(calls) == 2
    # at the sizes they ran with, ranked on 8 images (the same kernels per chunk): F(6x6), within SCREEN_KEEP, ran
    # side by side with F(4x4)'s sizes in the climb's round (_closest_winograd), so no round more
    speedup, at_batch = autotune.speedup_vs_direct(entry)
    assert at_batch == 8 and speedup == pytest.approx(1.4 / 1.01)
    calls.clear()
    small = autotune.tune(dataclasses.replace(workload, batch=8), measure)
    assert "screen" not in small and {batch for batch, _ in calls} == {8}         # 8 images: nothing to screen


def test_the_full_batch_times_the_winner_beside_direct_and_the_closest_other_winograd_only():
    calls = []
    def measure(workload, choices):   # all four within SCREEN_KEEP on 8 images
        calls.append((workload.batch, [c.name for c in choices]))
        times = {"direct": 1.02, "winograd2": 1.08, "winograd4": 1.05, "winograd6": 1.0}
        return {c.name: times[c.algorithm] * (1 + 0.01 * (c.chunk or 0)) for c in choices}
    entry = autotune.tune(autotune.Workload(224, 224, 64, 64, 32, pass_name="inference"), measure)
    assert calls[-1] == (32, ["winograd6/1", "direct", "winograd4/1"])   # F(2x2), third of the Winograd: not
    assert entry["choice"] == "winograd6/1" and set(entry["seconds"]) == set(calls[-1][1])


def test_training_screens_inferences_survivors_and_times_those_left_in_one_round():
    calls = []
    measure = fake_measure({"direct": 2.0, "winograd2": 1.2, "winograd4": 1.0, "winograd6": 1.09}, calls)
    inference = {"seconds": {"winograd4/16": 0.5, "winograd6/8+xla": 0.45},   # the full batch's climb
                 "screen": {"batch": 8, "seconds": {"direct": 1.0, "winograd2/4": 0.6, "winograd4/8": 0.55,
                                                    "winograd6/8": 0.5}}}
    workload = autotune.Workload(14, 14, 512, 512, 32, pass_name="training")
    entry = autotune.tune(workload, measure, inference_entry=inference)
    assert [c.split("/")[0] for c in calls[0]] == ["direct", "winograd2", "winograd4", "winograd6"]   # screen ranks
    full = [autotune.Choice.parse(n) for n in calls[1]]
    assert len(calls) == 2 and [c.algorithm for c in full] == ["winograd4", "winograd6"]   # within SCREEN_KEEP
    assert full[1].products == "xla" and full[0].chunk == autotune._largest_divisor(   # placed by the full batch
        32, min(16, winograd.training_chunk_limit(32, 14, 14, 512, 512, 4)))
    assert entry["choice"] == full[0].name and "direct" not in entry["seconds"]      # direct 2x behind: screened out
    speedup, at_batch = autotune.speedup_vs_direct(entry)
    screen = entry["screen"]["seconds"]
    assert at_batch == 8 and speedup == pytest.approx(screen["direct"] / min(
        t for n, t in screen.items() if n.startswith("winograd4")))


def test_tuning_a_large_batch_for_real_screens_it_and_builds_each_candidate_once_per_batch(monkeypatch):
    built = []
    real_layer_run = autotune.layer_run

    def counting(workload, choice, pass_name=None, inputs=None):
        built.append((workload.batch, choice.name))
        return real_layer_run(workload, choice, pass_name, inputs)

    monkeypatch.setattr(autotune, "layer_run", counting)
    for name in ("SCREEN_KEEP", "CLOSE_RATIO", "DROP_RATIO"):   # every candidate close: finalists reach batch 16
        monkeypatch.setattr(autotune, name, float("inf"))
    workload = autotune.Workload(8, 8, 4, 8, 16, pass_name="inference")
    entry = autotune.tune(workload)
    assert entry["screen"]["batch"] == 8 and {autotune.Choice.parse(n).algorithm for n in entry["screen"][
        "seconds"]} == {"direct", *winograd.ALGORITHMS}
    assert len(built) == len(set(built)) and {b for b, _ in built} == {8, 16}        # built once per batch
    full_batch = {name for batch, name in built if batch == 16}
    assert full_batch == set(entry["seconds"])                                       # every finalist ran there
    algorithms = {autotune.Choice.parse(n).algorithm for n in full_batch}   # the winner, direct, the closest other
    assert "direct" in algorithms and len(algorithms) in (2, 3)   # 2: direct won on 8 images
    assert entry["choice"] in entry["seconds"]


def test_a_full_batch_that_turns_the_screens_order_is_timed_once_more(monkeypatch):
    calls, moments = [], []
    def measure(workload, choices):   # on 8 images F(6x6) 0.8x direct; on 32 a slow moment, then its usual
        calls.append((workload.batch, [c.name for c in choices]))
        winograd6 = 0.8 if workload.batch == autotune.SCREEN_BATCH else moments.pop(0)
        times = {"direct": 1.0, "winograd2": 2.0, "winograd4": 1.6, "winograd6": winograd6}
        return {c.name: times[c.algorithm] * workload.batch for c in choices}
    def full_batch_rounds():
        return [names for batch, names in calls if batch == 32]
    monkeypatch.setattr(autotune, "SCREEN_KEEP", 1.3)   # direct a finalist: the full batch decides
    workload = autotune.Workload(112, 112, 64, 128, 32, pass_name="inference")
    moments[:] = [1.1, 0.8]                             # 1.1 / 0.8 = 1.375x the screen's ratio, then as there
    entry = autotune.tune(workload, measure)
    first, again = full_batch_rounds()
    assert first == again and "direct" in first and entry["choice"] in first
    assert entry["choice"].startswith("winograd6") and entry["seconds"][entry["choice"]] == 0.8 * 32
    calls.clear()
    moments[:] = [1.1, 1.1]                             # slower both times: direct wins, decided
    assert autotune.tune(workload, measure)["choice"] == "direct" and len(full_batch_rounds()) == 2
    calls.clear()
    moments[:] = [0.85]                                 # about the screen's order: one round
    assert autotune.tune(workload, measure)["choice"].startswith("winograd6") and len(full_batch_rounds()) == 1


def replay(rounds, calls):
    """A ``measure`` that answers each call with the next of ``rounds`` (``{name: seconds}``), noting the names."""
    rounds = iter(rounds)
    def measure(workload, choices):
        calls.append([c.name for c in choices])
        times = next(rounds)
        return {c.name: times[c.name] for c in choices}
    return measure


def test_a_round_that_a_spell_of_the_machine_turned_is_timed_once_more(monkeypatch):
    # batch 8, 112x112 64->128 inference, as traced on a Zen 4 (ms)
    first = {"direct": 67.0, "winograd2/1": 85.1, "winograd4/1": 58.6, "winograd6/1": 50.0}
    spell = {"direct": 67.5, "winograd6/1": 75.5, "winograd6/2": 69.7}     # F(6x6) 1.5x slower, direct the same
    after = {"direct": 67.0, "winograd6/1": 47.5, "winograd6/2": 52.0}
    workload = autotune.Workload(112, 112, 64, 128, 8, pass_name="inference")
    calls = []
    entry = autotune.tune(workload, replay([first, spell, after], calls))
    assert calls[1] == calls[2] == ["direct", "winograd6/1", "winograd6/2"]   # the climb's round, once more
    assert entry["choice"] == "winograd6/1" and entry["seconds"]["winograd6/1"] == 47.5
    assert entry["seconds"]["direct"] == 67.0 and entry["seconds"]["winograd6/2"] == 52.0   # each its best
    calls.clear()
    steady = {"direct": 67.5, "winograd6/1": 68.0, "winograd6/2": 69.7}    # F(6x6) 1.36x slower, under 1.4: kept
    monkeypatch.setattr(autotune, "SHIFT_RATIO", 1.4)
    assert autotune.tune(workload, replay([first, steady], calls))["choice"] == "direct" and len(calls) == 2
    calls.clear()
    monkeypatch.undo()
    won = {"direct": 67.5, "winograd6/1": 51.0, "winograd6/2": 49.0}       # a new size won: no turn, one round
    after = {"winograd6/1": 51.0, "winograd6/2": 49.0, "winograd6/4": 55.0}
    assert autotune.tune(workload, replay([first, won, after], calls))["choice"] == "winograd6/2" and len(calls) == 3


def test_the_climb_keeps_its_close_contenders_in_the_next_round():
    # batch 8, 112x112 64->128 inference, rounds built around a Zen 3 run's cache entry (ms): F(6x6)/2 won the
    # second round, then ran 82.3 ms in the third beside F(6x6)/4 alone and was the pick; F(6x6)/1 had run 58.6
    first = {"direct": 78.0, "winograd2/1": 104.1, "winograd4/1": 66.0, "winograd6/1": 61.0}
    second = {"direct": 78.2, "winograd6/1": 58.6, "winograd6/2": 56.5, "winograd4/1": 64.7}
    third = {"direct": 78.2, "winograd6/1": 59.0, "winograd6/2": 82.3, "winograd6/4": 102.0}
    workload = autotune.Workload(112, 112, 64, 128, 8, pass_name="inference")
    calls = []
    entry = autotune.tune(workload, replay([first, second, third], calls))
    assert calls[1] == ["direct", "winograd4/1", "winograd6/1", "winograd6/2"]
    assert calls[2] == ["winograd6/1", "winograd6/2", "winograd6/4"]   # F(6x6)/1 within 1.05x; direct, F(4x4) not
    assert entry["choice"] == "winograd6/1" and len(calls) == 3        # it led a round before: the climb ends
    calls.clear()
    close = {**second, "direct": 59.0}                                   # direct within 1.05x: it stays too
    entry = autotune.tune(workload, replay([{**first, "direct": 62.0}, close, {**third, "direct": 57.0}], calls))
    assert calls[2] == ["direct", "winograd6/1", "winograd6/2", "winograd6/4"] and entry["choice"] == "direct"


def test_a_chunk_size_the_climb_left_tied_with_the_winner_joins_the_side_by_side_round():
    calls = []
    rounds = iter([{"direct": 70, "winograd2/1": 91, "winograd4/1": 58, "winograd6/1": 50},   # as measured at
                   {"direct": 67, "winograd6/1": 52, "winograd6/2": 51},       # 112x112 64->128, batch 32's
                   {"winograd6/2": 51, "winograd4/1": 52},                     # screen: the climb's near equals
                   {"winograd6/2": 58, "winograd6/1": 49, "winograd4/1": 54}])
    def measure(workload, choices):
        calls.append([c.name for c in choices])
        times = next(rounds)
        return {c.name: times[c.name] for c in choices}
    entry = autotune.tune(autotune.Workload(112, 112, 64, 128, 32, pass_name="inference"), measure)
    assert sorted(calls[-1]) == ["winograd4/1", "winograd6/1", "winograd6/2"]   # side by side on 8 images
    assert entry["choice"] == "winograd6/1" and entry["seconds"] == {}


def test_a_screen_that_would_decide_alone_times_its_two_leaders_once_more():
    calls = []
    moments = iter([{"direct": 1.0, "winograd4": 1.6, "winograd6": 1.12},   # a burst slows F(6x6): 1.12x direct
                    {"direct": 1.0, "winograd6": 0.7}])                      # once more: its usual 0.7x
    def measure(workload, choices):
        calls.append((workload.batch, [c.name for c in choices]))
        times = next(moments) if workload.batch == autotune.SCREEN_BATCH else {"direct": 1.0, "winograd6": 0.7}
        return {c.name: times[c.algorithm] for c in choices if c.algorithm in times}
    workload = autotune.Workload(112, 112, 64, 128, 32, pass_name="training")
    entry = autotune.tune(workload, measure, inference_entry={"seconds": {
        "direct": 1.0, "winograd4/1": 0.7, "winograd6/1": 0.6}})
    assert [batch for batch, _ in calls] == [8, 8] and [n.split("/")[0] for n in calls[1][1]] == [
        "direct", "winograd6"]                                      # the two leaders, on the screen's batch
    assert autotune.Choice.parse(entry["choice"]).algorithm == "winograd6"   # kept alone now, decided
    assert entry["screen"]["seconds"][calls[1][1][1]] == 0.7 and entry["seconds"] == {}
    calls.clear()
    moments = iter([{"direct": 1.0, "winograd4": 1.6, "winograd6": 1.3}])    # runner-up past CLOSE_RATIO: decided
    entry = autotune.tune(workload, measure, inference_entry={"seconds": {
        "direct": 1.0, "winograd4/1": 0.7, "winograd6/1": 0.6}})
    assert len(calls) == 1 and entry["choice"] == "direct"


def test_a_winograd_algorithm_close_to_the_climbing_one_runs_beside_it_in_the_climb():
    # batch 8, 112x112 64->128 inference, the first round as traced on a Zen 4 (ms)
    first = {"direct": 67.0, "winograd2/1": 73.6, "winograd4/1": 48.9, "winograd6/1": 50.6}   # F(6x6) 3% behind
    climb = {"direct": 67.2, "winograd6/1": 47.8, "winograd4/1": 51.7, "winograd4/2": 56.2}
    workload = autotune.Workload(112, 112, 64, 128, 8, pass_name="inference")
    calls = []
    entry = autotune.tune(workload, replay([first, climb, {"winograd6/1": 48.0, "winograd6/2": 52.0}], calls))
    assert calls[1] == ["direct", "winograd6/1", "winograd4/1", "winograd4/2"]   # the rival beside the climb
    assert calls[2] == ["winograd6/1", "winograd6/2"] and entry["choice"] == "winograd6/1"   # it won: its sizes
    calls.clear()
    far = {**first, "winograd6/1": 1.2 * 48.9}                                   # 1.2x behind: no rival
    entry = autotune.tune(workload, replay([far, {"direct": 67.2, "winograd4/1": 48.5, "winograd4/2": 56.2}], calls))
    assert calls[1] == ["direct", "winograd4/1", "winograd4/2"] and entry["choice"] == "winograd4/1"


def test_winograd_finalists_near_equal_on_8_images_are_ranked_on_the_full_batch():
    calls, f4_on_8 = [], [34.0]
    def measure(workload, choices):   # 56x56 128->256 inference as timed at batch 8 and 32 on a Zen 4 (ms)
        calls.append((workload.batch, [c.name for c in choices]))
        small = workload.batch == autotune.SCREEN_BATCH
        times = {"direct": 68.1 if small else 272.3, "winograd2": 57.3 if small else 240.1,
                 "winograd4": f4_on_8[0] if small else 148.8, "winograd6": 33.1 if small else 173.6}
        return {c.name: times[c.algorithm] * (1 + 0.001 * (c.chunk or 0)) for c in choices}
    workload = autotune.Workload(56, 56, 128, 256, 32, pass_name="inference")
    entry = autotune.tune(workload, measure)
    full = [names for batch, names in calls if batch == 32]
    assert full and {n.split("/")[0] for n in full[0]} == {"winograd4", "winograd6"}   # 3% apart on 8 images
    assert entry["choice"].startswith("winograd4") and entry["choice"] in entry["seconds"]
    calls.clear()
    f4_on_8[0] = 36.0                                  # 9% behind on 8 images: ranked there, no full batch
    entry = autotune.tune(workload, measure)
    assert {batch for batch, _ in calls} == {8} and entry["choice"].startswith("winograd6")


def test_a_pick_with_a_close_rival_of_the_other_kind_gets_a_second_look_each_keeping_its_best():
    # batch 8, 112x112 64->128 inference, as on a Zen 4 (s): a spell held F(6x6) slow through every round
    workload = autotune.Workload(112, 112, 64, 128, 8, pass_name="inference")
    entry = {"choice": "direct", "seconds": {"direct": 0.065, "winograd6/1": 0.0746, "winograd4/1": 0.08},
             "tuning_seconds": 6.0}
    calls = []
    looked = autotune.second_look(workload, entry, replay([{"direct": 0.066, "winograd6/1": 0.048}], calls))
    assert calls == [["direct", "winograd6/1"]]                        # the pick and the closest other kind
    assert looked["choice"] == "winograd6/1" and looked["second_look"] == {"direct": 0.066, "winograd6/1": 0.048}
    assert looked["seconds"]["direct"] == 0.065 and looked["seconds"]["winograd6/1"] == 0.048   # each its best
    assert looked["tuning_seconds"] >= 6.0 and entry["choice"] == "direct"   # a new entry
    # a look in a spell of its own changes nothing: the best of both moments still has direct ahead
    assert autotune.second_look(workload, entry, replay([{"direct": 0.066, "winograd6/1": 0.09}], []))[
        "choice"] == "direct"
    # a rival ahead by no more than NEAR_RATIO is a near equal: the pick stays
    assert autotune.second_look(workload, entry, replay([{"direct": 0.066, "winograd6/1": 0.062}], []))[
        "choice"] == "direct"
    far = {**entry, "seconds": {"direct": 0.065, "winograd6/1": 0.0813}}   # 1.25x behind: no look
    assert autotune.second_look(workload, far, replay([], calls)) is far and len(calls) == 1


def test_a_second_look_takes_the_rival_from_the_screen_when_the_full_batch_ran_one_kind():
    # batch 32 inference: direct and F(6x6) only ever met on 8 images; the look is on the full batch
    workload = autotune.Workload(224, 224, 64, 64, 32, pass_name="inference")
    entry = {"choice": "winograd6/1", "seconds": {"winograd6/1": 0.50, "winograd4/2": 0.55}, "tuning_seconds": 9.0,
             "screen": {"batch": 8, "seconds": {"direct": 0.14, "winograd6/1": 0.125, "winograd4/4": 0.14}}}
    calls = []
    looked = autotune.second_look(workload, entry, replay([{"winograd6/1": 0.6, "direct": 0.47}], calls))
    assert calls == [["winograd6/1", "direct"]]
    assert looked["choice"] == "direct" and looked["seconds"]["winograd6/1"] == 0.5   # 0.5 against 0.47 x 1.05
    winograd_only = {**entry, "screen": {"batch": 8, "seconds": {"winograd6/1": 0.125}}}
    assert autotune.second_look(workload, winograd_only, replay([], calls)) is winograd_only
    # a round of one run each over ROUNDS_BUDGET by the screen's times x 4 (training: 2 s a run): no look
    training = {**entry, "screen": {"batch": 8, "seconds": {"direct": 0.52, "winograd6/1": 0.5}}}
    assert autotune.second_look(dataclasses.replace(workload, pass_name="training"), training, replay([], calls)) \
        is training and len(calls) == 1


def test_tune_network_looks_again_after_the_pass_and_updates_the_cache_and_the_row(cache_path, monkeypatch):
    monkeypatch.setattr(autotune, "_MEASURING", [True])
    events = []

    def fake_tune(workload, measure=None, inference_entry=None, prepared=None):
        events.append(("tune", workload.height))
        contested = workload.height == 224 and workload.c_in == 64
        seconds = {"direct": 1.0, "winograd6/1": 1.1 if contested else 0.5}
        prepared[workload] = {"inputs": "x", autotune.Choice("direct"): "a run", autotune.Choice("winograd4"): "b"}
        return {"choice": "direct" if contested else "winograd6/1", "seconds": seconds, "tuning_seconds": 1.0}

    def fake_time_choices(workload, choices, prepared=None, budget_rounds=None, **_):
        events.append(("look", workload.height, sorted(prepared, key=str)))
        return {choice.name: {"direct": 1.2, "winograd6/1": 0.8}[choice.name] for choice in choices}

    monkeypatch.setattr(autotune, "tune", fake_tune)
    monkeypatch.setattr(autotune, "time_choices", fake_time_choices)
    printed = []
    rows = autotune.tune_network("D", 8, pass_names=["inference"], print_fn=printed.append)
    assert [event[0] for event in events] == ["tune"] * 9 + ["look"]   # after all of the pass's workloads
    assert events[-1] == ("look", 224, [autotune.Choice("direct"), "inputs"])   # the pick's run kept, no other
    row = next(r for r in rows if r["layers"] == ["conv1_2"])
    assert row["choice"] == "winograd6/1" and row["second_look"] == {"direct": 1.2, "winograd6/1": 0.8}
    assert row["speedup_vs_direct"] == pytest.approx(1.25)
    assert autotune.current_cache().get(autotune.Workload(224, 224, 64, 64, 8, pass_name="inference"))[
        "choice"] == "winograd6/1"
    look = next(line for line in printed if "second look" in line)   # the look's times, then those that decided
    assert "direct 1200.0 ms, winograd6/1 800.0 ms side by side" in look and "now winograd6/1" in look
    assert "best of both moments direct 1000.0, winograd6/1 800.0 ms" in look


def test_a_second_look_drops_neither_contender_after_a_slow_first_run(monkeypatch):
    # batch 8, 224x224 64->64 inference (seconds): F(6x6)'s first run in a look took 512 ms, direct's 134
    runs = _fake_timings(monkeypatch, lambda name, n: {"direct": 0.134,
                                                       "winograd6/1": 0.512 if n == 2 else 0.128}[name])
    workload = autotune.Workload(224, 224, 64, 64, 8, pass_name="inference")
    entry = {"choice": "direct", "seconds": {"direct": 0.133, "winograd6/1": 0.145}, "tuning_seconds": 7.0}
    looked = autotune.second_look(workload, entry)
    assert looked["second_look"]["winograd6/1"] == 0.128 and len(runs["winograd6/1"]) > 2   # timed again
    assert looked["choice"] == "direct"                                  # 0.128 x 1.05 is not under 0.133


def test_of_two_training_chunk_sizes_that_are_one_on_fewer_images_inferences_goes_on():
    calls = []
    measure = fake_measure({"direct": 2.0, "winograd2": 1.6, "winograd4": 1.0, "winograd6": 1.3}, calls)
    workload = autotune.Workload(56, 56, 128, 256, 32, pass_name="training")
    rule = autotune._rule_chunk(workload, "winograd4")
    inference = {"choice": "winograd4/1", "seconds": {"winograd4/1": 0.5}}   # the rule's size is another
    assert rule > 1 and autotune._at_batch(autotune.Choice("winograd4", rule), dataclasses.replace(
        workload, batch=autotune.SCREEN_BATCH)).chunk == 1                     # ... but the same on 8 images
    entry = autotune.tune(workload, measure, inference_entry=inference)
    assert calls[0].count("winograd4/1") == 1 and entry["choice"] == "winograd4/1"   # screened once, inference's


def test_a_candidate_named_twice_is_built_once(monkeypatch):
    built, real_layer_run = [], autotune.layer_run
    monkeypatch.setattr(autotune, "layer_run", lambda *args: built.append(args[1].name) or real_layer_run(*args))
    choice = autotune.Choice("winograd4", 2)
    seconds = autotune.time_choices(autotune.Workload(8, 8, 4, 8, 4, pass_name="training"), [choice, choice],
                                    repeats=1)
    assert built == ["winograd4/2"] and list(seconds) == ["winograd4/2"]


def test_a_rival_with_two_training_chunk_sizes_runs_on_the_full_batch_at_inferences():
    calls = []
    measure = fake_measure({"direct": 2.0, "winograd2": 1.6, "winograd4": 1.0, "winograd6": 1.05}, calls)
    workload = autotune.Workload(56, 56, 128, 256, 32, pass_name="training")
    rule = autotune._rule_chunk(workload, "winograd6")
    inference = {"choice": "winograd6/1", "seconds": {"winograd6/1": 0.5, "winograd4/1": 0.55}}
    autotune.tune(workload, measure, inference_entry=inference)
    assert rule > 1 and "winograd6/1" in calls[-1] and f"winograd6/{rule}" not in calls[-1]
