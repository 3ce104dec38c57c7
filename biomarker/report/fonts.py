"""The Unicode TrueType fonts the report embeds.

Why embed: fpdf2's PDF core fonts cover Latin-1 only, so an em dash, a curly quote or a name such as "Łucja" or
"Nguyễn" typed as the patient identifier would fail; an embedded DejaVu subset renders them, the same on every
printer, and keeps the text extractable (a ToUnicode map, which the tests read back). DejaVu ships with Debian
(`fonts-dejavu-core`) and inside matplotlib (a dependency of this project), so one of the two is always present;
the package is located without importing it.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

from biomarker.report.errors import ReportError

SYSTEM_DIR = Path("/usr/share/fonts/truetype/dejavu")
FILES = {"regular": "DejaVuSans.ttf", "bold": "DejaVuSans-Bold.ttf", "mono": "DejaVuSansMono.ttf"}


@dataclass(frozen=True)
class FontFiles:
    regular: Path
    bold: Path
    mono: Path


def _matplotlib_dir() -> Path | None:
    spec = importlib.util.find_spec("matplotlib")  # finds the package without running its (slow) import
    if spec is None or spec.origin is None:
        return None
    return Path(spec.origin).parent / "mpl-data" / "fonts" / "ttf"


def font_files() -> FontFiles:
    """The first folder holding all three DejaVu files: the system's, else matplotlib's."""
    folders = [SYSTEM_DIR, _matplotlib_dir()]
    for folder in folders:
        if folder is not None and all((folder / name).is_file() for name in FILES.values()):
            return FontFiles(**{style: folder / name for style, name in FILES.items()})
    searched = ", ".join(str(folder) for folder in folders if folder is not None)
    raise ReportError(f"no DejaVu Sans fonts ({', '.join(FILES.values())}) in {searched}: "
                      "install fonts-dejavu-core (Debian) or matplotlib")
