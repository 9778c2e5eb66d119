from . import document_email_wizard
