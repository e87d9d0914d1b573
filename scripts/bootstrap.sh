#!/usr/bin/env bash
# Installs what kmigrate needs to build and test on a fresh Debian machine, and
# nothing it already has.  Idempotent: a second run only checks.
#
#   scripts/bootstrap.sh            packages + librdkafka
#   scripts/bootstrap.sh rdkafka    only print/ensure the librdkafka prefix
#   scripts/bootstrap.sh rdkafka-source DIR
#                                   fetch and unpack that librdkafka source
#                                   into DIR (emptied first), print its path
#                                   (bench/run-replicate builds an example of it)
#
# librdkafka must be >= 2.3 (docs/ARCHITECTURE.md, "Dependencies").  When the
# system one is older, Debian's own trixie source package is fetched with
# apt-get source (the system's apt configuration is left untouched) and built
# into .deps/, which is git-ignored; we link it statically.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
deps="$top/.deps"
rdk_ver=2.8.0
rdk_prefix="$deps/librdkafka-$rdk_ver"

pkgs=(build-essential cmake pkg-config libyaml-dev libjansson-dev libsqlite3-dev
      libxxhash-dev libcmocka-dev libmicrohttpd-dev libmimalloc-dev libcurl4-openssl-dev
      libssl-dev libsasl2-dev libzstd-dev liblz4-dev zlib1g-dev
      kcat clang openssl default-jdk-headless maven dpkg-dev curl jq
      chromium prometheus)

say() { printf 'bootstrap: %s\n' "$*" >&2; }

as_root() {
	if [ "$(id -u)" -eq 0 ]; then "$@"
	elif command -v sudo >/dev/null; then sudo "$@"
	else say "need root to run: $*  (re-run as root or install sudo)"; exit 1
	fi
}

install_packages() {
	local missing=() p
	for p in "${pkgs[@]}"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
			missing+=("$p")
	done
	# default-jdk-headless / maven are satisfied by any installed java/mvn.
	if command -v java >/dev/null; then missing=("${missing[@]/default-jdk-headless}"); fi
	if command -v mvn >/dev/null; then missing=("${missing[@]/maven}"); fi
	local real=()
	for p in "${missing[@]}"; do [ -n "$p" ] && real+=("$p"); done
	[ ${#real[@]} -eq 0 ] && return 0
	say "installing ${real[*]}"
	as_root apt-get update -qq
	as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${real[@]}" >/dev/null
}

# fetch_rdkafka_source DIR: Debian's librdkafka source package, unpacked
# in DIR; prints the source tree's path (and nothing else on stdout).
# Called in $(...), where set -e does not reach: every step checks.
fetch_rdkafka_source() {
	local work=$1 tree
	rm -rf "$work" && mkdir -p "$work/lists/partial" || return 1
	echo "deb-src http://deb.debian.org/debian trixie main" >"$work/trixie.list" || return 1
	local aptopt=(-o "Dir::Etc::SourceList=$work/trixie.list" -o Dir::Etc::SourceParts=/dev/null
		-o "Dir::State::Lists=$work/lists" -o Debug::NoDropPrivs=1 -o APT::Sandbox::User=root)
	if ! (cd "$work" && apt-get "${aptopt[@]}" update -qq >&2 &&
		apt-get "${aptopt[@]}" source --download-only "librdkafka=$rdk_ver-1" >/dev/null 2>&1); then
		say "cannot fetch Debian's librdkafka $rdk_ver source package (deb.debian.org reachable?)"
		return 1
	fi
	tar -C "$work" -xzf "$work/librdkafka_$rdk_ver.orig.tar.gz" >&2 || return 1
	tree=$(find "$work" -maxdepth 1 -type d -name 'librdkafka-*' | head -n1)
	[ -n "$tree" ] || { say "no librdkafka-* tree in $work"; return 1; }
	echo "$tree"
}

build_rdkafka() {
	if pkg-config --atleast-version=2.6.1 rdkafka 2>/dev/null; then
		return 0
	fi
	if [ -f "$rdk_prefix/.stamp" ]; then
		return 0
	fi
	say "system librdkafka is missing or older than 2.6.1 (SCRAM against Kafka 4 needs librdkafka PR #4895): building Debian's $rdk_ver source package into $rdk_prefix"
	local work="$deps/src" srcdir
	srcdir=$(fetch_rdkafka_source "$work")
	(cd "$srcdir" &&
		./configure --prefix="$rdk_prefix" --disable-gssapi >/dev/null &&
		make -j"$(nproc)" libs >/dev/null 2>&1 &&
		make -C src install >/dev/null)
	touch "$rdk_prefix/.stamp"
	rm -rf "$work"
	say "librdkafka $rdk_ver installed in $rdk_prefix"
}

case "${1:-all}" in
all) install_packages; build_rdkafka ;;
packages) install_packages ;;
rdkafka) build_rdkafka ;;
rdkafka-source) fetch_rdkafka_source "${2:?rdkafka-source needs a directory}" ;;
*) say "unknown step '$1' (use: all, packages, rdkafka, rdkafka-source DIR)"; exit 2 ;;
esac
