from . import document_email_wizard
from . import document_email_result
