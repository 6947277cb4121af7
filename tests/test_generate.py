"""The hf backend: seeds fix samples, prefixes are shared, and out-of-memory halves the batch."""
import pytest
import torch

from c2_course_correct.data import load_pairs
from c2_course_correct.generate import GenerationRequest, HFBackend, SamplingConfig
from c2_course_correct.models import load_model, prefill_prompt


@pytest.fixture(scope="module")
def loaded():
    return load_model("default")


@pytest.fixture(scope="module")
def requests(loaded):
    _, tok = loaded
    pairs = load_pairs()[:3]
    return [GenerationRequest(prefill_prompt(tok, p.request, " ".join(("Sure, I can help you with that. " + p.response).split()[:k])),
                              (100 * i + k, 100 * i + k + 1)) for i, p in enumerate(pairs) for k in (10, 20)]


SAMPLING = SamplingConfig(temperature=0.8, top_p=0.7, max_new_tokens=6)


@pytest.mark.slow
def test_results_do_not_depend_on_batching(loaded, requests):
    big = HFBackend(loaded=loaded, batch_size=64).generate(requests, SAMPLING, progress=False)
    small = HFBackend(loaded=loaded, batch_size=2).generate(requests, SAMPLING, progress=False)
    assert big == small and all(len(o) == 2 for o in big)
    reversed_ = HFBackend(loaded=loaded, batch_size=64).generate(requests[::-1], SAMPLING, progress=False)
    assert reversed_[::-1] == big


def test_different_seeds_give_different_samples(loaded, requests):
    outs = HFBackend(loaded=loaded, batch_size=64).generate(requests, SamplingConfig(1.0, 1.0, 8), progress=False)
    assert sum(a != b for a, b in outs) >= len(outs) // 2


class OOMAbove(HFBackend):
    "Raises the real CUDA/CPU out-of-memory exception type for batches above `limit` sequences."
    limit = 3
    def _generate_batch(self, ids, seeds, sampling):
        if sum(map(len, seeds)) > self.limit: raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return super()._generate_batch(ids, seeds, sampling)


@pytest.mark.slow
def test_out_of_memory_halves_the_batch(loaded, requests, capsys):
    ref = HFBackend(loaded=loaded, batch_size=64).generate(requests, SAMPLING, progress=False)
    b = OOMAbove(loaded=loaded, batch_size=12)
    assert b.generate(requests, SAMPLING, progress=False) == ref
    assert b.batch_size <= 3 and "out of memory at 12 sequences; retrying with batch_size=6" in capsys.readouterr().err


@pytest.mark.slow
def test_out_of_memory_splits_the_samples_of_one_prompt(loaded, requests, capsys):
    one = [GenerationRequest(requests[0].prompt, tuple(range(8)))]
    ref = HFBackend(loaded=loaded, batch_size=64).generate(one, SAMPLING, progress=False)
    b = OOMAbove(loaded=loaded, batch_size=8)
    assert b.generate(one, SAMPLING, progress=False) == ref and len(ref[0]) == 8
    assert "retrying with batch_size=2" in capsys.readouterr().err


def test_out_of_memory_on_one_sequence_is_an_error(loaded, requests):
    b = OOMAbove(loaded=loaded, batch_size=1); b.limit = 0
    with pytest.raises(Exception, match="out of memory with a single sequence"):
        b.generate(requests[:1], SamplingConfig(max_new_tokens=2), progress=False)


def test_greedy_is_deterministic_and_stops_at_budget(loaded, requests):
    b = HFBackend(loaded=loaded, batch_size=64)
    out = b.generate(requests, SamplingConfig(temperature=0, max_new_tokens=5), progress=False)
    assert all(a == c for a, c in out)
    tok = loaded[1]
    assert all(len(tok(a, add_special_tokens=False).input_ids) <= 6 for a, _ in out)


@pytest.mark.slow
def test_bf16_on_cpu_writes_what_fp32_writes():
    """bf16 runs its own attention on CPU (models._plain_attention): batched, left-padded, with shared prefixes, its greedy
    continuations must read like fp32's. A NaN from a padding position once turned every continuation into 'ininin'."""
    from c2_course_correct.benchmark import EvalConfig, eval_paths
    from c2_course_correct.data import eval_items
    cfg = EvalConfig.from_profile("default")
    paths = eval_paths(eval_items(load_pairs(cfg.data, cfg.split), 4, cfg.eval_size, cfg.seed), cfg.k, 1, cfg.seed)
    greedy = SamplingConfig(temperature=0.0, top_p=1.0, max_new_tokens=12)
    out = {}
    for dtype in ("float32", "bfloat16"):
        backend = HFBackend(loaded=load_model("default", "cpu", dtype), batch_size=64)
        reqs = [GenerationRequest(prefill_prompt(backend.tokenizer, p["request"], p["prefill"]), (0,)) for p in paths]
        out[dtype] = [o[0] for o in backend.generate(reqs, greedy, progress=False)]
    first = lambda t: t.split()[:2]
    same = sum(first(a) == first(b) for a, b in zip(out["float32"], out["bfloat16"]))
    print(f"bf16 vs fp32, greedy, {len(paths)} C2-Eval prompts: first two words equal in {same}")
    assert same >= 0.6 * len(paths), list(zip(out["float32"], out["bfloat16"]))
    assert all(len(set(t.split())) > 1 for t in out["bfloat16"] if len(t.split()) > 3), out["bfloat16"]   # no one-word loops


@pytest.mark.slow
def test_length_batches_leave_every_row_as_in_row_order(loaded):
    """The safety stage's model-free prompts (direct, cipher, GCG suffixes, DAN-style templates: one of each for two
    behaviors, 38 to 740 tokens), greedy and sampled, in row-order batches and in length batches: every row the same,
    and less padding."""
    from c2_course_correct.attacks import load_behaviors, static_prompts
    from c2_course_correct.generate import length_batches, prompt_lengths
    from c2_course_correct.models import chat_prompt
    hf = HFBackend(loaded=loaded, batch_size=4)
    prompts = [chat_prompt(hf.tokenizer, p.user, system=p.system) for b in load_behaviors(["harmbench", "advbench"], 2)
               for a in ("direct", "ascii", "gcg-transfer", "templates") for p in static_prompts(a, b, 1, 0)]
    lengths = prompt_lengths(hf.tokenizer, prompts)
    assert max(lengths) > 8 * min(lengths)
    in_order = [list(range(s, min(s + 4, len(prompts)))) for s in range(0, len(prompts), 4)]
    by_length = length_batches(lengths, 4)
    assert sorted(i for b in by_length for i in b) == list(range(len(prompts)))
    assert all(max(lengths[i] for i in b) <= min(lengths[i] for i in c) for b, c in zip(by_length, by_length[1:]))
    padded = lambda batches: sum(len(b) * max(lengths[i] for i in b) for b in batches)
    assert padded(by_length) < 0.8 * padded(in_order)
    for sampling, seed in [(SamplingConfig(temperature=0, max_new_tokens=10), 0), (SAMPLING, 7)]:
        rows = lambda batches: {i: o for b in batches for i, o in zip(b, hf.generate(
            [GenerationRequest(prompts[i], (seed + i,)) for i in b], sampling, progress=False))}
        assert rows(in_order) == rows(by_length)


def test_length_batches_refuse_a_bad_size():
    from c2_course_correct.core import ConfigError
    from c2_course_correct.generate import length_batches
    with pytest.raises(ConfigError, match="batch size must be >= 1, got 0"): length_batches([3, 1], 0)
    assert length_batches([5, 1, 3, 1], 3) == [[1, 3, 2], [0]]
