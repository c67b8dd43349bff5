"""Go's text/tabwriter, as docker's tables use it (elastic tabstops).

Docker prints every table (``images``, ``ps``, ``volume ls``...) by writing tab-terminated
cells into ``tabwriter.NewWriter(out, 10, 1, 3, ' ', 0)`` (minwidth 10, tabwidth 1,
padding 3, spaces). The rules, reimplemented here from their description (no code shared):

- a cell is text terminated by a tab; the text after a line's last tab is not a cell: it is
  written as it is and never padded;
- a column is a run of consecutive lines that all have a cell in that position: it is as
  wide as its widest cell plus the padding, and at least minwidth; a line with fewer cells
  ends the column (and so, a line without tabs ends every column);
- cell width is counted in terminal columns, as docker's copy of tabwriter does it (East
  Asian wide characters count 2, combining marks 0).

    align("NAME\\tSIZE\\nbusybox\\t4.26MB\\n")  ->  "NAME      SIZE\\nbusybox   4.26MB\\n"
    render_table(["NAME", "SIZE"], [["busybox", "4.26MB"]])
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

__all__ = [
    "ALIGN_RIGHT",
    "DEBUG",
    "TAB_INDENT",
    "Writer",
    "align",
    "display_width",
    "render_table",
]

ALIGN_RIGHT = 4
TAB_INDENT = 16
DEBUG = 32


def display_width(text: str) -> int:
    """Terminal columns ``text`` takes (go-runewidth's StringWidth, non-CJK locale)."""
    if text.isascii():
        return len(text)
    import unicodedata

    width = 0
    for char in text:
        if unicodedata.combining(char) or unicodedata.category(char) in ("Mn", "Me", "Cf"):
            continue
        if char < " " or "\x7f" <= char < "\xa0":
            continue
        width += 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1
    return width


class Writer:
    """A tabwriter: write text with tab-terminated cells, then :meth:`flush` it aligned.

    ``flags`` combines ALIGN_RIGHT, TAB_INDENT and DEBUG as Go's do (docker passes 0).
    Cells end only at tabs: Go's soft '\\v' cells and '\\f' flushes are not supported.
    """

    def __init__(
        self,
        minwidth: int = 10,
        tabwidth: int = 1,
        padding: int = 3,
        padchar: str = " ",
        flags: int = 0,
    ) -> None:
        self.minwidth = minwidth
        self.tabwidth = tabwidth
        self.padding = padding
        self.padchar = padchar
        self.flags = flags & ~ALIGN_RIGHT if padchar == "\t" else flags
        self._buffer: list[str] = []

    def write(self, text: str) -> None:
        self._buffer.append(text)

    def flush(self) -> str:
        """Everything written so far, aligned; the writer is empty afterwards."""
        text = "".join(self._buffer)
        self._buffer.clear()
        lines = [line.split("\t") for line in text.split("\n")]
        sizes = [[len(c) if c.isascii() else display_width(c) for c in line] for line in lines]
        out: list[str] = []
        self._format(lines, sizes, [], 0, len(lines), out)
        return "".join(out)

    def _format(
        self,
        lines: list[list[str]],
        sizes: list[list[int]],
        widths: list[int],
        first: int,
        end: int,
        out: list[str],
    ) -> None:
        column = len(widths)
        this = first
        while this < end:
            if column >= len(lines[this]) - 1:
                this += 1
                continue
            self._write_lines(lines, sizes, widths, first, this, out)
            first = this
            width = self.minwidth
            while this < end and column < len(lines[this]) - 1:
                width = max(width, sizes[this][column] + self.padding)
                this += 1
            widths.append(width)
            self._format(lines, sizes, widths, first, this, out)
            widths.pop()
            first = this
        self._write_lines(lines, sizes, widths, first, end, out)

    def _write_lines(
        self,
        lines: list[list[str]],
        sizes: list[list[int]],
        widths: list[int],
        first: int,
        end: int,
        out: list[str],
    ) -> None:
        plain = not self.flags and self.padchar != "\t"
        for index in range(first, end):
            if plain:  # docker's case, kept fast: cells padded with padchar, left-aligned
                line, size = lines[index], sizes[index]
                padded = min(len(widths), len(line))
                out.extend(
                    line[j] + self.padchar * (widths[j] - size[j]) for j in range(padded)
                )
                out.extend(line[padded:])
            else:
                self._write_line(lines[index], sizes[index], widths, out)
            if index + 1 < len(lines):
                out.append("\n")

    def _write_line(
        self, line: list[str], size: list[int], widths: list[int], out: list[str]
    ) -> None:
        use_tabs = bool(self.flags & TAB_INDENT)  # only for leading empty cells
        for position, cell in enumerate(line):
            if position and self.flags & DEBUG:
                out.append("|")
            padded = position < len(widths)
            if not cell:
                if padded:
                    out.append(self._padding(0, widths[position], use_tabs))
                continue
            use_tabs = False
            if padded and self.flags & ALIGN_RIGHT:
                out.append(self._padding(size[position], widths[position], False))
                out.append(cell)
                continue
            out.append(cell)
            if padded:
                out.append(self._padding(size[position], widths[position], False))

    def _padding(self, text_width: int, cell_width: int, use_tabs: bool) -> str:
        if self.padchar == "\t" or use_tabs:
            if self.tabwidth == 0:
                return ""
            cell_width = -(-cell_width // self.tabwidth) * self.tabwidth
            return "\t" * -(-(cell_width - text_width) // self.tabwidth)
        return self.padchar * (cell_width - text_width)


def align(
    text: str,
    *,
    minwidth: int = 10,
    tabwidth: int = 1,
    padding: int = 3,
    padchar: str = " ",
    flags: int = 0,
) -> str:
    """Align tab-terminated cells in ``text``; defaults are docker's table settings."""
    writer = Writer(minwidth, tabwidth, padding, padchar, flags)
    writer.write(text)
    return writer.flush()


def render_table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """A docker table: a header line, then one line per row, columns aligned."""
    lines = ["\t".join(headers)]
    lines.extend("\t".join(row) for row in rows)
    return align("\n".join(lines) + "\n")
