#!/usr/bin/env bash
# The CLI is a client of the library's public API: its sources import `Sluice`
# (which re-exports what a user needs), `SluiceDiagnostics` (the tool's
# harness), `SluiceServer` (`sluice serve`), ArgumentParser and system
# modules, and no other Sluice module.
# SwiftPM's `--explicit-target-dependency-import-check error` cannot say this:
# it accepts an import of any target in the transitive closure of the declared
# dependencies, and every Sluice module is in the CLI's. Exits 1 naming each
# import that is not allowed.
set -euo pipefail
cd "$(dirname "$0")/.."

allowed=" Sluice SluiceDiagnostics SluiceServer ArgumentParser Foundation Glibc Darwin Synchronization "
status=0
while IFS=: read -r file line text; do
    module=$(sed -E 's/^[[:space:]]*(@[A-Za-z_]+[[:space:]]+)*import[[:space:]]+(struct |class |enum |protocol |func |var |let |typealias )?([A-Za-z_][A-Za-z0-9_]*).*/\3/' <<<"$text")
    if [[ "$allowed" != *" $module "* ]]; then
        echo "check-cli-imports: $file:$line imports $module (the CLI may import only:$allowed)"
        status=1
    fi
done < <(grep -nE '^[[:space:]]*(@[A-Za-z_]+[[:space:]]+)*import[[:space:]]' Sources/SluiceCLI/*.swift)
[ "$status" = 0 ] && echo "check-cli-imports: OK"
exit "$status"
