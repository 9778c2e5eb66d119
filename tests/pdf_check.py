"""What a rendered invoice PDF must show, read back with pdfminer (issue 22,
goal 6): each line's label as a whole token (``Item s50-1-1`` is not found
in ``Item s50-1-10``), and the Total row: the label ``Total`` and the
invoice's amount on the same row. Plain Python: tests/test_whole_pdfs.py and
bench/batch_email.py ``--check-pdfs`` both use it."""

import io
import re

# text lines this close vertically (points) are one row of the page
ROW_TOLERANCE = 3


def pdf_rows(content):
    """The rows of a PDF, top to bottom, page after page: the text lines
    sharing a baseline, their texts joined from left to right."""
    from pdfminer.high_level import extract_pages
    from pdfminer.layout import LTTextContainer, LTTextLine

    rows = []
    for page in extract_pages(io.BytesIO(content)):
        lines = [
            line
            for box in page
            if isinstance(box, LTTextContainer)
            for line in box
            if isinstance(line, LTTextLine) and line.get_text().strip()
        ]
        page_rows = []
        for line in sorted(lines, key=lambda line: -line.y0):
            cell = (line.x0, " ".join(line.get_text().split()))
            if page_rows and page_rows[-1][0] - line.y0 <= ROW_TOLERANCE:
                page_rows[-1][1].append(cell)
            else:
                page_rows.append((line.y0, [cell]))
        rows += [
            " ".join(text for _x, text in sorted(cells)) for _y, cells in page_rows
        ]
    return rows


def whole(text):
    """``text`` as a whole token (whitespace or the row's ends around it)."""
    return re.compile(rf"(?<!\S){re.escape(' '.join(text.split()))}(?!\S)")


def missing_from_pdf(content, labels, total):
    """What the PDF does not show: the labels not found as whole tokens,
    and "Total <amount>" if no row holds both."""
    rows = pdf_rows(content)
    missing = [
        label for label in labels if not any(whole(label).search(row) for row in rows)
    ]
    total_row = [whole("Total"), whole(total)]
    if not any(all(part.search(row) for part in total_row) for row in rows):
        missing.append(f"Total {total}")
    return missing
