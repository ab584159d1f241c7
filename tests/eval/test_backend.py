"""Batched generation with left padding gives what one prompt at a time gives; stop strings."""

from __future__ import annotations

from lfl_ray.eval.backend import HFBackend


def test_batched_greedy_generation_equals_one_at_a_time(tiny_model, tiny_tokenizer):
    prompts = ["def add(a, b):", "Question: What is 2 + 2?\nAnswer:", "x"]
    tiny_model.eval()
    batched = HFBackend(tiny_model, tiny_tokenizer, batch_size=3).generate(
        prompts, max_new_tokens=8, desc="")
    single = HFBackend(tiny_model, tiny_tokenizer, batch_size=1).generate(
        prompts, max_new_tokens=8, desc="")
    assert batched == single
    assert all(len(outs) == 1 and outs[0] for outs in batched)
    assert tiny_tokenizer.padding_side == "right"  # restored


def test_sampling_is_seeded_and_n_samples_per_prompt(tiny_model, tiny_tokenizer):
    backend = HFBackend(tiny_model, tiny_tokenizer, batch_size=8)
    a = backend.generate(["def f():"], max_new_tokens=6, temperature=0.8, n=4, seed=1, desc="")
    b = backend.generate(["def f():"], max_new_tokens=6, temperature=0.8, n=4, seed=1, desc="")
    assert a == b and len(a[0]) == 4 and len(set(a[0])) > 1


def test_stop_strings_cut_the_completion(tiny_model, tiny_tokenizer):
    backend = HFBackend(tiny_model, tiny_tokenizer, batch_size=2)
    free = backend.generate(["def f():", "x ="], max_new_tokens=12, desc="")
    # Stop at the second character of each free completion: it must be cut there.
    stops = tuple({text[1:3] for (text,) in free if len(text) > 3})
    cut = backend.generate(["def f():", "x ="], max_new_tokens=12, stop=stops, desc="")
    for (f,), (c,) in zip(free, cut):
        assert f.startswith(c) and not any(s in c for s in stops)
