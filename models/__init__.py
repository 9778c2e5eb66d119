from . import document_email_mixin
from . import mail_mail
from . import res_company
from . import res_config_settings
from . import account_move
from . import sale_order
from . import account_payment
