"""The context assembly: memory, lore and author's note around the story window, exactly as read."""

import pytest

from ai_writer.backends.writing.context import (
    AssembledContext,
    ContextPart,
    KeyHit,
    assemble,
    compile_key,
    note_position,
    story_window,
)
from ai_writer.backends.writing.story import AuthorsNote, ContextBudgets, LoreEntry, Story
from ai_writer.models.textprep import TextPrep

PARAGRAPHS = [
    "张三推开门，屋里一片漆黑。",
    "他摸到桌边，点亮了油灯。灯光摇晃，照出墙上的一幅旧画。",
    "“谁在那里？”李四的声音从里屋传来。",
    "张三没有回答，只是把手按在剑柄上。",
    "窗外的雨越下越大，打在瓦上噼啪作响。",
]


def manuscript(n_paragraphs: int, indent: str = "　　", blank: bool = True) -> str:
    """A raw manuscript as the editor holds it: indented paragraphs, empty lines between."""
    lines = [indent + PARAGRAPHS[i % len(PARAGRAPHS)] for i in range(n_paragraphs)]
    return ("\n\n" if blank else "\n").join(lines)


def kinds(context: AssembledContext) -> list[str]:
    return [part.kind for part in context.parts]


def lore_names(context: AssembledContext) -> list[str]:
    return [part.name for part in context.parts if part.kind == "lore"]


# -- the empty story: today's prompt ----------------------------------------


def anchor_offset(prepared: str, context_chars: int) -> int:
    """Where a fresh PromptCache started reading before the story layer (commit 57e6890, _new_offset)."""
    if len(prepared) <= context_chars:
        return 0
    offset = len(prepared) - context_chars
    newline = prepared.find("\n", offset, offset + context_chars // 4)
    return newline + 1 if newline >= 0 else offset


def todays_prompt(text: str, context_chars: int, prep: TextPrep) -> str:
    """What GenerationService.read_prompt read before the story layer: the prepared text from the anchor."""
    prepared = prep.prepare(text)
    if prep.leading_newline:
        prepared = prepared[1:]
    return ("\n" if prep.leading_newline else "") + prepared[anchor_offset(prepared, context_chars) :]


@pytest.mark.parametrize("prep", [TextPrep(), TextPrep(leading_newline=False), TextPrep(strip_indents=False)])
def test_an_empty_story_reads_exactly_todays_prompt(prep):
    book = manuscript(60)
    body_prep = TextPrep(strip_indents=prep.strip_indents, leading_newline=False)
    for context_chars in (200, 300, 400):
        # The longest start of the book whose prepared length is k * c (k >= 2): there a fresh
        # cache's anchor and the stepped window agree (in between, the window starts earlier).
        end = len(book)
        while len(body_prep.prepare(book[:end])) % context_chars:
            end -= 1
        text = book[:end]
        assert len(body_prep.prepare(text)) >= 2 * context_chars
        context = assemble(text, Story(), ContextBudgets(context_chars=context_chars), prep)
        assert kinds(context) == ["story"]
        assert context.text == todays_prompt(text, context_chars, prep)
        assert len(context.text) < len(prep.prepare(text))  # a window, not the whole book
        assert context.hits == context.left_out == context.cut == ()
    for text in (manuscript(3), manuscript(3) + "\n", ""):
        short = assemble(text, Story(), ContextBudgets(context_chars=1024), prep)
        assert short.text == todays_prompt(text, 1024, prep) == prep.prepare(text)


def test_an_empty_story_of_a_long_book_reads_a_window_from_a_paragraph_start():
    text = manuscript(200)
    body = TextPrep().prepare(text)[1:]
    context = assemble(text, Story(), ContextBudgets(context_chars=500))
    start = story_window(body, 500)
    assert context.text == "\n" + body[start:]
    assert body[start - 1] == "\n" and 500 <= len(body) - start < 1000


def test_context_chars_zero_reads_the_whole_book():
    text = manuscript(200)
    assert assemble(text, Story(), ContextBudgets(context_chars=0)).text == TextPrep().prepare(text)
    assert story_window("x" * 10_000, 0) == 0


def test_an_empty_manuscript_reads_one_line_break():
    context = assemble("", Story())
    assert context.parts == (ContextPart("story", "\n"),)


# -- the story window ---------------------------------------------------------


def test_the_window_start_moves_only_every_context_chars_of_growth():
    c = 100
    book = "字" * (6 * c)  # no line breaks: nothing to snap to
    starts = [story_window(book[:length], c) for length in range(6 * c + 1)]
    for length, start in enumerate(starts):
        assert start % c == 0
        assert (start == 0) if length <= c else (c <= length - start < 2 * c)
        if length and start != starts[length - 1]:
            assert length % c == 0 and length >= 2 * c
    assert sorted(set(starts)) == [0, 100, 200, 300, 400, 500]


def test_the_window_start_snaps_to_just_after_a_line_break_in_its_first_quarter():
    c = 100
    book = list("字" * 350)  # start before snapping: ((350 - 100) // 100) * 100 = 200
    book[210] = "\n"
    assert story_window("".join(book), c) == 211
    book[210], book[224] = "字", "\n"  # the last place inside the first quarter
    assert story_window("".join(book), c) == 225
    book[224], book[225] = "字", "\n"  # just outside it
    assert story_window("".join(book), c) == 200
    book[199] = "\n"  # before the start: not looked at
    assert story_window("".join(book), c) == 200


def test_writing_at_the_end_keeps_the_story_window_start():
    text = manuscript(30)
    budgets = ContextBudgets(context_chars=300)
    previous = assemble(text, Story(), budgets).text
    moves, steps = 0, 0
    for ch in "　　" + "他转过身来，看着窗外。" * 70:
        text += ch
        current = assemble(text, Story(), budgets).text
        steps += 1
        if not current.startswith(previous):  # the start moved on: by a step of about 300
            moves += 1
            assert len(previous) - len(current) > 300 - 300 // 4 - 2
            assert 300 - 300 // 4 <= len(current) - 1 < 2 * 300  # c to 2c, less what the snap skipped
        previous = current
    assert 2 <= moves <= steps // 300 + 1  # 772 characters written: two or three steps


# -- memory --------------------------------------------------------------------


def test_the_memory_comes_first_prepared_as_its_own_paragraph():
    story = Story(memory="　　张三是个剑客。\n\n　　他在找他的师父。\n")
    context = assemble(manuscript(3), story)
    assert kinds(context) == ["memory", "story"]
    assert context.parts[0].text == "\n张三是个剑客。\n他在找他的师父。\n"
    assert context.parts[1].text == TextPrep().prepare(manuscript(3))[1:]
    assert context.text == "".join(part.text for part in context.parts)
    no_lead = assemble(manuscript(3), story, prep=TextPrep(leading_newline=False))
    assert no_lead.parts[0].text == "张三是个剑客。\n他在找他的师父。\n"


def test_the_memory_over_its_budget_is_cut_from_its_start():
    story = Story(memory="开头的话。" + "中" * 20 + "最后一句。")
    context = assemble("正文。", story, ContextBudgets(memory_budget=10))
    assert context.parts[0].text == "\n" + ("中" * 20 + "最后一句。")[-10:] + "\n"
    assert context.cut == (("memory", 30 - 10),)
    nothing = assemble("正文。", story, ContextBudgets(memory_budget=0))
    assert kinds(nothing) == ["story"] and nothing.cut == (("memory", 30),)
    assert assemble("正文。", story, ContextBudgets(memory_budget=30)).cut == ()


def test_a_blank_memory_reads_nothing():
    assert kinds(assemble("正文。", Story(memory="　　\n\n  "))) == ["story"]


# -- lore keys -------------------------------------------------------------------


def entry(name, *keys, text=None, **fields):
    return LoreEntry(name, keys=keys, text=text if text is not None else f"{name}的设定。", **fields)


def test_a_plain_key_matches_case_insensitively_anywhere_in_the_scan():
    text = "The knight met ZHANGSAN at dawn. 后来他们一起喝酒。"
    story = Story(lore=(entry("张三", "zhangsan"), entry("李四", "lisi")))
    context = assemble(text, story)
    assert lore_names(context) == ["张三"]
    assert context.hits == (KeyHit("张三", "zhangsan", text.index("ZHANGSAN")),)
    assert context.left_out == (("李四", "no key"),)
    assert [p.text for p in context.parts if p.kind == "lore"] == ["\n张三的设定。\n"]  # the first part


def test_a_key_position_is_the_start_of_its_last_match_in_the_text_given():
    text = "张三来了。" * 3 + "李四走了。" + "x" * 10
    hits = assemble(text, Story(lore=(entry("张三", "张三"),))).hits
    assert hits == (KeyHit("张三", "张三", 10),)
    # A character that folds to two (ß -> ss) does not shift the positions after it.
    assert compile_key("strasse")("ßß Straße") == 3
    assert compile_key("abc")("ßabc") == 1


def test_regex_keys_and_their_flags():
    assert compile_key("/zhang\\s*san/")("ZHANG san") == -1
    assert compile_key("/zhang\\s*san/i")("Hi ZHANG san") == 3
    assert compile_key("/^李四/m")("张三\n李四说") == 3
    assert compile_key("/^李四/")("张三\n李四说") == -1
    assert compile_key("/张.四/s")("张\n四") == 0
    assert compile_key("/张.四/")("张\n四") == -1
    assert compile_key("/a/b/")("xa/b") == 1  # the last slash ends the pattern
    assert compile_key("/usr")("/usr/bin") == 0  # no closing slash: a plain key
    story = Story(lore=(entry("师门", "/(青云|天音)[门寺]/"),))
    text = "他出身青云门，后来去了天音寺。"
    context = assemble(text, story)
    assert context.hits == (KeyHit("师门", "/(青云|天音)[门寺]/", text.index("天音寺")),)


@pytest.mark.parametrize("key, says", [("/(/", "bad regex"), ("/a/x", "unknown regex flag x"), ("//", "empty")])
def test_a_bad_regex_is_one_line_from_compile_key_and_left_out_by_assemble(key, says):
    with pytest.raises(ValueError) as raised:
        compile_key(key)
    message = str(raised.value)
    assert says in message and key in message and "\n" not in message
    story = Story(lore=(entry("坏", "张三", secondary_keys=(key,)), entry("好", "张三")))
    context = assemble("张三来了。", story)
    assert context.left_out == (("坏", "bad key"),)
    assert lore_names(context) == ["好"]


def test_empty_keys_are_ignored():
    assert compile_key("")("任何文字") == -1
    story = Story(lore=(entry("空", "", "  "), entry("张三", "", "张三")))
    context = assemble("张三来了。", story)
    assert lore_names(context) == ["张三"]
    assert context.left_out == (("空", "no key"),)


def test_every_secondary_key_must_match_too():
    story = Story(lore=(entry("夜战", "张三", secondary_keys=("夜", "剑")),))
    assert assemble("张三在夜里拔剑。", story).left_out == ()
    missing = assemble("张三在夜里喝酒。", story)
    assert missing.left_out == (("夜战", "no key"),) and missing.hits == ()


def test_any_exclude_key_keeps_an_entry_out():
    story = Story(lore=(entry("张三", "张三", exclude_keys=("回忆", "梦")),))
    assert lore_names(assemble("张三醒了。", story)) == ["张三"]
    assert assemble("张三在梦里醒了。", story).left_out == (("张三", "excluded"),)


def test_keys_are_looked_for_only_in_the_last_scan_chars():
    text = "张三来过。" + "雨" * 100
    near = Story(lore=(entry("张三", "张三", scan_chars=105),))
    far = Story(lore=(entry("张三", "张三", scan_chars=104),))  # the scan starts at the '三'
    assert assemble(text, near).hits == (KeyHit("张三", "张三", 0),)
    assert assemble(text, far).left_out == (("张三", "no key"),)
    # The positions are offsets into the whole text, also when the scan is a part of it.
    text2 = "雨" * 500 + "张三来过。"
    assert assemble(text2, Story(lore=(entry("张三", "张三", scan_chars=50),))).hits[0].position == 500


def test_constant_and_disabled_entries():
    story = Story(
        lore=(
            entry("世界", constant=True),  # no keys: in anyway, seen at -1
            entry("张三", "张三"),
            entry("旧设定", "张三", enabled=False),
            entry("关闭的常驻", constant=True, enabled=False),
        )
    )
    context = assemble("张三来了。", story)
    assert lore_names(context) == ["世界", "张三"]  # same priority: the constant one first (seen at -1)
    assert context.left_out == (("旧设定", "disabled"), ("关闭的常驻", "disabled"))
    assert context.hits == (KeyHit("张三", "张三", 0),)


def test_order_is_priority_first_then_the_latest_mention_nearest_the_story():
    text = "李四走了。王五来了。张三笑了。后来李四又回来了。"
    story = Story(
        lore=(
            entry("张三", "张三"),
            entry("李四", "李四"),
            entry("王五", "王五"),
            entry("门派", "门派", constant=True, priority=5),
            entry("赵六", "赵六", priority=9),
        )
    )
    context = assemble(text, story)
    # 赵六 is never mentioned; 门派 constant with the higher priority; then by last mention: 王五, 张三, 李四 (again).
    assert lore_names(context) == ["门派", "王五", "张三", "李四"]
    assert kinds(context)[-1] == "story"
    assert [hit.entry for hit in context.hits] == ["张三", "李四", "王五"]  # story-file order
    assert dict((h.entry, h.position) for h in context.hits)["李四"] == text.rindex("李四")


def test_the_key_that_fired_is_the_one_seen_last():
    text = "小三来了。张三坐下。"
    hits = assemble(text, Story(lore=(entry("张三", "小三", "张三", "老张"),))).hits
    assert hits == (KeyHit("张三", "张三", 5),)


def test_a_key_in_the_lore_text_or_memory_does_not_trigger_an_entry():
    story = Story(memory="李四是张三的朋友。", lore=(entry("李四", "李四"),))
    assert assemble("张三来了。", story).left_out == (("李四", "no key"),)


# -- the lore budget -----------------------------------------------------------------


def test_over_the_lore_budget_entries_go_whole_lowest_priority_then_least_recent_first():
    text = "甲乙丙丁"
    story = Story(
        lore=(
            entry("甲", "甲", text="一" * 10),
            entry("乙", "乙", text="二" * 10),
            entry("丙", "丙", text="三" * 10, priority=1),
            entry("丁", "丁", text="四" * 10),
        )
    )
    assert lore_names(assemble(text, story, ContextBudgets(lore_budget=40))) == ["丙", "甲", "乙", "丁"]
    within = assemble(text, story, ContextBudgets(lore_budget=39))
    assert lore_names(within) == ["丙", "乙", "丁"] and within.left_out == (("甲", "over budget"),)
    assert lore_names(assemble(text, story, ContextBudgets(lore_budget=20))) == ["丙", "丁"]
    last = assemble(text, story, ContextBudgets(lore_budget=15))
    assert lore_names(last) == ["丙"]  # the highest priority stays, whatever its mention
    assert last.left_out == (("甲", "over budget"), ("乙", "over budget"), ("丁", "over budget"))
    assert last.cut == ()


def test_one_entry_alone_over_the_budget_is_cut_from_its_start():
    story = Story(lore=(entry("长", "长", text="开头" + "中" * 20 + "结尾"),))
    context = assemble("长", story, ContextBudgets(lore_budget=8))
    assert [p.text for p in context.parts if p.kind == "lore"] == ["\n" + "中" * 6 + "结尾\n"]
    assert context.cut == (("lore 长", 24 - 8),)
    none = assemble("长", story, ContextBudgets(lore_budget=0))
    assert lore_names(none) == [] and none.left_out == (("长", "over budget"),)


def test_budgets_count_the_prepared_text():
    story = Story(lore=(entry("甲", "甲", text="　　一二三\n\n　　四五\n"),))  # prepared: 一二三\n四五 (6)
    assert assemble("甲", story, ContextBudgets(lore_budget=6)).cut == ()
    assert assemble("甲", story, ContextBudgets(lore_budget=5)).cut == (("lore 甲", 1),)


# -- the author's note --------------------------------------------------------------


def note_story(text, depth, unit="chars"):
    return Story(authors_note=AuthorsNote(text, depth=depth, unit=unit))


def story_and_note(context):
    """The story window as read (without the note), and the note's offset in it."""
    before = ""
    for part in context.parts:
        if part.kind == "note":
            return before, part
        if part.kind == "story":
            before += part.text
    raise AssertionError("no note")


def test_the_note_goes_at_the_last_paragraph_start_between_depth_and_twice_depth_back():
    window = "一" * 50 + "\n" + "二" * 50 + "\n" + "三" * 30 + "\n" + "四" * 60
    # depth 40: target 151, the range [111, 151]: the paragraph starts at 102 and 133: 133.
    assert note_position(window, 40, "chars") == 133
    context = assemble(window, note_story("　　要紧张。", 40))
    assert kinds(context) == ["story", "note", "story"]
    assert context.parts[0].text == "\n" + window[:133]
    assert context.parts[1] == ContextPart("note", "要紧张。\n")
    assert context.parts[2].text == window[133:]
    assert context.text == "\n" + window[:133] + "要紧张。\n" + window[133:]


def test_else_the_note_goes_after_the_last_sentence_end():
    window = "一" * 100 + "他说：“走吧。”" + "二" * 20 + "她笑了！" + "三" * 40
    end_of_quote = 100 + len("他说：“走吧。”")
    end_of_laugh = end_of_quote + 20 + len("她笑了！")
    assert note_position(window, 40, "chars") == end_of_laugh  # range [len-80, len-40]
    assert note_position(window, 55, "chars") == end_of_quote  # the laugh ends less than 55 back
    context = assemble(window, note_story("注意", 40))
    assert context.parts[1] == ContextPart("note", "\n注意\n")  # not at a paragraph start
    assert context.parts[0].text.endswith("她笑了！") and context.parts[2].text == "三" * 40


def test_the_quote_after_a_sentence_end_stays_with_it():
    window = "一" * 60 + "“好。”" + "二" * 36
    assert note_position(window, 36, "chars") == 64  # after the closing quote
    # With the range ending between 。 and ”, that is no sentence end: the one before it is.
    window = "一" * 30 + "。" + "一" * 29 + "“好。”" + "二" * 37
    assert note_position(window, 38, "chars") == 31
    window = "一" * 30 + "。" + "一" * 29 + "等等……" + "二" * 37  # nor between two …
    assert note_position(window, 38, "chars") == 31


def test_else_the_note_goes_exactly_depth_back():
    window = "字" * 300
    assert note_position(window, 50, "chars") == 250
    context = assemble(window, note_story("笔记", 50))
    assert context.parts[0].text == "\n" + "字" * 250
    assert context.parts[1].text == "\n笔记\n" and context.parts[2].text == "字" * 50


def test_a_note_right_before_a_line_break_goes_to_the_next_paragraph_instead():
    window = "字" * 100 + "\n" + "字" * 20
    assert note_position(window, 20, "chars") == 101  # the paragraph start at exactly depth back
    assert note_position("字" * 100 + "。\n" + "字" * 19, 20, "chars") == 102


def test_a_note_deeper_than_the_window_goes_right_before_the_story():
    text = "　　张三来了。\n　　李四走了。"
    for note in (AuthorsNote("注意", depth=500), AuthorsNote("注意", depth=5, unit="paragraphs")):
        context = assemble(text, Story(memory="记忆", authors_note=note))
        assert kinds(context) == ["memory", "note", "story"]
        assert context.text == "\n记忆\n注意\n张三来了。\n李四走了。"
    alone = assemble(text, note_story("注意", 500))
    assert alone.parts[0] == ContextPart("note", "\n注意\n")


def test_the_note_in_paragraphs_goes_before_the_depth_th_last_paragraph():
    text = "　　第一段。\n　　第二段。\n　　第三段写到一半"
    parts = lambda depth: [p.text for p in assemble(text, note_story("注", depth, "paragraphs")).parts]
    assert parts(0) == ["\n第一段。\n第二段。\n第三段写到一半", "\n注\n"]
    assert parts(1) == ["\n第一段。\n第二段。\n", "注\n", "第三段写到一半"]
    assert parts(2) == ["\n第一段。\n", "注\n", "第二段。\n第三段写到一半"]
    assert parts(3) == ["\n注\n", "第一段。\n第二段。\n第三段写到一半"]
    # A new, empty paragraph at the cursor is the last one: typing in it keeps the note put.
    assert [p.text for p in assemble(text + "\n", note_story("注", 1, "paragraphs")).parts] == [
        "\n第一段。\n第二段。\n第三段写到一半\n",
        "注\n",
    ]
    assert [p.text for p in assemble(text + "\n第四", note_story("注", 1, "paragraphs")).parts][:2] == [
        "\n第一段。\n第二段。\n第三段写到一半\n",
        "注\n",
    ]


def test_the_note_over_its_budget_is_cut_from_its_start_and_a_blank_note_reads_nothing():
    context = assemble("正文。", note_story("前面的话，后面的话", 0), ContextBudgets(note_budget=4))
    assert ContextPart("note", "\n后面的话\n") in context.parts and context.cut == (("note", 5),)
    assert kinds(assemble("正文。", note_story("　　\n", 10))) == ["story"]


def test_appending_at_the_end_keeps_every_part_but_the_last():
    story = Story(
        memory="张三是剑客。",
        lore=(entry("李四", "李四"),),
        authors_note=AuthorsNote("气氛紧张。", depth=60),
    )
    budgets = ContextBudgets(context_chars=400)
    text = manuscript(40, blank=False)
    previous = assemble(text, story, budgets)
    changed = 0
    added = "他慢慢地站起身来，走到窗前，望着外面的雨幕出神。\n　　" * 6
    for ch in added:
        text += ch
        current = assemble(text, story, budgets)
        assert current.text.endswith(text[-1]) or ch == "　"
        if current.parts[:-1] != previous.parts[:-1]:
            changed += 1
        else:
            assert current.parts[-1].text.startswith(previous.parts[-1].text)
        previous = current
    # The note moves when a paragraph start enters its range (once a paragraph), not with each character.
    assert changed <= 2 * added.count("\n") + 1
    assert len(added) > 10 * changed


# -- Chinese examples -------------------------------------------------------------------


def test_a_chinese_story_with_characters_and_setting():
    text = "　　林黛玉进了贾府，处处小心。\n\n　　这日，宝玉从学堂回来，见了她便笑道：“这个妹妹我曾见过的。”"
    story = Story(
        memory="　　《红楼梦》同人，文风古雅。",
        authors_note=AuthorsNote("【宝玉说话要带些呆气。】", depth=20),
        lore=(
            LoreEntry("人物：林黛玉", keys=("黛玉", "林妹妹"), text="林黛玉：寄居贾府，多愁善感。"),
            LoreEntry("人物：贾宝玉", keys=("宝玉",), text="贾宝玉：衔玉而生，厌恶仕途。", secondary_keys=("学堂",)),
            LoreEntry("设定：贾府", keys=("/贾[府母]/",), text="贾府：荣国府与宁国府。", priority=2),
            LoreEntry("人物：王熙凤", keys=("凤姐", "熙凤"), text="王熙凤：精明强干。"),
            LoreEntry("设定：大观园", text="大观园：省亲别墅。", constant=True, enabled=False),
        ),
    )
    context = assemble(text, story)
    assert kinds(context) == ["memory", "lore", "lore", "lore", "story", "note", "story"]
    assert lore_names(context) == ["设定：贾府", "人物：林黛玉", "人物：贾宝玉"]
    assert context.left_out == (("人物：王熙凤", "no key"), ("设定：大观园", "disabled"))
    assert context.hits == (
        KeyHit("人物：林黛玉", "黛玉", 3),
        KeyHit("人物：贾宝玉", "宝玉", text.index("宝玉")),
        KeyHit("设定：贾府", "/贾[府母]/", text.index("贾府")),
    )
    assert context.text == (
        "\n《红楼梦》同人，文风古雅。\n"
        "贾府：荣国府与宁国府。\n"
        "林黛玉：寄居贾府，多愁善感。\n"
        "贾宝玉：衔玉而生，厌恶仕途。\n"
        "林黛玉进了贾府，处处小心。\n"
        "【宝玉说话要带些呆气。】\n"
        "这日，宝玉从学堂回来，见了她便笑道：“这个妹妹我曾见过的。”"
    )
    for part in context.parts:
        assert "人物：" not in part.text and "设定：大观园" not in part.text


def test_the_window_start_counts_as_a_paragraph_start_only_when_it_is_one():
    window = "一二三。四五六七八九"  # depth 6: the range [0, 4] holds offset 0 and the sentence end at 4
    assert note_position(window, 6, "chars", starts_paragraph=True) == 0
    assert note_position(window, 6, "chars", starts_paragraph=False) == 4
    assert kinds(assemble(window, note_story("注", 6))) == ["note", "story"]  # the book's start
    book = "字" * 500 + window  # c = 10: the window starts mid-paragraph, nothing to snap to
    context = assemble(book, note_story("注", 6), ContextBudgets(context_chars=10))
    assert [p.text for p in context.parts] == ["\n一二三。", "\n注\n", "四五六七八九"]


def test_an_empty_story_part_is_left_out_when_other_parts_are_read():
    context = assemble("", Story(memory="记忆"))
    assert context.parts == (ContextPart("memory", "\n记忆\n"),)
    assert assemble("　　\n\n", Story()).parts == (ContextPart("story", "\n"),)
