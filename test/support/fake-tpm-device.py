"""A stand-in TPM character device for tests: a pseudo-terminal in raw mode whose
other end answers every command after a fixed delay, like a slow TPM behind
/dev/tpmrm0. Prints the device path on its first line, then serves until killed."""
import os
import pty
import sys
import time
import tty

delay = float(sys.argv[1]) if len(sys.argv) > 1 else 0.5
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


random_bytes = bytes(range(8))
# TPM2_GetRandom response: tag NO_SESSIONS, size, TPM_RC_SUCCESS, TPM2B_DIGEST of 8 bytes.
response = (0x8001).to_bytes(2, 'big') + (20).to_bytes(4, 'big') + (0).to_bytes(4, 'big') \
    + (8).to_bytes(2, 'big') + random_bytes

while True:
    header = read_exact(master, 10)
    size = int.from_bytes(header[2:6], 'big')
    read_exact(master, max(0, size - 10))
    time.sleep(delay)
    os.write(master, response)
