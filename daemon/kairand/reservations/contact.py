"""The booker's kana name and phone number (W8): normalised and validated, nothing else kept.

Kana: NFKC first (half-width katakana → full-width, full-width spaces and letters folded), then
hiragana → katakana with `jaconv`; the result must be full-width katakana (with the long-vowel
mark, the middle dot and spaces between family and given names). Phone: a Japanese number that
`phonenumbers` (Google's libphonenumber metadata) accepts as valid for JP, stored in national
format with hyphens (090-1234-5678), which is how staff dial it and how W7 masks it.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

import jaconv
import phonenumbers

KANA_MAX = 30
_KATAKANA = re.compile(r"^[\u30a1-\u30fa\u30fc\u30fb]+( [\u30a1-\u30fa\u30fc\u30fb]+)*$")
_PHONE_CHARS = re.compile(r"^[0-9+\-() ]+$")


@dataclass(frozen=True)
class Invalid:
    message: str
    """What to tell the resident (Japanese)."""


def normalise_kana(text: str) -> str | Invalid:
    """TEXT as full-width katakana, or why it is not a kana name."""
    folded = unicodedata.normalize("NFKC", text).strip()
    folded = re.sub(r"\s+", " ", folded)
    katakana = jaconv.hira2kata(folded)
    if not katakana:
        return Invalid("お名前（カナ）を入力してください。")
    if len(katakana) > KANA_MAX:
        return Invalid(f"お名前（カナ）は{KANA_MAX}文字以内で入力してください。")
    if not _KATAKANA.match(katakana):
        return Invalid(
            "お名前はカタカナ（またはひらがな）で入力してください。"
            "漢字・英字・記号は使えません。（例：スイタ ハナコ）"
        )
    return katakana


def normalise_phone(text: str) -> str | Invalid:
    """TEXT as a Japanese phone number in national format (090-1234-5678), or why not."""
    folded = unicodedata.normalize("NFKC", text).strip().replace("ー", "-").replace("−", "-")
    if not folded or not _PHONE_CHARS.match(folded):
        return Invalid("電話番号は数字で入力してください。（例：090-1234-5678）")
    try:
        number = phonenumbers.parse(folded, "JP")
    except phonenumbers.NumberParseException:
        return Invalid("電話番号を確認してください。（例：090-1234-5678）")
    if number.country_code != 81 or not phonenumbers.is_valid_number(number):
        return Invalid("日本国内の電話番号を市外局番から入力してください。（例：06-6384-1231）")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.NATIONAL)


def is_masked(value: str) -> bool:
    """A kept contact that W7 masking already overwrote (it cannot be used to call anyone)."""
    return "＊" in value or "*" in value
