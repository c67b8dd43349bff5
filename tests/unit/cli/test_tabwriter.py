"""berth.cli.tabwriter: Go's text/tabwriter as docker's tables use it.

The first examples are the ones in Go's text/tabwriter documentation, with their output.
"""

from __future__ import annotations

from berth.cli.tabwriter import (
    ALIGN_RIGHT,
    DEBUG,
    TAB_INDENT,
    Writer,
    align,
    display_width,
    render_table,
)


def test_go_example_tab_padding() -> None:
    writer = Writer(minwidth=0, tabwidth=8, padding=0, padchar="\t")
    writer.write("a\tb\tc\td\t.\n")
    writer.write("123\t12345\t1234567\t123456789\t.\n")
    writer.write("\n")
    assert writer.flush() == "a\tb\tc\td\t\t.\n123\t12345\t1234567\t123456789\t.\n\n"


def test_go_example_right_aligned() -> None:
    text = align(
        "a\tb\tc\td\t.\n123\t12345\t1234567\t123456789\t.\n\n",
        minwidth=5,
        tabwidth=0,
        padding=1,
        flags=ALIGN_RIGHT,
    )
    assert text == "    a     b       c         d.\n  123 12345 1234567 123456789.\n\n"


def test_go_example_elastic_columns() -> None:
    # the b's and the d's are in the second cell of their lines but not in one column
    text = align(
        "a\tb\tc\naa\tbb\tcc\naaa\t\naaaa\tdddd\teeee\n",
        minwidth=0,
        tabwidth=0,
        padding=1,
        padchar=".",
        flags=ALIGN_RIGHT | DEBUG,
    )
    assert text == "....a|..b|c\n...aa|.bb|cc\n..aaa|\n.aaaa|.dddd|eeee\n"


def test_docker_settings_pad_to_ten_and_leave_the_last_cell_alone() -> None:
    text = align("REPOSITORY\tTAG\tSIZE\nbusybox\tlatest\t4.26MB\n")
    assert text == "REPOSITORY   TAG       SIZE\nbusybox      latest    4.26MB\n"


def test_trailing_tab_pads_the_last_column() -> None:
    assert align("ID\t\nabc\t\n") == "ID        \nabc       \n"


def test_a_line_without_tabs_ends_the_columns() -> None:
    text = align("a\tb\nheader line without tabs\nlonger cell\tc\n")
    assert text == "a         b\nheader line without tabs\nlonger cell   c\n"


def test_empty_cells_and_last_line_without_newline() -> None:
    assert align("\tx\ny\tz") == "          x\ny         z"


def test_wide_and_combining_characters_count_as_displayed() -> None:
    assert display_width("abc") == 3
    assert display_width("日本") == 4
    assert display_width("e\u0301") == 1
    assert align("日本語テキスト\tx\nab\ty\n") == "日本語テキスト   x\nab               y\n"


def test_tab_indent_uses_tabs_for_leading_empty_cells_only() -> None:
    text = align("\t\tx\n", minwidth=0, tabwidth=4, padding=1, flags=TAB_INDENT)
    assert text == "\t\tx\n"
    text = align("a\t\tx\n", minwidth=0, tabwidth=4, padding=1, flags=TAB_INDENT)
    assert text == "a  x\n"


def test_flush_empties_the_writer() -> None:
    writer = Writer()
    writer.write("a\tb\n")
    assert writer.flush() == "a         b\n"
    assert writer.flush() == ""


def test_render_table() -> None:
    rows = [["data", "local"], ["a-much-longer-name", "local"]]
    assert render_table(["NAME", "DRIVER"], rows) == (
        "NAME                 DRIVER\n"
        "data                 local\n"
        "a-much-longer-name   local\n"
    )
    assert render_table(["NAME"], []) == "NAME\n"
