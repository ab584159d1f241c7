"""Scoring and generation engines behind one interface: Hugging Face (CPU/GPU) and vLLM.

Every suite talks to a backend through two calls:
- ``loglikelihood(requests)``: for (context, continuation) pairs, the summed log-probability
  of the continuation tokens given the context, tokenized as lm-evaluation-harness 0.4.13's
  ``HFLM`` does it: trailing context whitespace moves to the continuation; the
  continuation's tokens are those of ``encode(context + continuation)`` after
  ``encode(context)``; an empty context is the BOS token (EOS if there is none);
- ``generate(prompts, ...)``: completions, cut at the first stop string, n per prompt.

BOS follows lm-eval's rule: the tokenizer's default (``add_special_tokens``), so a Llama
tokenizer prepends ``<s>`` and SmolLM2's adds nothing, unless ``add_bos_token`` says
otherwise; text that already starts with the BOS token (a rendered chat template) gets none.

``HFBackend`` wraps a live (possibly peft-wrapped) model in place: requests are sorted by
length and batched with right padding for scoring, left padding + KV cache for generation.
``VLLMBackend`` (``gpu`` extra) serves a base model plus LoRA adapters through vLLM's
``LoRARequest``, so one engine evaluates many trials' adapters.
"""

from __future__ import annotations

import contextlib
from typing import Protocol, Sequence

import torch
from lfl_ray.progress import progress, progress_mode

MAX_LENGTH = 2048
"""Longest scored sequence; longer inputs lose their oldest context tokens."""


class Backend(Protocol):
    """What the suites need from an engine."""

    tokenizer: object

    def loglikelihood(self, requests: Sequence[tuple[str, str]], desc: str = "") -> list[float]: ...

    def generate(self, prompts: Sequence[str], *, max_new_tokens: int, stop: Sequence[str] = (),
                 temperature: float = 0.0, n: int = 1, seed: int = 0,
                 desc: str = "") -> list[list[str]]: ...


def prefix_token_id(tokenizer) -> int:
    """lm-eval's ``prefix_token_id``: what an empty context is (BOS, else EOS)."""
    if tokenizer.bos_token_id is not None:
        return tokenizer.bos_token_id
    return tokenizer.eos_token_id


def encode_text(tokenizer, text: str, add_bos_token: bool | None = None) -> list[int]:
    """Token ids of ``text`` under lm-eval's BOS rule (its ``HFLM.tok_encode``): the
    tokenizer's default special tokens unless ``add_bos_token`` is given, and none when the
    text already starts with the BOS token's text."""
    kwargs = {} if add_bos_token is None else {"add_special_tokens": add_bos_token}
    if text.startswith(tokenizer.decode(prefix_token_id(tokenizer))):
        kwargs["add_special_tokens"] = False
    return tokenizer(text, **kwargs)["input_ids"]


def encode_pair(tokenizer, context: str, continuation: str,
                add_bos_token: bool | None = None) -> tuple[list[int], list[int]]:
    """Context and continuation token ids the way lm-evaluation-harness 0.4.13 splits them."""
    if not context:
        cont = tokenizer(continuation, add_special_tokens=False)["input_ids"]
        prefix = prefix_token_id(tokenizer)
        return ([prefix], cont) if cont[0] != prefix else (cont[:1], cont[1:])
    spaces = len(context) - len(context.rstrip())
    if spaces:
        continuation = context[-spaces:] + continuation
        context = context[:-spaces]
    whole = encode_text(tokenizer, context + continuation, add_bos_token)
    ctx = encode_text(tokenizer, context, add_bos_token)
    return ctx, whole[len(ctx):]


def cut_at_stop(text: str, stop: Sequence[str]) -> str:
    """``text`` up to the first occurrence of any stop string."""
    end = len(text)
    for s in stop:
        i = text.find(s)
        if i != -1:
            end = min(end, i)
    return text[:end]


def model_device(model) -> torch.device:
    return next(model.parameters()).device


class HFBackend:
    """A live Hugging Face causal LM (or a peft wrapper of one), used in place."""

    def __init__(self, model, tokenizer, *, batch_size: int = 8, max_length: int = MAX_LENGTH,
                 add_bos_token: bool | None = None):
        self.model = model
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        self.max_length = max_length
        self.add_bos_token = add_bos_token
        """None: the tokenizer's default (lm-eval's rule); True/False: force BOS on or off."""

    @torch.no_grad()
    def _score(self, sequences: list[list[int]], n_conts: list[int],
               desc: str) -> list[tuple[float, bool]]:
        device = model_device(self.model)
        pad = self.tokenizer.pad_token_id or 0
        order = sorted(range(len(sequences)), key=lambda i: -len(sequences[i]))
        out = [(0.0, False)] * len(sequences)
        batches = [order[i:i + self.batch_size] for i in range(0, len(order), self.batch_size)]
        for batch in progress(batches, desc=desc, unit="batch"):
            width = max(len(sequences[i]) - 1 for i in batch)
            ids = torch.full((len(batch), width), pad, dtype=torch.long)
            mask = torch.zeros((len(batch), width), dtype=torch.long)
            for row, i in enumerate(batch):
                seq = sequences[i][:-1]
                ids[row, :len(seq)] = torch.tensor(seq)
                mask[row, :len(seq)] = 1
            logits = self.model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits
            for row, i in enumerate(batch):
                n, length = n_conts[i], len(sequences[i]) - 1
                picked = logits[row, length - n:length].double().log_softmax(-1)
                target = torch.tensor(sequences[i][-n:], device=picked.device)
                out[i] = (float(picked.gather(-1, target[:, None]).sum()),
                          bool((picked.argmax(-1) == target).all()))
        return out

    def loglikelihood(self, requests, desc: str = "loglikelihood") -> list[float]:
        return [score for score, _ in self.loglikelihood_greedy(requests, desc)]

    @torch.no_grad()
    def loglikelihood_greedy(self, requests, desc: str = "loglikelihood") -> list[tuple[float, bool]]:
        """Per request, the summed log-probability and whether the continuation is the greedy
        one (every token the argmax), as lm-eval's ``LM.loglikelihood`` returns them."""
        sequences, n_conts, contexts = [], [], []
        for context, continuation in requests:
            ctx, cont = encode_pair(self.tokenizer, context, continuation, self.add_bos_token)
            seq = (ctx + cont)[-(self.max_length + 1):]
            sequences.append(seq)
            n_conts.append(min(len(cont), len(seq) - 1))
            contexts.append(tuple(seq[:len(seq) - n_conts[-1]]))
        # Prefix sharing: choices of one question share its context; run it once and score
        # the continuations on its KV cache (HellaSwag ~2x, ARC ~3x fewer tokens).
        groups: dict = {}
        for i, ctx in enumerate(contexts):
            groups.setdefault(ctx, []).append(i)
        shared = [idx for idx in groups.values() if len(idx) > 1]
        single = [i for idx in groups.values() if len(idx) == 1 for i in idx]
        out = [(0.0, False)] * len(sequences)
        for i, score in zip(single, self._score([sequences[i] for i in single],
                                                [n_conts[i] for i in single], desc)):
            out[i] = score
        for idx in progress(shared, desc=f"{desc} (shared prefixes)" if desc else "", disable=not shared):
            scores = self._score_shared(contexts[idx[0]], [sequences[i][len(contexts[i]):]
                                                           for i in idx])
            for i, score in zip(idx, scores):
                out[i] = score
        return out

    def _score_shared(self, context: tuple[int, ...],
                      continuations: list[list[int]]) -> list[tuple[float, bool]]:
        """Summed log-probs of each continuation after one shared context (one KV cache)."""
        device = model_device(self.model)
        pad = self.tokenizer.pad_token_id or 0
        n, c = len(continuations), len(context)
        # Only the context's last position predicts a continuation token: skip the LM head
        # (hidden x vocab per token) everywhere else.
        first = self.model(input_ids=torch.tensor([context], device=device), use_cache=True,
                           logits_to_keep=1)
        head = first.logits[0, -1].double().log_softmax(-1)
        cache = first.past_key_values
        width = max(len(x) for x in continuations) - 1
        scores = [float(head[x[0]]) for x in continuations]
        greedy = [int(head.argmax()) == x[0] for x in continuations]
        if width == 0:
            return list(zip(scores, greedy))
        cache.batch_repeat_interleave(n)
        ids = torch.full((n, width), pad, dtype=torch.long)
        mask = torch.zeros((n, c + width), dtype=torch.long)
        mask[:, :c] = 1
        for row, x in enumerate(continuations):
            ids[row, :len(x) - 1] = torch.tensor(x[:-1])
            mask[row, c:c + len(x) - 1] = 1
        positions = torch.arange(c, c + width)[None].expand(n, -1)
        logits = self.model(input_ids=ids.to(device), attention_mask=mask.to(device),
                            position_ids=positions.to(device), past_key_values=cache,
                            use_cache=True).logits
        for row, x in enumerate(continuations):
            if len(x) > 1:
                picked = logits[row, :len(x) - 1].double().log_softmax(-1)
                target = torch.tensor(x[1:], device=picked.device)
                scores[row] += float(picked.gather(-1, target[:, None]).sum())
                greedy[row] = greedy[row] and bool((picked.argmax(-1) == target).all())
        return list(zip(scores, greedy))

    @torch.no_grad()
    def generate(self, prompts, *, max_new_tokens: int, stop=(), temperature: float = 0.0,
                 n: int = 1, seed: int = 0, desc: str = "generate") -> list[list[str]]:
        from transformers import StoppingCriteria, StoppingCriteriaList

        tok = self.tokenizer
        device = model_device(self.model)
        per_call = max(1, self.batch_size // n)
        results: list[list[str]] = []
        stop = tuple(stop)

        class StopStrings(StoppingCriteria):
            def __init__(self, start: int):
                self.start = start

            def __call__(self, input_ids, scores, **kwargs):
                done = []
                for row in input_ids:
                    tail = tok.decode(row[max(self.start, row.shape[0] - 16):])
                    done.append(any(s in tail for s in stop))
                return torch.tensor(done, device=input_ids.device)

        old_side = tok.padding_side
        tok.padding_side = "left"
        try:
            chunks = [prompts[i:i + per_call] for i in range(0, len(prompts), per_call)]
            for chunk in progress(chunks, desc=desc, unit="batch"):
                ids = [encode_text(tok, p, self.add_bos_token) for p in chunk]
                enc = tok.pad({"input_ids": ids}, padding=True, return_tensors="pt")
                enc = {k: v.to(device) for k, v in enc.items()}
                start = enc["input_ids"].shape[1]
                kwargs = dict(max_new_tokens=max_new_tokens, pad_token_id=tok.pad_token_id,
                              num_return_sequences=n)
                if temperature > 0:
                    kwargs.update(do_sample=True, temperature=temperature, top_p=1.0, top_k=0)
                else:
                    kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
                if stop:
                    kwargs["stopping_criteria"] = StoppingCriteriaList([StopStrings(start)])
                with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
                    torch.manual_seed(seed + len(results))
                    out = self.model.generate(**enc, **kwargs)
                texts = tok.batch_decode(out[:, start:], skip_special_tokens=True)
                for j in range(len(chunk)):
                    results.append([cut_at_stop(t, stop) for t in texts[j * n:(j + 1) * n]])
        finally:
            tok.padding_side = old_side
        return results


@contextlib.contextmanager
def eval_mode(model):
    """Put ``model`` in eval mode and restore its train/eval state afterwards."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


class VLLMBackend:
    """A vLLM engine (GPU, ``gpu`` extra) serving a base model and, optionally, one adapter.

    Create one engine per base model with ``enable_lora`` and switch adapters with
    ``with_adapter(path)``: each adapter is served through a ``LoRARequest``, so many trials'
    adapters are evaluated without reloading the base weights.
    """

    def __init__(self, model_path: str, *, max_lora_rank: int = 256, max_length: int = MAX_LENGTH,
                 gpu_memory_utilization: float = 0.8, engine=None, lora=None,
                 add_bos_token: bool | None = None):
        from transformers import AutoTokenizer

        if engine is None:
            from vllm import LLM

            engine = LLM(model=model_path, enable_lora=True, max_lora_rank=max_lora_rank,
                         max_model_len=max_length, gpu_memory_utilization=gpu_memory_utilization)
        self.engine = engine
        self.model_path = model_path
        self.max_length = max_length
        self.lora = lora
        self.add_bos_token = add_bos_token
        self.tokenizer = engine.get_tokenizer() if hasattr(engine, "get_tokenizer") else \
            AutoTokenizer.from_pretrained(model_path)
        self._adapters: dict[str, int] = {}

    def with_adapter(self, path: str | None) -> "VLLMBackend":
        """The same engine, scoring and generating through the LoRA adapter at ``path``."""
        from vllm.lora.request import LoRARequest

        if path is None:
            return VLLMBackend(self.model_path, engine=self.engine, max_length=self.max_length,
                               add_bos_token=self.add_bos_token)
        lora_id = self._adapters.setdefault(str(path), len(self._adapters) + 1)
        clone = VLLMBackend(self.model_path, engine=self.engine, max_length=self.max_length,
                            lora=LoRARequest(f"adapter-{lora_id}", lora_id, str(path)),
                            add_bos_token=self.add_bos_token)
        clone._adapters = self._adapters
        return clone

    def loglikelihood(self, requests, desc: str = "loglikelihood") -> list[float]:
        from vllm import SamplingParams

        prompts, n_conts = [], []
        for context, continuation in requests:
            ctx, cont = encode_pair(self.tokenizer, context, continuation, self.add_bos_token)
            seq = (ctx + cont)[-self.max_length:]
            prompts.append({"prompt_token_ids": seq})
            n_conts.append(min(len(cont), len(seq) - 1))
        params = SamplingParams(max_tokens=1, prompt_logprobs=0, temperature=0.0)
        outputs = self.engine.generate(prompts, params, lora_request=self.lora,
                                       use_tqdm=bool(desc) and progress_mode() == "bars")
        scores = []
        for out, prompt, n in zip(outputs, prompts, n_conts):
            ids = prompt["prompt_token_ids"]
            total = 0.0
            for pos in range(len(ids) - n, len(ids)):
                total += out.prompt_logprobs[pos][ids[pos]].logprob
            scores.append(total)
        return scores

    def generate(self, prompts, *, max_new_tokens: int, stop=(), temperature: float = 0.0,
                 n: int = 1, seed: int = 0, desc: str = "generate") -> list[list[str]]:
        from vllm import SamplingParams

        params = SamplingParams(n=n, temperature=temperature, top_p=1.0, max_tokens=max_new_tokens,
                                stop=list(stop) or None, seed=seed)
        outputs = self.engine.generate(list(prompts), params, lora_request=self.lora,
                                       use_tqdm=bool(desc) and progress_mode() == "bars")
        return [[cut_at_stop(c.text, stop) for c in out.outputs] for out in outputs]


def vllm_available() -> bool:
    """vLLM can serve here: CUDA is visible and the ``gpu`` extra is installed."""
    import importlib.util

    return torch.cuda.is_available() and importlib.util.find_spec("vllm") is not None
