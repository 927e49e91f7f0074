"""An SIA DC-09 alarm receiver, to see what the home's sia-transmitter reports: pysiaalarm, the
library behind Home Assistant's `sia` integration, listening for one account. Each event it
accepts (and acknowledges) is printed as one JSON line; "ready" once it listens.

    python sia-receiver.py PORT TCP|UDP ACCOUNT [KEY]

`just sia-receiver` runs it on 12128 for account 1234, as config/sia-transmitter.toml reports.
The transmitter's tests run it too (crates/testkit/src/sia.rs). Needs pysiaalarm (3.1.1).
"""
import asyncio
import json
import sys

from pysiaalarm import CommunicationsProtocol, SIAAccount
from pysiaalarm.aio import SIAClient

port, transport, account = int(sys.argv[1]), sys.argv[2].upper(), sys.argv[3]
key = sys.argv[4] if len(sys.argv) > 4 and sys.argv[4] else None


async def on_event(event):
    print(json.dumps({
        "code": event.code, "ri": event.ri, "message": event.message, "account": event.account,
        "sequence": event.sequence, "encrypted": bool(event.encrypted),
        "message_type": getattr(event.message_type, "value", event.message_type),
        "partition": event.partition, "timestamp": str(event.timestamp),
        "description": event.sia_code.description if event.sia_code else None,
    }), flush=True)


async def main():
    client = SIAClient("127.0.0.1", port, [SIAAccount(account, key)], function=on_event,
                       protocol=CommunicationsProtocol[transport])
    await client.async_start()
    print("ready", flush=True)
    await asyncio.Event().wait()


asyncio.run(main())
