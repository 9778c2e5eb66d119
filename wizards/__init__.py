from . import document_email_wizard
from . import account_aged_receivable_wizard
from . import account_payment_register
from . import print_prenumbered_checks
from . import base_partner_merge
from . import mail_resend_partner
