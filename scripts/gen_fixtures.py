#!/usr/bin/env python3
"""Write the llama.cpp reference fixtures under tests/fixtures/.

Everything here comes from llama.cpp through llama-cpp-python; the test suite
compares lamina with these files and never runs llama.cpp itself.

  tokenizer/<name>.json       token ids for >= 200 strings per real model
  logits/<name>.json          per-position logits (argmax, top-2 margin, the
                              top 16 plus 16 fixed ids) for 32-token prompts,
                              for the real models and every tiny test model
  logits/greedy_<name>.json   64-token greedy continuations (argmax of the
                              logits, no sampler) for the real models

Run from anywhere after scripts/make_test_models.py:
    .venv/bin/python scripts/gen_fixtures.py [--only tokenizer|logits|greedy]
"""

import argparse
import ctypes
import json
import os
import sys

import numpy as np
import llama_cpp
from llama_cpp import Llama

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(ROOT, "tests", "fixtures")

REAL_MODELS = {
    "smollm2": "models/SmolLM2-135M-Instruct.Q4_1.gguf",
    "gemma3": "models/gemma-3-270m-q4_k_m.gguf",
}
TINY_ARCHS = ["qwen2", "qwen3", "llama3"]
TINY_QUANTS = ["f16", "q8_0", "q4_0", "q4_k_m"]

N_THREADS = 2
PROMPT_LEN = 32  # tokens per logits prompt
N_TOP = 16  # probes taken from the top of the logits
N_FIXED = 16  # probes at fixed pseudo-random ids
N_PREDICT = 64  # greedy continuation length


# ---------------------------------------------------------------- strings


def tokenizer_strings():
    """The tokenizer test strings: every kind of text a tokenizer trips on."""
    s = [""]
    # English prose and simple words
    s += [
        "a", "I", "Hello", "hello", "HELLO", " Hello", "Hello ", "Hello world",
        "hello world", "Hello, world!", "HELLO WORLD", "The quick brown fox jumps over the lazy dog.",
        "THE QUICK BROWN FOX", "tHe QuIcK bRoWn FoX",
        "It was the best of times, it was the worst of times, it was the age of wisdom, "
        "it was the age of foolishness, it was the epoch of belief, it was the epoch of "
        "incredulity, it was the season of Light, it was the season of Darkness.",
        "In 1492, Columbus sailed the ocean blue. He had three ships: the Niña, the Pinta "
        "and the Santa María.",
        "Dr. Smith (the surgeon) said: \"Don't worry -- it's routine.\" Then he left...",
        "antidisestablishmentarianism", "Supercalifragilisticexpialidocious",
        "pneumonoultramicroscopicsilicovolcanoconiosis",
        "e.g. i.e. etc. vs. Mr. Mrs. Ms.", "U.S.A.", "state-of-the-art", "well_known_name",
        "CamelCaseIdentifier", "snake_case_identifier", "SCREAMING_SNAKE_CASE",
        "Question? Answer! Exclamation!!! Interrobang?!",
        "semi;colon:colon,comma.period", "(parentheses) [brackets] {braces} <angles>",
        "\"double\" 'single' `backtick`", "“curly quotes” and ‘single curly’",
        "em—dash en–dash hyphen-minus", "…ellipsis…", "#hashtag @mention $dollar %percent ^caret &amp *star",
    ]
    # contractions, lower and upper case, straight and curly apostrophes
    s += [
        "it's", "don't", "they're", "we've", "I'm", "you'll", "he'd",
        "IT'S", "DON'T", "THEY'RE", "WE'VE", "I'M", "YOU'LL", "HE'D",
        "It'S", "Don'T", "can't won't shouldn't", "don’t it’s",
        "I'll've", "'s 't 're 've 'm 'll 'd", "'S 'T 'RE 'VE 'M 'LL 'D",
        "rock 'n' roll", "'quoted'", "O'Neill's",
    ]
    # whitespace
    s += [" " * n for n in range(1, 9)]
    s += ["a" + " " * n + "b" for n in range(1, 9)]
    s += [
        "\t", "\t\t", "a\tb", "\ta", "a\t", "\n", "\n\n", "\n\n\n", "\r\n", "\r\n\r\n",
        "a\nb", "a\r\nb", "a\n\n\nb", " \n", "\n ", " \n \n ", "\t\n \r\n",
        "  leading", "trailing  ", "  both  ", "   x   y   ", "line1\nline2\n",
        "\u00a0nbsp\u00a0", "zero\u200bwidth", "\ufeffbom", "soft\u00adhyphen",
        "ideographic\u3000space", "\x0bvt\x0cff", "a \t \n b",
    ]
    # code
    s += [
        "def fibonacci(n):\n    if n < 2:\n        return n\n    return fibonacci(n - 1) + fibonacci(n - 2)\n",
        "import numpy as np\nx = np.zeros((3, 4), dtype=np.float32)\nprint(x.shape)",
        "class Foo(Bar):\n\tdef __init__(self, *args, **kwargs):\n\t\tsuper().__init__(*args, **kwargs)",
        "for (int i = 0; i < n; ++i) {\n    sum += a[i] * b[i];\n}",
        "#include <stdio.h>\n\nint main(void) {\n    printf(\"Hello, %s!\\n\", \"world\");\n    return 0;\n}\n",
        "static inline uint32_t rotl(uint32_t x, int k) { return (x << k) | (x >> (32 - k)); }",
        "typedef struct { ggml_half d; uint8_t qs[QK4_0 / 2]; } block_q4_0;",
        "{\"name\": \"lamina\", \"version\": 1, \"tags\": [\"llm\", \"c\"], \"ok\": true, \"x\": null}",
        "{\n  \"model\": \"smollm2\",\n  \"messages\": [{\"role\": \"user\", \"content\": \"hi\"}]\n}",
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head><title>Test</title></head>\n<body><p class=\"x\">Hi &amp; bye</p></body>\n</html>",
        "<div id=\"main\" style=\"color: red;\">&lt;tag&gt; &#x27; &nbsp;</div>",
        "SELECT id, name FROM users WHERE age >= 18 ORDER BY name DESC LIMIT 10;",
        "fn main() -> Result<(), Box<dyn Error>> { let v: Vec<u8> = vec![1, 2, 3]; Ok(()) }",
        "const f = async (x) => { await fetch(`/api/${x}`); };",
        "#!/bin/sh\nset -eu\nfor f in *.gguf; do echo \"$f\"; done",
        "| a | b |\n|---|---|\n| 1 | 2 |", "$$\\int_0^\\infty e^{-x^2} dx = \\frac{\\sqrt{\\pi}}{2}$$",
        "^(?:[a-z0-9!#$%&'*+/=?^_`{|}~-]+)@\\w+\\.com$", "x+=1;y-=2;z*=3;w/=4;a%=5;b<<=1;c>>=2;d&&e||f",
        "    four spaces indent\n        eight spaces indent", "if x == 0:\n\tpass\nelif x != 1:\n\traise ValueError('bad')",
        "0x1F 0b1010 0o777 1e-9 3.0f 42ULL", "// comment\n/* block */\n# hash comment\n-- sql comment",
    ]
    # CJK, Japanese, Korean and other scripts
    s += [
        "你好，世界！", "我爱自然语言处理。今天天气很好，我们去公园散步吧。", "中华人民共和国",
        "こんにちは世界", "私は日本語を勉強しています。東京は大きな都市です。", "カタカナ ひらがな 漢字",
        "ｶﾀｶﾅ半角", "안녕하세요 세계", "한국어를 공부하고 있습니다. 서울은 아름다운 도시입니다.",
        "مرحبا بالعالم", "اللغة العربية جميلة جدا.", "שלום עולם", "בְּרֵאשִׁית בָּרָא אֱלֹהִים",
        "नमस्ते दुनिया", "हिन्दी भाषा भारत में बोली जाती है।", "สวัสดีชาวโลก", "ภาษาไทยไม่มีการเว้นวรรคระหว่างคำ",
        "Привет, мир!", "Москва — столица России. ПРИВЕТ МИР", "Γειά σου κόσμε", "Ελληνικά αλφάβητο αβγδε",
        "გამარჯობა", "Բարեւ աշխարհ", "হ্যালো বিশ্ব", "வணக்கம் உலகம்", "Xin chào thế giới. Tiếng Việt",
        "Türkçe öğreniyorum, çok güzel!", "Zürich Straße Äpfel Öl Übermut ß", "Ærø Øresund Åland",
        "Łódź Kraków Gdańsk", "español: ¿Qué tal? ¡Muy bien! año niño", "français: où est l'hôtel ? Ça va.",
        "English 中文 日本語 한국어 mixed", "ascii then Ünïcödé then 漢字 then 🎉",
    ]
    # emoji: simple, skin tones, ZWJ sequences, flags, keycaps, variation selectors
    s += [
        "😀", "😀😃😄", "👍", "👍🏽", "👋🏿 wave", "👨‍👩‍👧‍👦", "🧑🏿‍💻", "👩‍❤️‍💋‍👨", "🏳️‍🌈", "🏴‍☠️",
        "🇺🇸", "🇺🇸🇯🇵🇫🇷", "🇩🇪 Germany", "1️⃣ 2️⃣ #️⃣", "❤️ ❤ ♥", "I ❤️ NY", "🙂🙃 text 🙂",
        "🤷‍♀️🤷🏻‍♂️", "🐱‍👤", "emoji at end 🚀", "🔥🔥🔥🔥🔥",
    ]
    # combining marks and normalization forms
    s += [
        "e\u0301", "\u00e9", "n\u0303", "\u00f1", "a\u0308o\u0308u\u0308", "Z\u0324\u0354\u0367\u0311\u0313a\u0316\u032d\u0308l\u036e\u0312g\u0317\u035ao\u0319\u0314",
        "\u1ea1\u0300", "A\u030a vs \u00c5 vs \u212b", "\ufb01 ligature \ufb02", "ＡＢＣ１２３ full width",
        "ⅷ Ⅻ ½ ¼ ² ³", "∑∫√∞≠≤≥±×÷", "€£¥₹₽¢", "┌─┐│└─┘", "⠓⠑⠇⠇⠕", "𝕳𝖊𝖑𝖑𝖔 𝓦𝓸𝓻𝓵𝓭", "𐍈 gothic", "\U0001F600\U0001F601",
    ]
    # numbers
    s += ["123456789012"[:n] for n in range(1, 13)]
    s += [
        "0", "00", "007", "3.14159", "0.5", "-42", "+7", "1,000,000", "1.000.000,50", "1e10", "6.022e23",
        "2024-01-15", "12:34:56", "$19.99", "100%", "1/2", "3x4", "v1.2.3", "+1 (555) 123-4567",
        "The year 2025 had 365 days and 8760 hours.", "٠١٢٣٤٥٦٧٨٩", "१२३", "一二三 123", "1st 2nd 3rd 4th",
        "1234567890123456789012345678901234567890",
    ]
    # URLs, paths, addresses
    s += [
        "https://example.com", "https://example.com/path/to/page?query=1&x=y#frag",
        "http://localhost:8000/v1/chat/completions", "user@example.com", "ftp://ftp.example.org/pub/file.tar.gz",
        "/usr/local/lib/libfoo.so.1", "C:\\Users\\Admin\\Documents\\file.txt", "www.github.com/ggml-org/llama.cpp",
        "192.168.0.1:8080", "[2001:db8::1]:443",
    ]
    # special tokens in text, and near misses
    s += [
        "<|im_start|>", "<|im_end|>", "<|endoftext|>", "<|im_start|>user\nHello!<|im_end|>\n",
        "<|im_start|>system\nYou are helpful.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n",
        "<start_of_turn>", "<end_of_turn>", "<start_of_turn>user\nHello!<end_of_turn>\n<start_of_turn>model\n",
        "<bos>", "<eos>", "<pad>", "<unk>", "<bos>Hello", "Hello<eos>", "<bos><bos>",
        "<|im_start", "|im_start|>", "<|im_start |>", "< |im_start|>", "<|IM_START|>", "<|im_end|", "<|im_start|><|im_end|>",
        "text<|im_end|>text", " <|im_start|> ", "<<|im_start|>>", "<start_of_turn", "start_of_turn>", "<START_OF_TURN>",
        "<bos", "bos>", "<<bos>>", "< bos>", "<eos >", "<start_of_image>", "<unused0>", "<mask>", "[multimodal]",
        "<repo_name>lamina<file_sep>main.c", "</s>", "<s>", "<|endoftext|><|endoftext|>", "<|fim_prefix|>",
    ]
    # repetition and punctuation runs
    s += [
        "a" * 64, "ab" * 32, " a" * 16, "!" * 10, "?!" * 5, "-" * 20, "=" * 12, "." * 7, "_" * 9, "#" * 6, "*" * 8,
        "ha" * 10 + "!", "\n" * 8, "\t" * 5, " \t" * 4, "0" * 20, "9" * 15, "🙂" * 6, "中" * 10,
    ]
    # odd bytes and control characters (no NUL: JSON readers in C often reject it)
    s += ["\x01\x02\x03", "\x1b[31mred\x1b[0m", "bell\x07", "\x7f", "a\rb", "\r"]
    # mixed
    s += [
        "User: What's 2+2?\nAssistant: 2+2 = 4.",
        "Q: Translate 'cat' to French.\nA: « chat »",
        "The price is €1,299.99 (incl. 20% VAT) — see https://shop.example/item?id=42 🛒",
        "Error: file 'model.gguf' not found at line 42, column 7.",
        "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt ut labore.",
        "print('你好')  # greet in Chinese 🇨🇳", "日本語とEnglishと한국어と123と😀",
        "   \n\tdef f(x):\n\t\treturn x**2  \n\n", "MiXeD CaSe 123 abc ÀÉÎÕÜ",
        "A" + " " * 3 + "\n" + " " * 3 + "B", "tab\tseparated\tvalues\n1\t2\t3",
    ]
    return s


def tokenizer_variants(strings):
    """(text, add_bos, special) triples: every string with both flags on, and a
    subset with add_bos off and a subset with special off."""
    cases = [(text, True, True) for text in strings]
    subset = strings[::6]
    subset += [t for t in strings if "<" in t and t not in subset]
    for text in subset:
        cases.append((text, False, True))
        cases.append((text, True, False))
    for text in subset[::4]:
        cases.append((text, False, False))
    return cases


# ---------------------------------------------------------------- prompts

PROSE = ("The history of the printing press begins in the fifteenth century, when Johannes "
         "Gutenberg combined movable metal type, oil-based ink and a wooden press adapted "
         "from those used to make wine. Within fifty years, presses had spread to more than "
         "two hundred cities across Europe.")
CODE = ("def fibonacci(n: int) -> int:\n    \"\"\"Return the n-th Fibonacci number.\"\"\"\n"
        "    a, b = 0, 1\n    for _ in range(n):\n        a, b = b, a + b\n    return a\n\n\n"
        "if __name__ == \"__main__\":\n    print([fibonacci(i) for i in range(10)])\n")
MIXED = ("Q: A train leaves at 09:15 and arrives at 13:40. How long is the journey?\n"
         "A: 4 hours and 25 minutes.\nQ: What is 12 * 7 + 3?\nA: 87.\nQ: Name three primes.\nA:")
FRENCH = ("Bonjour ! Je m'appelle Marie et j'habite à Paris depuis 2015. Le week-end, "
          "j'aime me promener le long de la Seine et visiter les musées du quartier.")

CHAT = {
    "smollm2": ("<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by "
                "Hugging Face<|im_end|>\n<|im_start|>user\nWhat are three good reasons to learn "
                "the C programming language today? Please answer with a short numbered list."
                "<|im_end|>\n<|im_start|>assistant\n"),
    "gemma3": ("<start_of_turn>user\nWhat are three good reasons to learn the C programming "
               "language today? Please answer with a short numbered list and keep each item "
               "to one sentence.<end_of_turn>\n<start_of_turn>model\n"),
}
CHAT_SHORT = {
    "smollm2": ("<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by "
                "Hugging Face<|im_end|>\n<|im_start|>user\nWhat is 2+2?"
                "<|im_end|>\n<|im_start|>assistant\n"),
    "gemma3": ("<start_of_turn>user\nWhat is 2+2?<end_of_turn>\n"
               "<start_of_turn>model\n"),
}


def text_prompts(name):
    return [PROSE, CODE, CHAT[name], MIXED, FRENCH]


def greedy_prompts(name):
    return [
        "Once upon a time",
        CHAT_SHORT[name],
        "def is_prime(n):\n    \"\"\"Return True if n is a prime number.\"\"\"\n",
        "The three primary colors are",
    ]


# ---------------------------------------------------------------- helpers


def f32(x):
    """A float32 as the shortest decimal that reads back to the same float32."""
    return float(str(np.float32(x)))


def write_json(path, obj):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, ensure_ascii=False, indent=1)
        f.write("\n")
    print(f"wrote {os.path.relpath(path, ROOT)} ({os.path.getsize(path)} bytes)")


def ggml_commit():
    """The llama.cpp commit llama-cpp-python was built from, as ggml reports it."""
    lib = ctypes.CDLL(os.path.join(os.path.dirname(llama_cpp.__file__), "lib",
                                   "libggml-base.so"))
    lib.ggml_commit.restype = ctypes.c_char_p
    return lib.ggml_commit().decode()


def reference_info():
    return {
        "llama_cpp_python": llama_cpp.__version__,
        "ggml_commit": ggml_commit(),
        "n_threads": N_THREADS,
    }


def load(rel_path, **kwargs):
    return Llama(model_path=os.path.join(ROOT, rel_path), n_threads=N_THREADS,
                 verbose=False, **kwargs)


def is_eog(llm, token):
    vocab = llama_cpp.llama_model_get_vocab(llm.model)
    return bool(llama_cpp.llama_vocab_is_eog(vocab, token))


def vocab_info(llm):
    """The special ids as llama.cpp resolves them, including its EOG set (which
    holds more than the GGUF's eos_token_id: llama.cpp adds tokens it
    recognises by text)."""
    vocab = llama_cpp.llama_model_get_vocab(llm.model)
    return {
        "n_vocab": llm.n_vocab(),
        "bos": llama_cpp.llama_vocab_bos(vocab),
        "eos": llama_cpp.llama_vocab_eos(vocab),
        "eot": llama_cpp.llama_vocab_eot(vocab),
        "add_bos": bool(llama_cpp.llama_vocab_get_add_bos(vocab)),
        "add_eos": bool(llama_cpp.llama_vocab_get_add_eos(vocab)),
        "eog_ids": [t for t in range(llm.n_vocab()) if llama_cpp.llama_vocab_is_eog(vocab, t)],
    }


# ---------------------------------------------------------------- fixtures


def gen_tokenizer(name, rel_path):
    llm = load(rel_path, vocab_only=True)
    cases = []
    for text, add_bos, special in tokenizer_variants(tokenizer_strings()):
        ids = llm.tokenize(text.encode("utf-8"), add_bos=add_bos, special=special)
        cases.append({"text": text, "add_bos": add_bos, "special": special, "ids": ids})
    vocab = vocab_info(llm)
    llm.close()
    write_json(os.path.join(FIXTURES, "tokenizer", f"{name}.json"),
               {"model": rel_path, "reference": reference_info(), "vocab": vocab,
                "cases": cases})


def position_record(logits, fixed_ids):
    """argmax, top-2 margin and probes for one position's logits (n_vocab,) f32."""
    order = np.argsort(-logits, kind="stable")
    top = [int(i) for i in order[:N_TOP]]
    probes = top + fixed_ids
    return (top[0], f32(logits[order[0]] - logits[order[1]]), probes,
            [f32(logits[i]) for i in probes])


def gen_logits(name, rel_path, prompts_tokens):
    llm = load(rel_path, n_ctx=512, n_batch=512, logits_all=True)
    n_vocab = llm.n_vocab()
    rng = np.random.default_rng(12345)
    fixed_ids = [int(i) for i in rng.choice(n_vocab, size=N_FIXED, replace=False)]
    prompts = []
    for tokens in prompts_tokens:
        llm.reset()
        llm.eval(tokens)
        scores = np.asarray(llm.scores[: len(tokens)], dtype=np.float32)
        if not np.all(np.isfinite(scores)):
            sys.exit(f"{rel_path}: non-finite logits")
        rec = {"tokens": tokens, "argmax": [], "top2_margin": [], "probe_ids": [],
               "probe_logits": []}
        for row in scores:
            best, margin, probes, values = position_record(row, fixed_ids)
            rec["argmax"].append(best)
            rec["top2_margin"].append(margin)
            rec["probe_ids"].append(probes)
            rec["probe_logits"].append(values)
        prompts.append(rec)
    llm.close()
    write_json(os.path.join(FIXTURES, "logits", f"{name}.json"),
               {"model": rel_path, "n_vocab": n_vocab, "reference": reference_info(),
                "self_divergence": self_divergence(rel_path, prompts),
                "prompts": prompts})


def self_divergence(rel_path, prompts):
    """How far llama.cpp is from itself: the same prompts fed one token per
    batch (other kernels: gemv instead of gemm, other summation orders) vs the
    recorded batched run. Real quantized models amplify such float-order
    differences through int8 activation rounding; the fidelity test allows
    lamina a difference on the order of this one."""
    llm = load(rel_path, n_ctx=512, n_batch=1, n_ubatch=1, logits_all=True)
    worst, mismatches, positions = 0.0, 0, 0
    for rec in prompts:
        llm.reset()
        llm.eval(rec["tokens"])
        scores = np.asarray(llm.scores[: len(rec["tokens"])], dtype=np.float32)
        for t, row in enumerate(scores):
            positions += 1
            mismatches += int(np.argmax(row)) != rec["argmax"][t]
            ref = np.asarray(rec["probe_logits"][t], dtype=np.float32)
            worst = max(worst, float(np.abs(row[rec["probe_ids"][t]] - ref).max()))
    llm.close()
    return {"max_abs_diff": f32(worst), "argmax_mismatches": mismatches, "positions": positions}


def prompt_tokens(llm, text):
    """The first PROMPT_LEN tokens of text (BOS included where the model adds it)."""
    ids = llm.tokenize(text.encode("utf-8"), add_bos=True, special=True)
    if len(ids) < PROMPT_LEN:
        sys.exit(f"prompt too short ({len(ids)} tokens): {text[:40]!r}")
    return ids[:PROMPT_LEN]


def real_prompt_tokens(name, rel_path):
    llm = load(rel_path, vocab_only=True)
    out = [prompt_tokens(llm, text) for text in text_prompts(name)]
    llm.close()
    return out


def tiny_prompt_tokens(rel_path, seed):
    """Two text prompts in the tiny model's own (truncated) vocab, then random ids."""
    llm = load(rel_path, vocab_only=True)
    n_vocab = llm.n_vocab()
    out = [prompt_tokens(llm, text) for text in (PROSE, CODE)]
    llm.close()
    rng = np.random.default_rng(seed)
    for _ in range(3):
        out.append([int(i) for i in rng.integers(0, n_vocab, size=PROMPT_LEN)])
    return out


def gen_greedy(name, rel_path):
    llm = load(rel_path, n_ctx=512, n_batch=512, logits_all=True)
    cases = []
    for text in greedy_prompts(name):
        prompt = llm.tokenize(text.encode("utf-8"), add_bos=True, special=True)
        llm.reset()
        llm.eval(prompt)
        generated = []
        stopped = False
        margins = []
        while len(generated) < N_PREDICT:
            row = np.asarray(llm.scores[llm.n_tokens - 1], dtype=np.float32)
            token = int(np.argmax(row))
            generated.append(token)
            margins.append(f32(row[token] - np.partition(row, -2)[-2]))
            if is_eog(llm, token):
                stopped = True
                break
            llm.eval([token])
        cases.append({"prompt_tokens": prompt, "n_predict": N_PREDICT, "tokens": generated,
                      "top2_margin": margins,
                      "stopped_eog": stopped,
                      "text": llm.detokenize(generated).decode("utf-8", errors="replace")})
    eog_ids = vocab_info(llm)["eog_ids"]
    llm.close()
    write_json(os.path.join(FIXTURES, "logits", f"greedy_{name}.json"),
               {"model": rel_path, "reference": reference_info(), "eog_ids": eog_ids,
                "cases": cases})


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", choices=["tokenizer", "logits", "greedy"])
    args = parser.parse_args()

    for name, rel_path in REAL_MODELS.items():
        if not os.path.exists(os.path.join(ROOT, rel_path)):
            sys.exit(f"missing {rel_path}: run scripts/setup first")
        if args.only in (None, "tokenizer"):
            gen_tokenizer(name, rel_path)
        if args.only in (None, "logits"):
            gen_logits(name, rel_path, real_prompt_tokens(name, rel_path))
        if args.only in (None, "greedy"):
            gen_greedy(name, rel_path)
    if args.only in (None, "logits"):
        for seed, arch in enumerate(TINY_ARCHS):
            for quant in TINY_QUANTS:
                rel_path = f"tests/fixtures/models/{arch}-{quant}.gguf"
                gen_logits(f"{arch}-{quant}", rel_path,
                           tiny_prompt_tokens(rel_path, 777 + seed))


if __name__ == "__main__":
    main()
