"""The online loop: every answer has an id and is logged as an exposure; later interactions are
attributed to what was shown; live quality per model version and arm; online experiments
(interleaving and A/B). Pure parts: :mod:`.exposures`, :mod:`.attribution`, :mod:`.live`,
:mod:`.experiments`; :mod:`.monitor` joins the Kafka topics and publishes the figures."""

from typing import Final

__all__ = ["ONLINE_STATUS"]

#: The monitor's document in the snapshot store: live quality and experiment results, read by
#: every server replica (as the builder's status document is).
ONLINE_STATUS: Final = "online-status.json"
