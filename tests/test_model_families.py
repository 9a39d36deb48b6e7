"""Other model families than SmolLM2: a tokenizer without a chat template, and a Gemma-style template that refuses a system role.

Both tokenizers are trained here with `tokenizers` (no download) and saved beside a tiny random Llama config, so
`load_tokenizer` / `load_causal_lm` load them like any local model folder. Checked: the template fix, SFT masking
(loss on the answer and its end-of-turn token only), the evaluator's prompt being exactly the SFT record's prompt,
label scoring, and short LoRA SFT and DPO runs. The formatting tests (nbs/14_formatting: SFT records in every format,
multi-turn conversations, DPO pairs, the label list in the prompt) run for both families: loss falls on the answer only.
"""
import math
import pytest
from fastcore.test import test_eq as _eq
from cogniverse_ft.models import load_tokenizer, load_causal_lm, ensure_chat_template
from cogniverse_ft.extract import InstructionExample
from cogniverse_ft.extract import PreferencePair
from cogniverse_ft.formatting import (InstructionFormatter, label_instruction, with_label_list, validate_sft_dataset,
                                      validate_dpo_dataset, sft_format_of)
from cogniverse_ft.sft import tokenize_sft, SFTFinetuner
from cogniverse_ft.dpo import DPOFinetuner
from cogniverse_ft.evaluate import prompt_ids, label_ids, end_of_turn, score_labels

GEMMA_TEMPLATE = (  # Gemma's own template (it raises on a system message)
    "{{ bos_token }}{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}"
    "{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
    "{% if (message['role'] == 'assistant') %}{% set role = 'model' %}{% else %}{% set role = message['role'] %}{% endif %}"
    "{{ '<start_of_turn>' + role + '\n' + message['content'] | trim + '<end_of_turn>\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{'<start_of_turn>model\n'}}{% endif %}")
LABELS = ["video_search_agent", "text_search_agent", "summarizer_agent"]
CORPUS = ["show me videos of cats", "find articles about the moon", "summarize the news on jazz",
          "Route the following query to the appropriate agent", "Answer with exactly one of:", "and the ones about dogs?",
          f"Answer with exactly one of: {', '.join(LABELS)}."] + LABELS


def _build(folder, family):
    "Train a small tokenizer of `family`, save it with a tiny random Llama model into `folder`."
    import torch
    from tokenizers import Tokenizer, models, trainers, pre_tokenizers, decoders
    from transformers import PreTrainedTokenizerFast, LlamaConfig, LlamaForCausalLM
    if family == "gpt2_bpe":  # byte-level BPE, no chat template (a base model's tokenizer)
        t = Tokenizer(models.BPE())
        t.pre_tokenizer, t.decoder = pre_tokenizers.ByteLevel(add_prefix_space=False), decoders.ByteLevel()
        t.train_from_iterator(CORPUS * 20, trainers.BpeTrainer(vocab_size=400, special_tokens=["<|endoftext|>"],
                                                               initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
        tok = PreTrainedTokenizerFast(tokenizer_object=t, eos_token="<|endoftext|>", bos_token="<|endoftext|>")
    else:  # SentencePiece-style unigram with Gemma's turn tokens and template
        t = Tokenizer(models.Unigram())
        # like Gemma's: no dummy prefix (no "▁" after a turn token), the line break a piece of its own (never <unk>)
        t.pre_tokenizer, t.decoder = pre_tokenizers.Metaspace(prepend_scheme="never"), decoders.Metaspace(prepend_scheme="never")
        sp = ["<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "<end_of_turn>"]
        t.train_from_iterator(CORPUS * 20, trainers.UnigramTrainer(vocab_size=300, special_tokens=sp, unk_token="<unk>",
                                                                   initial_alphabet=list("\n.,:;?!'\"-_0123456789")))
        tok = PreTrainedTokenizerFast(tokenizer_object=t, eos_token="<eos>", bos_token="<bos>", pad_token="<pad>", unk_token="<unk>",
                                      additional_special_tokens=["<start_of_turn>", "<end_of_turn>"])
        tok.chat_template = GEMMA_TEMPLATE
    tok.save_pretrained(folder)
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                      num_key_value_heads=2, max_position_embeddings=256, eos_token_id=tok.eos_token_id, bos_token_id=tok.bos_token_id)
    LlamaForCausalLM(cfg).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module", params=["gpt2_bpe", "gemma_unigram"])
def family(request, tmp_path_factory):
    return request.param, str(_build(tmp_path_factory.mktemp(request.param), request.param))


def _examples():
    inst = label_instruction("Route the following query to the appropriate agent", LABELS)
    return [InstructionExample(inst, q, l) for q, l in [("show me videos of cats", LABELS[0]), ("find articles about the moon", LABELS[1]),
                                                        ("summarize the news on jazz", LABELS[2])] * 4]


def _conversation_example():
    "A second-turn example: the chat so far, then the new question (the evaluator's and the trainer's conversation)."
    conv = [{"role": "user", "content": "show me videos of cats"}, {"role": "assistant", "content": LABELS[0]},
            {"role": "user", "content": "and the ones about dogs?"}]
    return InstructionExample(_examples()[0].instruction, conv[-1]["content"], LABELS[0], conversation=conv)


def _labelled(tok, ids, labels):
    "The decoded runs of label tokens (not -100), in order."
    runs, cur = [], []
    for i, l in zip(ids, labels):
        if l != -100: _eq(l, i); cur.append(i)  # a label is the token at its place
        elif cur: runs.append(tok.decode(cur)); cur = []
    if cur: runs.append(tok.decode(cur))
    return runs


def test_the_template_is_fixed_at_load(family):
    name, folder = family
    tok = load_tokenizer(folder)
    _eq(ensure_chat_template(tok), "kept")  # already fixed by load_tokenizer
    text = tok.apply_chat_template([{"role": "system", "content": "S"}, {"role": "user", "content": "U"}], tokenize=False,
                                   add_generation_prompt=True)
    _eq(text, "S\n\nUser: U\nAssistant:\n" if name == "gpt2_bpe" else "<bos><start_of_turn>user\nS\n\nU<end_of_turn>\n<start_of_turn>model\n")
    _eq(end_of_turn(tok), "<|endoftext|>" if name == "gpt2_bpe" else "<end_of_turn>")


def test_sft_masks_the_answer_and_the_evaluator_prompts_alike(family):
    name, folder = family
    tok, ex = load_tokenizer(folder), _examples()
    recs = InstructionFormatter.format_prompt_completion(ex)
    data = tokenize_sft(tok, recs, "prompt_completion", max_length=256)
    for e, ids, labels in zip(ex, data["input_ids"], data["labels"]):
        n = labels.count(-100)
        _eq(labels[:n], [-100] * n)
        _eq(ids[:n], prompt_ids(tok, e.instruction, e.input))  # training prompt == evaluation prompt, token for token
        ans = tok.decode(labels[n:])
        _eq(ans, e.output + end_of_turn(tok))  # the label and the end-of-turn token, nothing else
        assert "Answer with exactly one of" in tok.decode(ids[:n])  # the instruction survived (merged for Gemma)


def test_every_sft_format_trains_on_the_answers_only(family):
    name, folder = family
    tok, ex = load_tokenizer(folder), _examples()[:3] + [_conversation_example()]
    eot = end_of_turn(tok)
    for style in ("prompt_completion", "messages", "alpaca"):
        recs = InstructionFormatter.format_sft(ex, style)
        validate_sft_dataset(recs); _eq({sft_format_of(r) for r in recs}, {style})
        data = tokenize_sft(tok, recs, style, max_length=256)
        _eq(len(data["input_ids"]), len(ex))
        for e, ids, labels in zip(ex, data["input_ids"], data["labels"]):
            runs = _labelled(tok, ids, labels)
            if style == "alpaca": _eq(runs, [e.output + tok.eos_token])  # plain text: the answer and EOS
            elif style == "messages" and e.conversation:  # every assistant turn of the chat is learned, the users' never
                _eq(runs, [m["content"] + eot for m in e.conversation if m["role"] == "assistant"] + [e.output + eot])
            else: _eq(runs, [e.output + eot])
            if style != "alpaca":  # the prompt before the last answer is exactly what the evaluator scores from
                n = max(k for k, l in enumerate(labels) if l == -100) + 1
                _eq(ids[:n], prompt_ids(tok, e.instruction, e.input, e.conversation))


def test_dpo_pairs_split_prompt_and_answers_like_trl(family):
    name, folder = family
    tok = load_tokenizer(folder)
    inst = label_instruction("Route the following query to the appropriate agent", LABELS)
    pairs = [PreferencePair("show me videos of cats", LABELS[0], LABELS[1], instruction=inst),
             PreferencePair("and the ones about dogs?", LABELS[0], LABELS[2], instruction=inst,
                            conversation=_conversation_example().conversation)]
    recs = InstructionFormatter.format_dpo(pairs)
    validate_dpo_dataset(recs)
    eot = end_of_turn(tok)
    for p, r in zip(pairs, recs):  # what TRL's DPOTrainer does: render prompt (+ generation prompt) and prompt + answer
        ids = lambda msgs, **kw: tok.apply_chat_template(msgs, tokenize=True, return_dict=True, **kw)["input_ids"]
        prompt, chosen, rejected = ids(r["prompt"], add_generation_prompt=True), ids(r["prompt"] + r["chosen"]), ids(r["prompt"] + r["rejected"])
        _eq(chosen[:len(prompt)], prompt); _eq(rejected[:len(prompt)], prompt)  # the prompt is a token prefix of both
        _eq(prompt, prompt_ids(tok, p.instruction, p.prompt, p.conversation))  # and the evaluator's prompt
        for ans, full in ((p.chosen, chosen), (p.rejected, rejected)):
            assert tok.decode(full[len(prompt):]).startswith(ans + eot), tok.decode(full[len(prompt):])


def test_label_scoring_prompts(family):
    name, folder = family
    tok = load_tokenizer(folder)
    [e] = with_label_list([InstructionExample("Route the following query to the appropriate agent", "show me videos of cats", LABELS[0])], LABELS)
    text = tok.decode(prompt_ids(tok, e.instruction, e.input))
    assert "Answer with exactly one of: " + ", ".join(LABELS) in text and text.endswith(
        "Assistant:\n" if name == "gpt2_bpe" else "<start_of_turn>model\n"), text
    eot = end_of_turn(tok)
    _eq([tok.decode(i) for i in label_ids(tok, LABELS)], [l + eot for l in LABELS])  # each label scored up to its end of turn


def test_label_scoring_and_a_short_lora_run(family, tmp_path):
    import torch
    name, folder = family
    model, tok = load_causal_lm(folder, device="cpu")
    e = _examples()[0]
    sc = score_labels(model, prompt_ids(tok, e.instruction, e.input), label_ids(tok, LABELS), tok.pad_token_id)
    _eq(tuple(sc.shape), (3,)); assert torch.isfinite(sc).all(), sc
    res = SFTFinetuner(base_model=folder, output_dir=str(tmp_path), agent_type="routing", max_steps=3, verbose=False,
                       max_length=512).train(InstructionFormatter.format_prompt_completion(_examples()))
    assert math.isfinite(res.metrics["train_loss"]), res.metrics
    from transformers import AutoTokenizer
    saved = AutoTokenizer.from_pretrained(res.adapter_path)  # the adapter's tokenizer carries the fixed template
    _eq(saved.chat_template, tok.chat_template)
    inst = label_instruction("Route the following query to the appropriate agent", LABELS)
    pairs = [PreferencePair(q, LABELS[i % 3], LABELS[(i + 1) % 3], instruction=inst)
             for i, q in enumerate(["show me videos of cats", "find articles about the moon", "summarize the news on jazz"] * 2)]
    res = DPOFinetuner(base_model=folder, output_dir=str(tmp_path/"dpo"), agent_type="routing", max_steps=2, verbose=False,
                       max_length=256).train(InstructionFormatter.format_dpo(pairs))
    assert math.isfinite(res.metrics["train_loss"]), res.metrics
