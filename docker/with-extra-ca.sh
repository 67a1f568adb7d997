#!/bin/sh
# Runs one build command that downloads (npm, pnpm, node-gyp) trusting one more CA certificate
# when the build arg EXTRA_CA_CERT holds one (PEM text), e.g. behind a TLS-intercepting proxy:
#   docker build --build-arg EXTRA_CA_CERT="$(cat proxy-ca.pem)" .
# The certificate is added to whatever NODE_EXTRA_CA_CERTS the base image already names, for this
# command only; it never reaches the runtime image.
set -e
if [ -n "${EXTRA_CA_CERT:-}" ]; then
  bundle=/root/build-extra-ca.pem
  {
    if [ -n "${NODE_EXTRA_CA_CERTS:-}" ] && [ -f "$NODE_EXTRA_CA_CERTS" ]; then cat "$NODE_EXTRA_CA_CERTS"; fi
    printf '%s\n' "$EXTRA_CA_CERT"
  } > "$bundle"
  NODE_EXTRA_CA_CERTS=$bundle
  export NODE_EXTRA_CA_CERTS
fi
exec "$@"
