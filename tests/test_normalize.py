from __future__ import annotations

from pipeline.text.normalize import Normalizer


def test_nfkc_html_lowercase_and_whitespace():
    norm = Normalizer(unicode="NFKC", lowercase=True, strip_html=True)
    assert norm("Ｇｒｅａｔ<br />film&amp;\tfun\n\n ") == ("great film& fun", False)


def test_nfc_composes_decomposed_hangul():
    decomposed = "\u1100\u1161\u11ab"       # 간 as three jamo
    assert Normalizer(unicode="NFC")(decomposed)[0] == "간"
    assert Normalizer(unicode="none")(decomposed)[0] == decomposed


def test_clean_pattern_keeps_only_hangul_like_the_tutorials():
    norm = Normalizer(clean_pattern="[^ㄱ-ㅎㅏ-ㅣ가-힣 ]")
    assert norm("[서울산업진흥원] 서울메이드란? 2022년!!")[0] == "서울산업진흥원 서울메이드란 년"


def test_max_chars_cuts_at_a_space_and_says_so():
    text = ("가나다 " * 30).strip()
    cut, truncated = Normalizer(max_chars=20)(text)
    assert truncated and len(cut) <= 20 and cut == "가나다 가나다 가나다 가나다 가나다"
    assert Normalizer(max_chars=len(text))(text) == (text, False)


def test_whitespace_only_becomes_empty():
    assert Normalizer()("  \t \u3000 ") == ("", False)
