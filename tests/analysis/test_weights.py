import pytest
import torch

from lfl_ray.analysis.runs import Trial
from lfl_ray.analysis.weight_changes import analyse_trial
from lfl_ray.analysis.weights import checkpoint_kind, open_pairs
from lfl_ray.errors import ConfigError
from lfl_ray.models import load_model
from synthetic_sweep import make_full_checkpoint, make_lora_checkpoint


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    root = tmp_path_factory.mktemp("checkpoints")
    return {"full": make_full_checkpoint(root / "full"),
            "lora": make_lora_checkpoint(root / "lora", rank=4, targets="attention")}


def test_lora_pairs_match_merge_and_unload(checkpoints):
    from peft import PeftModel

    merged = PeftModel.from_pretrained(load_model("tiny-llama"), checkpoints["lora"]).merge_and_unload()
    expected = {n: m.weight for n, m in merged.named_modules() if isinstance(m, torch.nn.Linear)}
    base = load_model("tiny-llama")
    before = {k: v.clone() for k, v in base.state_dict().items()}
    total, pairs = open_pairs("tiny-llama", checkpoints["lora"], base_model=base)
    pairs = list(pairs)
    assert total == len(pairs) == 2 * 4  # 2 layers x (q, k, v, o)
    for pair in pairs:
        assert torch.allclose(pair.tuned, expected[pair.name], atol=1e-6)
        assert not torch.allclose(pair.tuned, pair.base)
    assert {p.kind for p in pairs} == {"q_proj", "k_proj", "v_proj", "o_proj"}
    # The adapter was unloaded: the base model serves the next trial unchanged, bit for bit
    # (merge then unmerge alone leaves rounding error, and a shared BaseSVDs would miss).
    assert not any("lora" in n for n, _ in base.named_modules())
    assert all(torch.equal(v, before[k]) for k, v in base.state_dict().items())


def test_full_pairs_read_the_checkpoint(checkpoints):
    from safetensors.torch import load_file

    saved = load_file(f"{checkpoints['full']}/model.safetensors")
    total, pairs = open_pairs("tiny-llama", checkpoints["full"])
    pairs = list(pairs)
    assert total == len(pairs) == 2 * 7
    for pair in pairs:
        assert torch.equal(pair.tuned, saved[f"{pair.name}.weight"])
        assert 0 < (pair.tuned - pair.base).abs().max() < 0.05
    assert {p.layer for p in pairs} == {0, 1}


def test_full_change_needs_far_more_rank_than_lora(checkpoints):
    def trial(kind):
        return Trial("t", kind, kind, "", "FINISHED",
                     {"model": "tiny-llama", "method": kind, "rank": "4"}, (), checkpoints[kind])

    full, lora = analyse_trial(trial("full")), analyse_trial(trial("lora"))
    assert all(s.rank90 <= 4 for s in lora.spectra)
    assert min(s.rank90 for s in full.spectra) > 4 * 4
    assert full.intruder_count == 0 and lora.intruder_count > 0


def test_checkpoint_kind_rejects_other_folders(tmp_path):
    with pytest.raises(ConfigError, match="adapter_config.json"):
        checkpoint_kind(tmp_path)


def test_base_svds_are_shared_across_trials_without_changing_results(checkpoints):
    from lfl_ray.analysis.weight_changes import BaseSVDs

    def trial(kind):
        return Trial("t", kind, kind, "", "FINISHED",
                     {"model": "tiny-llama", "method": kind, "rank": "4"}, (), checkpoints[kind])

    base, svds = load_model("tiny-llama"), BaseSVDs()
    shared = [analyse_trial(trial(k), base_model=base, base_svds=svds) for k in ("full", "lora")]
    assert len(svds) == 2 * 7  # the LoRA trial's 8 attention matrices were all served from cache
    fresh = [analyse_trial(trial(k)) for k in ("full", "lora")]
    for a, b in zip(shared, fresh):
        for sa, sb in zip(a.spectra, b.spectra):
            assert sa.name == sb.name and sa.rank90 == sb.rank90
            assert sa.base == pytest.approx(sb.base, rel=1e-5) and sa.tuned == pytest.approx(sb.tuned, rel=1e-5)
        assert [m.indices for m in a.intruders] == [m.indices for m in b.intruders]
    # A different matrix under a cached name is decomposed afresh, not served stale.
    name = next(n for n, m in base.named_modules() if isinstance(m, torch.nn.Linear))
    other = torch.randn_like(dict(base.named_modules())[name].weight)
    u, s = svds.get(name, other)
    assert torch.allclose(s, torch.linalg.svdvals(other), rtol=1e-4)
