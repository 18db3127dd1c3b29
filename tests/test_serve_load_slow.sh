#!/usr/bin/env bash
# test_serve_load_slow.sh: the serving load test at full size: 64 concurrent
# clients with mixed adapters for 60 s (see test_serve_load.sh).
LOAD_CLIENTS=64 LOAD_SECONDS=60 exec bash "$(dirname "${BASH_SOURCE[0]}")/test_serve_load.sh" "$@"
