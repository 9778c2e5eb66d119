from . import document_email_wizard
from . import account_aged_receivable_wizard
