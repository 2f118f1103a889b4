"""`lamina chat` and `lamina generate --chat` on the default model: the
interactive loop over stdin, /reset, history, and greedy replies equal to a
one-shot `generate --chat` of the same question. Run from the repository
root; the binary is build/lamina (override with LAMINA_BIN)."""

import os
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
LAMINA = Path(os.environ.get("LAMINA_BIN", REPO / "build" / "lamina")).resolve()


def lamina(*args, stdin=None):
    assert LAMINA.exists(), f"{LAMINA} not built (scripts/setup builds it)"
    return subprocess.run([str(LAMINA), *args], cwd=REPO, input=stdin, capture_output=True,
                          text=True, timeout=300)


def test_chat_replies_equal_generate_and_reset_forgets():
    question = "What is 2+2?"
    one_shot = lamina("generate", "-p", question, "--chat", "--temp", "0", "-n", "24")
    assert one_shot.returncode == 0, one_shot.stderr
    expected = one_shot.stdout.rstrip("\n")
    assert expected.strip(), "the model said nothing"
    session = lamina("chat", "--temp", "0", "-n", "24",
                     stdin=f"{question}\nAnd what is 3+3?\n/reset\n{question}\n/exit\n")
    assert session.returncode == 0, session.stderr
    replies = session.stdout.split("\n")
    assert replies[0] == expected, "first reply differs from generate --chat"
    assert replies[1].strip(), "second turn got no reply"
    assert "(conversation cleared)" in session.stderr
    assert replies[2] == expected, "after /reset the same question must give the same reply"


def test_chat_ends_at_end_of_input():
    session = lamina("chat", "--temp", "0", "-n", "8", stdin="Hi\n")
    assert session.returncode == 0, session.stderr
    assert session.stdout.strip()


def test_chat_without_template_is_a_clear_error():
    r = lamina("chat", "models/gemma-3-270m-q4_k_m.gguf", stdin="/exit\n")
    assert r.returncode == 1
    assert "no chat template" in r.stderr and "--chat-template" in r.stderr


def test_chat_template_override(tmp_path):
    tpl = tmp_path / "plain.jinja"
    tpl.write_text("{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
                   "{% if add_generation_prompt %}assistant:{% endif %}")
    r = lamina("generate", "-p", "Say hello", "--chat-template", str(tpl), "--temp", "0", "-n", "4")
    assert r.returncode == 0, r.stderr
    bad = lamina("generate", "-p", "x", "--chat-template", str(tmp_path / "missing.jinja"), "-n", "1")
    assert bad.returncode == 1 and "missing.jinja" in bad.stderr
