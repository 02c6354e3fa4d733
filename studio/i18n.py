"""Interface text in English and Simplified Chinese.

    tr("saved_ago", seconds=2) -> "saved 2 s ago" / "2 秒前已保存"

The language comes from config ([studio] language) or, with "auto", from the
locale (LC_ALL, LC_MESSAGES, LANG: zh_* gives Chinese).
"""

from __future__ import annotations

import os

STRINGS = {
    "en": {
        "app_title": "AI-Writer Studio",
        "manuscript": "Manuscript",
        "candidates": "Candidates",
        "settings": "Settings",
        "candidate_title": "{number} · {length} chars",
        "candidate_streaming": "{number} · {length} chars …",
        "candidate_rejected": "{number} · rejected",
        "no_candidates": "Press {key} to write candidates from the cursor.",
        "generating": "generating",
        "reading_prompt": "reading the manuscript…",
        "chars_per_second": "{rate:.0f} chars/s",
        "saved_ago": "saved {seconds} s ago",
        "saved_now": "saved",
        "saving": "saving…",
        "unsaved": "not saved yet",
        "save_failed": "NOT SAVED: {error}",
        "recovery_written": "NOT SAVED: {error}; your text is in {path}",
        "new_manuscript": "New manuscript: {path}",
        "opened": "Opened {path}",
        "loading_model": "loading {model}…",
        "model_failed": "model: {error}",
        "no_model": "no model",
        "too_small": "The terminal is {width}x{height}; AI-Writer Studio needs at least {min_width}x{min_height}.",
        "stopped": "stopped",
        "accepted": "accepted candidate {number}",
        "nothing_to_accept": "no candidate {number}",
        "generation_failed": "generation failed: {error}",
        "setting_invalid": "{key}: {problem}",
        "setting_saved": "{key} = {value} (saved to {path})",
        "open_prompt": "Open which file?",
        "open": "Open",
        "cancel": "Cancel",
        "history_title": "History: earlier candidates (enter takes one)",
        "history_empty": "No history yet.",
        "cmd_generate": "Generate candidates",
        "cmd_stop": "Stop generating",
        "cmd_accept": "Accept candidate {number}",
        "cmd_save": "Save the manuscript",
        "cmd_open": "Open a manuscript",
        "cmd_quit": "Quit",
        "cmd_settings": "Show or hide settings",
        "cmd_history": "Show the history of candidates",
        "cmd_undo": "Undo",
        "cmd_redo": "Redo",
        "cmd_regenerate": "Regenerate",
        "cmd_reject": "Reject the highlighted candidate",
        "cmd_partial": "Accept up to the end of the first sentence",
    },
    "zh": {
        "app_title": "AI-Writer 写作室",
        "manuscript": "稿件",
        "candidates": "候选续写",
        "settings": "设置",
        "candidate_title": "{number} · {length} 字",
        "candidate_streaming": "{number} · {length} 字 …",
        "candidate_rejected": "{number} · 已舍弃",
        "no_candidates": "按 {key} 从光标处续写候选。",
        "generating": "生成中",
        "reading_prompt": "正在读取稿件…",
        "chars_per_second": "每秒 {rate:.0f} 字",
        "saved_ago": "{seconds} 秒前已保存",
        "saved_now": "已保存",
        "saving": "保存中…",
        "unsaved": "尚未保存",
        "save_failed": "未保存：{error}",
        "recovery_written": "未保存：{error}；文本已存到 {path}",
        "new_manuscript": "新稿件：{path}",
        "opened": "已打开 {path}",
        "loading_model": "正在加载 {model}…",
        "model_failed": "模型：{error}",
        "no_model": "无模型",
        "too_small": "终端大小为 {width}x{height}；AI-Writer 写作室至少需要 {min_width}x{min_height}。",
        "stopped": "已停止",
        "accepted": "已采用候选 {number}",
        "nothing_to_accept": "没有候选 {number}",
        "generation_failed": "生成失败：{error}",
        "setting_invalid": "{key}：{problem}",
        "setting_saved": "{key} = {value}（已保存到 {path}）",
        "open_prompt": "打开哪个文件？",
        "open": "打开",
        "cancel": "取消",
        "history_title": "历史：以前的候选（回车采用）",
        "history_empty": "还没有历史。",
        "cmd_generate": "生成候选",
        "cmd_stop": "停止生成",
        "cmd_accept": "采用候选 {number}",
        "cmd_save": "保存稿件",
        "cmd_open": "打开稿件",
        "cmd_quit": "退出",
        "cmd_settings": "显示或隐藏设置",
        "cmd_history": "查看候选历史",
        "cmd_undo": "撤销",
        "cmd_redo": "重做",
        "cmd_regenerate": "重新生成",
        "cmd_reject": "舍弃当前候选",
        "cmd_partial": "采用到第一句末尾",
    },
}

_language = "en"


def choose_language(setting: str = "auto", environ=os.environ) -> str:
    if setting in STRINGS:
        return setting
    for name in ("LC_ALL", "LC_MESSAGES", "LANG"):
        value = environ.get(name, "")
        if value:
            return "zh" if value.lower().startswith("zh") else "en"
    return "en"


def set_language(language: str) -> None:
    global _language
    _language = language if language in STRINGS else "en"


def tr(text_id: str, **values) -> str:
    text = STRINGS[_language].get(text_id) or STRINGS["en"][text_id]
    return text.format(**values) if values else text
