"""Build step: the wheel carries the top-level config.toml (the documented defaults) as
ai_writer/studio/defaults.toml, where studio/config.py looks first. Everything else is in pyproject.toml."""

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

DEFAULTS = "config.toml"
TARGET = ("ai_writer", "studio", "defaults.toml")


class build_py_with_defaults(build_py):
    def run(self):
        super().run()
        if not self.editable_mode:  # an editable install reads the repository's own config.toml
            target = Path(self.build_lib, *TARGET)
            self.mkpath(str(target.parent))
            self.copy_file(DEFAULTS, str(target))

    def get_outputs(self, include_bytecode=True):
        outputs = super().get_outputs(include_bytecode)
        return outputs if self.editable_mode else [*outputs, str(Path(self.build_lib, *TARGET))]


setup(cmdclass={"build_py": build_py_with_defaults})
