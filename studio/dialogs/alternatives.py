"""The alternatives of one token: each with its probability; enter takes one, escape closes."""

from __future__ import annotations

from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Label, OptionList
from textual.widgets.option_list import Option

from ai_writer.studio.choice_map import Chosen
from ai_writer.studio.i18n import tr
from ai_writer.studio.widgets.probability_style import visible, with_raw


def alternative_options(choice) -> list[Chosen]:
    """What the list offers: the token written first, then its rivals (a TokenChoice's alternatives, by p_raw).

    Each is a Chosen carrying the token's alternatives, so the choice can be looked at again later."""
    rivals = tuple(choice.alternatives)
    options = [Chosen(choice.text, choice.p, choice.p_raw, rivals)]
    options += [Chosen(a.text, a.p, a.p_raw, rivals) for a in rivals if a.text != choice.text]
    return options


class AlternativesDialog(ModalScreen[Chosen | None]):
    """Dismissed with the Chosen alternative, or None."""

    DEFAULT_CSS = """
    AlternativesDialog { align: center middle; }
    AlternativesDialog > Vertical {
        width: 48; max-width: 90%; height: auto; max-height: 80%;
        border: round $accent; background: $surface; padding: 0 1;
    }
    AlternativesDialog Label { width: 100%; }
    AlternativesDialog OptionList { height: auto; max-height: 20; }
    """
    BINDINGS = [Binding("escape", "close", "Close", id="alternatives.close")]

    def __init__(self, choice):
        super().__init__()
        self.choices = alternative_options(choice)
        self.title_text = tr("alternatives_title", token=visible(choice.text))

    def compose(self):
        options = []
        for number, chosen in enumerate(self.choices):
            mark = "✓" if number == 0 else " "
            options.append(Option(f"{mark} {visible(chosen.text):<4} {with_raw(chosen.p, chosen.p_raw)}",
                                  id=str(number)))
        with Vertical():
            yield Label(self.title_text)
            yield OptionList(*options)

    def on_mount(self) -> None:
        option_list = self.query_one(OptionList)
        option_list.focus()
        option_list.highlighted = 1 if len(self.choices) > 1 else 0  # the likeliest rival first

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        self.dismiss(self.choices[int(event.option.id)])

    def action_close(self) -> None:
        self.dismiss(None)
