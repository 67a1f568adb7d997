#!/bin/sh
# Runs one role of Tessera: `coordinator`, `broker`, or any tessera CLI command.
set -e
app=/app/node_modules/@tessera
case "$1" in
  coordinator) shift; exec node "$app/coordinator/dist/main.js" "$@" ;;
  broker) shift; exec node "$app/broker/dist/main.js" "$@" ;;
  *) exec node /app/dist/bin.js "$@" ;;
esac
