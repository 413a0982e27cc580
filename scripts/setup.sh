#!/usr/bin/env bash
# One-time setup on a fresh Debian/Ubuntu host (run as root, or with sudo): the packages
# node-kvm needs, the npm install (builds the native addon and the TypeScript), and the
# default guest image (Debian kernel + busybox initramfs, cached in ~/.cache/node-kvm).
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive
# The Debian packages, one list for this script and .ci/run (scripts/apt-packages.txt):
# build-essential/python3: the addon; qemu-system-x86: the nested lab; busybox-static, cpio,
# xz-utils, zstd: guest images; iproute2, iperf3: netns/TAP tests and the net bench; tshark:
# pcap checks; acpica-tools: iasl cross-check of our ACPI tables in the unit tests; memtest86+:
# a guest nobody here wrote, booted by the compat tier (test/linux/compat.test.ts).
apt-get update -qq
apt-get install -y -qq --no-install-recommends $(cat scripts/apt-packages.txt) >/dev/null
# npm ci, unless it refuses the lock: a registry mirror that serves only this platform's optional
# packages (rollup's, under vitest) makes npm write a lock that its own `npm ci` calls out of
# sync. npm install then installs the same versions and builds the same way.
npm ci || { echo "setup: npm ci refused package-lock.json; using npm install" >&2; npm install; }
node bin/node-kvm.js image build
node bin/node-kvm.js doctor || true
