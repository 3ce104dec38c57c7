"""Place a report's words on one A4 page with fpdf2 (a maintained, pure-Python PDF library).

Why this shape: a chart page is read in seconds, so the decision sits in a large coloured band near the top (red
for "refer", green for "no sign"; the words carry the meaning, the colour only draws the eye), the patient and
the time come first, and the caveat sits in a box no reader can miss. Everything is text (no images), so the
PDF stays small, prints sharply and its fields can be read back by software and tests.

Fonts: a page whose every character is in Windows-1252 (all of Portuguese and English, dashes and curly quotes
included) is set in the PDF standard fonts Helvetica and Courier, which every conforming reader carries, so
nothing is embedded; any other character (an identifier such as "Łucja" or "Nguyễn") embeds DejaVu. Why: parsing
and subsetting DejaVu was 96 % of a report's cost (0.22 s a page), which made a FHIR export of 1,000 results with
their PDFs take ten minutes.
"""

from __future__ import annotations

from dataclasses import astuple
from datetime import datetime, timezone

from fpdf import FPDF
from fpdf.enums import XPos, YPos

from biomarker.report.content import ReportContent
from biomarker.report.errors import ReportError
from biomarker.report.fonts import font_files

MARGIN_MM = 18.0
LABEL_W_MM = 46.0  # the label column of the key/value blocks
SANS, MONO = "DejaVu", "DejaVuMono"
STANDARD_FONTS = {SANS: "helvetica", MONO: "courier"}  # used when every character fits STANDARD_ENCODING
STANDARD_ENCODING = "windows-1252"
# Spaces the locale data uses that Windows-1252 lacks, set as the no-break space it has (same look, same meaning):
# Babel puts a narrow no-break space before "PM" in English times.
STANDARD_SPACES = str.maketrans({"\u202f": "\u00a0", "\u2009": "\u00a0"})

INK = (33, 33, 33)
MUTED = (97, 97, 97)
RULE = (189, 189, 189)
POSITIVE_BAND = (183, 28, 28)  # deep red: refer
NEGATIVE_BAND = (27, 94, 32)  # deep green: no sign
BAND_TEXT = (255, 255, 255)
CAVEAT_FILL = (255, 243, 205)
CAVEAT_EDGE = (214, 158, 46)

# PDF /Lang wants a BCP 47 tag; the catalog's languages are POSIX-style.
PDF_LANG = {"pt_BR": "pt-BR", "en": "en"}


class _Page(FPDF):
    """An A4 page with the embedded fonts and the report's footer."""

    def __init__(self, footer_text: str, *, embed_fonts: bool):
        super().__init__(orientation="portrait", unit="mm", format="A4")
        self._footer_text = footer_text
        self._families = {} if embed_fonts else STANDARD_FONTS
        if embed_fonts:
            fonts = font_files()
            self.add_font(SANS, "", str(fonts.regular))
            self.add_font(SANS, "B", str(fonts.bold))
            self.add_font(MONO, "", str(fonts.mono))
        else:
            self.core_fonts_encoding = STANDARD_ENCODING
        self.set_margins(MARGIN_MM, MARGIN_MM, MARGIN_MM)
        self.set_auto_page_break(True, margin=MARGIN_MM)

    def normalize_text(self, text: str) -> str:
        return super().normalize_text(text if self._families is not STANDARD_FONTS else text.translate(STANDARD_SPACES))

    def set_font(self, family: str | None = None, style: str = "", size: float = 0) -> None:
        """The page's own family for SANS or MONO: DejaVu when embedded, else the standard font."""
        super().set_font(self._families.get(family, family), style, size)

    @property
    def width(self) -> float:
        return self.w - self.l_margin - self.r_margin

    def footer(self) -> None:
        self.set_y(-12)
        self.set_font(SANS, "", 7.5)
        self.set_text_color(*MUTED)
        self.cell(0, 4, self._footer_text, align="C")

    # ------------------------------------------------------------------------------------------ pieces
    def text_block(self, text: str, size: float, *, style: str = "", color=INK, line: float | None = None,
                   family: str = SANS, width: float = 0, indent: float = 0) -> None:
        self.set_font(family, style, size)
        self.set_text_color(*color)
        self.set_x(self.l_margin + indent)
        self.multi_cell(width or self.width - indent, line or size * 0.5, text, align="L",
                        new_x=XPos.LMARGIN, new_y=YPos.NEXT)

    def heading(self, text: str) -> None:
        self.ln(3.5)
        self.text_block(text.upper(), 8.5, style="B", color=MUTED, line=4.5)
        y = self.get_y()
        self.set_draw_color(*RULE)
        self.set_line_width(0.2)
        self.line(self.l_margin, y, self.l_margin + self.width, y)
        self.ln(1.5)

    def field(self, label: str, value: str, *, size: float = 10.5, style: str = "", family: str = SANS) -> None:
        y = self.get_y()
        self.set_font(SANS, "", 9)
        self.set_text_color(*MUTED)
        self.set_xy(self.l_margin, y + (size - 9) * 0.18)
        self.multi_cell(LABEL_W_MM - 2, 4.6, label, align="L", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        below_label = self.get_y()
        self.set_xy(self.l_margin + LABEL_W_MM, y)
        self.set_font(family, style, size)
        self.set_text_color(*INK)
        self.multi_cell(self.width - LABEL_W_MM, size * 0.5, value, align="L", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        self.set_y(max(self.get_y(), below_label) + 1.2)

    def decision_band(self, decision: str, probability: str, positive: bool) -> None:
        top, height = self.get_y() + 1, 24.0
        self.set_fill_color(*(POSITIVE_BAND if positive else NEGATIVE_BAND))
        self.rect(self.l_margin, top, self.width, height, style="F")
        self.set_text_color(*BAND_TEXT)
        self.set_xy(self.l_margin + 6, top + 3.5)
        self.set_font(SANS, "B", 19)
        self.cell(self.width - 12, 10, decision, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        self.set_xy(self.l_margin + 6, top + 14.5)
        self.set_font(SANS, "", 11)
        self.cell(self.width - 12, 6, probability, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        self.set_y(top + height + 3)

    def caveat_box(self, heading: str, lines: tuple[str, ...]) -> None:
        self.ln(5)
        top = self.get_y()
        pad = 4.0
        # measure first (a dry run), so the box is drawn behind the text at its real height
        self.set_font(SANS, "", 9.5)
        height = 5.5 + sum(len(self.multi_cell(self.width - 2 * pad, 4.6, text, dry_run=True, output="LINES")) * 4.6
                           + 1.5 for text in lines) - 1.5 + 2 * pad
        self.set_fill_color(*CAVEAT_FILL)
        self.set_draw_color(*CAVEAT_EDGE)
        self.set_line_width(0.4)
        self.rect(self.l_margin, top, self.width, height, style="DF")
        self.set_y(top + pad)
        self.text_block(heading, 10, style="B", line=5.5, indent=pad, width=self.width - 2 * pad)
        for text in lines:
            self.text_block(text, 9.5, line=4.6, indent=pad, width=self.width - 2 * pad)
            self.ln(1.5)
        self.set_y(top + height)


def render(content: ReportContent, *, printed_at: datetime) -> bytes:
    """The PDF bytes of `content`: one A4 page, metadata set (title, author, language, dates); DejaVu embedded
    only when a character needs it."""
    pdf = _Page(content.footer, embed_fonts=not fits_standard_fonts(content))
    pdf.set_title(content.subject)  # names the result: what a viewer's window or a file index shows
    pdf.set_author("biomarker")
    pdf.set_creator("biomarker")
    pdf.set_subject(content.subtitle)
    pdf.set_lang(PDF_LANG[content.language])
    stamp = printed_at if printed_at.tzinfo else printed_at.replace(tzinfo=timezone.utc)
    pdf.set_creation_date(stamp)  # the print time, not the clock of the call: same inputs, same file
    pdf.add_page()

    pdf.text_block(content.title, 17, style="B", line=8)
    pdf.text_block(content.subtitle, 10, color=MUTED, line=5)

    pdf.heading(content.patient_heading)
    pdf.field(content.patient_label, content.patient_value, size=14, style="B")
    if content.patient_note:
        pdf.text_block(content.patient_note, 8.5, color=MUTED, line=4.2, indent=LABEL_W_MM)
        pdf.ln(1.2)
    for label, value in content.details:
        pdf.field(label, value)

    pdf.heading(content.decision_heading)
    pdf.decision_band(content.decision, content.probability, content.positive)
    pdf.text_block(content.next_step, 10.5, style="B", line=5.2)

    pdf.heading(content.quality_heading)
    pdf.text_block(content.quality, 10, line=5)
    pdf.ln(1)
    pdf.text_block(content.audio, 9, color=MUTED, line=4.5)
    pdf.text_block(content.audio_sha256, 8, family=MONO, color=MUTED, line=4.2)

    pdf.heading(content.model_heading)
    for label, value in content.model:
        pdf.field(label, value)
    if content.weights_sha256 is not None:
        pdf.field(content.weights_label, content.weights_sha256, size=8, family=MONO)
    if content.weights_note:
        pdf.field(content.weights_label if content.weights_sha256 is None else "", content.weights_note, size=9)

    pdf.caveat_box(content.caveat_heading, content.caveats)

    pdf.ln(5)
    pdf.text_block(content.printed, 9, color=MUTED, line=4.6)
    pdf.text_block(content.result_id, 9, color=MUTED, line=4.6)
    if pdf.pages_count != 1:
        raise ReportError(f"the report of {content.result_id} did not fit on one page ({pdf.pages_count} pages)")
    return bytes(pdf.output())


def fits_standard_fonts(content: ReportContent) -> bool:
    """True when every character of the page's text is in the standard fonts' encoding."""
    def texts(value) -> list[str]:
        if isinstance(value, str):
            return [value]
        if isinstance(value, tuple):
            return [text for item in value for text in texts(item)]
        return []

    try:
        for text in texts(astuple(content)):
            text.translate(STANDARD_SPACES).encode(STANDARD_ENCODING)
    except UnicodeEncodeError:
        return False
    return True
