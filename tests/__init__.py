from . import test_smtp_settings
from . import test_send_wizard
