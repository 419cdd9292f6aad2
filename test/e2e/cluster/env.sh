#!/usr/bin/env bash
# Prints the environment the e2e tests and a shell need to use the local cluster:
#   eval "$(test/e2e/cluster/env.sh)"
source "$(dirname "$0")/lib.sh"
printf 'export KUBECONFIG=%q\nexport KUBECTL=%q\nexport PROMETHEUS_URL=%q\n' "$KUBECONFIG_PATH" "$(kubectl_bin)" "http://$PROMETHEUS_ADDR"
