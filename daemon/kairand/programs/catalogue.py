"""Ready-made program content: the 子ども安全情報 program (after seed 002, なら子どもサポート
ネット) and a fictional district list for the demo, training mode and benchmarks."""

from __future__ import annotations

from kairand.conversation.survey import Option, Question
from kairand.programs.model import ProgramDefinition
from kairand.retention.rules import Annual

CHILD_SAFETY_CODE = "kodomo"
DISTRICT_QUESTION = "kodomo_district"
RELATION_QUESTION = "kodomo_relation"


def child_safety() -> ProgramDefinition:
    return ProgramDefinition(
        name="子ども安全情報",
        description=(
            "市立のこども園・幼稚園・保育園・小中学校、教育委員会、関係機関から、不審者情報や"
            "安全対策情報など、子どもたちの安全に関する情報をお届けします。"
        ),
        purpose_notice=(
            "お預かりするのは、配信を希望される学校区だけです（お名前・住所などはお預かり"
            "しません）。子どもたちの安全確保のための情報配信にのみ使い、ほかの目的には"
            "使いません。登録は年度ごとで、毎年3月31日23時59分に自動的に削除されます。"
        ),
        completion="ご登録ありがとうございました。選んだ学校区の安全情報をお届けします。",
        district_question=DISTRICT_QUESTION,
        questions=(
            Question(
                code=RELATION_QUESTION,
                kind="choice",
                title="登録の区分",
                text="あてはまるものを選んでください。",
                purpose=(
                    "保護者の方・地域で見守りをされる方など、それぞれに合った情報をお届け"
                    "するために使います。"
                ),
                options=(
                    Option(code="guardian", label="保護者"),
                    Option(code="neighbour", label="地域の方"),
                    Option(code="staff", label="学校・園などの関係者"),
                ),
            ),
        ),
        annual=Annual(),
    )


# Fictional districts: 4 junior-high districts, 11 elementary districts.
DEMO_DISTRICTS_CSV = """code,name,kana,junior_high,junior_high_name
asahi,朝日小学校区,あさひ,higashi,東中学校区
hikari,光小学校区,ひかり,higashi,東中学校区
midori,緑が丘小学校区,みどりがおか,higashi,東中学校区
minato,港小学校区,みなと,nishi,西中学校区
sakura,桜小学校区,さくら,nishi,西中学校区
wakaba,若葉小学校区,わかば,nishi,西中学校区
kita,北小学校区,きた,kita_jh,北中学校区
yamate,山手小学校区,やまて,kita_jh,北中学校区
hinode,日の出小学校区,ひので,minami,南中学校区
kawabe,川辺小学校区,かわべ,minami,南中学校区
nishiki,錦小学校区,にしき,minami,南中学校区
"""
