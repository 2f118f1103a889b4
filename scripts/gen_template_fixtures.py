#!/usr/bin/env python3
"""Write the chat template fixtures under tests/fixtures/templates/.

The reference is Python Jinja2 configured exactly as transformers'
apply_chat_template configures it (ImmutableSandboxedEnvironment with
trim_blocks and lstrip_blocks, the loopcontrols extension, the
{% generation %} tag, transformers' tojson filter, raise_exception and
strftime_now). tests/unit/test_chat_template.c renders the same templates
with the same contexts and compares byte for byte.

  <name>.jinja     the templates: SmolLM2's from its GGUF, the others from
                   llama.cpp's models/templates (model repositories' own
                   templates, collected by llama.cpp)
  expected.json    {"now": seconds, "contexts": {name: context},
                    "renders": [{"template", "context", "output" | "error"}]}
  language.json    [{"template", "context", "output" | "error"}]: one case per
                   construct of the language (LANGUAGE_CASES below), the
                   newline handling of sources, and whitespace control

Run from the repository root:
    .venv/bin/python scripts/gen_template_fixtures.py \
        [--import-templates LLAMA_CPP_DIR/models/templates]
Without --import-templates the .jinja files already present are rendered.
"""

import argparse
import copy
import datetime
import json
import os
import shutil
import sys

import jinja2
from jinja2 import nodes
from jinja2.ext import Extension
from jinja2.sandbox import ImmutableSandboxedEnvironment

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT_DIR = os.path.join(ROOT, "tests", "fixtures", "templates")

# strftime_now() is pinned to this instant: 2024-07-26 08:00:00 UTC, the same
# calendar date in every time zone from UTC-8 to UTC+14.
NOW = 1721980800

GGUF_TEMPLATES = {"SmolLM2-135M-Instruct": "models/SmolLM2-135M-Instruct.Q4_1.gguf"}

LLAMA_CPP_TEMPLATES = [
    "Qwen-Qwen2.5-7B-Instruct",
    "Qwen-Qwen3-0.6B",
    "Qwen-QwQ-32B",
    "Qwen3-Coder",
    "meta-llama-Llama-3.1-8B-Instruct",
    "meta-llama-Llama-3.2-3B-Instruct",
    "mistralai-Mistral-Nemo-Instruct-2407",
    "Mistral-Small-3.2-24B-Instruct-2506",
    "microsoft-Phi-3.5-mini-instruct",
    "google-gemma-2-2b-it",
    "deepseek-ai-DeepSeek-R1-Distill-Qwen-32B",
    "deepseek-ai-DeepSeek-V3.1",
    "NousResearch-Hermes-3-Llama-3.1-8B-tool_use",
    "CohereForAI-c4ai-command-r-plus-tool_use",
    "CohereForAI-c4ai-command-r7b-12-2024-tool_use",
    "HuggingFaceTB-SmolLM3-3B",
    "ibm-granite-granite-3.3-2B-Instruct",
    "openai-gpt-oss-120b",
    "meetkai-functionary-medium-v3.2",
    "GLM-4.6",
    "NVIDIA-Nemotron-Nano-v2",
    "google-gemma-4-31B-it",
    "ibm-granite-granite-4.0",
    "MiniMax-M2",
    "Qwen3.5-4B",
    "Apertus-8B-Instruct",
    "moonshotai-Kimi-K2",
    "unsloth-mistral-Devstral-Small-2507",
]

SYSTEM = "You are a helpful assistant. Answer briefly."

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Get the current weather in a city",
            "parameters": {
                "type": "object",
                "properties": {
                    "city": {"type": "string", "description": "The city, e.g. Paris"},
                    "unit": {"type": "string", "enum": ["celsius", "fahrenheit"],
                             "description": "Temperature unit"},
                },
                "required": ["city"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "add",
            "description": "Add two numbers",
            "parameters": {
                "type": "object",
                "properties": {
                    "a": {"type": "number", "description": "First addend"},
                    "b": {"type": "number", "description": "Second addend"},
                },
                "required": ["a", "b"],
            },
        },
    },
]

TOOL_CALL_TURNS = [
    {"role": "system", "content": SYSTEM},
    {"role": "user", "content": "What's the weather in Paris?"},
    {
        "role": "assistant",
        "content": "",
        "tool_calls": [
            {
                "id": "call00001",
                "type": "function",
                "function": {"name": "get_weather", "arguments": {"city": "Paris", "unit": "celsius"}},
            }
        ],
    },
    {
        "role": "tool",
        "tool_call_id": "call00001",
        "name": "get_weather",
        "content": '{"temperature": 22.5, "condition": "sunny"}',
    },
]


def conversations():
    """name -> (messages, add_generation_prompt, extra template variables)"""
    user = {"role": "user", "content": "Hello! How are you?"}
    system = {"role": "system", "content": SYSTEM}
    multi = [
        system,
        {"role": "user", "content": "What is 2+2?"},
        {"role": "assistant", "content": "2+2 equals 4."},
        {"role": "user", "content": "And 3+3?"},
    ]
    return {
        "user": ([user], True, {}),
        "system_user": ([system, user], True, {}),
        "multi_turn": (multi, True, {}),
        "multi_turn_no_prompt": (multi, False, {}),
        "assistant_last": ([user, {"role": "assistant", "content": "I am fine, thanks."}], False, {}),
        "unicode": (
            [
                {
                    "role": "user",
                    "content": "Héllo wörld — 你好 😀 \"double\" 'single' back\\slash\n"
                    "  indented line\ttab <b>html</b> {{ not a tag }} {% neither %}\n",
                }
            ],
            True,
            {},
        ),
        "tools_offered": ([system, user], True, {"tools": TOOLS}),
        "tool_call": (TOOL_CALL_TURNS, True, {"tools": TOOLS}),
        "tool_call_answered": (
            TOOL_CALL_TURNS + [{"role": "assistant", "content": "It is 22.5 °C and sunny in Paris."}],
            False,
            {"tools": TOOLS},
        ),
        "thinking": (
            [
                {"role": "user", "content": "What is 2+2?"},
                {"role": "assistant", "content": "<think>\nSimple sum.\n</think>\n\n2+2 is 4."},
                {"role": "user", "content": "Thanks!"},
            ],
            True,
            {},
        ),
        "thinking_last": (
            [
                {"role": "user", "content": "What is 2+2?"},
                {"role": "assistant", "content": "<think>\nSimple sum.\n</think>\n\n2+2 is 4."},
            ],
            False,
            {},
        ),
        "no_thinking": ([user], True, {"enable_thinking": False}),
        "multimodal": (
            [
                {"role": "user", "content": [{"type": "text", "text": "What is in this picture?"},
                                             {"type": "image"}]},
                {"role": "assistant", "content": [{"type": "text", "text": "A cat."}]},
                {"role": "user", "content": [{"type": "text", "text": "And its color?"}]},
            ],
            True,
            {},
        ),
        "tool_call_json_arguments": (
            [dict(m) for m in TOOL_CALL_TURNS[:2]]
            + [{
                "role": "assistant",
                "content": None,
                "tool_calls": [{
                    "id": "call00002",
                    "type": "function",
                    "function": {"name": "add", "arguments": '{"a": 1.5, "b": 2}'},
                }],
            }, {"role": "tool", "tool_call_id": "call00002", "name": "add", "content": "3.5"}],
            True,
            {"tools": TOOLS},
        ),
        "parallel_tool_calls": (
            TOOL_CALL_TURNS[:2]
            + [{
                "role": "assistant",
                "content": "Let me check both.",
                "tool_calls": [
                    {"id": "call00003", "type": "function",
                     "function": {"name": "get_weather", "arguments": {"city": "Paris"}}},
                    {"id": "call00004", "type": "function",
                     "function": {"name": "get_weather", "arguments": {"city": "Lyon", "unit": "fahrenheit"}}},
                ],
            },
               {"role": "tool", "tool_call_id": "call00003", "name": "get_weather", "content": "sunny"},
               {"role": "tool", "tool_call_id": "call00004", "name": "get_weather", "content": "rainy"}],
            True,
            {"tools": TOOLS},
        ),
        "empty": ([], True, {}),
        "reasoning_content": (
            [
                {"role": "user", "content": "What is 2+2?"},
                {"role": "assistant", "content": "4", "reasoning_content": "Two plus two."},
                {"role": "user", "content": "And 5+5?"},
            ],
            True,
            {},
        ),
    }


def contexts():
    """The full template variables per conversation, as transformers passes
    them: messages, tools and documents (None when absent),
    add_generation_prompt, the special tokens, then the extra variables."""
    out = {}
    for name, (messages, add_gen, extra) in conversations().items():
        ctx = {
            "messages": messages,
            "tools": extra.get("tools"),
            "documents": None,
            "add_generation_prompt": add_gen,
            "bos_token": "<s>",
            "eos_token": "</s>",
        }
        ctx.update({k: v for k, v in extra.items() if k != "tools"})
        out[name] = ctx
    return out


# ---- the language, one construct at a time ----
#
# Each case is a template, optionally preceded by a line "#ctx {json}" with
# its variables; cases are separated by lines "----". Cases that fail in
# Jinja2 are kept: the C side must fail on them too.
LANGUAGE_CASES = r'''
{% for i in range(3) %}{% if i == 0 %}{% set x = 'a' %}{% endif %}[{{ x }}]{% endfor %}
----
{% set x = 1 %}{% for i in range(3) %}{% set x = x + 1 %}[{{ x }}]{% endfor %}{{ x }}
----
{% if true %}{% set x = 5 %}{% endif %}{{ x }}
----
{% macro m() %}{{ y }}{% endmacro %}{% set y = 3 %}{{ m() }}
----
{% set y = 2 %}{% macro m() %}{{ y }}{% endmacro %}{% set y = 3 %}{{ m() }}
----
{% macro m() %}{% set z = 1 %}{% endmacro %}{{ m() }}{{ z }}
----
{% for i in [1,2] %}{% for j in [3] %}{{ i }}{{ j }}{{ loop.index }}{% endfor %}{% endfor %}
----
{{ x.y }}
----
#ctx {"x": {}}
{{ x.y }}
----
#ctx {"x": {}}
{{ x.y.z }}
----
#ctx {"x": []}
{{ x[0] }}
----
{{ none.y }}
----
#ctx {"x": {"a": [1, 2.5, null, true, "it's", "q\"", 1e20, 1e-7]}}
{{ x }}
----
{{ (1,2) }}{{ (1,) }}
----
{{ 7 // -2 }} {{ -7 % 3 }} {{ 2 ** 3 ** 2 }} {{ 1 / 2 }} {{ 4 / 2 }} {{ 3 * 'ab' }} {{ 0.1 + 0.2 }}
----
{{ 1 == 1.0 }} {{ true == 1 }} {{ 'a' < 'b' }} {{ [1,2] == [1,2] }}
----
#ctx {"x": {"items": 3}}
{{ x['items'] }}
----
#ctx {"x": {"items": 3}}
{{ x.pop }}
----
#ctx {"x": []}
{{ x.append(1) }}
----
{{ 'abc'[5] }}|{{ 'abc'[-1] }}|{{ 'abcdef'[1:5:2] }}|{{ [1,2,3][::-1] }}
----
{{ u + 'x' }}
----
{{ u ~ 'x' }}{{ u|length }}{{ 'a' in u }}{{ u == none }}{{ not u }}
----
{{ u|tojson }}
----
#ctx {"x": {"a": "é\n\"<", "b": [1, 2.0, null], "c": {}}}
{{ x|tojson }}
----
  {% if true %}
  x
  {% endif %}
  y {% if true %}
 z{% endif %}  

----
{{ loop }}
----
#ctx {"x": {"p": 1, "q": 2}}
{% for a, b in x.items() %}{{a}}={{b}};{% endfor %}
----
#ctx {"x": {"p": 1, "q": 2}}
{% for a, b in x|items %}{{a}}={{b}};{% endfor %}
----
#ctx {"x": {"p": 1, "q": 2}}
{% for a in x %}{{a}};{% endfor %}
----
{{ 'a' 'b' }}
----
{{ 1 if false }}|
----
{{ [1,2]|map('string')|list }}{{ ['a','b']|map('upper')|join }}
----
#ctx {"x": [{"r": "u"}, {"r": "a"}]}
{{ x|selectattr('r','equalto','u')|list }}
----
{{ 3.0 }} {{ 1e100 }} {{ 1.5e-5 }} {{ 123456789012345678.0 }} {{ 1e16 }} {{ 1e15 }} {{ 0.0001 }} {{ 0.00001 }} {{ -0.0 }}
----
{{ 'x' * 0 }} {{ [1] * 2 }} {{ 'a' + 'b' }} {{ [1] + [2] }}
----
{{ 'Hello World'.split() }} {{ 'a,b,,c'.split(',') }} {{ ' x '.strip() }} {{ 'xxhixx'.strip('x') }}
----
{{ '{} and {}'.format(1, 'b') }}
----
#ctx {"x": {"a": 1}}
{{ x.get('a') }} {{ x.get('b', 2) }} {{ x.get('b') }}
----
{{ 5|string }}{{ 5.0|int }}{{ '12'|int }}{{ 'x'|int }}{{ '3.5'|float }}
----
{{ 'hello world'|title }} {{ 'hELLO'|capitalize }} {{ 'a b c'|wordcount }}
----
{% for x in [1,2,3,4] if x is even %}{{ loop.index }}/{{ loop.length }}/{{ loop.revindex }}/{{ loop.previtem }}/{{ loop.nextitem }}/{{ loop.first }}/{{ loop.last }}/{{ loop.cycle('a','b') }};{% endfor %}
----
{% for x in [] %}a{% else %}empty{% endfor %}
----
#ctx {"x": {"a": [1, {"b": null}], "c": [], "d": {}}}
{{ x|tojson(indent=2) }}
----
#ctx {"x": "é\u2028\u007f\u0001"}
{{ x|tojson }}
----
#ctx {"x": {"b": 1, "A": 2, "a": 3}}
{{ x|dictsort }}
----
{{ none|default('d') }} {{ u|default('d') }} {{ ''|default('d', true) }} {{ ''|d('x') }}
----
{{ [3,1,2]|sort }} {{ ['b','A','a']|sort }} {{ [1,2,1]|unique|list }} {{ [1,2]|reverse|list }} {{ 'abc'|reverse }}
----
#ctx {"x": [1, "a", null]}
{{ x|join(', ') }} {{ x|join }}
----
{{ 'a\nb\n\nc'|indent(2) }}|{{ 'a\nb'|indent(2, true) }}|{{ 'a\n\nb'|indent(2, blank=true) }}
----
{{ 2.5|round }} {{ 3.5|round }} {{ 2.675|round(2) }} {{ 7|round }} {{ 2.4|round(method='ceil') }}
----
#ctx {"x": "s"}
{{ x is iterable }} {{ x is sequence }} {{ x is string }} {{ x is mapping }}
----
{{ true is number }} {{ true is integer }} {{ 1.0 is float }} {{ none is none }} {{ u is undefined }} {{ 3 is odd }} {{ 4 is divisibleby 2 }} {{ 'a' is eq 'a' }}
----
{{ 1 < 2 < 3 }} {{ 1 < 3 < 2 }}
----
#ctx {"x": {"k": 1}}
{{ 'ab' in 'cabd' }} {{ 'k' in x }} {{ 1 not in [1] }}
----
{{ [1, 'a'] | map('tojson') | join(',') }}
----
#ctx {"x": [{"n": 1}, {"n": 2}]}
{{ x|map(attribute='n')|list }} {{ x|map(attribute='m', default='z')|list }}
----
#ctx {"x": [{"n": 1}, {"n": null}, {}]}
{{ x|selectattr('n')|list }} {{ x|rejectattr('n', 'none')|list }}
----
{% macro m(a, b=2) %}{{ a }}-{{ b }}-{{ varargs }}-{{ kwargs }}{% endmacro %}{{ m(1) }}|{{ m(1, 3) }}|{{ m(b=5, a=0) }}|{{ m() }}
----
{% macro m(a) %}<{{ caller(a) }}>{% endmacro %}{% call(x) m(5) %}in{{ x }}{% endcall %}
----
{% set x %}  block {{ 1 }}  {% endset %}[{{ x }}]
----
{% filter upper %}abc{{ 'd' }}{% endfilter %}
----
{% set a, b = [1, 2] %}{{ a }}{{ b }}
----
{% set ns = namespace(a=1) %}{% for i in range(3) %}{% set ns.a = ns.a + i %}{% endfor %}{{ ns.a }}
----
{{ raise_exception('boom') }}
----
{{ 'a' ~ 1 ~ none ~ true ~ 1.5 }}
----
{{ -2 ** 2 }} {{ (-2) ** 2 }} {{ 2 ** -1 }} {{ 10 % 3 }} {{ 10.5 % 3 }} {{ -7 // 2 }} {{ 7.0 // 2 }}
----
{{ not 1 == 2 }} {{ not 'a' in 'b' }}
----
{{ [1,2,3]|first }} {{ [1,2,3]|last }} {{ 'abc'|first }} {{ []|first }}|
----
{{ {'a': 1, 'b': 2}|items|list }} {{ {'a':1}.items()|list }}
----
#ctx {"x": {"a": 1, "b": 2}}
{{ x.keys()|list }} {{ x.values()|list }}
----
{{ 'x'|string|length }} {{ 'é'|length }} {{ 'héllo'[1:3] }}
----
{{ 'a-b c(d'|title }} {{ "they're bill's".title() }}
----
{{ 'A B'.lower() }} {{ '  a  b  '.split() }} {{ 'a b c'.split(' ', 1) }} {{ 'a b c'.rsplit(' ', 1) }}
----
{{ 'abc'.startswith(('x','a')) }} {{ 'abc'.endswith('bc') }} {{ 'abc'.find('c') }} {{ 'abcb'.count('b') }}
----
{{ [1,2,3][1:] }} {{ [1,2,3][:-1] }} {{ [1,2,3][-5:10] }} {{ 'abc'[::-1] }} {{ 'abcdef'[5:1:-2] }}
----
{% for k, v in {'a':1}.items() %}{{ k }}{{ v }}{% endfor %}
----
{% for i in range(5) %}{% if i == 3 %}{% break %}{% endif %}{% if i == 1 %}{% continue %}{% endif %}{{ i }}{% endfor %}
----
#ctx {"x": {"a": null}}
{{ x.a.b }}
----
{{ {'a': 1} }} {{ {'a': 1}['a'] }} {{ {1: 2, 'x': [true]} }}
----
{{ '\u00e9\x41\n\t\\ \d' }}
----
{{ u.x }}
----
{{ u['x'] }}
----
{{ 5 is sameas 5 }} {{ none is callable }}
----
{{ [1,2]|sum }} {{ [3,1]|min }} {{ [3,1]|max }} {{ 'abc'|list }}
----
{{ 1e3 }} {{ 1_000 }} {{ 0x10 }} {{ 1.5e3 }}
----
{%- if true -%}
   a   
{%- endif -%}
  b
----
{# comment #}
x {#- c -#}   y
{#+ c +#}
z
----
   {# comment #}
line
----
{% raw %}{{ not parsed }}{% endraw %}
----
a {%+ if true %}b{% endif %}
----
{{ "it's" }} {{ ['it\'s', "a\"b", 'x\ny', '\t\x00'] }}
----
{{ [none, true, false, 1.0, -1, [], {}, ()] }}
----
{% set d = {'a': {'b': [1, 2]}} %}{{ d|tojson(indent=4) }}{{ d|tojson(sort_keys=true) }}{{ {'z': 1, 'a': 2}|tojson(sort_keys=true) }}
----
{{ ['a','b']|tojson(separators=(',', ':')) }}{{ 'é😀'|tojson(ensure_ascii=true) }}
----
{{ strftime_now('%d %b %Y') }}

----
a
b

----
a\r\nb
----
{{ 'x' }}
----
{% macro outer(x) %}{% macro inner(y) %}[{{ x }}{{ y }}]{% endmacro %}{{ inner(x ~ '!') }}{% endmacro %}{{ outer('a') }}
----
{% macro rec(n) %}{% if n > 0 %}{{ n }}{{ rec(n - 1) }}{% endif %}{% endmacro %}{{ rec(5) }}
----
{% macro m(a, b) %}{{ a }}{{ b }}{% endmacro %}{{ m(1, 2, 3) }}
----
{% macro m(a) %}{{ a }}{% endmacro %}{{ m(a=1, z=2) }}
----
{% macro t(items) %}{% for i in items %}{{ caller(i) }}{% endfor %}{% endmacro %}{% call(v) t([1, 2]) %}<{{ v * 10 }}>{% endcall %}
----
{% set x = [1, 2, 3] %}{{ x|length }}{{ x|count }}{{ x|sum }}{{ x|max }}{{ x|min }}{{ x|first }}{{ x|last }}
----
{{ [[1,2],[3]]|map('length')|list }}{{ ['a','bb']|map('length')|sum }}
----
{{ range(10)|batch(3)|list }}{{ range(5)|batch(2, 'x')|list }}
----
{{ [1, none, 2]|select|list }}{{ [1, 2, 3, 4]|select('odd')|list }}{{ [1, 2, 3, 4]|reject('divisibleby', 2)|list }}
----
{{ ['a', 'b']|select('in', ['a'])|list }}{{ [1, 5, 10]|select('gt', 4)|list }}{{ [1, 5, 10]|select('>', 4)|list }}
----
#ctx {"m": [{"role": "user", "c": 1}, {"role": "tool"}, {"role": "user", "c": 2}]}
{{ m|selectattr('role', 'eq', 'user')|map(attribute='c')|join(',') }} {{ m|rejectattr('c')|list|length }} {{ m|selectattr('c', 'defined')|list|length }}
----
{{ {'b': 2, 'a': 1}|dictsort(reverse=true) }}{{ {'b': 2, 'a': 1}|dictsort(by='value') }}
----
#ctx {"u": [{"n": "b"}, {"n": "A"}, {"n": "a"}]}
{{ u|sort(attribute='n')|map(attribute='n')|join }} {{ u|sort(attribute='n', case_sensitive=true)|map(attribute='n')|join }} {{ u|sort(attribute='n', reverse=true)|map(attribute='n')|join }}
----
{{ ['a', 'A', 'b']|unique|list }} {{ ['a', 'A', 'b']|unique(case_sensitive=true)|list }}
----
{{ 'Hello'|replace('l', 'L') }} {{ 'Hello'|replace('l', 'L', 1) }} {{ 'abc'|replace('', '-') }} {{ 'abc'.replace('', '-', 2) }}
----
{{ '  x  '|trim }}|{{ 'xxaxx'|trim('x') }}|{{ none|trim }}|{{ 5|trim }}
----
{{ 'a<b>&"c\''|e }} {{ 'a<b>'|escape }} {{ '<'|safe }}
----
{{ 3.7|int }} {{ -3.7|int }} {{ '0x1A'|int(base=16) }} {{ '0x1A'|int(0, 0) }} {{ ' 42 '|int }} {{ '4_2'|int }} {{ '1e3'|int }} {{ none|int }} {{ 'z'|int(7) }}
----
{{ 'nan'|float }} {{ '-inf'|float }} {{ '1e3'|float }} {{ 'x'|float }} {{ true|float }} {{ '1_0.5'|float }}
----
{{ -5|abs }} {{ -2.5|abs }} {{ (1 - 3)|abs }}
----
{{ 1.25|round(1) }} {{ 1.35|round(1) }} {{ 1234.5|round(-2) }} {{ 2.5|round(0, 'floor') }} {{ -0.5|round }}
----
{{ 'one two  three'|wordcount }} {{ 'héllo wörld'|wordcount }} {{ 'hi'|center(6) }}|{{ 'hi'|center(7) }}|
----
{{ 'hello WORLD'|upper }} {{ 'Hello'|lower }} {{ 'hello world'|capitalize }}
----
{{ [1, 2]|join('-') }} {{ ['a', 'b']|join(attribute='x') }}
----
#ctx {"u": [{"x": "p"}, {"x": "q"}]}
{{ u|join(', ', attribute='x') }}
----
{{ 'a\nb'|indent }}|{{ 'a\nb'|indent('> ') }}|{{ ''|indent(2, true) }}|{{ 'a\n'|indent(2) }}
----
{{ {'a': [1, 'x', {'y': none}]}|tojson(indent='\t') }}|{{ [1]|tojson(indent=0) }}|{{ {'a': 1.0, 'b': 1e-7, 'c': 123456789.123}|tojson }}
----
{{ 'x'|tojson }} {{ 5|tojson }} {{ none|tojson }} {{ true|tojson }} {{ (1, 2)|tojson }} {{ '\\/\b\f'|tojson }}
----
{{ {1: 'a', true: 'b', none: 'c', 2.5: 'd'}|tojson }}
----
{{ '\u00e9'|tojson(ensure_ascii=true) }} {{ '\x7f'|tojson(ensure_ascii=true) }}
----
{{ 'x' is string }} {{ 1 is string }} {{ {} is mapping }} {{ [] is mapping }} {{ [] is sequence }} {{ 1 is sequence }} {{ 1 is iterable }} {{ {} is iterable }}
----
{{ 1 is number }} {{ 1.5 is number }} {{ 'x' is number }} {{ 1 is integer }} {{ 1.0 is integer }} {{ true is boolean }} {{ 1 is boolean }} {{ true is true }} {{ 1 is true }} {{ false is false }} {{ 0 is false }}
----
{{ none is none }} {{ u is none }} {{ u is defined }} {{ u is undefined }} {{ none is defined }}
----
{{ 5 is lt 6 }} {{ 5 is le 5 }} {{ 5 is gt 6 }} {{ 5 is ge 5 }} {{ 5 is ne 5 }} {{ 5 is equalto 5 }} {{ 5 is == 5 }}
----
{{ 'a' is in 'abc' }} {{ 2 is in [1, 2] }} {{ 'k' is in {'k': 1} }}
----
{{ 'abc' is lower }} {{ 'ABC' is upper }} {{ 'aBc' is lower }} {{ '123' is lower }}
----
{{ 'upper' is filter }} {{ 'nope' is filter }} {{ 'odd' is test }} {{ range is callable }} {{ 'x'.upper is callable }}
----
{{ 2.0 is even }} {{ 3 is odd }} {{ 0 is even }} {{ 9 is divisibleby 3 }} {{ 10 is divisibleby(3) }}
----
{{ 'a,b,c'.split(',', 1) }} {{ 'a b'.split(none) }} {{ '\ta\n b \x0b'.split() }} {{ ''.split() }} {{ ''.split(',') }}
----
{{ 'a  b  c  '.rsplit(none, 1) }} {{ '  a  b  c'.rsplit(None, 1) }} {{ 'a,b,c'.rsplit(',', 1) }} {{ 'abc'.rsplit('x', 1) }} {{ 'a,b'.rsplit(',') }}
----
{{ 'a\nb\r\nc\rd\x0be'.splitlines() }} {{ 'a\nb\n'.splitlines(true) }} {{ ''.splitlines() }}
----
{{ 'Hello'.lstrip('H') }} {{ '..x..'.rstrip('.') }} {{ '  x'.lstrip() }} {{ 'x  '.rstrip() }} {{ '\u3000x\u00a0'.strip() }}|
----
{{ 'hello world'.title() }} {{ "o'neil mc-donald 3rd"|title }} {{ "o'neil mc-donald 3rd".title() }} {{ 'HELLO'.capitalize() }}
----
{{ 'abcabc'.find('c') }} {{ 'abcabc'.rfind('c') }} {{ 'abc'.find('z') }} {{ 'héllo'.find('l') }} {{ 'aaa'.count('a') }} {{ 'aaa'.count('') }} {{ 'abc'.index('b') }}
----
{{ 'abc'.index('z') }}
----
{{ '-'.join(['a', 'b']) }} {{ ''.join('xyz') }}
----
{{ '-'.join([1, 2]) }}
----
{{ '{0}-{1}-{0}'.format('a', 'b') }} {{ '{name}!'.format(name='x') }} {{ '{{}}{}'.format(5) }} {{ '{!r}'.format('q') }}
----
{{ '123'.isdigit() }} {{ '12a'.isdigit() }} {{ ''.isdigit() }} {{ 'abc'.isalpha() }} {{ 'a1'.isalnum() }} {{ '  '.isspace() }} {{ 'AB'.isupper() }} {{ 'ab'.islower() }}
----
{{ 'prefix_x'.removeprefix('prefix_') }} {{ 'x.txt'.removesuffix('.txt') }} {{ 'a=b=c'.partition('=') }} {{ 'a=b=c'.rpartition('=') }} {{ 'abc'.partition('z') }}
----
{{ [1, 2, 1].count(1) }} {{ [1, 2].index(2) }} {{ {'a': 1}.get('a', 5) }}
----
{{ range(5) | list }} {{ range(2, 5)|list }} {{ range(5, 0, -2)|list }} {{ range(0)|list }}
----
{{ range(1000000)|length }}
----
{{ dict(a=1, b=2) }} {{ dict([('x', 1)]) }} {{ dict({'k': 'v'}, z=0) }}
----
{% set ns = namespace({'a': 1}, b=2) %}{{ ns.a }}{{ ns.b }}{{ ns.c }}{% set ns.c = 3 %}{{ ns.c }}
----
{% set d = {} %}{% set d.x = 1 %}
----
{% set ns = namespace(items=[]) %}{% for i in range(3) %}{% set ns.items = ns.items + [i] %}{% endfor %}{{ ns.items }}
----
{% for a, b in [(1, 2), (3, 4)] %}{{ a + b }}{% endfor %}{% for (a, b) in [[1, 2]] %}{{ a }}{% endfor %}
----
{% for a, b in [(1, 2, 3)] %}{{ a }}{% endfor %}
----
{% for x in 5 %}{{ x }}{% endfor %}
----
{% for x in none %}{{ x }}{% endfor %}
----
{% for x in u %}{{ x }}{% else %}none{% endfor %}
----
{% for c in 'héllo' %}{{ c }}|{% endfor %}
----
{% for i in range(3) %}{{ loop.index0 }}{{ loop.revindex0 }}{{ loop.depth }}{% if not loop.last %},{% endif %}{% endfor %}
----
{% for i in range(10) if i is odd %}{{ i }}{% if loop.last %}!{% endif %}{% endfor %}
----
{% for i in [1, 2, 3] %}{% for j in [4, 5] %}{% if j == 5 %}{% break %}{% endif %}{{ i }}{{ j }} {% endfor %}{% endfor %}
----
{% for m in [{'r': 'a'}, {'r': 'b'}] %}{% if loop.previtem is defined %}{{ loop.previtem.r }}>{% endif %}{{ m.r }}{% if loop.nextitem %}>{{ loop.nextitem.r }}{% endif %};{% endfor %}
----
{{ 'a' if 1 > 2 else 'b' if 2 > 1 else 'c' }} {{ 1 if none else 2 }} {{ (1 if true else 2) + 1 }}
----
{{ 1 and 2 }} {{ 0 and 2 }} {{ 0 or '' }} {{ none or 'x' }} {{ 'a' and 'b' or 'c' }} {{ not none }}
----
{{ [1, 2] + [3] }} {{ 'ab' * 2 }} {{ 2 * 'ab' }} {{ 10 / 4 }} {{ 10 // 4 }} {{ -10 // 4 }} {{ 10 % -3 }} {{ 2 ** 10 }} {{ 2 ** 0.5 }} {{ 1 + 1.5 }} {{ true + true }}
----
{{ 1 / 0 }}
----
{{ 1 // 0 }}
----
{{ 'a' + 1 }}
----
{{ 'a' - 'b' }}
----
{{ -'x' }}
----
{{ [1] < [1, 2] }} {{ 'b' > 'a' }} {{ (1, 2) < (1, 3) }} {{ 2 >= 2.0 }}
----
{{ 1 < 'a' }}
----
{{ none < 1 }}
----
{{ 1 in 'abc' }}
----
{{ 1 in 5 }}
----
{{ [1, 2, 3][5:] }} {{ [1, 2, 3][::2] }} {{ [1, 2, 3][-2:] }} {{ 'hello'[1:-1] }} {{ 'hello'[::-2] }} {{ 'héllo'[::2] }} {{ 'héllo'[-3:] }}
----
{{ [1, 2][::0] }}
----
{{ 'abc'['x'] }}|{{ 'abc'.x }}|{{ 5.x }}|{{ none[0] }}|{{ {'a': 1}.a }}
----
{{ [1, 2, 3].1 }} {{ {'a': [5]}.a.0 }}
----
{{ {'a': 1, 'a': 2} }} {{ {(1, 2): 'x'} }}
----
{{ {[1]: 2} }}
----
{{ u() }}
----
{{ 5() }}
----
{{ 'abc'|nonexistent }}
----
{% if x is nonexistent %}{% endif %}
----
{% if true %}unclosed
----
{% for %}{% endfor %}
----
{{ }}
----
{{ 1 + }}
----
{% endif %}
----
{% include 'x' %}
----
{{ (1, 2 }}
----
{{ 'unterminated }}
----
{# unterminated comment
----
x {{ 1 }} {% if %}
----
{{ 1 | }}
----
{% set %}
----
{% macro m(a=1, b) %}{% endmacro %}
----
{{ x is is y }}
----
{{ "a" "b" 'c' }} {{ 'é' ~ "\N" }}
----
{% generation %}gen {{ 1 }}{% endgeneration %}
----
{{ (1,)|length }} {{ ()|length }} {{ (1, 2)[1] }}
----
{{ 1_000_000 }} {{ 0b101 }} {{ 0o17 }} {{ 1.5_0 }} {{ .5 if false else 1 }}
----
{% set x = 1, 2 %}{{ x }}
----
{{ 1, 2 }}
----
{% if 1, 2 %}yes{% endif %}
----
{% set a = 'outer' %}{% for i in [1] %}{% set a = 'inner' %}{{ a }}{% endfor %}{{ a }}
----
{% set a = 'outer' %}{% macro m() %}{% set a = 'macro' %}{{ a }}{% endmacro %}{{ m() }}{{ a }}
----
{% macro m() %}{{ varargs }}{{ kwargs }}{% endmacro %}{{ m(1, 2, k=3) }}
----
{% set x = 'abc' %}{{ x[0] }}{{ x[-1] }}{{ x[10] }}|{{ x[1:] }}
----
{{ strftime_now('%Y-%m-%d') }} {{ strftime_now('%A %B') }}
----
{{ raise_exception() }}
----
{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}
----
{% if messages %}x{% endif %}{{ messages|length }}
----
{{ 1e400 }} {{ -1e400 }} {{ 1e400 - 1e400 }}
----
{{ [1e400, -1e400]|tojson }}
----
{{ 0.1 * 3 }} {{ 1/3 }} {{ 2/3 }} {{ 100.0 }} {{ 1e22 }} {{ 1.5e300 }} {{ 5e-324 }} {{ 123456789.0 }} {{ 0.000123 }}
----
{{ u|list }} {{ u|first }} {{ u|join }} {{ u|items|list }} {{ u|default(1) }} {{ u|string }}|{{ u|trim }}|{{ u|upper }}|
----
{{ u|sort }}
----
{{ u|int }} {{ u|float }} {{ u|length }}
----
{{ 'a' ~ u ~ 'b' }} {{ u is string }} {{ u is iterable }} {{ u is sequence }} {{ u is mapping }}
----
{{ u|dictsort }}
----
{{ none|length }}
----
{{ 5|list }}
----
{{ {'a': 1}|list }} {{ {'a': 1}|first }} {{ {'a': 1, 'b': 2}|last }} {{ {'a': 1, 'b': 2}|reverse|list }}
----
{{ [3, 1, 2]|sort(reverse=true) }} {{ [3, 'a']|sort }}

----
{% break %}
----
{% for i in [1] %}{% macro m() %}{% break %}{% endmacro %}{% endfor %}
----
{% for i in [1,2] %}{% for j in [] %}{% else %}{% break %}{% endfor %}{{ i }}{% endfor %}
----
{% for i in [1,2] %}{% if i == 1 %}{% continue %}{% endif %}{{ i }}{% endfor %}
----
{% for i in [1,2,3] %}{% macro m() %}{{ i }}{% endmacro %}{% set ns = namespace(f=m) %}{% endfor %}{{ ns }}
'''


def language_cases():
    cases = []
    for block in LANGUAGE_CASES.strip("\n").split("\n----\n"):
        ctx = {}
        if block.startswith("#ctx "):
            line, _, block = block.partition("\n")
            ctx = json.loads(line[len("#ctx "):])
        cases.append((block, ctx))
    # newline handling of the source itself
    for text in ["a\r\nb\r\n", "a\rb\r", "a\n\n", "a\r\n\r\n", "{% if true %}\r\nx\r\n{% endif %}\r\n",
                 "{{ 'q' }}\n", "\n"]:
        cases.append((text, {}))
    # whitespace control: every tag kind and marker between assorted text
    pre = ["", "  ", "\n  ", "x\n \t", "x "]
    post = ["", "\n", " \n", "\n\n  y", "y"]
    for a in pre:
        for b in post:
            for o in ["{%", "{%-", "{%+"]:
                for c in ["%}", "-%}", "+%}"]:
                    cases.append((f"A{a}{o} if true {c}{b}B{a}{o} endif {c}{b}C", {}))
            for o in ["{{", "{{-"]:
                for c in ["}}", "-}}"]:
                    cases.append((f"A{a}{o} 1 {c}{b}B", {}))
            for o in ["{#", "{#-", "{#+"]:
                for c in ["#}", "-#}", "+#}"]:
                    cases.append((f"A{a}{o} note {c}{b}B", {}))
            cases.append((f"A{a}{{% raw %}}{b}x{{{{ y }}}}{a}{{%- endraw %}}{b}B", {}))
            cases.append((f"A{a}{{%+ raw -%}}{b}x{a}{{% endraw -%}}{b}B", {}))
            cases.append((f"{a}{{% for i in range(2) %}}{b}{{{{ i }}}}{a}{{% endfor %}}{b}", {}))
            cases.append((f"{a}{{# c #}}{b}{{% if true %}}{a}{{% endif %}}{b}", {}))
    return cases


class GenerationTag(Extension):
    """transformers' AssistantTracker when not tracking: renders the body."""

    tags = {"generation"}

    def parse(self, parser):
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(["name:endgeneration"], drop_needle=True)
        return nodes.CallBlock(self.call_method("_render"), [], [], body).set_lineno(lineno)

    def _render(self, caller):
        return caller()


def make_env():
    """transformers.utils.chat_template_utils._compile_jinja_template"""

    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators,
                          sort_keys=sort_keys)

    def strftime_now(format):
        return datetime.datetime.fromtimestamp(NOW).strftime(format)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=[GenerationTag, jinja2.ext.loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    return env


def import_templates(src_dir):
    os.makedirs(OUT_DIR, exist_ok=True)
    for name in LLAMA_CPP_TEMPLATES:
        shutil.copyfile(os.path.join(src_dir, name + ".jinja"), os.path.join(OUT_DIR, name + ".jinja"))
    from gguf import GGUFReader

    for name, path in GGUF_TEMPLATES.items():
        field = GGUFReader(os.path.join(ROOT, path)).fields["tokenizer.chat_template"]
        text = bytes(field.parts[field.data[0]]).decode("utf-8")
        with open(os.path.join(OUT_DIR, name + ".jinja"), "w", encoding="utf-8", newline="") as f:
            f.write(text)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--import-templates", metavar="DIR",
                    help="copy the templates from llama.cpp's models/templates and the GGUFs first")
    args = ap.parse_args()
    if args.import_templates:
        import_templates(args.import_templates)

    env = make_env()
    ctxs = contexts()
    # the context as the C test will read it back from JSON
    ctxs = json.loads(json.dumps(ctxs, ensure_ascii=False))
    renders = []
    names = sorted(f[: -len(".jinja")] for f in os.listdir(OUT_DIR) if f.endswith(".jinja"))
    for name in names:
        with open(os.path.join(OUT_DIR, name + ".jinja"), encoding="utf-8", newline="") as f:
            template = env.from_string(f.read())
        n_ok = 0
        for cname, ctx in ctxs.items():
            entry = {"template": name, "context": cname}
            try:
                entry["output"] = template.render(**ctx)
                n_ok += 1
            except Exception as e:  # noqa: BLE001 - any failure is an expected error
                entry["error"] = f"{type(e).__name__}: {e}"
            renders.append(entry)
        print(f"{name}: {n_ok}/{len(ctxs)} contexts render", file=sys.stderr)

    with open(os.path.join(OUT_DIR, "expected.json"), "w", encoding="utf-8") as f:
        json.dump({"now": NOW, "contexts": ctxs, "renders": renders}, f, ensure_ascii=False, indent=1)
        f.write("\n")

    language = []
    for text, ctx in language_cases():
        entry = {"template": text, "context": ctx}
        try:
            entry["output"] = env.from_string(text).render(**copy.deepcopy(ctx))
        except Exception as e:  # noqa: BLE001 - any failure is an expected error
            entry["error"] = f"{type(e).__name__}: {e}"
        language.append(entry)
    print(f"language: {len(language)} cases, {sum('error' in c for c in language)} expected errors",
          file=sys.stderr)
    with open(os.path.join(OUT_DIR, "language.json"), "w", encoding="utf-8") as f:
        json.dump(language, f, ensure_ascii=False, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
