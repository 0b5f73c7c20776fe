"""A stand-in /dev/tpmrm0 for tests: a pseudo-terminal in raw mode whose other end
passes each TPM command to a real swtpm (its data port, which takes raw commands) and
writes the whole response back with one write, as the kernel's TPM character device
answers one command per write with the whole response per read. Prints the device
path on its first line, then serves until killed or until swtpm goes away."""
import os
import pty
import socket
import sys
import tty

host, port = sys.argv[1], int(sys.argv[2])
master, slave = pty.openpty()
tty.setraw(slave)
print(os.ttyname(slave), flush=True)


def read_exact(fd, n):
    data = b''
    while len(data) < n:
        chunk = os.read(fd, n - len(data))
        if not chunk:
            sys.exit(0)
        data += chunk
    return data


def recv_exact(sock, n):
    data = b''
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            sys.exit(1)
        data += chunk
    return data


tpm = socket.create_connection((host, port))
while True:
    header = read_exact(master, 10)
    size = int.from_bytes(header[2:6], 'big')
    tpm.sendall(header + read_exact(master, max(0, size - 10)))
    reply = recv_exact(tpm, 10)
    reply += recv_exact(tpm, max(0, int.from_bytes(reply[2:6], 'big') - 10))
    os.write(master, reply)
