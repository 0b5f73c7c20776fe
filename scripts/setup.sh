#!/usr/bin/env bash
# Installs the Debian packages that iot-agent's tests, benchmarks and demo need.
# Idempotent: installs only what is missing, and does nothing when all is there.
set -euo pipefail

packages=(
  swtpm swtpm-tools                 # software TPM 2.0 (libtpms) for QA and tests
  tpm2-tools libtss2-tcti-swtpm0    # independent TPM implementation to cross-check against
  iptables iproute2                 # firewall and network namespaces for hardening tests
  hping3 nmap python3-scapy         # crafted packets against the firewall
  kmod procps systemd               # modprobe -C, sysctl and systemd-analyze for hardening tests
  python3-seccomp                   # the systemd units' syscall filter, applied without systemd in tests
  debootstrap systemd-container     # the boot test: a Debian trixie root booted with systemd-nspawn
  faketime                          # libfaketime: an agent whose clock is hours off, or jumps
  tinyproxy-bin                     # a real HTTPS proxy (CONNECT, Basic credentials) for the proxy tests; the executable only, no service
  gnuplot-nox                       # the soak benchmark's plot
  python3 openssl ca-certificates
)

missing=()
for pkg in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$pkg")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all ${#packages[@]} packages present"
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "setup: missing Debian packages: ${missing[*]}" >&2
  echo "setup: run this script as root (sudo $0), or install them with: sudo apt-get install ${missing[*]}" >&2
  exit 1
fi

echo "setup: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "setup: done"
