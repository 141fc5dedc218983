#!/bin/sh
# Install the third-party programs that tests/interop/ drives (nc, socat, ...), when any
# is missing. Needs root (apt) for the install; when it cannot install, it prints the
# exact command to run and exits non-zero: interop tests are never skipped.
set -eu

# command -> Debian package
PEERS="nc:netcat-openbsd socat:socat openssl:openssl curl:curl"

missing=""
for entry in $PEERS; do
    command -v "${entry%%:*}" >/dev/null 2>&1 || missing="$missing ${entry#*:}"
done
[ -z "$missing" ] && exit 0

echo "installing interop peers:$missing"
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    for attempt in 1 2 3; do
        if apt-get update -qq && apt-get install -y -qq --no-install-recommends $missing >/dev/null; then
            exit 0
        fi
        [ "$attempt" -lt 3 ] && sleep 10
    done
fi
echo "error: could not install the interop peers; run as root:" >&2
echo "  apt-get update && apt-get install -y --no-install-recommends$missing" >&2
exit 1
