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
# The root's dependencies hold no platform-specific optional packages, so its lock is the same
# on every platform and npm ci takes it as it is. The vitest example has its own package.json
# (vitest's rollup and esbuild binaries differ per platform); installed here too because the
# nested lab, which runs the example's test, has no network.
npm ci
(cd examples/vitest && npm install --no-audit --no-fund)
node bin/node-kvm.js image build
node bin/node-kvm.js doctor || true
