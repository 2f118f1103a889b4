"""The soak test's fixed pool of deterministic requests and their references.

Every entry is a request whose output is fully determined by its body:
greedy (temperature 0), or sampled with a fixed seed. Its reference is what
the server answers to it alone, one request at a time, before the load
starts; under load every completed request of the pool must give exactly
that text, finish reason and token counts (the engine is batch-invariant).

Some entries share long common prefixes (a system prompt or document of
370-480 tokens), so that under load the prefix cache is hit and, with a small K/V
pool, its blocks are evicted and recomputed."""

from dataclasses import dataclass, field

import openai

SHORT_QUESTIONS = [
    "What is the capital of France?", "Write a haiku about the moon.", "Name three fruits.",
    "Say hello in French.", "What is 2 + 2?", "Give me a synonym for happy.", "Why is the sky blue?",
    "List the days of the week.", "What do bees make?", "Translate 'thank you' into Spanish.",
    "Describe a cat in one sentence.", "What is the boiling point of water?",
]

COMPLETION_PROMPTS = ["Once upon a time", "The sky is", "def fibonacci(n):", "The three primary colors are",
                      "In 1969, the first humans", "My favourite recipe for soup"]

PREFIX_QUESTIONS = ["Can I return a book after 30 days?", "When is the library open on Sundays?",
                    "How many books can I borrow at once?", "Is food allowed in the reading room?"]


def handbook(name, n_rules):
    """A long, deterministic system prompt (about 28 tokens a rule)."""
    topics = ["loans", "returns", "fines", "opening hours", "quiet zones", "printing", "study rooms",
              "lost cards", "children's corner", "donations", "rare books", "computers", "food", "events"]
    rules = [f"{i + 1}. About {topics[i % len(topics)]}: members of the {name} follow rule {i + 1} "
             f"and ask the desk when in doubt." for i in range(n_rules)]
    return f"You are the assistant of the {name}. Answer briefly. The rules:\n" + "\n".join(rules)


@dataclass
class Entry:
    id: str
    api: str                     # "chat" (chat completions and Anthropic messages) or "completion"
    max_tokens: int
    system: str | None = None
    turns: list = field(default_factory=list)  # chat: user/assistant messages
    prompt: str = ""             # completion
    ignore_eos: bool = False     # an OpenAI extension: only sent to the OpenAI endpoints
    seed: int | None = None      # sampled with this seed (temperature 0.8) instead of greedy
    prefix: bool = False         # shares a long prefix with other entries

    def openai_messages(self):
        return ([{"role": "system", "content": self.system}] if self.system else []) + self.turns

    def anthropic_ok(self):
        return self.api == "chat" and not self.ignore_eos

    def sampling(self):
        """OpenAI fields for the sampling of this entry."""
        if self.seed is None:
            return {"temperature": 0}
        return {"temperature": 0.8, "top_p": 0.95, "seed": self.seed}

    def extra_body(self):
        return {"ignore_eos": True} if self.ignore_eos else None


@dataclass
class Ref:
    text: str
    finish: str                  # OpenAI's finish reason: "stop" or "length"
    prompt_tokens: int
    completion_tokens: int


def build_pool(size="full"):
    """The entries; "small" is a subset (for the short soak in the default suite)."""
    small = size == "small"
    lengths = [8, 16, 12, 16] if small else [12, 24, 16, 32]
    pool = []
    questions = SHORT_QUESTIONS[:6] if small else SHORT_QUESTIONS
    for i, q in enumerate(questions):
        pool.append(Entry(f"chat{i}", "chat", lengths[i % 4], turns=[{"role": "user", "content": q}]))
    pool.append(Entry("chat-multiturn", "chat", 16, system="You are terse.",
                      turns=[{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"},
                             {"role": "user", "content": "Name a colour."}]))
    for i, p in enumerate(COMPLETION_PROMPTS[:3] if small else COMPLETION_PROMPTS):
        pool.append(Entry(f"cmpl{i}", "completion", lengths[(i + 1) % 4], prompt=p))
    pool.append(Entry("chat-long", "chat", 32 if small else 96, ignore_eos=True,
                      turns=[{"role": "user", "content": "Tell me a long story about a dragon."}]))
    pool.append(Entry("cmpl-long", "completion", 32 if small else 96, ignore_eos=True, prompt="Once upon a time"))
    seeds = [(11, 0), (12, 1)] if small else [(11, 0), (12, 1), (13, 2), (14, 6)]
    for seed, q in seeds:
        pool.append(Entry(f"sampled{seed}", "chat", 16, seed=seed,
                          turns=[{"role": "user", "content": SHORT_QUESTIONS[q]}]))
    books = [handbook("Lamina City Library", 16), handbook("Old Town Reading Room", 13)]
    for b, text in enumerate(books[:1] if small else books):
        for i, q in enumerate(PREFIX_QUESTIONS[:3] if small else PREFIX_QUESTIONS):
            pool.append(Entry(f"prefix{b}.{i}", "chat", 16, system=text, prefix=True,
                              turns=[{"role": "user", "content": q}]))
    doc = handbook("Riverside Archive", 15)
    for i, q in enumerate(PREFIX_QUESTIONS[:2] if small else PREFIX_QUESTIONS):
        pool.append(Entry(f"prefix-cmpl{i}", "completion", 16, prefix=True,
                          prompt=f"{doc}\n\nQuestion: {q}\nAnswer:"))
    return pool


class ReferenceMismatch(Exception):
    pass


def reference_of(client, e, timeout):
    """E's answer alone (non-streaming, with logprobs so that the token count
    can be checked against the tokens listed)."""
    if e.api == "chat":
        r = client.chat.completions.create(model="soak", messages=e.openai_messages(), max_tokens=e.max_tokens,
                                           logprobs=True, extra_body=e.extra_body(), timeout=timeout,
                                           **e.sampling())
        c = r.choices[0]
        text, listed = c.message.content, len(c.logprobs.content) if c.logprobs else 0
    else:
        r = client.completions.create(model="soak", prompt=e.prompt, max_tokens=e.max_tokens, logprobs=0,
                                      extra_body=e.extra_body(), timeout=timeout, **e.sampling())
        c = r.choices[0]
        text, listed = c.text, len(c.logprobs.tokens) if c.logprobs else 0
    u = r.usage
    problems = []
    if c.finish_reason not in ("stop", "length"):
        problems.append(f"finish_reason {c.finish_reason!r}")
    # the end-of-generation token that stops a sequence is counted but not listed
    want_listed = u.completion_tokens - (c.finish_reason == "stop")
    if u.prompt_tokens <= 0 or listed != want_listed or u.total_tokens != u.prompt_tokens + u.completion_tokens:
        problems.append(f"usage {u} with {listed} tokens listed in logprobs (finish {c.finish_reason!r})")
    if u.completion_tokens > e.max_tokens or (c.finish_reason == "length") > (u.completion_tokens == e.max_tokens):
        problems.append(f"finish {c.finish_reason!r} after {u.completion_tokens} of max_tokens {e.max_tokens}")
    if problems:
        raise ReferenceMismatch(f"{e.id}: the reference request itself is inconsistent: {'; '.join(problems)}")
    return Ref(text, c.finish_reason, u.prompt_tokens, u.completion_tokens)


def compute_references(base_url, api_key, pool, timeout, repeat=True):
    """{entry id: Ref}, one request at a time; with REPEAT, those with a long
    prefix or a seed twice (the answer must repeat)."""
    client = openai.OpenAI(base_url=base_url + "/v1", api_key=api_key, max_retries=0, timeout=timeout)
    refs = {}
    try:
        for e in pool:
            first = reference_of(client, e, timeout)
            if repeat and (e.prefix or e.seed is not None):
                again = reference_of(client, e, timeout)  # the second one reads its prefix from the cache
                if again != first:
                    raise ReferenceMismatch(f"{e.id}: two requests alone differ: {first} then {again}")
            refs[e.id] = first
    finally:
        client.close()
    return refs
