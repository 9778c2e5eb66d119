from . import aged_receivable_report
