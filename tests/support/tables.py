"""Reading the CLI's rich tables back in tests: a header row and the data rows, each a list of cell texts."""

from __future__ import annotations

__all__ = ["table", "table_rows"]


def table(output: str) -> tuple[list[str], list[list[str]]]:
    """The first table in `output`: its header cells and its rows (a cell wrapped over lines is joined)."""
    header: list[str] = []
    rows: list[list[str]] = []
    for line in output.splitlines():
        if line.startswith("┃") and not header:
            header = [cell.strip() for cell in line.strip("┃").split("┃")]
        elif line.startswith("│") and header:
            cells = [cell.strip() for cell in line.strip("│").split("│")]
            if rows and cells[0] == "":  # the continuation of a wrapped row
                rows[-1] = [f"{a} {b}".strip() for a, b in zip(rows[-1], cells, strict=True)]
            else:
                rows.append(cells)
        elif line.startswith("└") and header:
            break
    return header, rows


def table_rows(output: str) -> list[dict[str, str]]:
    """The first table's rows, each as {header: cell}."""
    header, rows = table(output)
    return [dict(zip(header, row, strict=True)) for row in rows]
