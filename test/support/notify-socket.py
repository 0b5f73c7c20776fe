"""A stand-in for systemd's notification socket: a Unix datagram socket at the path given,
printing each message as one JSON string per line. Like the service manager, it closes the
file descriptors a BARRIER=1 message carries, which is what systemd-notify waits for."""
import array
import json
import os
import socket
import sys

sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
sock.bind(sys.argv[1])
print(json.dumps("listening"), flush=True)
while True:
    message, ancillary, _flags, _address = sock.recvmsg(4096, socket.CMSG_SPACE(16 * 4))
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds = array.array("i")
            fds.frombytes(data[: len(data) - len(data) % fds.itemsize])
            for fd in fds:
                os.close(fd)
    print(json.dumps(message.decode("utf-8", "replace")), flush=True)
