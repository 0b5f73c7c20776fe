#!/usr/bin/env bash
# Builds dist/iot-agent_<version>_all.deb (or into OUTDIR) and prints its path.
#
# The agent and its production dependencies are bundled by esbuild (packaging/bundle.mjs)
# into a few ES modules, so the package holds no node_modules tree: about 4 MB installed
# rather than the ~85 MB of a copied production node_modules. No native code: the package
# is architecture "all" and runs on the distribution's nodejs (>= 20, Debian trixie).
#
# usage: scripts/build-deb.sh [OUTDIR]     (needs npm ci first; no root needed)
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
outdir=${1:-$repo/dist}

version=$(node -p 'require("./package.json").version')
[[ "$version" =~ ^[0-9]+\.[0-9]+\.[0-9]+([~+.-][A-Za-z0-9.~+-]*)?$ ]] || { echo "build-deb: odd version $version" >&2; exit 1; }
[ -x node_modules/.bin/esbuild ] || { echo "build-deb: esbuild is missing: run npm ci" >&2; exit 1; }
command -v dpkg-deb >/dev/null || { echo "build-deb: dpkg-deb is missing (Debian package dpkg)" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
root=$work/root
lib=$root/usr/lib/iot-agent

# The code: the bundle, and a package.json beside it ("type": "module" makes Node load
# the chunks as ES modules; the version is baked into the bundle, so this one has none).
node packaging/bundle.mjs "$work/bundle"
mkdir -p "$lib"
cp -r "$work/bundle/dist" "$lib/"
node -e 'const p = require("./package.json"); process.stdout.write(JSON.stringify({ name: p.name, private: true, type: "module", license: p.license }, null, 2) + "\n")' >"$lib/package.json"
find "$lib" -type d -exec chmod 0755 {} + && find "$lib" -type f -exec chmod 0644 {} +
chmod 0755 "$lib/dist/agent/cli.js"

# Every chunk must load outside this tree: a module the bundler left unresolved fails
# here rather than on a board. (Loading runs only module top levels; nothing starts.)
(cd / && node --disable-warning=DEP0005 --input-type=module -e '
  import { readdirSync } from "node:fs";
  const dir = process.argv[1];
  for (const f of readdirSync(dir)) await import(`${dir}/${f}`);
' "$lib/dist/agent/chunks") || { echo "build-deb: the bundle does not load (see above)" >&2; exit 1; }

# /usr/bin/iot-agent: bundled dependencies are no longer under node_modules, so Node would
# print tss.js's Buffer() deprecation warning on every run; silence that one warning only.
install -D -m 0755 /dev/stdin "$root/usr/bin/iot-agent" <<'WRAPPER'
#!/bin/sh
exec /usr/bin/node --disable-warning=DEP0005 /usr/lib/iot-agent/dist/agent/cli.js "$@"
WRAPPER

# systemd units, users, directories, polkit rule, default config, profiles, docs.
units=$root/usr/lib/systemd/system
install -D -m 0644 -t "$units" systemd/iot-agent.service systemd/iot-agent-hardening.service systemd/iot-agent-harden-apply@.service
for extra in systemd/*.service; do
  case "$(basename "$extra")" in
    iot-agent.service|iot-agent-hardening.service|iot-agent-harden-apply@.service) ;;
    *) install -m 0644 "$extra" "$units/" ;;   # e.g. the hardening guard, once it exists
  esac
done
install -D -m 0644 -t "$units/iot-agent.service.d" packaging/systemd/iot-agent.service.d/restart-backoff.conf
install -D -m 0644 -t "$units/systemd-time-wait-sync.service.d" packaging/systemd/systemd-time-wait-sync.service.d/50-iot-agent-bounded.conf
install -D -m 0644 systemd/sysusers.d/iot-agent.conf "$root/usr/lib/sysusers.d/iot-agent.conf"
install -D -m 0644 systemd/tmpfiles.d/iot-agent.conf "$root/usr/lib/tmpfiles.d/iot-agent.conf"
install -D -m 0644 packaging/polkit/50-iot-agent.rules "$root/usr/share/polkit-1/rules.d/50-iot-agent.rules"
install -D -m 0644 config/config.yaml "$root/etc/iot-agent/config.yaml"
install -D -m 0644 -t "$root/usr/share/iot-agent/profiles" "$work"/bundle/profiles/*.yaml
install -D -m 0644 README.md "$root/usr/share/doc/iot-agent/README.md"
install -D -m 0644 packaging/debian/copyright "$root/usr/share/doc/iot-agent/copyright"

# Control files.
mkdir -p "$root/DEBIAN"
installed_kb=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
sed -e "s/@VERSION@/$version/" -e "s/@INSTALLED_SIZE@/$installed_kb/" packaging/debian/control >"$root/DEBIAN/control"
install -m 0644 packaging/debian/conffiles "$root/DEBIAN/conffiles"
install -m 0755 -t "$root/DEBIAN" packaging/debian/postinst packaging/debian/prerm packaging/debian/postrm

mkdir -p "$outdir"
deb=$outdir/iot-agent_${version}_all.deb
dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >/dev/null
echo "build-deb: $(basename "$deb"): $(du -k "$deb" | cut -f1) kB, ${installed_kb} kB installed" >&2
echo "$deb"
