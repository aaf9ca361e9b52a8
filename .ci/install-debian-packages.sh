#!/usr/bin/env bash
# Install the Debian packages the tests need: what tests/servers.py starts real servers from (a
# one-node SLURM cluster with accounting: slurm-wlm, munge, slurmdbd + MariaDB; PostgreSQL),
# pdflatex with booktabs (a test compiles a sweep's summary.tex), and chromium (a test opens a
# sweep's report.html in a headless browser, offline).
#
# Safe to re-run: packages already installed are left alone (nothing is upgraded) and the
# script exits 0 at once. Needs no systemd and starts nothing: the test fixtures run private
# daemons in temp dirs on free loopback ports. Cost on a fresh Debian 12 machine: about 30 s for
# the servers (apt-get update + 50 packages, ~60 MB download), 19 s more for TeX Live, and
# chromium's 24 packages (about 290 MB installed) on top; about 0.1 s when all is installed. Without apt-get, or without root or sudo, it says which tests will
# skip and exits 0.
set -euo pipefail

PACKAGES=(slurm-wlm munge slurmdbd mariadb-server-core mariadb-client-core postgresql
          texlive-latex-base texlive-latex-recommended chromium)
SUDO=()
((EUID == 0)) || SUDO=(sudo)

missing=()
for pkg in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}\n' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done

if ((${#missing[@]})); then
    if { ((EUID != 0)) && ! command -v sudo >/dev/null; } || ! command -v apt-get >/dev/null; then
        echo "install-debian-packages: no apt-get, or not root and no sudo: the SLURM, PostgreSQL, LaTeX and browser tests will skip"
        exit 0
    fi
    # No systemd here: stop package scripts from trying to start (and failing on) the system
    # services, unless the machine already has such a policy (Docker images do).
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        printf '#!/bin/sh\nexit 101\n' | "${SUDO[@]}" tee /usr/sbin/policy-rc.d >/dev/null
        "${SUDO[@]}" chmod 755 /usr/sbin/policy-rc.d
        trap '"${SUDO[@]}" rm -f /usr/sbin/policy-rc.d' EXIT
        echo "install-debian-packages: blocked service starts during the install (policy-rc.d)"
    fi
    log=$(mktemp)
    start=$SECONDS
    export DEBIAN_FRONTEND=noninteractive
    if ! { "${SUDO[@]}" apt-get update -qq &&
           "${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"; } >"$log" 2>&1; then
        tail -n 30 "$log" >&2
        echo "install-debian-packages: apt-get failed (full log: $log)" >&2
        exit 1
    fi
    rm -f "$log"
    echo "install-debian-packages: installed ${missing[*]} in $((SECONDS - start)) s"
else
    echo "install-debian-packages: already installed: ${PACKAGES[*]}"
fi
