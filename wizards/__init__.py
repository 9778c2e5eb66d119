from . import document_email_wizard
from . import account_payment_register
from . import print_prenumbered_checks
