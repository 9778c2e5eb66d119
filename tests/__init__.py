from . import test_smtp_settings
from . import test_send_wizard
from . import test_payment_email
