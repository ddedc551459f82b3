"""The platform-agnostic heart: one question in, one progressively drawn answer out.

The relay owns the rules every platform shares — de-duplication, allow-lists, limits,
per-thread ordering, the global concurrency cap, the turn record in the store — so the
Slack and Discord adapters stay thin. It never imports a platform SDK.

One module per job: `admission` (who is answered), `ordering` (one answer per thread at
a time, the concurrency cap), `record` (the turn in the store), `dispatch` (backend
events to the reply), `liveness` and `recovery` (turns of crashed processes), and
`core`, the `Relay` facade the adapters use.
"""

from bridge.relay.core import Relay
from bridge.relay.record import Outcome

__all__ = ["Outcome", "Relay"]
