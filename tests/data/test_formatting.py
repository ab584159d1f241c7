from collections import Counter

from lfl_ray.data.blocks import IGNORE_INDEX
from lfl_ray.data.formatting import (Packer, document_windows, pack_stream, to_blocks,
                                     tokenize_examples)
from lfl_ray.data.records import Document, Example

EX = Example("t/1", "test", "Add two numbers.", "def add(a, b):\n    return a + b")


def test_loss_only_on_response_and_closing_token(tokenizer):
    (row,) = tokenize_examples([EX], tokenizer, 256, Counter())
    loss_ids = [i for i, l in zip(row.ids, row.labels) if l != IGNORE_INDEX]
    prompt_ids = [i for i, l in zip(row.ids, row.labels) if l == IGNORE_INDEX]
    # every response token and <|im_end|> carry loss, nothing else does
    assert tokenizer.decode(loss_ids) == EX.response + "<|im_end|>"
    assert loss_ids[-1] == tokenizer.eos_token_id
    prompt_text = tokenizer.decode(prompt_ids)
    assert EX.instruction in prompt_text and prompt_text.rstrip().endswith("<|im_start|>assistant")
    assert "return a + b" not in prompt_text
    # labels equal inputs where loss is taken (the model shifts them itself)
    assert all(l == i for i, l in zip(row.ids, row.labels) if l != IGNORE_INDEX)
    # the whole row is exactly the chat template's rendering
    full = tokenizer.apply_chat_template(
        [{"role": "user", "content": EX.instruction}, {"role": "assistant", "content": EX.response}],
        tokenize=False)
    assert tokenizer.decode(row.ids) == full


def test_length_rule_drops_long_prompts_and_truncates_long_responses(tokenizer):
    long_prompt = Example("t/2", "test", "word " * 200, "ok")
    long_response = Example("t/3", "test", "Say a lot.", "word " * 400)
    counts = Counter()
    dropped, truncated = tokenize_examples([long_prompt, long_response], tokenizer, 128, counts)
    assert dropped is None and counts["dropped_long_prompt/test"] == 1
    assert len(truncated.ids) == 128 and counts["truncated/test"] == 1
    assert truncated.labels[-1] != IGNORE_INDEX  # response tokens up to the cut keep their loss


def test_padding_carries_no_loss_and_no_attention(tokenizer):
    rows = tokenize_examples([EX], tokenizer, 256, Counter())
    blocks = to_blocks(rows, 256, tokenizer.pad_token_id)
    n = len(rows[0].ids)
    assert blocks.attention_mask[0, :n].all() and not blocks.attention_mask[0, n:].any()
    assert (blocks.labels[0, n:] == IGNORE_INDEX).all()
    # pad == eos for SmolLM2: the closing <|im_end|> still carries loss, padding does not
    assert tokenizer.pad_token_id == tokenizer.eos_token_id
    assert blocks.labels[0, n - 2] == tokenizer.eos_token_id  # then the template's "\n" (no loss)


def test_packing_never_splits_an_example(tokenizer):
    examples = [Example(f"t/{i}", "test", f"Question {i}?", "Answer. " * (i % 7 + 1)) for i in range(30)]
    rows = [r for r in tokenize_examples(examples, tokenizer, 96, Counter()) if r]
    packer = Packer(96)
    for r in rows:
        packer.add(r)
    packer.flush()
    packed = packer.rows
    assert len(packed) < len(rows)
    assert all(len(p.ids) <= 96 for p in packed)
    assert sum(len(p.members) for p in packed) == len(rows)
    assert [i for p in packed for i in p.ids] == [i for r in rows for i in r.ids]
    assert [p.doc_id for p in packed] == [p.members[0][0] for p in packed]


def test_cpt_blocks_are_full_and_named_by_first_token():
    docs = [Document(f"d/{i}", "test", "") for i in range(3)]
    token_lists = [[1] * 10 + [0], [2] * 5 + [0], [3] * 20 + [0]]  # ids already end with EOS (0)
    rows = pack_stream(token_lists, docs, 8)
    assert len(rows) == (11 + 6 + 21) // 8
    assert all(len(r.ids) == 8 for r in rows)
    # offsets: d/0 0-10, d/1 11-16, d/2 17-37; blocks start at 0, 8, 16, 24
    assert [r.doc_id for r in rows] == ["d/0", "d/0", "d/1", "d/2"]
    assert rows[1].members == [("d/0", "test"), ("d/1", "test")]
    assert rows[2].members == [("d/1", "test"), ("d/2", "test")]
    assert [i for r in rows for i in r.ids] == [i for t in token_lists for i in t][:32]


def test_document_windows_respect_the_cap_and_spread_out():
    doc = Document("d", "test", "")
    rows = document_windows(list(range(100)), doc, 10, 3)
    assert [r.ids[0] for r in rows] == [0, 30, 60]
    assert len(document_windows(list(range(25)), doc, 10, 3)) == 2
    assert len(document_windows(list(range(5)), doc, 10, 3)) == 0  # too short to score
    assert len(document_windows(list(range(40)), doc, 64, 3)[0].ids) == 40  # one short row
