from . import test_smtp_settings
