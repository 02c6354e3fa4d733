"""A test app that opens one dialog at once and keeps what it was dismissed with."""

from textual.app import App

NOT_DISMISSED = object()


class DialogHost(App):
    def __init__(self, view):
        super().__init__()
        self.animation_level = "none"  # scrolling is immediate: no waits for animations
        self.view = view
        self.result = NOT_DISMISSED

    def on_mount(self) -> None:
        self.push_screen(self.view, self.dismissed)

    def dismissed(self, result) -> None:
        self.result = result
