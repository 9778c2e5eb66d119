from . import test_smtp_settings
from . import test_send_wizard
from . import test_tours
from . import test_reliability
from . import test_aged_receivable
from . import test_aged_receivable_email
from . import test_payment_email
from . import test_translation
