"""The simulator toolkit: one base every app simulator stands on, so each keeps only its app's wire format.

`SimulatorBase` owns seeded people and their mutations, the simulated clock, the admission of every
request (credentials, authorization, injected faults, rate limits), refusals in the app's error format and
the `/_sim/*` control endpoints (records created, updated, deleted, purged, restored; the clock advanced);
`Outbox` sends an app's webhooks with its retry rules; `OAuthServer` serves an app's OAuth endpoints;
`serve` puts a simulator on 127.0.0.1 with every constructor knob on the command line.
"""

from connectors.simulation.answers import Refusal, json_response
from connectors.simulation.base import Handler, SimulatorBase
from connectors.simulation.clock import SimClock
from connectors.simulation.control import Controllable
from connectors.simulation.faults import Faults
from connectors.simulation.limits import DailyBudget, Limit, RollingWindow
from connectors.simulation.oauth import SIM_CLIENT_ID, SIM_CLIENT_SECRET, OAuthQuirks, OAuthServer
from connectors.simulation.people import EDITABLE, EPOCH_MS, FieldChange, People, Person
from connectors.simulation.querying import TokenStream, boolean
from connectors.simulation.serving import Knob, knobs, serve, with_knobs
from connectors.simulation.tokens import decode_token, encode_token
from connectors.simulation.webhooks import Delivery, Outbox, RetryPolicy, Sent

__all__ = [
    "EDITABLE",
    "EPOCH_MS",
    "SIM_CLIENT_ID",
    "SIM_CLIENT_SECRET",
    "Controllable",
    "DailyBudget",
    "Delivery",
    "Faults",
    "FieldChange",
    "Handler",
    "Knob",
    "Limit",
    "OAuthQuirks",
    "OAuthServer",
    "Outbox",
    "People",
    "Person",
    "Refusal",
    "RetryPolicy",
    "RollingWindow",
    "Sent",
    "SimClock",
    "SimulatorBase",
    "TokenStream",
    "decode_token",
    "encode_token",
    "json_response",
    "knobs",
    "serve",
    "boolean",
    "with_knobs",
]
