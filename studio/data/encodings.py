"""Which encoding a manuscript's bytes are in, and turning edited text back into that encoding.

Detection, first match wins (`decode_manuscript`):
1. a UTF-32 byte order mark: refused (not supported; say to save as UTF-8);
2. a UTF-16 BOM (FF FE / FE FF) and the rest decodes strictly: "UTF-16LE" / "UTF-16BE";
3. a NUL byte in the first 8 KiB: UTF-16 without a BOM if clearly so (4.), else binary, refused;
4. UTF-16 without a BOM, only when clear: even length, NUL bytes in the first 8 KiB, and
   exactly one byte order whose first 8 KiB decode to at least 95% characters Chinese or
   English prose is made of (hanzi, CJK and general punctuation, Latin, ASCII); when both
   do (ASCII read backwards is hanzi), the NULs must sit on one side of the byte pairs at
   least 4:1 (odd offsets: LE). Then the whole file must decode strictly, with no control
   characters but tab, CR and LF;
5. valid UTF-8, strictly (a BOM allowed): "UTF-8";
6. GB or Big5: a sample (the first 64 KiB) is decoded both ways; each that decodes scores one
   point per common hanzi or CJK punctuation mark and loses three per character that only
   wrong decodings produce (private use, bopomofo, tone marks, shapes; Big5's comma reads as
   GB private use, GB's as bopomofo).
   The higher score goes first (a tie to GB) and must decode the whole file, else the other.
   Within a family the name is the first codec that decodes strictly and gives the same bytes
   back (GB: GBK, GB18030; Big5: Big5, CP950, Big5-HKSCS); when none does, the first that
   decodes is used with exact=False (fine for reading; editing is refused);
7. anything else is refused, naming the line of the first byte that is not UTF-8.
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass

from ai_writer.studio.data.manuscript_errors import ManuscriptEncodingError, ManuscriptError
from ai_writer.studio.i18n import tr

PROBE = 8192  # bytes looked at for NULs (binary files, BOM-less UTF-16)
SAMPLE = 65536  # bytes decoded both ways to tell GB from Big5

# Display name -> Python codec. The display names are what Manuscript.encoding holds.
CODECS = {
    "UTF-8": "utf-8",
    "UTF-16LE": "utf-16-le",
    "UTF-16BE": "utf-16-be",
    "GBK": "gbk",
    "GB18030": "gb18030",
    "Big5": "big5",
    "CP950": "cp950",
    "Big5-HKSCS": "big5hkscs",
}
_BY_CODEC = {codec: display for display, codec in CODECS.items()}
BOMS = {"UTF-8": b"\xef\xbb\xbf", "UTF-16LE": b"\xff\xfe", "UTF-16BE": b"\xfe\xff"}
_FAMILIES = {"GB": ("GBK", "GB18030"), "Big5": ("Big5", "CP950", "Big5-HKSCS")}

# The most frequent characters of Chinese prose, simplified and traditional forms, and the
# punctuation both use; a right decoding is mostly these, a wrong one rarely.
_COMMON_SIMPLIFIED = (
    "的一是不了在人有我他这个们中来上大为和国地到以说时要就出会可也你对生能而子那得于着下自之年过发后作里"
    "用道行所然家种事成方多经么去法学如都同现当没动面起看定天分还进好小部其些主样理心她本前开但因只从想实日"
    "军者意无力它与长把机十民第公此已工使情明性知全三又关点正业外将两高间由问很最重并物手应战向头文体政美相"
    "见被利什二等产或新己制身果加西斯月话合回特代内信表化老给世位次度门任常先海通教儿原东声提立及比员解水名"
    "真论处走义各入几口认条平系气题活尔更别打女变四神总何电数安少报才结反受目太量再感建务做接必场件计管期市"
    "直德资命山金指克许统区保至队形社便空决治展马科司五基眼书非则听白却界达光放强即像难且权思王象完设式色路"
    "记南品住告类求据程北边死张该交规万取拉格望觉术领共确传师观清今切院让识候带导争运笑飞风步改收根干造言联"
    "持组每济车亲极林服快办议往元英士证近失转夫令准布始怎呢存未远叫台单影具罗字爱击流备兵连调深商算质团集百"
    "需价花党华城石级整府离况请技际约示复病息究线似官火断精满支视消越器容照须九增研写称八功吗包片史委乎查轻"
    "易早曾除农找装广显吧李标谈吃图念六引历首医局突专费号尽另周较注语仅考落青随选列武红响虽推势参希古众构房"
    "半节土投某案黑维革划敌致陈律足态护七兴派孩验责营星够章音跟志底站严巴例防族供效续施留讲型料终答紧黄绝奇"
    "察母京段依批群项故按河米围江织害斗双境客纪采举杀攻父苏密低朝友诉止细愿千值仍男钱破网热助倒育属坐帝限船"
    "脸职速刻乐否刚威毛状率甚独球般普怕弹校苦创假久错承印晚兰试股拿脑预谁益阳若哪微尼继送急血惊伤素药适波夜"
    "省初喜卫源食险待述陆习置居劳财环排福纳欢雷警获模充负云停木游龙树疑层冷洲冲射略范竟句室异激汉村哈策演简"
)
_COMMON_TRADITIONAL = (
    "的一是不了在人有我他這個們中來上大為和國地到以說時要就出會可也你對生能而子那得於著下自之年過發後作裡"
    "用道行所然家種事成方多經麼去法學如都同現當沒動面起看定天分還進好小部其些主樣理心她本前開但因只從想實日"
    "軍者意無力它與長把機十民第公此已工使情明性知全三又關點正業外將兩高間由問很最重並物手應戰向頭文體政美相"
    "見被利什二等產或新己制身果加西斯月話合回特代內信表化老給世位次度門任常先海通教兒原東聲提立及比員解水名"
    "真論處走義各入幾口認條平系氣題活爾更別打女變四神總何電數安少報才結反受目太量再感建務做接必場件計管期市"
    "直德資命山金指克許統區保至隊形社便空決治展馬科司五基眼書非則聽白卻界達光放強即像難且權思王象完設式色路"
    "記南品住告類求據程北邊死張該交規萬取拉格望覺術領共確傳師觀清今切院讓識候帶導爭運笑飛風步改收根乾造言聯"
    "持組每濟車親極林服快辦議往元英士證近失轉夫令準布始怎呢存未遠叫台單影具羅字愛擊流備兵連調深商算質團集百"
    "需價花黨華城石級整府離況請技際約示復病息究線似官火斷精滿支視消越器容照須九增研寫稱八功嗎包片史委乎查輕"
    "易早曾除農找裝廣顯吧李標談吃圖念六引歷首醫局突專費號盡另周較注語僅考落青隨選列武紅響雖推勢參希古眾構房"
    "半節土投某案黑維革劃敵致陳律足態護七興派孩驗責營星夠章音跟志底站嚴巴例防族供效續施留講型料終答緊黃絕奇"
    "察母京段依批群項故按河米圍江織害鬥雙境客紀採舉殺攻父蘇密低朝友訴止細願千值仍男錢破網熱助倒育屬坐帝限船"
    "臉職速刻樂否剛威毛狀率甚獨球般普怕彈校苦創假久錯承印晚蘭試股拿腦預誰益陽若哪微尼繼送急血驚傷素藥適波夜"
    "省初喜衛源食險待述陸習置居勞財環排福納歡雷警獲模充負雲停木遊龍樹疑層冷洲衝射略範竟句室異激漢村哈策演簡"
)
_COMMON_PUNCTUATION = "，。、！？：；“”‘’「」『』《》…—　·（）"
COMMON = frozenset(_COMMON_SIMPLIFIED + _COMMON_TRADITIONAL + _COMMON_PUNCTUATION)
# What a GB text read as Big5, or a Big5 text read as GB, turns its punctuation into.
_WRONG = re.compile(
    "[\ue000-\uf8ff"  # private use (Big5 punctuation read as GB)
    "\u3100-\u312f\u02b0-\u02ff"  # bopomofo, spacing tone marks (GB punctuation read as Big5)
    "\ufe30-\ufe6f\u2500-\u27bf\u203b]"  # vertical and small forms, box drawing, shapes, ※
)
_CONTROL = re.compile("[\x00-\x08\x0b-\x0c\x0e-\x1f]")
# Outside what Chinese or English prose is written with: most of what UTF-16 read in the wrong
# byte order gives (U+0A00 for a line feed, U+2C7B for 第, ...).
_IMPLAUSIBLE = re.compile(
    "[^\t\n\r\x20-\x7e\u00a0-\u024f\u2000-\u206f\u2e80-\u2fdf\u3000-\u30ff\u3400-\u4dbf"
    "\u4e00-\u9fff\uf900-\ufaff\ufe30-\ufe4f\uff00-\uffef\U00020000-\U0003134f]")


@dataclass(frozen=True)
class Decoded:
    text: str
    encoding: str  # a key of CODECS
    bom: bool  # the bytes started with this encoding's byte order mark (not part of text)
    exact: bool  # encoding text again gives exactly the bytes read


def canonical_encoding(name: str) -> str:
    """The display name for an encoding given as "UTF-8", "utf_16_le", "cp936", ... (ValueError if unknown)."""
    if name in CODECS:
        return name
    try:
        codec = codecs.lookup(name).name
    except LookupError:
        raise ValueError(f"unknown encoding {name!r}") from None
    return _BY_CODEC.get(codec, codec.upper())


def codec_of(encoding: str) -> str:
    return CODECS.get(encoding) or codecs.lookup(encoding).name


def _line_of(data: bytes, offset: int) -> int:
    return data.count(b"\n", 0, offset) + 1


def _score(text: str) -> int:
    return sum(map(COMMON.__contains__, text)) - 3 * len(_WRONG.findall(text))


def _family_decode(data: bytes, family: str) -> Decoded | None:
    """The first codec of the family that round-trips, else the first that decodes, else None."""
    fallback = None
    for encoding in _FAMILIES[family]:
        try:
            text = data.decode(CODECS[encoding])
        except UnicodeDecodeError:
            continue
        try:
            exact = text.encode(CODECS[encoding]) == data
        except UnicodeEncodeError:
            exact = False
        if exact:
            return Decoded(text, encoding, False, True)
        fallback = fallback or Decoded(text, encoding, False, False)
    return fallback


def _decode_sample(data: bytes, codec: str, final: bool | None = None) -> str:
    """The first SAMPLE bytes decoded strictly; a character cut in two at the end is left out."""
    final = len(data) <= SAMPLE if final is None else final
    return codecs.getincrementaldecoder(codec)("strict").decode(data[:SAMPLE], final=final)


def _cjk_decode(data: bytes) -> Decoded | None:
    scores = []
    for family in ("GB", "Big5"):
        for encoding in _FAMILIES[family]:
            try:
                scores.append((_score(_decode_sample(data, CODECS[encoding])), family))
                break
            except UnicodeDecodeError:
                continue
    # A family none of whose codecs decodes the sample cannot decode the whole file either.
    order = [family for _, family in sorted(scores, key=lambda s: -s[0])]  # stable: GB first on a tie
    for family in order:
        decoded = _family_decode(data, family)
        if decoded is not None:
            return decoded
    return None


def _plausible(text: str) -> float:
    """The share of characters a text in Chinese or English is made of (1.0 for an empty text)."""
    return 1.0 - len(_IMPLAUSIBLE.findall(text)) / len(text) if text else 1.0


def _utf16_without_bom(data: bytes) -> Decoded | None:
    if len(data) % 2:
        return None
    plausible = {}
    for encoding in ("UTF-16LE", "UTF-16BE"):
        try:
            plausible[encoding] = _plausible(_decode_sample(data[:PROBE], CODECS[encoding], final=len(data) <= PROBE))
        except UnicodeDecodeError:
            pass
    likely = [encoding for encoding, share in plausible.items() if share >= 0.95]
    if len(likely) == 2:  # e.g. ASCII read backwards is CJK: the side its NULs are on decides
        even, odd = data[:PROBE:2].count(0), data[1:PROBE:2].count(0)
        likely = ["UTF-16LE"] if odd >= 4 * max(even, 1) else ["UTF-16BE"] if even >= 4 * max(odd, 1) else []
    if len(likely) != 1:
        return None
    try:
        text = data.decode(CODECS[likely[0]])
    except UnicodeDecodeError:
        return None
    if _CONTROL.search(text) or "\ufffe" in text or "\uffff" in text:
        return None
    return Decoded(text, likely[0], False, True)


def decode_manuscript(data: bytes, name: str) -> Decoded:
    """Decode a manuscript's bytes as the module docstring says; ManuscriptError if it is not text."""
    if data.startswith((b"\xff\xfe\x00\x00", b"\x00\x00\xfe\xff")):
        raise ManuscriptError(tr("mf_utf32", name=name))
    for encoding in ("UTF-16LE", "UTF-16BE"):
        if data.startswith(BOMS[encoding]):
            try:
                text = data[2:].decode(CODECS[encoding])
            except UnicodeDecodeError as exc:
                raise ManuscriptError(tr("mf_bad_utf16", name=name, encoding=encoding, byte=exc.start + 2)) from None
            if "\x00" in text:
                raise ManuscriptError(tr("mf_binary", name=name))
            return Decoded(text, encoding, True, True)
    if b"\x00" in data[:PROBE]:  # no text but UTF-16 has NUL bytes
        decoded = _utf16_without_bom(data)
        if decoded is None:
            raise ManuscriptError(tr("mf_binary", name=name))
        return decoded
    try:
        if data.startswith(BOMS["UTF-8"]):
            return Decoded(data[3:].decode("utf-8"), "UTF-8", True, True)
        return Decoded(data.decode("utf-8"), "UTF-8", False, True)
    except UnicodeDecodeError as exc:
        utf8_error = exc
    decoded = _cjk_decode(data)
    if decoded is not None:
        return decoded
    start = utf8_error.start
    raise ManuscriptError(tr("mf_not_text", name=name, line=_line_of(data, start), byte=start))


def describe_char(char: str) -> str:
    """'U+2028' or '“😀” (U+1F600)': how a message names one character."""
    code = f"U+{ord(char):04X}"
    return code if not char.isprintable() or char.isspace() else f"“{char}” ({code})"


CHUNK = 1 << 18  # characters encoded at a time, so a 25 MB save never holds the GIL for long


def encode_manuscript(text: str, encoding: str, *, bom: bool, newline: str, name: str) -> bytes:
    """The bytes to write; ManuscriptEncodingError names the first character `encoding` cannot hold.

    Encoded a chunk at a time: the saver thread lets the UI thread run between chunks.
    """
    encoding = canonical_encoding(encoding)
    codec = codec_of(encoding)
    if newline not in ("\n", "\r\n"):
        raise ValueError(f"newline must be '\\n' or '\\r\\n', not {newline!r}")
    crlf = newline == "\r\n"
    if crlf and "\r\n" in text:
        text = text.replace("\r\n", "\n")  # then every "\n" becomes "\r\n", chunk by chunk
    parts = [BOMS[encoding]] if bom and encoding in BOMS else []
    for start in range(0, len(text), CHUNK):
        chunk = text[start:start + CHUNK]
        try:
            parts.append(chunk.encode(codec))
        except UnicodeEncodeError as exc:
            raise _cannot_encode(text, start + exc.start, encoding, name) from None
        if crlf:
            parts[-1] = parts[-1].replace(b"\n", b"\r\n") if codec in _ASCII_NEWLINE else \
                chunk.replace("\n", "\r\n").encode(codec)
    return b"".join(parts)


# Codecs in which "\n" is the single byte 0x0A and 0x0A is never part of another character.
_ASCII_NEWLINE = {"utf-8", "gbk", "gb18030", "big5", "cp950", "big5hkscs"}


def _cannot_encode(text: str, position: int, encoding: str, name: str) -> ManuscriptEncodingError:
    line = text.count("\n", 0, position) + 1
    column = position - (text.rfind("\n", 0, position) + 1) + 1
    char = text[position]
    reason = tr("mf_cannot_encode_reason", line=line, char=describe_char(char), encoding=encoding)
    return ManuscriptEncodingError(tr("mf_cannot_encode", name=name, reason=reason), reason,
                                   encoding=encoding, char=char, line=line, column=column)
