"""Prefect flows over :mod:`vfxmatte.pipeline` (see docs/FLOWS.md).

``matte-shot`` mattes one shot in chunks on a GPU worker; ``matte-new-shots`` finds new shots in a
drop folder or manifest and runs ``matte-shot`` for each.  Importing this package turns Prefect's
telemetry and analytics off (unless the environment already says otherwise) before Prefect is
imported; the library (:mod:`vfxmatte`) never imports Prefect.
"""

import os

# No outbound network: no analytics, no telemetry; a patient ephemeral server on a loaded machine.
OFFLINE_DEFAULTS = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_CLOUD_ENABLE_ORCHESTRATION_TELEMETRY": "false",
    "PREFECT_TELEMETRY_ENABLE_RESOURCE_METRICS": "false",
    "DO_NOT_TRACK": "1",
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "90",
}
for _name, _value in OFFLINE_DEFAULTS.items():
    os.environ.setdefault(_name, _value)
