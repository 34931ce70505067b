"""The WSGI entry point for the production server: ``healthcare.wsgi:app``."""

import os
import sys

from healthcare import create_app

# Request threads share one GIL; a waiting thread gets it after at most this long. Python's
# 5 ms default stretches the slowest requests under load; 1 ms keeps the p99 close to the p50.
sys.setswitchinterval(float(os.environ.get("HEALTHCARE_GIL_SWITCH_INTERVAL", "0.001")))

app = create_app()
