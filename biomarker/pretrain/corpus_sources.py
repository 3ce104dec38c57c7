"""Where the pretraining corpus comes from: the Debian packages of real speech (`REAL_SOURCES`, with how each names
its speakers), the fortune texts espeak-ng reads (`TEXT_SOURCES`), and the synthetic voices for training and for
held-out evaluation. `biomarker.pretrain.corpus` builds from these tables (and re-exports them)."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


def _asterisk_speaker(path: Path) -> str:
    return path.relative_to("/usr/share/asterisk/sounds").parts[0]


def _fillets_speaker(path: Path) -> str:
    # <level>-<speaker>-<line>.ogg; the two main fish are "m" and "v", minor characters have other codes
    parts = path.stem.split("-")
    language = path.parent.name
    return f"{language}-{parts[1] if len(parts) > 2 else 'misc'}"


def _language_dir_speaker(depth: int) -> Callable[[Path], str]:
    """Speaker = a directory name `depth` levels up (one speaker set per language is all these packages say)."""
    return lambda path: path.parents[depth].name


@dataclass(frozen=True)
class RealSource:
    """One group of real recordings installed by a Debian package."""

    name: str
    package: str
    root: str
    pattern: str
    language: str
    license: str
    speaker_of: Callable[[Path], str]
    held_out: bool = False
    exclude: str | None = None  # regex on the path

    def files(self) -> list[Path]:
        paths = sorted(Path(self.root).glob(self.pattern))
        if self.exclude:
            paths = [p for p in paths if not re.search(self.exclude, str(p))]
        return paths


ASTERISK = "/usr/share/asterisk/sounds"
REAL_SOURCES: tuple[RealSource, ...] = (
    RealSource("asterisk-en-us-allison", "asterisk-core-sounds-en-wav", f"{ASTERISK}/en_US_f_Allison", "**/*.wav",
               "en-US", "CC-BY-SA-3.0", _asterisk_speaker, exclude="/silence/"),
    RealSource("asterisk-es-mx-allison", "asterisk-core-sounds-es-wav", f"{ASTERISK}/es_MX_f_Allison", "**/*.wav",
               "es-MX", "CC-BY-SA-3.0", _asterisk_speaker, exclude="/silence/"),
    RealSource("asterisk-fr-ca-june", "asterisk-core-sounds-fr-wav", f"{ASTERISK}/fr_CA_f_June", "**/*.wav",
               "fr-CA", "CC-BY-SA-3.0", _asterisk_speaker, exclude="/silence/"),
    RealSource("asterisk-it-carlo", "asterisk-core-sounds-it-wav", f"{ASTERISK}/it_IT_m_Carlo", "**/*.wav",
               "it-IT", "CC-BY-3.0", _asterisk_speaker, exclude="/silence/"),
    RealSource("asterisk-ru-ivrvoice", "asterisk-core-sounds-ru-wav", f"{ASTERISK}/ru_RU_f_IvrvoiceRU", "**/*.wav",
               "ru-RU", "CC-BY-3.0", _asterisk_speaker, exclude="/silence/"),
    RealSource("asterisk-it-menardi", "asterisk-prompt-it-menardi-wav", f"{ASTERISK}/it_IT_f_Menardi", "**/*.wav",
               "it-IT", "CC-BY-SA-3.0", _asterisk_speaker, held_out=True, exclude="/silence/"),
    RealSource("asterisk-es-co", "asterisk-prompt-es-co", f"{ASTERISK}/es", "**/*.gsm", "es-CO", "GPL",
               lambda p: "es-co", held_out=True),
    RealSource("asterisk-fr-armelle", "asterisk-prompt-fr-armelle", f"{ASTERISK}/fr", "**/*.gsm", "fr-FR", "GPL",
               lambda p: "fr-armelle", held_out=True),
    RealSource("fillets-ng-cs", "fillets-ng-data-cs", "/usr/share/games/fillets-ng/sound", "*/cs/*.ogg", "cs",
               "GPL-2", _fillets_speaker),
    RealSource("fillets-ng-nl", "fillets-ng-data-nl", "/usr/share/games/fillets-ng/sound", "*/nl/*.ogg", "nl",
               "GPL-2", _fillets_speaker),
    RealSource("klettres", "klettres-data", "/usr/share/klettres", "*/*/*.ogg", "21 languages", "GPL-2+",
               _language_dir_speaker(1)),
    RealSource("ktuberling", "ktuberling-data", "/usr/share/ktuberling/sounds", "*/*.*", "~25 languages",
               "GPL-2+", _language_dir_speaker(0), exclude=r"\.soundtheme$"),
    RealSource("gcin-voice", "gcin-voice", "/usr/share/gcin-voice/ogg", "*/*.ogg", "zh", "GPL-3/LGPL-3, CC-BY-3.0",
               lambda p: "gcin"),
)


@dataclass(frozen=True)
class TextSource:
    """Sentences for espeak-ng, from Debian fortune packages (plain UTF-8, '%'-separated)."""

    language: str  # espeak-ng voice name
    package: str
    pattern: str  # glob under /usr/share/games/fortunes
    license: str


TEXT_SOURCES: tuple[TextSource, ...] = (
    TextSource("pt-br", "fortunes-br", "brasil", "GPL-2+"),
    TextSource("es", "fortunes-es", "es/*.fortunes.u8", "GPL-2+"),
    TextSource("it", "fortunes-it", "it/*.u8", "GPL-2+"),
    TextSource("de", "fortunes-de", "de/*.u8", "GPL-2+"),
    TextSource("ru", "fortunes-ru", "ru/*.u8", "GPL-2"),
    TextSource("cs", "fortunes-cs", "cs/*.u8", "GPL"),
    TextSource("en-us", "fortunes-min", "fortunes.u8", "BSD"),
)
# espeak-ng variants: the training voices and the pt-BR voices kept back for held-out evaluation
TRAIN_SYNTH_VARIANTS = ("m1", "m2", "m3", "m4", "m5", "m6", "f1", "f2", "f3", "f4", "klatt", "klatt3")
HELD_OUT_SYNTH_VARIANTS = ("m7", "f5")
PT_BR_SHARE = 0.5  # of synthetic time: the target language is well represented
