"""The intrusion bench's Python peer: paho-mqtt with TCP_NODELAY and QoS 1. On a door OPEN it
commands the siren ON, the same four hops as the panel. The bench starts it where paho-mqtt is
installed: python3 paho_controller.py PORT DOOR_TOPIC SIREN_TOPIC"""

import json
import socket
import sys

import paho.mqtt.client as mqtt

port, door, siren = int(sys.argv[1]), sys.argv[2], sys.argv[3]


def on_connect(client, userdata, flags, reason_code, properties):
    client.socket().setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    client.subscribe(door, qos=1)


def on_subscribe(client, userdata, mid, reason_codes, properties):
    print("ready", flush=True)


def on_message(client, userdata, message):
    try:
        opened = json.loads(message.payload).get("state") == "OPEN"
    except (ValueError, AttributeError):
        return
    if opened:
        client.publish(siren, json.dumps({"state": "ON", "reason": "intrusion"}), qos=1)


client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-paho")
client.on_connect = on_connect
client.on_subscribe = on_subscribe
client.on_message = on_message
client.connect("127.0.0.1", port)
client.loop_forever()
