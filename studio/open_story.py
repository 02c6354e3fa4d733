"""The story file of the open manuscript (NAME.story.toml): read at open, read again when it changes on disk.

A broken story file turns the story layer off (the manuscript is read without it) and
leaves one line to show; nothing is written over it until the author saves the panel
or fixes the file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ai_writer.backends.writing.story import Story
from ai_writer.studio.data.story_file import StoryError, load_story, save_story, story_path_for
from ai_writer.studio.i18n import tr


def _stamp(path: Path):
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_mtime_ns, stat.st_size


@dataclass
class OpenStory:
    path: Path
    story: Story = Story()
    error: str = ""  # one line when the file is broken; the story layer is off until it is fixed
    _stamp: tuple | None = None

    @classmethod
    def for_manuscript(cls, manuscript: Path) -> "OpenStory":
        opened = cls(story_path_for(manuscript))
        opened.reload()
        return opened

    @property
    def active(self) -> Story:
        """What the next request reads: the story, or nothing while the file is broken."""
        return Story() if self.error else self.story

    def reload(self) -> None:
        self._stamp = _stamp(self.path)
        try:
            self.story, self.error = load_story(self.path), ""
        except StoryError as exc:
            self.story, self.error = Story(), str(exc)

    def refresh(self) -> bool:
        """Read the file again if another program changed it since; True when it did."""
        if _stamp(self.path) == self._stamp:
            return False
        self.reload()
        return True

    def save(self, story: Story) -> str | None:
        """Write the story (atomically, the file's comments kept); None, or the one line saying why not.

        A file another program changed since it was read is not written over: its edits would be lost."""
        if _stamp(self.path) != self._stamp:
            return tr("story_changed_on_disk", path=self.path)
        try:
            save_story(self.path, story)
        except StoryError as exc:
            return str(exc)
        self.story, self.error, self._stamp = story, "", _stamp(self.path)
        return None
